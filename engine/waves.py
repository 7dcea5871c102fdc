"""Stages and waves: the order in which a job's shards may run, and when a job with a target
standard error is done.

Stages (``Layout.stages``) cut the shards into consecutive ranges run in order: a shard of stage
k + 1 starts only once every shard of stage k has committed (it reads their outputs from the
store). A job without stages is one stage of every shard.

Waves apply to a job with ``[job] target_stderr``: its last stage's shards run as prefixes of
1, 2, 4, 8, ... shards (the last wave ends at the stage's last shard, the cap). After each
prefix has committed, the kernel's ``reduce_prefix`` gives the answer of that prefix alone, and
the job is done at the first prefix whose standard error of the target product is at most the
target. The decision is taken on that fixed sequence of complete prefixes only, so the same
target stops at the same prefix, with the same bytes, on every executor and worker count, and
a resumed run decides again from the store and reaches the same prefix.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from tessera.engine.errors import StoreError
from tessera.engine.io import StoreIO
from tessera.kernels.base import Layout


def stage_shards(layout: Layout) -> list[tuple[str, range]]:
    """Each stage's name and shard indices, in order."""
    return list(layout.stage_ranges())


def prefix_ends(count: int) -> list[int]:
    """The wave prefix lengths of a stage of ``count`` shards: 1, 2, 4, ... then ``count``
    (pure). ``prefix_ends(6) == [1, 2, 4, 6]``."""
    out, n = [], 1
    while n < count:
        out.append(n)
        n *= 2
    out.append(count)
    return out


@dataclass(frozen=True)
class Decision:
    """Where a target job stands. ``prefix`` is the number of last-stage shards the answer
    uses (or will use: the next wave's end when not ``done``); ``stderr`` is the target
    product's at the last complete prefix (``None`` before any); ``met``: the target was
    reached; ``done``: nothing more to run (met, or the cap reached)."""

    prefix: int
    stderr: float | None
    met: bool
    done: bool
    waves: int  # complete waves looked at

    def to_dict(self, target: Any, first: int) -> dict[str, Any]:
        """The ``target`` block of result.json and report.json: what was asked, what was
        reached, and the shards it took (``first`` is the last stage's first shard)."""
        return {
            "stderr": target.stderr,
            "product": target.product,
            "met": self.met,
            "reached_stderr": self.stderr,
            "waves": self.waves,
            "shards": self.prefix,
            "shard_range": [first, first + self.prefix],
        }


def stderr_of(target: Any, answer: Mapping[str, Any]) -> float:
    """The standard error the target watches: ``products.<target_product>.stderr`` (the
    first product when none is named), or the answer's own ``stderr`` for a kernel with one
    estimate (an SDK ``BlockKernel`` like ``pi_mc``). Raises ``ValueError`` when the answer
    has neither."""
    products = answer.get("products")
    if isinstance(products, Mapping) and products:
        name = target.product or next(iter(products))
        if name not in products:
            listed = ", ".join(products)
            raise ValueError(f"target_product {name!r} is not in the answer ({listed})")
        return float(products[name]["stderr"])
    if "stderr" in answer and target.product is None:
        return float(answer["stderr"])
    raise ValueError(
        "the kernel's answer has no products.<name>.stderr nor stderr to stop at "
        "(target_stderr needs one)"
    )


def decide(
    job: Any, store: Any, committed: Iterable[int] | None = None
) -> tuple[Decision, dict[str, Any] | None]:
    """Walk the wave prefixes of ``job``'s last stage in order; return the decision and the
    answer (``reduce_prefix``) at the prefix it stops at (``None`` when not ``done``)."""
    layout = job.layout
    _, last = stage_shards(layout)[-1]
    done_shards = set(store.committed() if committed is None else committed)
    if any(i not in done_shards for r in stage_shards(layout)[:-1] for i in r[1]):
        return Decision(prefix_ends(len(last))[0], None, False, False, 0), None
    stderr, waves, answer = None, 0, None
    ends = prefix_ends(len(last))
    for end in ends:
        if any(last.start + i not in done_shards for i in range(end)):
            return Decision(end, stderr, False, False, waves), None
        answer = reduce_prefix(job, store, end)
        stderr = stderr_of(job.target, answer)
        waves += 1
        if stderr <= job.target.stderr:
            return Decision(end, stderr, True, True, waves), answer
    return Decision(ends[-1], stderr, False, True, waves), answer


def reduce_prefix(job: Any, store: Any, shards: int) -> dict[str, Any]:
    """The kernel's answer from the first ``shards`` shards of the last stage."""
    try:
        return dict(
            job.kernel.reduce_prefix(
                job.params, job.seed, job.layout, store.read_arrays(), shards, io=StoreIO(store)
            )
        )
    except OSError as exc:
        raise StoreError(f"cannot read the first {shards} shards' outputs: {exc}") from exc
