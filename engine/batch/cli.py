"""``tessera batch render|submit|status|doctor|local`` and ``tessera worker``.

Exit codes follow the CLI's: 0 success; 1 refused or failed (budget, doctor problems, failed
jobs, AWS errors); 2 invalid job file or command line.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from tessera.engine import worker_cli
from tessera.engine.batch import contract as c

EXIT_OK, EXIT_FAILED = 0, 1


def add_parsers(sub: Any) -> None:
    """Register ``batch`` (with its subcommands) and ``worker`` on the CLI's subparsers."""
    worker_cli.add_parser(sub)
    batch = sub.add_parser("batch", help="run a job on AWS Batch (render, submit, status, ...)")
    cmds = batch.add_subparsers(dest="batch_command", required=True)

    render = cmds.add_parser("render", help="print the RegisterJobDefinition request of a job")
    _job_args(render)
    _render_args(render)
    render.add_argument("--register", action="store_true", help="register it with Batch")
    render.add_argument("--region", help="AWS region (default: botocore's chain)")
    render.set_defaults(func=_cmd_render)

    submit = cmds.add_parser("submit", help="submit the pending shards as array jobs")
    _job_args(submit)
    submit.add_argument("--queue", help="job queue (default: TESSERA_BATCH_QUEUE)")
    submit.add_argument(
        "--definition", help="job definition name[:revision] or ARN (TESSERA_BATCH_DEFINITION)"
    )
    submit.add_argument(
        "--depends-on",
        action="append",
        default=[],
        metavar="ID[:N_TO_N]",
        help="wait for this job (repeatable, at most 20); :N_TO_N pairs array children",
    )
    submit.add_argument("--budget", type=float, help="override job.budget_usd (USD)")
    submit.add_argument("--prices", help="price file extending the catalogue (or TESSERA_PRICES)")
    submit.add_argument(
        "--price-basis",
        help="what the budget is compared against: on-demand (default), spot, fargate, "
        "fargate-spot or TYPE:spot (or TESSERA_PRICE_BASIS)",
    )
    submit.add_argument(
        "--price-per-vcpu-hour", type=float, help="price the budget as vCPU-hours x this (USD)"
    )
    submit.add_argument("--no-reduce", action="store_true", help="do not submit the reduce job")
    submit.add_argument("--dry-run", action="store_true", help="print the requests; send nothing")
    submit.add_argument("--json", action="store_true", help="print the job IDs as JSON")
    submit.add_argument("--region", help="AWS region (default: botocore's chain)")
    submit.set_defaults(func=_cmd_submit)

    status = cmds.add_parser("status", help="progress, failed children and RUNNABLE reasons")
    status.add_argument("job_ids", nargs="+", metavar="JOB_ID")
    status.add_argument("--watch", action="store_true", help="poll until every job finished")
    status.add_argument("--interval", type=float, default=30.0, help="seconds between polls")
    status.add_argument("--region", help="AWS region (default: botocore's chain)")
    status.set_defaults(func=_cmd_status)

    doctor = cmds.add_parser("doctor", help="explain why a job would sit in RUNNABLE")
    _job_args(doctor)
    doctor.add_argument("--queue", help="job queue (default: TESSERA_BATCH_QUEUE)")
    doctor.add_argument("--platform", choices=["EC2", "FARGATE"], default="EC2")
    doctor.add_argument("--region", help="AWS region (default: botocore's chain)")
    doctor.set_defaults(func=_cmd_doctor)

    local = cmds.add_parser("local", help="run the array job on this machine as Batch would")
    _job_args(local)
    local.add_argument("--parallel", type=int, default=1, help="children at a time (default 1)")
    local.set_defaults(func=_cmd_local)


def _job_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("job", help="job file (TOML or JSON)")
    p.add_argument("--shards", type=int, help="override job.shards")
    p.add_argument("--store", help="override job.store (s3://... for Batch)")


def _render_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--image", help="container image URI (default: TESSERA_BATCH_IMAGE)")
    p.add_argument("--platform", choices=["EC2", "FARGATE"], default="EC2")
    p.add_argument("--name", help="job definition name (default: tessera-<job name>)")
    p.add_argument("--job-role-arn", help="IAM role of the job (TESSERA_BATCH_JOB_ROLE_ARN)")
    p.add_argument(
        "--execution-role-arn",
        help="ECS execution role, needed on Fargate (TESSERA_BATCH_EXECUTION_ROLE_ARN)",
    )
    p.add_argument("--log-group", help="CloudWatch log group (TESSERA_BATCH_LOG_GROUP)")
    p.add_argument(
        "--assign-public-ip", action="store_true", help="Fargate: give tasks a public IP"
    )
    p.add_argument(
        "--env",
        action="append",
        metavar="NAME=VALUE",
        help="a container variable (repeatable), e.g. AWS_ENDPOINT_URL_S3; never credentials: "
        "use --job-role-arn",
    )


def _load(args: argparse.Namespace) -> Any:
    from tessera.engine import spec
    from tessera.engine.errors import SpecError

    if args.shards is not None and args.shards < 1:
        raise SpecError("--shards", f"{args.shards} is out of range; expected >= 1")
    return spec.load(args.job, overrides={"shards": args.shards, "store": args.store})


def _need(name: str, value: str | None, var: str) -> str:
    from tessera.engine.errors import SpecError

    if not value:
        raise SpecError(name, f"is required (or set {var})")
    return value


def _kernel_image_note(job: Any, image: str) -> None:
    """Say which image must hold a kernel that is not built into tessera's."""
    ident = job.identity
    if ident["origin"] == "built-in":
        return
    dist = ident["distribution"]
    package = f"{dist}=={ident['version']}" if dist and ident["version"] else dist
    how = (
        f"FROM the tessera image, then RUN python -m ensurepip && python -m pip install '{package}'"
        if package
        else f"module {ident['target'].split(':')[0]} is on no installed distribution: package "
        f"it and pip install it there"
    )
    print(
        f"note: kernel {job.kernel_name} ({ident['target']}) is not built into tessera: the "
        f"image {image} must contain it ({how}; see README, 'Write your own kernel')",
        file=sys.stderr,
    )


def _cmd_render(args: argparse.Namespace) -> int:
    from tessera.engine.batch.render import DEFAULT_IMAGE, RenderOptions, masked, parse_env, render
    from tessera.engine.config import batch_settings

    job = _load(args)
    env = batch_settings()
    image = args.image or env.image
    if args.register:
        image = _need("--image", image, "TESSERA_BATCH_IMAGE")
    if not image:
        print(
            f"warning: no --image and no TESSERA_BATCH_IMAGE: the job definition names the "
            f"default image {DEFAULT_IMAGE}, which must exist in your registry (build it from "
            f"containers/Dockerfile and push it, or pass --image URI)",
            file=sys.stderr,
        )
    _kernel_image_note(job, image or DEFAULT_IMAGE)
    request = render(
        job,
        RenderOptions(
            image=image or DEFAULT_IMAGE,
            platform=args.platform,
            job_role_arn=args.job_role_arn or env.job_role_arn,
            execution_role_arn=args.execution_role_arn or env.execution_role_arn,
            log_group=args.log_group or env.log_group,
            assign_public_ip=args.assign_public_ip,
            name=args.name,
            environment=parse_env(args.env),
        ),
    )
    print(json.dumps(masked(request), indent=2, sort_keys=True))
    if args.register:
        from tessera.engine.batch.aws import batch_client, call

        response = call(batch_client(args.region), "RegisterJobDefinition", request)
        print(
            f"registered {response['jobDefinitionName']}:{response['revision']} "
            f"({response['jobDefinitionArn']})",
            file=sys.stderr,
        )
    return EXIT_OK


def _cmd_submit(args: argparse.Namespace) -> int:
    from tessera.engine import budget, cost
    from tessera.engine.batch import submit
    from tessera.engine.batch.budget import check
    from tessera.engine.config import batch_settings, settings
    from tessera.engine.errors import SpecError, StoreError
    from tessera.engine.plan import plan
    from tessera.engine.store import Store

    job = _load(args)
    if job.target is not None:
        raise SpecError(
            "job.target_stderr",
            "tessera batch submit sends every array job at once and cannot decide between "
            "waves; run this job with tessera run --executor batch (the driver submits one "
            "array job per wave) or tessera batch local",
        )
    env, run_env = batch_settings(), settings()
    queue = _need("--queue", args.queue or job.batch.queue or env.queue, "TESSERA_BATCH_QUEUE")
    definition = _need(
        "--definition", args.definition or env.definition, "TESSERA_BATCH_DEFINITION"
    )
    deps = [submit.Dependency.parse(d) for d in args.depends_on]
    _kernel_image_note(job, f"of job definition {definition}")
    prepared = submit.prepare(job, queue=queue, definition=definition, create=not args.dry_run)

    limit = args.budget if args.budget is not None else job.budget_usd
    if limit is not None:
        if limit <= 0:
            raise SpecError("--budget", f"{limit} is out of range; expected > 0")
        job_plan = plan(job)
        try:
            records = Store.open_for_job(job, job_plan, create=False).commit_records()
        except StoreError:  # a dry run before the store exists
            records = {}
        projection = budget.project(
            job,
            records,
            prepared.pending,
            job_plan.layout.shard_work,
            catalogue=cost.load_catalogue(args.prices or run_env.prices),
            basis=args.price_basis or run_env.price_basis,
            price_per_vcpu_hour=args.price_per_vcpu_hour,
        )
        check(projection, limit)
        print(f"budget ${limit:,.2f}: projected {projection.describe()}", file=sys.stderr)

    client = None
    sizes: dict[str, int | None] = {}
    fair_share = None
    if not args.dry_run:
        from tessera.engine.batch.aws import batch_client

        client = batch_client(args.region)
        sizes = submit.describe_sizes(client, deps)
        fair_share = submit.is_fair_share(client, queue)
    array_sizes = [len(f.shards) for f in prepared.files]
    deps_on = submit.dependency_entries(deps, array_sizes, sizes)
    submit.finalize(prepared, deps_on, fair_share=fair_share)

    if args.dry_run:
        requests = list(prepared.arrays)
        if not args.no_reduce:
            requests.append(submit.reduce_request(prepared, ["<array job ids>"]))
        print(json.dumps(requests, indent=2, sort_keys=True))
        return EXIT_OK
    if not prepared.pending and Store.open_for_job(job, plan(job)).read_json("result.json"):
        print(f"nothing to submit: all {prepared.n_shards} shards committed, result written")
        return EXIT_OK

    submit.write_files(prepared)
    done = submit.send(client, prepared, reduce=not args.no_reduce)
    if args.json:
        print(
            json.dumps(
                {
                    "submission": prepared.submission,
                    "job_url": prepared.job_url,
                    "arrays": done.arrays,
                    "barriers": done.barriers,
                    "reduce": done.reduce,
                },
                indent=2,
            )
        )
        return EXIT_OK
    print(
        f"submission {prepared.submission}: {len(prepared.pending):,} of {prepared.n_shards:,} "
        f"shards pending, job spec {prepared.job_url}"
    )
    for f, job_id in zip(prepared.files, done.arrays):
        kind = f"array of {len(f.shards):,}" if len(f.shards) > 1 else "single job"
        print(f"{job_id}  shards ({kind}, {c.index_name(f.array)})")
    for job_id in done.barriers:
        print(f"{job_id}  barrier")
    if done.reduce:
        print(f"{done.reduce}  reduce (writes result.json when every shard has committed)")
    print(f"follow with: tessera batch status {' '.join(done.all)}")
    return EXIT_OK


def _cmd_status(args: argparse.Namespace) -> int:
    from tessera.engine.batch import status
    from tessera.engine.batch.aws import batch_client, logs_client

    if args.interval <= 0:
        from tessera.engine.errors import SpecError

        raise SpecError("--interval", f"{args.interval} is out of range; expected > 0")
    states = status.watch(
        batch_client(args.region),
        args.job_ids,
        interval=args.interval,
        out=sys.stdout,
        once=not args.watch,
        logs=logs_client(args.region),
    )
    ok = len(states) == len(set(args.job_ids)) and all(s.status == "SUCCEEDED" for s in states)
    return EXIT_OK if ok else EXIT_FAILED


def _cmd_doctor(args: argparse.Namespace) -> int:
    from tessera.engine.batch import doctor
    from tessera.engine.batch.aws import batch_client
    from tessera.engine.batch.index import split
    from tessera.engine.config import batch_settings

    job = _load(args)
    queue = _need(
        "--queue", args.queue or job.batch.queue or batch_settings().queue, "TESSERA_BATCH_QUEUE"
    )
    res = job.resources
    need = doctor.Need(res.vcpus, res.memory_mib, res.gpus, args.platform)
    client = batch_client(args.region)
    diagnosis = doctor.run(client, need, queue)
    for line in diagnosis.lines():
        print(line)
    if diagnosis.exists:
        from tessera.engine.errors import BatchError

        try:  # Batch's own reasons are extra: a refused ListJobs does not stop the diagnosis
            listed = doctor.runnable(client, queue=queue)
        except BatchError as exc:
            print(f"RUNNABLE in queue {diagnosis.queue}: not listed ({exc})")
            listed = None
        for line in doctor.queue_lines(diagnosis, listed):
            print(line)
    arrays = split(range(job.n_shards))
    if len(arrays) > 1:
        print(
            f"note: {job.n_shards:,} shards are over {c.MAX_ARRAY_SIZE:,}: they go as "
            f"{len(arrays)} array jobs of {', '.join(f'{len(a):,}' for a in arrays)}"
        )
    return EXIT_OK if diagnosis.ok else EXIT_FAILED


def _cmd_local(args: argparse.Namespace) -> int:
    from tessera.engine.batch.local import run_local

    job = _load(args)
    outcome = run_local(job, parallel=args.parallel)
    retried = sum(1 for a in outcome.attempts if a.action == "retry")
    import tessera
    from tessera.engine.report import render as render_report

    state = tessera.status(job.store)
    if state.report is not None:  # the same report and cost table as `tessera run`
        print(render_report(state.result, state.report))
    if outcome.ok:
        print(f"result: {job.store}/result.json ({retried} attempts retried)")
        return EXIT_OK
    print(
        f"incomplete: {len(outcome.failed)} children failed ({', '.join(outcome.failed[:20])}); "
        f"see `tessera status {job.store}`",
        file=sys.stderr,
    )
    return EXIT_FAILED
