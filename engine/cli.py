"""The ``tessera`` command line: run, status, validate.

Exit codes: 0 when every shard committed and the result was written (``run``), the store is
complete (``status``) or the job file is valid (``validate``); 1 when shards failed or are
pending, or the store/executor refused; 2 for an invalid job file or command line.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence

from engine import __version__, spec
from engine.errors import SpecError, TesseraError

log = logging.getLogger("engine.cli")

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``tessera`` console script; returns the exit code."""
    parser = _parser()
    args = parser.parse_args(argv)
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
        return 130
    except Exception as exc:
        if not _unreachable_store(exc):
            raise
        print(
            f"error: the store cannot be reached: {type(exc).__name__}: {exc}; committed shards "
            f"are kept, run again to resume",
            file=sys.stderr,
        )
        return EXIT_FAILED


def _unreachable_store(exc: BaseException) -> bool:
    """True for botocore's errors (an S3 endpoint that is down, after s3fs's retries): they are
    not OSErrors. botocore is looked up, not imported: it is loaded only if S3 was used."""
    module = sys.modules.get("botocore.exceptions")
    return module is not None and isinstance(exc, module.BotoCoreError)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tessera", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"tessera {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log at INFO level")
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="run a job (resumes: only pending shards run)")
    run.add_argument("job", help="job file (TOML or JSON)")
    run.add_argument("--shards", type=int, help="override job.shards")
    run.add_argument("--store", help="override job.store (path, file://, s3://)")
    run.add_argument(
        "--executor",
        choices=["local", "dask"],
        help="where shards run (default: dask, or TESSERA_EXECUTOR)",
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
    status.add_argument("--prices", help="price file extending the catalogue (or TESSERA_PRICES)")
    status.set_defaults(func=_cmd_status)

    validate = sub.add_parser("validate", help="check a job file before any work")
    validate.add_argument("job", help="job file (TOML or JSON)")
    validate.add_argument("--canonical", action="store_true", help="print the canonical JSON")
    validate.set_defaults(func=_cmd_validate)

    bench = sub.add_parser("bench", help="run the benchmark suite (from a source checkout)")
    bench.add_argument("--quick", action="store_true", help="small sizes, under 2 minutes")
    bench.add_argument(
        "--only", help="comma-separated sections: montecarlo,engine,store,imaging,gpu"
    )
    bench.add_argument("--results", help="folder for the JSON and PNG (default benchmarks/results)")
    bench.set_defaults(func=_cmd_bench)

    view = sub.add_parser("view", help="serve a local store's Deep Zoom viewer on localhost")
    view.add_argument("store", help="local store or folder holding .dzi output")
    view.add_argument("--port", type=int, default=0, help="port (default 0: a free one)")
    view.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    view.set_defaults(func=_cmd_view)
    from engine.batch.cli import add_parsers  # batch render|submit|status|doctor|local, worker

    add_parsers(sub)
    return parser


def _cmd_view(args: argparse.Namespace) -> int:
    from engine.viewer import serve

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
    job = spec.load(args.job)
    if args.canonical:
        print(job.canonical_json())
        return EXIT_OK
    from engine.plan import plan

    job_plan = plan(job)
    print(
        f"ok: job {job.name}, kernel {job.kernel_name}, {job_plan.n_shards} shards, "
        f"{job_plan.work:,} {job_plan.work_unit}, store {job.store}, spec {job.spec_hash[:12]}"
    )
    return EXIT_OK


def _cmd_run(args: argparse.Namespace) -> int:
    from engine import cost, executors
    from engine.config import settings
    from engine.report import Progress, render
    from engine.run import run_job

    if args.shards is not None and args.shards < 1:
        raise SpecError("--shards", f"{args.shards} is out of range; expected >= 1")
    if args.workers is not None and args.workers < 1:
        raise SpecError("--workers", f"{args.workers} is out of range; expected >= 1")
    if args.gpu_workers is not None and args.gpu_workers < 1:
        raise SpecError("--gpu-workers", f"{args.gpu_workers} is out of range; expected >= 1")
    job = spec.load(args.job, overrides={"shards": args.shards, "store": args.store})
    env = settings()
    executor = executors.create(
        args.executor or env.executor,
        scheduler=args.scheduler or env.scheduler,
        workers=args.workers or env.workers,
        gpu_workers=args.gpu_workers,
    )
    if args.budget is not None and args.budget <= 0:
        raise SpecError("--budget", f"{args.budget} is out of range; expected > 0")
    catalogue = cost.load_catalogue(args.prices or env.prices)
    progress = Progress()
    try:
        outcome = run_job(
            job,
            executor,
            progress,
            budget_usd=args.budget,
            catalogue=catalogue,
            price_basis=args.price_basis or env.price_basis,
        )
    finally:
        progress.close()
    if args.json:
        print(json.dumps(outcome.report, indent=2, sort_keys=True))
    else:
        print(render(outcome.result, outcome.report))
    for error in outcome.item_errors:
        print(f"FAILED shard {error['shard']} input {error.get('input')}: {error.get('reason')}")
    if outcome.ok:
        print(f"result: {job.store}/result.json")
        return EXIT_OK
    if outcome.item_errors and outcome.committed == outcome.n_shards:
        print(
            f"incomplete: {len(outcome.item_errors)} inputs failed (listed above); every "
            f"shard committed, fix or drop those inputs",
            file=sys.stderr,
        )
        return EXIT_FAILED
    if outcome.budget_stop:
        print(outcome.budget_stop, file=sys.stderr)
    pending = outcome.n_shards - outcome.committed
    print(
        f"incomplete: {pending} of {outcome.n_shards} shards not committed "
        f"({len(outcome.failures)} failed); fix the cause and run again to resume",
        file=sys.stderr,
    )
    return EXIT_FAILED


def _cmd_status(args: argparse.Namespace) -> int:
    from engine.plan import pending
    from engine.run import item_errors_of
    from engine.spec import normalise_store_url
    from engine.store import Store

    store = Store.open_existing(normalise_store_url(args.store))
    meta = store.meta
    n = store.n_shards
    done = store.committed()
    failures = store.failures()
    attempts = store.attempts()
    todo = [i for i in pending(n, done) if i not in failures]
    item_errors = item_errors_of(store.commit_records())
    result = store.read_json("result.json")
    if args.json:
        print(
            json.dumps(
                {
                    "store": store.url,
                    "job": meta["job"]["job"]["name"],
                    "spec_hash": meta["spec_hash"],
                    "n_shards": n,
                    "committed": len(done),
                    "pending": todo,
                    "failed": {str(i): r.get("reason") for i, r in sorted(failures.items())},
                    "failed_inputs": item_errors,
                    "complete": result is not None and len(done) == n and not item_errors,
                },
                indent=2,
            )
        )
    else:
        job = meta["job"]["job"]
        print(
            f"store {store.url}: job {job['name']} ({job['kernel']}), spec {meta['spec_hash'][:12]}"
        )
        print(f"shards: {len(done)}/{n} committed, {len(failures)} failed, {len(todo)} pending")
        for i, rec in sorted(failures.items()):
            print(
                f"  FAILED shard {i} (attempt {rec.get('attempt')}, host {rec.get('host')}): "
                f"{rec.get('reason')}"
            )
        if todo:
            shown = ", ".join(map(str, todo[:20])) + (" ..." if len(todo) > 20 else "")
            print(f"  pending: {shown}")
        for error in item_errors:
            print(
                f"  FAILED input {error.get('input')} (shard {error['shard']}): "
                f"{error.get('reason')}"
            )
        retried = {i: a for i, a in attempts.items() if a > 1}
        if retried:
            print(f"  shards with more than one attempt: {len(retried)}")
        run_report = store.read_json("report.json")
        if run_report is not None:
            from engine import cost
            from engine.config import settings
            from engine.report import cost_section, render
            from engine.spec import from_dict

            prices = args.prices or settings().prices
            records = store.commit_records()
            if prices and records:
                job_of_store = from_dict(meta["job"])
                run_report["cost"] = cost_section(
                    job_of_store, records, cost.load_catalogue(prices)
                )

            print(render(result, run_report))
        elif result is not None:
            print(json.dumps(result, indent=2))
    complete = result is not None and len(done) == n and not item_errors
    return EXIT_OK if complete else EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
