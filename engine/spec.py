"""Job files: load TOML or JSON, validate every key, canonical JSON and the content hash.

The content hash (``Job.spec_hash``) covers only what determines the output bytes: the kernel,
its params, the seed and the resolved shard count. Changing the name, store, budget, retries,
resources, timeout or tags and resuming is allowed.
"""

from __future__ import annotations

import difflib
import functools
import hashlib
import json
import math
import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, cast

from tessera.engine import process, reach, urls
from tessera.engine.errors import SpecError
from tessera.kernels import registry
from tessera.kernels.base import Kernel, Layout, Location, ParamError

_NAME_RE = re.compile(r"^[A-Za-z0-9_-]{1,128}$")
_SECTIONS: dict[str, tuple[str, ...]] = {
    "job": (
        "name",
        "kernel",
        "store",
        "shards",
        "shard_size",
        "seed",
        "timeout_s",
        "budget_usd",
        "target_stderr",
        "target_product",
    ),
    "params": (),
    "resources": ("vcpus", "memory_mib", "gpus"),
    "retry": ("attempts",),
    "tags": (),
    "batch": ("share", "priority", "queue"),
}
MAX_SHARDS = 1_000_000
STORE_SCHEMES = ("file", "s3")  # a plain path or file://, s3:// (engine/store.py opens these)
MAX_SEED = 2**64 - 1


@dataclass(frozen=True)
class Resources:
    """What one shard needs: vCPUs, memory in MiB and GPUs (AWS Batch resourceRequirements)."""

    vcpus: float = 1.0
    memory_mib: int = 2048
    gpus: int = 0

    @property
    def device(self) -> str:
        """Where kernels compute: ``"cuda"`` (their CUDA twins) when ``gpus > 0``, else
        ``"cpu"``."""
        return "cuda" if self.gpus > 0 else "cpu"


@dataclass(frozen=True)
class Target:
    """``[job] target_stderr`` and ``target_product``: run the last stage's shards in waves
    (prefixes of 1, 2, 4, ... shards) until the reported standard error of ``product`` is at
    most ``stderr``, or the shards (the cap) or the budget run out (``tessera.engine.waves``).
    ``product`` ``None`` means the kernel's first product."""

    stderr: float
    product: str | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"target_stderr": self.stderr}
        if self.product is not None:
            out["target_product"] = self.product
        return out


@dataclass(frozen=True)
class Job:
    """A validated job. Build it with ``load``/``from_dict``, never by hand."""

    name: str
    kernel_name: str
    store: str
    shards: int | None
    shard_size: int | None
    seed: int
    timeout_s: float
    budget_usd: float | None
    params: Any
    resources: Resources
    retry_attempts: int
    tags: dict[str, str] = field(default_factory=dict)
    batch: BatchOptions = field(default_factory=lambda: BatchOptions())
    n_shards: int = 1  # resolved from shards / shard_size / the kernel's default
    kernel_info: registry.KernelInfo | None = None  # resolved once, where the job was loaded
    # The kernel's layout over n_shards, worked out once where the job was validated (or read
    # back from the store's plan): ``plan(job)`` hands it on, nothing lays the job out again.
    layout: Layout | None = field(default=None, repr=False, compare=False)
    target: Target | None = None  # [job] target_stderr: not in the spec hash, like the budget

    @property
    def provider(self) -> registry.KernelInfo:
        """Who provides the kernel: as resolved where the job was loaded, else looked up here."""
        return self.kernel_info or registry.info(self.kernel_name)

    @property
    def kernel(self) -> Kernel:
        """The kernel object (imported on first use in each process; modules are cached by
        Python's import system, not here)."""
        return registry.load(self.provider)

    @property
    def identity(self) -> dict[str, Any]:
        """Who provides the kernel (name, target, distribution, version), as recorded in the
        store."""
        return self.provider.to_dict()

    def params_dict(self) -> dict[str, Any]:
        """The kernel's params in canonical form, defaults filled in."""
        return self.kernel.params_to_dict(self.params)

    def to_dict(self) -> dict[str, Any]:
        """The whole job, normalised, as plain data (loads back with ``from_dict``)."""
        job: dict[str, Any] = {
            "name": self.name,
            "kernel": self.kernel_name,
            "store": self.store,
            "seed": self.seed,
            "timeout_s": self.timeout_s,
        }
        if self.shard_size is not None:
            job["shard_size"] = self.shard_size
        else:
            job["shards"] = self.n_shards
        if self.budget_usd is not None:
            job["budget_usd"] = self.budget_usd
        if self.target is not None:
            job.update(self.target.to_dict())
        return {
            "job": job,
            "params": self.params_dict(),
            "resources": {
                "vcpus": self.resources.vcpus,
                "memory_mib": self.resources.memory_mib,
                "gpus": self.resources.gpus,
            },
            "retry": {"attempts": self.retry_attempts},
            "tags": dict(sorted(self.tags.items())),
            **({"batch": self.batch.to_dict()} if self.batch.to_dict() else {}),
        }

    def canonical_json(self) -> str:
        """The job as canonical JSON: sorted keys, no spaces, ASCII; equal jobs give equal text."""
        return canonical_json(self.to_dict())

    def hashed_part(self) -> dict[str, Any]:
        """What determines the output bytes, and so the spec hash."""
        return {
            "kernel": self.kernel_name,
            "params": self.params_dict(),
            "seed": self.seed,
            "n_shards": self.n_shards,
        }

    @functools.cached_property
    def spec_hash(self) -> str:
        """SHA-256 hex digest of the canonical JSON of ``hashed_part()``: the job's version.
        Computed once per Job (every shard reads it; a transcode's params list every file)."""
        return hashlib.sha256(canonical_json(self.hashed_part()).encode()).hexdigest()


def canonical_json(data: Any) -> str:
    """Deterministic JSON text: sorted keys, compact separators, ASCII, no NaN."""
    return json.dumps(
        data, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False
    )


def load(
    path: str | os.PathLike[str],
    overrides: Mapping[str, Any] | None = None,
    *,
    prime: bool = False,
) -> Job:
    """Read a job file (TOML, or JSON of the same structure; a path or fsspec URL); validate it.

    ``overrides`` replaces keys of ``[job]`` (the CLI's ``--shards``/``--store``); setting
    ``shards`` drops ``shard_size`` and vice versa. ``prime``: the job is loaded to be run in
    this process (see ``from_dict``). Raises ``SpecError`` naming the file or key.
    """
    text = _read_text(str(path))
    data = parse_text(text, str(path))
    return from_dict(data, overrides=overrides, source=str(path), prime=prime)


def parse_text(text: str, source: str = "<job>") -> dict[str, Any]:
    """Parse job text as JSON (when it starts with ``{``) or TOML; ``SpecError`` names the file."""
    try:
        if text.lstrip().startswith("{"):
            data = json.loads(text)
        else:
            data = tomllib.loads(text)
    except (tomllib.TOMLDecodeError, json.JSONDecodeError) as exc:
        raise SpecError("", f"{source}: not valid TOML or JSON: {exc}") from None
    if not isinstance(data, dict):
        raise SpecError("", f"{source}: expected a table of sections, got {type(data).__name__}")
    return data


def _read_text(path: str) -> str:
    try:
        if not urls.is_local(path):
            import fsspec

            with fsspec.open(path, "r", encoding="utf-8") as fh:
                return str(fh.read())
        with open(urls.local_path(path), encoding="utf-8") as fh:
            return fh.read()
    except FileNotFoundError:
        raise SpecError("", f"{path}: job file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise SpecError("", f"{path}: cannot read job file: {exc}") from None


@dataclass(frozen=True)
class BatchOptions:
    """The job file's ``[batch]`` table: how AWS Batch schedules this job's jobs on a shared
    queue. ``share`` is the fair-share identifier (``shareIdentifier``), ``priority`` the
    ``schedulingPriorityOverride`` (0-9999, higher first within a share), ``queue`` the queue used
    when ``--queue`` and ``TESSERA_BATCH_QUEUE`` are not given. The other executors ignore it,
    and it is not part of the spec hash."""

    share: str | None = None
    priority: int | None = None
    queue: str | None = None

    def submit_fields(self) -> dict[str, Any]:
        """The ``SubmitJob`` request fields these options set."""
        out: dict[str, Any] = {}
        if self.share is not None:
            out["shareIdentifier"] = self.share
        if self.priority is not None:
            out["schedulingPriorityOverride"] = self.priority
        return out

    def to_dict(self) -> dict[str, Any]:
        """The keys that are set, as in the job file."""
        items = (("share", self.share), ("priority", self.priority), ("queue", self.queue))
        return {key: value for key, value in items if value is not None}


@dataclass(frozen=True)
class Checked:
    """What a job file says, every key checked, before its kernel is imported: the job-level
    keys, the kernel's name and where it lives, and the ``[params]`` table as given (parsed by
    the kernel's light params parser where it has one: ``params``; else ``None``)."""

    name: str
    kernel_info: registry.KernelInfo
    store: str
    shards: int | None
    shard_size: int | None
    seed: int
    timeout_s: float
    budget_usd: float | None
    resources: Resources
    retry_attempts: int
    tags: dict[str, str]
    batch: BatchOptions
    params_raw: Mapping[str, Any]
    params: Any = None
    target: Target | None = None

    @property
    def params_checked(self) -> bool:
        """Whether ``[params]`` was checked (a light parser exists for the kernel)."""
        return self.params is not None


def check(
    data: Mapping[str, Any],
    overrides: Mapping[str, Any] | None = None,
    source: str = "<job>",
    *,
    params: bool = True,
) -> Checked:
    """Check a parsed job's keys without importing its kernel's compiled code (nor NumPy,
    Numba, fsspec): the checks ``from_dict`` makes first, with the same ``SpecError``
    messages. With ``params``, ``[params]`` is checked too by the kernel's light params parser
    (``registry.params_parser``) when it has one. Nothing is read: inputs are resolved, and the
    job planned, by ``from_dict``. For the S3 trigger's Lambda (``engine/trigger.py``)."""
    _check_keys("", data, tuple(_SECTIONS), source)
    job = dict(_section(data, "job"))
    for key, value in (overrides or {}).items():
        if value is None:
            continue
        job[key] = value
        if key == "shards":
            job.pop("shard_size", None)
        elif key == "shard_size":
            job.pop("shards", None)
    _check_keys("job", job, _SECTIONS["job"], source)
    resources = _section(data, "resources")
    _check_keys("resources", resources, _SECTIONS["resources"], source)
    retry = _section(data, "retry")
    _check_keys("retry", retry, _SECTIONS["retry"], source)
    batch = _section(data, "batch")
    _check_keys("batch", batch, _SECTIONS["batch"], source)

    missing = [f"job.{key}" for key in ("name", "kernel", "store") if key not in job]
    if missing:
        also = f" (also missing: {', '.join(missing[1:])})" if len(missing) > 1 else ""
        raise SpecError(missing[0], f"is required{also}; see README, 'Job file reference'")
    name = _get(job, "job", "name", str, required=True)
    if not _NAME_RE.match(name):
        raise SpecError("job.name", f"{name!r} is not 1-128 characters of A-Z a-z 0-9 _ -")
    kernel_name = _get(job, "job", "kernel", str, required=True)
    try:
        kernel_info = registry.info(kernel_name)
    except registry.KernelNotFound as exc:
        raise SpecError("job.kernel", str(exc).removeprefix(f"kernel {kernel_name!r}: ")) from None
    store = _get(job, "job", "store", str, required=True)
    if not store.strip():
        raise SpecError("job.store", "is empty; expected a path, file://... or s3://bucket/prefix")
    scheme = urls.scheme(store)
    if scheme not in STORE_SCHEMES:
        raise SpecError(
            "job.store",
            f"{store!r}: unsupported scheme {scheme}://; expected a path, file://... or "
            f"s3://bucket/prefix",
        )
    if scheme == "s3" and not store.removeprefix("s3://").strip("/"):
        raise SpecError("job.store", f"{store!r} names no bucket; expected s3://bucket/prefix")
    store = normalise_store_url(store)

    if "shards" in job and "shard_size" in job:
        raise SpecError("job.shards", "give either job.shards or job.shard_size, not both")
    params_raw = _section(data, "params")
    parsed = None
    parser = registry.params_parser(kernel_info) if params else None
    if parser is not None:
        try:
            parsed = parser(params_raw)
        except ParamError as exc:
            raise SpecError(f"params.{exc.key}", exc.message) from None
    return Checked(
        name=name,
        kernel_info=kernel_info,
        store=store,
        shards=_get(job, "job", "shards", int, lo=1, hi=MAX_SHARDS),
        shard_size=_get(job, "job", "shard_size", int, lo=1),
        seed=_get(job, "job", "seed", int, lo=0, hi=MAX_SEED, default=0),
        timeout_s=_get(job, "job", "timeout_s", float, lo=1.0, default=3600.0),
        budget_usd=_get(job, "job", "budget_usd", float, lo=0.0, lo_open=True),
        resources=Resources(
            vcpus=_get(resources, "resources", "vcpus", float, lo=0.25, hi=256.0, default=1.0),
            memory_mib=_get(
                resources, "resources", "memory_mib", int, lo=128, hi=4_000_000, default=2048
            ),
            gpus=_get(resources, "resources", "gpus", int, lo=0, hi=16, default=0),
        ),
        retry_attempts=_get(retry, "retry", "attempts", int, lo=1, hi=10, default=3),
        tags=_tags(_section(data, "tags")),
        batch=_batch(batch),
        params_raw=params_raw,
        params=parsed,
        target=_target(job),
    )


def _target(job: Mapping[str, Any]) -> Target | None:
    """``target_stderr`` (a number > 0) and ``target_product`` (a name; only with a
    target)."""
    stderr = _get(job, "job", "target_stderr", float, lo=0.0, lo_open=True)
    product = _get(job, "job", "target_product", str)
    if stderr is None:
        if product is not None:
            raise SpecError("job.target_product", "applies with job.target_stderr only")
        return None
    return Target(stderr, product)


def from_dict(
    data: Mapping[str, Any],
    overrides: Mapping[str, Any] | None = None,
    source: str = "<job>",
    *,
    layout: Layout | None = None,
    prime: bool = False,
) -> Job:
    """Validate a parsed job (the structure of DESIGN.md "The job file") into a ``Job``.

    The job's keys are checked first (``check``), then its kernel is imported and parses
    ``[params]``. This is where a job is planned, once (``_plan``): the kernel's ``prepare``
    resolves its inputs (lists a glob, reads an image's header), then its ``layout`` cuts the
    job into shards; the ``Job`` carries the layout. ``layout`` is for a job planned already (a
    stored job, whose params hold what ``prepare`` resolved, and the layout stored with it): its
    params are only parsed, and ``prepare``, ``layout`` and the checks made when it was planned
    (inputs reachable, store location, memory) are not run again.

    ``prime``: the job is about to run in this process (``tessera run``, ``tessera.run`` given
    a file), so a kernel's optional ``prime(params)`` is called before ``prepare``: it may start
    slow loading (Numba's kernels) in a thread while the inputs are resolved. Checking a job
    (``tessera validate``, the S3 trigger) leaves it false and pays for none of that."""
    head = check(data, overrides, source, params=False)
    kernel_name = head.kernel_info.name
    try:
        kernel = registry.load(head.kernel_info)
    except (registry.KernelNotFound, TypeError) as exc:
        raise SpecError("job.kernel", str(exc).removeprefix(f"kernel {kernel_name!r}: ")) from None
    try:
        params = kernel.parse_params(head.params_raw)
    except ParamError as exc:
        raise SpecError(f"params.{exc.key}", exc.message) from None
    planned_here = layout is None
    if prime and callable(getattr(kernel, "prime", None)):
        process.load_numba_target(head.kernel_info)  # before the kernel's own Numba code
        kernel.prime(params)  # type: ignore[attr-defined]  # optional: see the docstring
    if layout is None:
        params, layout = _plan(
            kernel, kernel_name, params, head.store, head.shards, head.shard_size
        )
    if planned_here:
        check_memory(kernel, params, layout, head.resources.memory_mib)
    if head.target is not None:
        check_target(kernel, kernel_name, kernel.params_to_dict(params), head.target)
    return Job(
        name=head.name,
        kernel_name=kernel_name,
        store=head.store,
        shards=head.shards,
        shard_size=head.shard_size,
        seed=head.seed,
        timeout_s=head.timeout_s,
        budget_usd=head.budget_usd,
        params=params,
        resources=head.resources,
        retry_attempts=head.retry_attempts,
        tags=head.tags,
        batch=head.batch,
        n_shards=layout.n_shards,
        kernel_info=head.kernel_info,
        layout=layout,
        target=head.target,
    )


def check_target(
    kernel: Kernel, kernel_name: str, params: Mapping[str, Any], target: Target
) -> None:
    """Refuse a target the kernel cannot stop at: a kernel without ``reduce_prefix``, or a
    ``target_product`` the job does not price (``SpecError`` naming the key)."""
    if not hasattr(kernel, "reduce_prefix"):
        raise SpecError(
            "job.target_stderr",
            f"{kernel_name} cannot stop at a standard error (it has no reduce_prefix); remove "
            f"target_stderr",
        )
    products = params.get("products")
    if target.product is not None and isinstance(products, list) and target.product not in products:
        raise SpecError(
            "job.target_product",
            f"{target.product!r} is not priced by this job (params.products: "
            f"{', '.join(map(str, products))})",
        )


def _plan(
    kernel: Kernel,
    kernel_name: str,
    params: Any,
    store: str,
    shards: int | None,
    shard_size: int | None,
) -> tuple[Any, Layout]:
    """Plan a job: check that its inputs are reachable, ``prepare`` its params (resolve the
    inputs), check the store's location against them and lay the job out over the shard count
    asked for (``shards``, what ``shard_size`` gives, or the kernel's default). Returns the
    prepared params and the layout; raises ``SpecError``."""
    remote = [loc for loc in kernel.locations(params) if urls.scheme(loc.url) == "s3"]
    if remote:  # one endpoint serves every s3:// URL: one probe
        reach.check_s3(
            remote[0].url,
            f"the {remote[0].role} params.{remote[0].key}",
            "nothing was run; check the URL, the endpoint and the network",
        )
    from tessera.engine.io import Inputs  # fsspec and NumPy: not needed to check a job's keys

    try:
        params = kernel.prepare(params, Inputs())
    except ParamError as exc:
        raise SpecError(f"params.{exc.key}", exc.message) from None
    except (OSError, ValueError, ImportError, OverflowError) as exc:
        # An input the kernel could not reach or list (a URL of another scheme, a network
        # error), or a number too large for a float: a bad job file too, without a traceback.
        raise SpecError(
            "params", f"{kernel_name} cannot read its inputs: {type(exc).__name__}: {exc}"
        ) from None

    check_store_location(store, kernel.locations(params))

    if shards is not None:
        requested = shards
    elif shard_size is not None:
        try:
            requested = kernel.shards_for_size(params, shard_size)
        except ParamError as exc:
            raise SpecError("job.shard_size", exc.message) from None
    else:
        requested = kernel.default_shards(params)
    if requested > MAX_SHARDS:
        raise SpecError(
            "job.shard_size" if shard_size is not None else "job.shards",
            f"this job would be cut into {requested:,} shards; at most {MAX_SHARDS:,} are "
            f"supported (each shard is a task, a commit record and an attempt marker in the "
            f"store, and past a million, tracking them costs more than the work); set "
            f"job.shard_size to put more {kernel.work_unit} in each shard",
        )
    return params, kernel.layout(params, requested)


# What a worker process holds before any shard: the interpreter, NumPy, Numba, Zarr (measured
# ~210 MiB peak RSS in benchmarks/engine.py), rounded up.
PROCESS_BASE_MIB = 256


def largest_shard(kernel: Kernel, params: Any, layout: Layout) -> tuple[int, int]:
    """The kernel's largest projected shard memory in bytes, and that shard's index."""
    shards = range(layout.n_shards)
    if layout.regular:  # the rest are copies of shard 0
        shards = range(0, layout.n_shards, max(1, layout.n_shards - 1))
    return max((kernel.shard_memory_bytes(params, layout, i), i) for i in shards)


def check_memory(kernel: Kernel, params: Any, layout: Layout, memory_mib: int) -> None:
    """Refuse, before any work, a job whose largest shard is projected to need more memory than
    ``resources.memory_mib`` (kernel projection plus ``PROCESS_BASE_MIB``)."""
    peak, worst = largest_shard(kernel, params, layout)
    need_mib = PROCESS_BASE_MIB + math.ceil(peak / 2**20)
    if need_mib > memory_mib:
        raise SpecError(
            "resources.memory_mib",
            f"shard {worst} is projected to need {need_mib:,} MiB ({peak / 2**20:,.0f} MiB of "
            f"kernel data + {PROCESS_BASE_MIB} MiB for the process), more than memory_mib = "
            f"{memory_mib:,}; raise resources.memory_mib or use more, smaller shards",
        )


def check_store_location(store: str, locations: tuple[Location, ...]) -> None:
    """Refuse a store that would hold, or sit inside, a file or folder the job reads or writes
    (``SpecError`` naming ``job.store`` and the param): tessera creates and may delete objects in
    its store, so nothing the user owns may live there."""
    for loc in locations:
        if not urls.overlaps(store, loc.url):
            continue
        base, _ = urls.glob_base(loc.url)
        inside = urls.where(base).within(urls.where(store))
        relation = "would hold" if inside else "would sit inside"
        raise SpecError(
            "job.store",
            f"{store} {relation} the job's {loc.role} {loc.url} (params.{loc.key}); a store "
            f"holds only what tessera writes, so choose a store outside the job's inputs and "
            f"outputs (--store)",
        )


def normalise_store_url(url: str) -> str:
    """Make a store location absolute: plain and ``file://`` paths against the current directory;
    ``s3://`` and other URLs unchanged (without a trailing slash)."""
    if not urls.is_local(url):
        return url.rstrip("/")
    return os.path.abspath(os.path.expanduser(urls.local_path(url)))


def _section(data: Mapping[str, Any], name: str) -> Mapping[str, Any]:
    value = data.get(name, {})
    if not isinstance(value, Mapping):
        raise SpecError(name, f"expected a table [{name}], got {type(value).__name__} {value!r}")
    return value


def _check_keys(
    prefix: str, table: Mapping[str, Any], allowed: tuple[str, ...], source: str
) -> None:
    if prefix in ("params", "tags"):
        return
    for key in table:
        if key in allowed:
            continue
        dotted = f"{prefix}.{key}" if prefix else str(key)
        hint = difflib.get_close_matches(str(key), allowed, n=1)
        expected = f"did you mean {hint[0]!r}?" if hint else f"expected one of {list(allowed)}"
        what = "section" if not prefix else "key"
        raise SpecError(dotted, f"unknown {what} in {source}; {expected}")


def _get(
    table: Mapping[str, Any],
    section: str,
    key: str,
    kind: type,
    *,
    required: bool = False,
    default: Any = None,
    lo: float | None = None,
    hi: float | None = None,
    lo_open: bool = False,
) -> Any:
    dotted = f"{section}.{key}"
    if key not in table:
        if required:
            raise SpecError(dotted, f"is required ({_describe(kind)})")
        return default
    value: Any = table[key]
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        try:
            value = float(value)
        except OverflowError:  # an integer of more than 308 digits
            digits = len(str(abs(value)))
            raise SpecError(dotted, f"an integer of {digits} digits is out of range") from None
    if isinstance(value, bool) and kind is not bool or not isinstance(value, kind):
        raise SpecError(dotted, f"expected {_describe(kind)}, got {type(value).__name__} {value!r}")
    value = cast(Any, value)  # checked above; mypy cannot follow isinstance with a variable type
    if kind is float and not math.isfinite(value):
        raise SpecError(dotted, f"expected a finite number, got {value!r}")
    if lo is not None and (value <= lo if lo_open else value < lo):
        raise SpecError(
            dotted, f"{value!r} is out of range; expected {'>' if lo_open else '>='} {lo:g}"
        )
    if hi is not None and value > hi:
        raise SpecError(dotted, f"{value!r} is out of range; expected <= {hi:g}")
    return value


def _describe(kind: type) -> str:
    return {str: "a string", int: "an integer", float: "a number", bool: "true or false"}[kind]


# Batch's shareIdentifier: letters, digits and underscores, at most 255 (a scheduling policy's
# share may end in "*", a job's may not).
_SHARE_RE = re.compile(r"^[A-Za-z0-9_]{1,255}$")
MAX_PRIORITY = 9999


def _batch(table: Mapping[str, Any]) -> BatchOptions:
    share = _get(table, "batch", "share", str)
    if share is not None and not _SHARE_RE.match(share):
        raise SpecError(
            "batch.share",
            f"{share!r} is not a Batch share identifier: 1-255 letters, digits or underscores",
        )
    priority = _get(table, "batch", "priority", int, lo=0, hi=MAX_PRIORITY)
    queue = _get(table, "batch", "queue", str)
    if queue is not None and not queue.strip():
        raise SpecError("batch.queue", "is empty; expected a job queue name or ARN")
    return BatchOptions(share=share, priority=priority, queue=queue)


def _tags(table: Mapping[str, Any]) -> dict[str, str]:
    if len(table) > 50:
        raise SpecError("tags", f"{len(table)} tags; AWS Batch allows at most 50")
    tags: dict[str, str] = {}
    for key, value in table.items():
        if not isinstance(value, str):
            raise SpecError(
                f"tags.{key}", f"expected a string, got {type(value).__name__} {value!r}"
            )
        if not 1 <= len(key) <= 128 or len(value) > 256:
            raise SpecError(f"tags.{key}", "keys are 1-128 characters and values at most 256")
        if key.lower().startswith("aws:"):
            raise SpecError(f"tags.{key}", "the aws: prefix is reserved by AWS")
        tags[key] = value
    return tags
