"""The ``tessera`` command line: run, status, validate.

Exit codes: 0 when every shard committed and the result was written (``run``), the store is
complete (``status``) or the job file is valid (``validate``); 1 when shards failed or are
pending, or the store/executor refused; 2 for an invalid job file or command line; 130 when
interrupted (Ctrl-C; committed shards are kept).
"""

from __future__ import annotations

import argparse
import gc
import json
import logging
import sys
from collections.abc import Sequence
from typing import Any

from tessera.engine import __version__, process, spec
from tessera.engine.config import settings
from tessera.engine.errors import SpecError, TesseraError

log = logging.getLogger("tessera.engine.cli")

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``tessera`` console script; returns the exit code.

    As the console script (``argv`` None), ``tessera run`` collects no garbage while it starts:
    the imports and the job's load make only objects that live as long as the process, and
    collecting them took 0.1 s of a 2 s run. ``_loaded`` freezes them and collects again. On
    the way out everything is frozen, so the interpreter's last collection does not walk
    Numba's and zarr's objects (0.2 s, during which Ctrl-C's handler is already gone).
    ``tessera run`` and ``tessera worker`` also keep the memory they free for reuse
    (``_keep_freed_memory``)."""
    parser = _parser()
    args = parser.parse_args(argv)
    console = argv is None
    if console and args.command == "run":
        gc.disable()
    if console and args.command in ("run", "worker"):
        _keep_freed_memory()
        process.own()
    try:
        return _main(args)
    finally:
        _loaded()
        if console:
            gc.freeze()


def _keep_freed_memory() -> None:
    """With glibc: large blocks come from the heap, and freed ones stay there for the next
    (``mallopt``: M_MMAP_THRESHOLD 1 GiB, M_TRIM_THRESHOLD 2 GiB). By default every block over
    32 MiB is mapped fresh and zeroed by the kernel, page by page: a pyramid shard's 48 MiB
    region, its level pieces and zarrs's buffers, shard after shard (8% of the CPU of a
    16384^2 pyramid). Peak memory is the same; what the process frees stays with it until it
    exits, which a run or a Batch child soon does. Elsewhere nothing changes."""
    import ctypes

    try:
        libc = ctypes.CDLL("libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc (macOS, musl)
        return
    mallopt(-3, 1 << 30)  # M_MMAP_THRESHOLD
    mallopt(-1, 1 << 31)  # M_TRIM_THRESHOLD


def _loaded() -> None:
    """Collect garbage again, if start-up stopped it, with what is loaded so far frozen."""
    if not gc.isenabled():
        gc.freeze()
        gc.enable()


def _main(args: argparse.Namespace) -> int:
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        code: int = args.func(args)
        return code
    except SpecError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except (TesseraError, ValueError, OSError) as exc:  # OSError: a full or read-only store
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        print("interrupted: committed shards are kept; run again to resume", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as exc:
        if not _botocore_error(exc):
            raise
        print(f"error: {_aws_trouble(exc, args.command)}", file=sys.stderr)
        return EXIT_FAILED


def _botocore_error(exc: BaseException) -> bool:
    """True for botocore's errors (an endpoint that is down after retries, no region): they
    are not OSErrors. botocore is looked up, not imported: it is loaded only if AWS was used."""
    module = sys.modules.get("botocore.exceptions")
    return module is not None and isinstance(exc, module.BotoCoreError)


def _aws_trouble(exc: BaseException, command: str) -> str:
    """What went wrong with an AWS call, naming what could not be reached, with advice that
    fits the command."""
    name = type(exc).__name__
    if name == "NoRegionError":
        return "no AWS region is configured: pass --region or set AWS_REGION"
    endpoint = getattr(exc, "kwargs", {}).get("endpoint_url")
    what = f"the endpoint {endpoint}" if endpoint else "an AWS endpoint"
    advice = {
        "run": "committed shards are kept; run again to resume",
        "validate": "nothing was run",
    }.get(command, "check the endpoint (AWS_ENDPOINT_URL), the region and the network")
    return f"{what} could not be reached ({name}: {exc}); {advice}"


class _Parser(argparse.ArgumentParser):
    """No abbreviations: ``--shard 3`` is an error, not ``--shards 3`` (every subcommand's
    parser is of this class too)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="tessera", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"tessera {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log at INFO level")
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="run a job (resumes: only pending shards run)")
    run.add_argument("job", help="job file (TOML or JSON)")
    run.add_argument("--shards", type=int, help="override job.shards")
    run.add_argument("--store", help="override job.store (path, file://, s3://)")
    run.add_argument(
        "--executor",
        choices=["auto", "local", "dask", "batch"],
        help="where shards run (default: TESSERA_EXECUTOR, else auto: local or dask, whichever "
        "the job's projected seconds make faster); batch: AWS Batch arrays",
    )
    run.add_argument(
        "--queue", help="batch: job queue (default: [batch] queue, TESSERA_BATCH_QUEUE)"
    )
    run.add_argument(
        "--definition",
        help="batch: job definition (default: TESSERA_BATCH_DEFINITION, else tessera-<job name>, "
        "registered from --image when missing)",
    )
    run.add_argument(
        "--image", help="batch: image to register the definition with (or TESSERA_BATCH_IMAGE)"
    )
    run.add_argument(
        "--scheduler",
        help="Dask scheduler address (default: DASK_SCHEDULER_ADDRESS, else a LocalCluster)",
    )
    run.add_argument("--workers", type=int, help="LocalCluster worker processes (default: cores)")
    run.add_argument(
        "--gpu-workers",
        type=int,
        help="LocalCluster GPU workers, one per GPU (CUDA_VISIBLE_DEVICES set for each); "
        "with it, --workers counts CPU workers only (default none)",
    )
    run.add_argument(
        "--upload-kernel",
        action="store_true",
        help="ship a kernel that is a single module to the workers of --scheduler "
        "(Client.upload_file)",
    )
    run.add_argument("--budget", type=float, help="override job.budget_usd (USD)")
    run.add_argument("--prices", help="price file extending the catalogue (or TESSERA_PRICES)")
    run.add_argument(
        "--price-basis",
        help="what a budget is compared against: on-demand, spot, "
        "fargate, fargate-spot or TYPE:spot|on-demand (default on-demand: the "
        "cheapest on-demand type that holds a shard; or TESSERA_PRICE_BASIS)",
    )
    run.add_argument("--json", action="store_true", help="print report.json instead of a table")
    run.set_defaults(func=_cmd_run)

    status = sub.add_parser("status", help="show a store's shards, failures and result")
    status.add_argument("store", help="store location (path, file://, s3://)")
    status.add_argument("--json", action="store_true", help="print machine-readable status")
    status.add_argument(
        "-v",
        "--verbose",
        dest="frames",
        action="store_true",
        help="show the last traceback frames of each failed shard",
    )
    status.add_argument("--prices", help="price file extending the catalogue (or TESSERA_PRICES)")
    status.set_defaults(func=_cmd_status)

    validate = sub.add_parser("validate", help="check a job file before any work")
    validate.add_argument("job", help="job file (TOML or JSON)")
    validate.add_argument("--shards", type=int, help="override job.shards, as for run")
    validate.add_argument("--store", help="override job.store, as for run")
    validate.add_argument("--canonical", action="store_true", help="print the canonical JSON")
    validate.set_defaults(func=_cmd_validate)

    bench = sub.add_parser("bench", help="run the benchmark suite (from a source checkout)")
    bench.add_argument("--quick", action="store_true", help="small sizes, under 2 minutes")
    bench.add_argument(
        "--only", help="comma-separated sections: montecarlo,engine,store,imaging,gpu"
    )
    bench.add_argument("--results", help="folder for the JSON and PNG (default benchmarks/results)")
    bench.set_defaults(func=_cmd_bench)

    kernels = sub.add_parser("kernels", help="list the installed kernels and who provides them")
    kernels.add_argument("--json", action="store_true", help="print them as JSON")
    kernels.set_defaults(func=_cmd_kernels)

    view = sub.add_parser("view", help="serve a local store's Deep Zoom viewer on localhost")
    view.add_argument("store", help="local store or folder holding .dzi output")
    view.add_argument("--port", type=int, default=0, help="port (default 0: a free one)")
    view.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    view.set_defaults(func=_cmd_view)
    from tessera.engine.batch.cli import (
        add_parsers,  # batch render|submit|status|doctor|local, worker
    )

    add_parsers(sub)
    return parser


def _cmd_kernels(args: argparse.Namespace) -> int:
    import tessera

    found = tessera.list_kernels()
    if args.json:
        print(json.dumps([k.to_dict() for k in found], indent=2))
        return EXIT_OK
    rows = [("kernel", "distribution", "version", "target")]
    rows += [(k.name, k.distribution or "-", k.version or "-", k.target) for k in found]
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    for row in rows:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths)) + "  " + row[3])
    print('any other kernel: kernel = "package.module:ATTRIBUTE" in the job file')
    return EXIT_OK


def _cmd_view(args: argparse.Namespace) -> int:
    from tessera.engine.viewer import serve

    code: int = serve(args.store, host=args.host, port=args.port)
    return code


def _cmd_bench(args: argparse.Namespace) -> int:
    import subprocess
    from pathlib import Path

    suite = Path(__file__).resolve().parent.parent / "benchmarks" / "suite.py"
    if not suite.exists():
        raise TesseraError(
            f"the benchmark suite is not installed ({suite} is missing); run `tessera bench` "
            f"from a source checkout (pip install -e .)"
        )
    command = [sys.executable, str(suite)]
    command += ["--quick"] if args.quick else []
    command += ["--only", args.only] if args.only else []
    command += ["--results", args.results] if args.results else []
    return subprocess.run(command, check=False).returncode


def _cmd_validate(args: argparse.Namespace) -> int:
    if args.shards is not None and args.shards < 1:
        raise SpecError("--shards", f"{args.shards} is out of range; expected >= 1")
    job = spec.load(args.job, overrides={"shards": args.shards, "store": args.store})
    if args.canonical:
        print(job.canonical_json())
        return EXIT_OK
    from tessera.engine.plan import plan
    from tessera.engine.report import plural

    job_plan = plan(job)
    print(
        f"ok: job {job.name}, kernel {job.kernel_name}, {plural(job_plan.n_shards, 'shard')}, "
        f"{job_plan.work:,} {job_plan.work_unit}, store {job.store}, spec {job.spec_hash[:12]}"
    )
    stages = job_plan.layout.stage_ranges()
    if len(stages) > 1:
        parts = [f"{name} ({plural(len(shards), 'shard')})" for name, shards in stages]
        print(f"stages, in order: {', then '.join(parts)}")
    if job.target is not None:
        product = job.target.product or "the first product"
        print(
            f"target: standard error <= {job.target.stderr:g} of {product}, in waves of 1, 2, "
            f"4, ... of the last stage's {plural(len(stages[-1][1]), 'shard')} (the cap)"
        )
    return EXIT_OK


def _cmd_run(args: argparse.Namespace) -> int:
    import tessera

    if args.shards is not None and args.shards < 1:
        raise SpecError("--shards", f"{args.shards} is out of range; expected >= 1")
    if args.workers is not None and args.workers < 1:
        raise SpecError("--workers", f"{args.workers} is out of range; expected >= 1")
    if args.gpu_workers is not None and args.gpu_workers < 1:
        raise SpecError("--gpu-workers", f"{args.gpu_workers} is out of range; expected >= 1")
    if args.budget is not None and args.budget <= 0:
        raise SpecError("--budget", f"{args.budget} is out of range; expected > 0")
    overrides = {"shards": args.shards, "store": args.store}
    job = spec.load(args.job, overrides=overrides, prime=args.executor != "batch")
    import tessera.engine.run  # noqa: F401  (tessera.run's own import, before _loaded)

    _loaded()
    batch_only = {"--queue": args.queue, "--definition": args.definition, "--image": args.image}
    for flag, value in batch_only.items():
        if value is not None and args.executor != "batch":
            raise SpecError(flag, "applies to --executor batch only")
    executor: Any = _batch_executor(job, args) if args.executor == "batch" else args.executor
    try:
        outcome = tessera.run(
            job,
            executor,
            scheduler=args.scheduler,
            workers=args.workers,
            gpu_workers=args.gpu_workers,
            upload_kernel=args.upload_kernel,
            progress=True,
            budget_usd=args.budget,
            price_basis=args.price_basis,
            prices=args.prices,
        )
    except KeyboardInterrupt:
        submitted = list(getattr(executor, "submitted", []))
        if submitted:  # the children belong to Batch now: detach, do not cancel
            ids = " ".join(submitted)
            print(
                f"detached: the Batch jobs keep running ({_kept(job.store)}). Follow them: "
                f"tessera batch status {ids} --watch; collect when done: tessera run "
                f"{args.job} --executor batch (it submits only the shards still missing); "
                f"stop them: aws batch terminate-job --job-id ID --reason ...",
                file=sys.stderr,
            )
        else:
            print(f"interrupted: {_kept(job.store)}; run again to resume", file=sys.stderr)
        return EXIT_INTERRUPTED
    return _after_run(job, outcome, args)


def _batch_executor(job: Any, args: argparse.Namespace) -> Any:
    """The AWS Batch executor for ``tessera run --executor batch``: the job definition named
    by ``--definition`` or TESSERA_BATCH_DEFINITION, else ``tessera-<job name>`` when it is
    registered (its newest active revision), else that one registered now from ``--image``
    (or TESSERA_BATCH_IMAGE) with the TESSERA_BATCH_* roles and log group. Polls every
    TESSERA_BATCH_POLL_S seconds (default 30)."""
    import os

    from tessera.engine.batch.aws import batch_client, call
    from tessera.engine.batch.render import RenderOptions, definition_name, render
    from tessera.engine.config import batch_settings
    from tessera.engine.executors.batch import BatchExecutor

    env = batch_settings()
    client = batch_client()
    definition = args.definition or env.definition
    if not definition:
        name = definition_name(job)
        found = call(
            client, "DescribeJobDefinitions", {"jobDefinitionName": name, "status": "ACTIVE"}
        ).get("jobDefinitions", [])
        if found:
            definition = str(max(found, key=lambda d: int(d["revision"]))["jobDefinitionArn"])
        else:
            image = args.image or env.image
            if not image:
                raise SpecError(
                    "--image",
                    f"is required to register the job definition {name} (or set "
                    f"TESSERA_BATCH_IMAGE, or name a registered one with --definition)",
                )
            request = render(
                job,
                RenderOptions(
                    image=image,
                    job_role_arn=env.job_role_arn,
                    execution_role_arn=env.execution_role_arn,
                    log_group=env.log_group,
                ),
            )
            response = call(client, "RegisterJobDefinition", request)
            definition = str(response["jobDefinitionArn"])
            print(f"registered {name}:{response['revision']} ({image})", file=sys.stderr)
    try:
        poll_s = float(os.environ.get("TESSERA_BATCH_POLL_S", "") or 30.0)
    except ValueError:
        raise SpecError("TESSERA_BATCH_POLL_S", "expected seconds between polls") from None
    return BatchExecutor(args.queue, definition, client=client, poll_s=poll_s)


def _kept(store_url: str) -> str:
    """How many shards a store holds committed, for the interrupt message."""
    from tessera.engine.report import plural
    from tessera.engine.store import Store

    try:
        done = len(Store.open_existing(store_url).committed())
    except Exception:  # the store was never created, or cannot be read now
        return "committed shards are kept"
    return f"{plural(done, 'shard')} committed and kept"


def _after_run(job: Any, outcome: Any, args: argparse.Namespace) -> int:
    """Print the outcome of ``tessera run`` and return its exit code."""
    from tessera.engine.report import render

    # With --json, stdout holds report.json and nothing else; every other line goes to stderr.
    notes = sys.stderr if args.json else sys.stdout
    if args.json:
        print(json.dumps(outcome.report, indent=2, sort_keys=True))
        for shard, reason in outcome.report["failed"].items():
            print(f"FAILED shard {shard}: {reason}", file=notes)
    else:
        print(render(outcome.result, outcome.report))
    for error in outcome.item_errors:
        print(
            f"FAILED shard {error['shard']} input {error.get('input')}: {error.get('reason')}",
            file=notes,
        )
    if outcome.ok:
        print(f"result: {job.store}/result.json", file=notes)
        return EXIT_OK
    if outcome.item_errors and outcome.committed == outcome.n_shards:
        again = f"tessera run {args.job}" + "".join(
            f" --{flag} {value}"
            for flag, value in (("shards", args.shards), ("executor", args.executor))
            if value
        )
        same_store = again + (f" --store {args.store}" if args.store else "")
        print(
            f"incomplete: {len(outcome.item_errors)} inputs failed (listed above); every "
            f"shard committed. To fix them: repair the files in place and run `{same_store}` "
            f"again (only the failed inputs are redone, every other output is kept). To "
            f"drop them: remove them from the "
            f"job's inputs (its glob's folder or manifest) and run the new list into a new "
            f"store: `{again} --store NEW_LOCATION` (every input is then done again)",
            file=sys.stderr,
        )
        return EXIT_FAILED
    pending = outcome.n_shards - outcome.committed
    print(
        f"incomplete: {pending} of {outcome.n_shards} shards not committed "
        f"({len(outcome.failures)} failed); fix the cause and run again to resume",
        file=sys.stderr,
    )
    return EXIT_FAILED


def _cmd_status(args: argparse.Namespace) -> int:
    import tessera

    state = tessera.status(args.store)
    if args.json:
        print(json.dumps(state.to_dict(), indent=2))
        return EXIT_OK if state.complete else EXIT_FAILED
    job = state.job_spec["job"]
    print(f"store {state.store}: job {job['name']} ({job['kernel']}), spec {state.spec_hash[:12]}")
    print(
        f"shards: {state.committed}/{state.n_shards} committed, {len(state.failed)} failed, "
        f"{len(state.pending)} pending"
    )
    for i, rec in sorted(state.failed.items()):
        print(
            f"  FAILED shard {i} (attempt {rec.get('attempt')}, host {rec.get('host')}): "
            f"{rec.get('reason')}"
        )
        if args.frames or args.verbose:
            for frame in rec.get("traceback", []):
                print(f"    {frame['file']}:{frame['line']} in {frame['function']}")
                if frame.get("code"):
                    print(f"      {frame['code']}")
    if state.pending:
        todo = state.pending
        shown = ", ".join(map(str, todo[:20])) + (" ..." if len(todo) > 20 else "")
        print(f"  pending: {shown}")
    for error in state.failed_inputs:
        print(
            f"  FAILED input {error.get('input')} (shard {error['shard']}): {error.get('reason')}"
        )
    retried = {i: a for i, a in state.attempts.items() if a > 1}
    if retried:
        print(f"  shards with more than one attempt: {len(retried)}")
    run_report = state.report
    if run_report is not None:
        prices = args.prices or settings().prices
        if prices and state.committed:
            from tessera.engine import cost
            from tessera.engine.report import cost_section
            from tessera.engine.store import Store

            store = Store.open_existing(state.store)
            run_report["cost"] = cost_section(
                store.stored_job(), store.commit_records(), cost.load_catalogue(prices)
            )
        from tessera.engine.report import render

        print(render(state.result, run_report, failures=False))
    elif state.result is not None:
        print(json.dumps(state.result, indent=2))
    return EXIT_OK if state.complete else EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
