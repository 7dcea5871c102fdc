"""The kernel protocol: what every registered kernel provides.

A kernel is arithmetic only. It never imports ``engine`` (nor Dask, boto3, fsspec). The engine
asks it for its parameters, its output arrays and which chunks each shard owns, runs
``compute`` on one shard at a time and finally ``reduce`` over the whole arrays.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, BinaryIO, Protocol

if TYPE_CHECKING:  # NumPy only in annotations: validating params needs no NumPy
    import numpy as np


class ParamError(ValueError):
    """A bad value in a kernel's ``[params]``.

    ``key`` is the parameter name (without the ``params.`` prefix); the engine turns this into a
    ``SpecError`` naming ``params.<key>``.
    """

    def __init__(self, key: str, message: str) -> None:
        super().__init__(f"{key}: {message}")
        self.key = key
        self.message = message


@dataclass(frozen=True)
class ArraySpec:
    """One output array: its name (a path in the store, e.g. ``image/0``), shape, dtype and chunk
    shape (shards own whole chunks). ``shards`` is the Zarr v3 sharding shape (chunks stored
    together in one object; a multiple of ``chunks``), ``dimension_names`` and ``attributes``
    go to the array's zarr.json.

    ``compressors`` are the bytes-to-bytes codecs of every chunk, in order, as Zarr v3 codec
    metadata (what zarr.json holds and ``zarr.create_array(compressors=...)`` takes), e.g.
    ``({"name": "blosc", "configuration": {"cname": "lz4", "clevel": 5, "shuffle":
    "shuffle"}},)``; ``()`` stores chunks uncompressed; ``None`` (the default) is the engine's
    choice, ``tessera.engine.codecs.DEFAULT_COMPRESSORS`` (Blosc: Zstandard level 1, byte
    shuffle). Any codec zarr-python knows is accepted (an unknown
    name fails when the store is created, before any shard runs); those that the zarrs codec
    pipeline also knows (zstd, blosc, gzip, crc32c, ...) are encoded in Rust, off the GIL."""

    name: str
    shape: tuple[int, ...]
    dtype: str
    chunks: tuple[int, ...]
    shards: tuple[int, ...] | None = None
    dimension_names: tuple[str, ...] | None = None
    attributes: Mapping[str, Any] | None = None
    fill_value: int | float = 0
    compressors: tuple[Mapping[str, Any], ...] | None = None


@dataclass(frozen=True)
class Location:
    """A file, folder or glob outside the store that a job reads (``role = "input"``) or writes
    (``role = "output"``), and the param that names it. The engine refuses a store that would
    hold one of these or sit inside one (a store may only ever hold what tessera wrote)."""

    key: str
    url: str
    role: str = "input"


@dataclass(frozen=True)
class GroupSpec:
    """A Zarr group inside the store (e.g. the OME-Zarr ``image`` group) and its attributes."""

    name: str
    attributes: Mapping[str, Any]


@dataclass(frozen=True)
class Stage:
    """One stage of a staged job: its ``name`` (``"calibrate"``, ``"price"``) and how many of
    the layout's shards it has. Stages take consecutive shard indices in order; stage k + 1's
    shards start only after every shard of stage k has committed, and they read stage k's
    outputs through ``ShardIO.arrays`` / ``ShardIO.read_file``."""

    name: str
    shards: int


@dataclass(frozen=True)
class Layout:
    """The output arrays of a job and how they are cut into shards.

    ``bounds`` has one entry per array. A non-empty entry cuts that array along axis 0: shard
    ``i`` owns rows ``bounds[i]:bounds[i+1]``, every bound a multiple of the chunk length along
    axis 0 (or the end), so two shards never write one chunk; ``compute`` returns those rows and
    the engine writes them. An empty entry ``()`` means the kernel writes the array itself
    through ``ShardIO.write_array`` (e.g. 2-D tiles of an image pyramid), again whole chunks
    only, and the kernel's tests show that no two shards touch one chunk.

    ``work`` is the job's total work in ``work_unit`` (e.g. path-steps); ``shard_work[i]`` is
    shard ``i``'s part of it, used for throughput and progress. ``groups`` are Zarr groups
    created (with their attributes) before any array.

    ``stages`` cuts the shards into ordered stages (``Stage``); ``()``, the default, is one
    stage of every shard. A row-cut array gives a shard of a stage that does not write it an
    empty region (``bounds[i] == bounds[i + 1]``).
    """

    arrays: tuple[ArraySpec, ...]
    bounds: tuple[tuple[int, ...], ...]  # per array: n_shards + 1 row offsets, or ()
    shard_work: tuple[int, ...]
    work_unit: str
    groups: tuple[GroupSpec, ...] = ()
    # True when every shard but the last owns the same rows and its projected memory depends on
    # nothing else (``split_rows`` layouts of block sums): plan-time checks then look at the
    # first and the last shard only, whatever the shard count
    regular: bool = False
    stages: tuple[Stage, ...] = ()

    @property
    def n_shards(self) -> int:
        return len(self.shard_work)

    def stage_ranges(self) -> tuple[tuple[str, range], ...]:
        """Each stage's name and shard indices, in order: ``(("main", range(n)),)`` for a
        layout without stages."""
        if not self.stages:
            return (("main", range(self.n_shards)),)
        out, start = [], 0
        for stage in self.stages:
            out.append((stage.name, range(start, start + stage.shards)))
            start += stage.shards
        return tuple(out)

    def stage_of(self, shard: int) -> int:
        """The index of the stage that ``shard`` belongs to (0 without stages)."""
        for k, (_, shards) in enumerate(self.stage_ranges()):
            if shard in shards:
                return k
        raise IndexError(f"shard {shard} is out of range for {self.n_shards} shards")

    @property
    def work(self) -> int:
        return sum(self.shard_work)

    def region(self, shard: int) -> dict[str, tuple[int, int]]:
        """Rows ``(start, stop)`` along axis 0 of each row-cut array that ``shard`` owns."""
        return {a.name: (b[shard], b[shard + 1]) for a, b in zip(self.arrays, self.bounds) if b}


@dataclass(frozen=True)
class ItemError:
    """One input that failed inside a shard that still commits (an undecodable file of many):
    the input's URL and why. ``tessera status`` lists it and the run's exit code is 1."""

    input: str
    reason: str


@dataclass(frozen=True)
class ShardOutput:
    """What ``compute`` returns: ``arrays``, this shard's rows of every row-cut array (by
    name); ``stats``, small JSON-able numbers kept in the commit record; ``item_errors``, the
    inputs that failed alone."""

    arrays: Mapping[str, np.ndarray] = field(default_factory=dict)
    stats: Mapping[str, Any] = field(default_factory=dict)
    item_errors: tuple[ItemError, ...] = ()


class InputIO(Protocol):
    """Reading inputs, lent by the engine (kernels import no fsspec): paths, file:// and s3://."""

    def open_input(self, url: str) -> BinaryIO:
        """A seekable binary file object for ``url``; the caller closes it. Raises
        ``FileNotFoundError`` / ``OSError`` naming the URL."""

    def list_inputs(self, pattern: str) -> list[str]:
        """URLs matching a glob (``s3://b/frames/*.png``, ``/data/*.tif``), sorted, with the
        scheme kept."""


class ShardIO(InputIO, Protocol):
    """Everything a shard (or the final reduce) may touch, lent by the engine.

    ``arrays`` maps output array names to lazy array objects (slicing reads from the store).
    Writes are complete when the call returns; the engine writes the commit record after
    ``compute`` returns, so nothing written here counts until then.
    """

    @property
    def arrays(self) -> Mapping[str, Any]:
        """Output arrays by name; ``arrays[name][selection]`` reads."""

    @property
    def device(self) -> str:
        """Where ``compute`` should run: ``"cpu"``, or ``"cuda"`` when the job asked for GPUs
        (``resources.gpus > 0``). Kernels with a CUDA twin switch on it; others ignore it."""

    def write_array(self, name: str, selection: tuple[slice, ...], data: np.ndarray) -> None:
        """Write ``data`` into ``selection`` of output array ``name`` (whole chunks only)."""

    def write_file(self, path: str, data: bytes | list[bytes | memoryview]) -> None:
        """Write a file: ``path`` relative to the store (``dzi/image_files/3/0_1.jpeg``), or an
        absolute URL (``s3://b/out/x.webp``, ``/data/out/x.png``). ``data`` is its bytes, or a
        list of pieces that are its bytes one after another (a local file gets them without a
        copy joining them)."""

    def read_file(self, path: str) -> bytes:
        """Read back a file written by ``write_file`` (same paths); ``FileNotFoundError`` if it
        does not exist."""


class Kernel(Protocol):
    """What a registered kernel module provides (see DESIGN.md, "Kernels")."""

    name: str
    work_unit: str

    def parse_params(self, raw: Mapping[str, Any]) -> Any:
        """Validate ``[params]``; raise ``ParamError`` naming the key on bad input."""

    def prepare(self, params: Any, io: InputIO) -> Any:
        """Resolve what depends on the inputs (an image's size and pixel type, a glob's file
        list) into new params, at validate time, before any work; ``ParamError`` on bad input.
        Kernels without inputs return ``params`` unchanged."""

    def params_to_dict(self, params: Any) -> dict[str, Any]:
        """The canonical, JSON-serialisable form of validated params (defaults filled in)."""

    def warm(self, params: Any) -> None:
        """Compile (or load from Numba's cache) what ``compute`` will call for these params,
        with no real work: the engine calls it once per process before the first shard and
        reports its seconds as compile time, kept out of shard seconds, throughput and cost.

        Optional, not part of the protocol: ``prime(params)``, called with the parsed params
        before ``prepare`` only when the job is loaded to run in this process (not to be
        validated or submitted), to start slow loading in a thread (``spec.from_dict``)."""

    def locations(self, params: Any) -> tuple[Location, ...]:
        """Where the job reads and writes outside its store (inputs, globs, output folders);
        ``()`` for a kernel that touches nothing but the store."""

    def shards_for_size(self, params: Any, shard_size: int) -> int:
        """How many shards when each shard holds ``shard_size`` of the kernel's unit."""

    def default_shards(self, params: Any) -> int:
        """Shard count used when the job names neither ``shards`` nor ``shard_size``."""

    def layout(self, params: Any, n_shards: int) -> Layout:
        """The output arrays and which rows each shard owns; may use fewer shards than asked."""

    def compute(
        self, params: Any, seed: int, layout: Layout, shard: int, io: ShardIO | None = None
    ) -> ShardOutput:
        """Compute shard ``shard``: its rows of every row-cut array, small JSON-able stats,
        and the inputs that failed alone (``ShardOutput.item_errors``: the engine records
        them, ``tessera status`` lists them and the run's exit code is non-zero).

        What the kernel raises fails the shard and is not retried (bad input, a bug); a
        failure of the I/O lent through ``io`` is the engine's and is retried."""

    def reduce(
        self, params: Any, seed: int, arrays: Mapping[str, Any], io: ShardIO | None = None
    ) -> dict[str, Any]:
        """The final answer once every shard has committed; JSON-serialisable, deterministic.
        ``arrays`` are lazy (slice what you need); a final step may write through ``io``."""

    def shard_memory_bytes(self, params: Any, layout: Layout, shard: int) -> int:
        """Projected peak memory of one shard, for plan-time checks."""

    # Optional: ``projected_seconds(params, layout, shard) -> float | None``, the seconds
    # ``shard`` takes on one core, roughly (from the kernel's measured rate); with it, a run
    # without ``--executor`` chooses between this process and a Dask cluster by the job's
    # projected seconds (``tessera.engine.choose``). ``None``, or no method: by shard count.
    # A kernel that spreads one shard over every core of its process itself (Numba's threads,
    # or a thread pool as ``imaging.transcode``'s) sets ``uses_every_core = True``: a one-thread
    # Dask worker then takes ``cores`` times as long for a shard as this process, and the
    # default executor runs it here.
    #
    # Optional: ``shard_lanes = 2``: the local executor may run two of its shards at once, in
    # threads of one process (tessera.engine.executors.local), for a kernel whose shard leaves
    # cores idle at its start and end. Its shards must then be safe side by side: no Numba
    # parallel region (the workqueue threading layer aborts on two at once), nothing shared
    # between them but what the engine lends.
    #
    # Optional: ``reduce_prefix(params, seed, layout, arrays, shards, io=None) -> dict``, the
    # answer of the first ``shards`` shards of the last stage alone, with the keys of
    # ``reduce`` (``products.<name>.stderr``, or ``stderr``). A job may set
    # ``[job] target_stderr`` only with a kernel that has it (``tessera.engine.waves``).


def split_rows(n_rows: int, n_shards: int) -> tuple[int, tuple[int, ...]]:
    """Cut ``n_rows`` rows into at most ``n_shards`` shards of whole, equal chunks.

    Returns ``(chunk_rows, bounds)``: the chunk length along axis 0 and the shard boundaries
    (``len(bounds) - 1`` shards; the last shard may be shorter). With ``n_rows = 10`` and
    ``n_shards = 4`` this is ``(3, (0, 3, 6, 9, 10))``; asking for more shards than rows gives one
    row per shard. Raises ``ValueError`` for ``n_rows < 1`` or ``n_shards < 1``.
    """
    if n_rows < 1 or n_shards < 1:
        raise ValueError(f"need n_rows >= 1 and n_shards >= 1, got {n_rows} and {n_shards}")
    chunk = -(-n_rows // min(n_shards, n_rows))
    bounds = tuple(range(0, n_rows, chunk)) + (n_rows,)
    return chunk, bounds


def cut_at(start: int, stop: int, edge: int) -> list[tuple[int, int]]:
    """``[start, stop)`` cut at the multiples of ``edge`` (a chunk or Zarr shard's side): the
    ``(a, b)`` pieces, each within one stored object; none when the range is empty. With
    ``start = 100``, ``stop = 600`` and ``edge = 256`` this is ``[(100, 256), (256, 512),
    (512, 600)]``."""
    cuts = [start, *range((start // edge + 1) * edge, stop, edge), stop]
    return [(a, b) for a, b in zip(cuts[:-1], cuts[1:]) if b > a]
