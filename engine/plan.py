"""Plan: how a job is cut into shards, and what the kernel writes.

The plan is worked out once, when the job is validated (``spec.from_dict`` runs the kernel's
``prepare`` and ``layout``), carried on the ``Job`` and stored in the store's attributes
(``Plan.to_dict``). Workers use the job's plan; Batch children read it back from the store
(``Plan.from_dict``) instead of planning again.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from tessera.engine.spec import Job
from tessera.kernels.base import ArraySpec, GroupSpec, Layout, Stage

# The version of the stored layout (``plan["layout_version"]``). A plan without it was stored
# before layouts were (only ``n_shards``, ``work``, ``work_unit`` and the arrays' names, shapes,
# dtypes and chunks): the job's kernel then lays the job out again (``Plan.stored``).
LAYOUT_VERSION = 1


@dataclass(frozen=True)
class Plan:
    """The shard count, the kernel's output arrays and which rows each shard owns."""

    layout: Layout

    @property
    def n_shards(self) -> int:
        return self.layout.n_shards

    @property
    def work(self) -> int:
        return self.layout.work

    @property
    def work_unit(self) -> str:
        return self.layout.work_unit

    def to_dict(self) -> dict[str, Any]:
        """JSON form, stored in the store's attributes: the whole layout (``from_dict`` reads it
        back). Row bounds and shard work are stored as runs of equal steps (``pack``), so a
        million equal shards take a few bytes."""
        layout = self.layout
        return {
            "n_shards": self.n_shards,
            "work": self.work,
            "work_unit": self.work_unit,
            "arrays": [_array_to_dict(a) for a in layout.arrays],
            "layout_version": LAYOUT_VERSION,
            "bounds": [pack(b) for b in layout.bounds],
            "shard_work": pack(layout.shard_work),
            "groups": [{"name": g.name, "attributes": dict(g.attributes)} for g in layout.groups],
            "regular": layout.regular,
            # only for a staged job, so a single-stage plan is stored as before
            **({"stages": [[s.name, s.shards] for s in layout.stages]} if layout.stages else {}),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Plan:
        """The plan stored by ``to_dict``. Raises ``ValueError`` for a plan stored without its
        layout (by an earlier tessera: see ``stored``) or one that does not add up."""
        if data.get("layout_version") != LAYOUT_VERSION:
            raise ValueError(
                f"the stored plan has layout version {data.get('layout_version')!r}; this "
                f"tessera reads version {LAYOUT_VERSION}"
            )
        try:
            layout = Layout(
                arrays=tuple(_array_from_dict(a) for a in data["arrays"]),
                bounds=tuple(unpack(b) for b in data["bounds"]),
                shard_work=unpack(data["shard_work"]),
                work_unit=str(data["work_unit"]),
                groups=tuple(
                    GroupSpec(str(g["name"]), dict(g["attributes"])) for g in data["groups"]
                ),
                regular=bool(data.get("regular", False)),
                stages=tuple(Stage(str(n), int(k)) for n, k in data.get("stages", ())),
            )
            n_shards = int(data["n_shards"])
        except (KeyError, TypeError, ValueError) as exc:
            what = f"{type(exc).__name__}: {exc}"
            raise ValueError(f"the stored plan is incomplete: {what}") from None
        staged = sum(s.shards for s in layout.stages)
        if layout.stages and staged != n_shards:
            raise ValueError(
                f"the stored plan does not add up: its stages have {staged} shards, "
                f"n_shards = {n_shards}"
            )
        if layout.n_shards != n_shards or len(layout.bounds) != len(layout.arrays):
            raise ValueError(
                f"the stored plan does not add up: work for {layout.n_shards} shards with "
                f"n_shards = {n_shards}, {len(layout.bounds)} bounds for {len(layout.arrays)} "
                f"arrays"
            )
        return cls(layout)

    @classmethod
    def stored(cls, data: Mapping[str, Any]) -> Plan | None:
        """The plan stored by ``to_dict``, or ``None`` for one stored without its layout (a
        store created by an earlier tessera: the job's kernel then lays it out again)."""
        if "layout_version" not in data:
            return None
        return cls.from_dict(data)


def plan(job: Job) -> Plan:
    """``job``'s plan: the layout worked out once, when the job was validated (no kernel call
    here). Raises ``ValueError`` for a ``Job`` not built by ``spec.load``/``spec.from_dict``."""
    if job.layout is None:
        raise ValueError(f"job {job.name} has no layout: build it with spec.load or from_dict")
    return Plan(layout=job.layout)


def pending(n_shards: int, committed: set[int]) -> list[int]:
    """The shards still to run, in index order (pure)."""
    return [i for i in range(n_shards) if i not in committed]


def pack(values: Sequence[int]) -> list[list[int]]:
    """``values`` as runs of equal steps: ``[[step, count], ...]`` where the steps are the
    differences from the previous value (the first from 0). ``(0, 3, 6, 9, 10)`` packs to
    ``[[0, 1], [3, 3], [1, 1]]`` (pure; ``unpack`` inverts it)."""
    runs: list[list[int]] = []
    previous = 0
    for value in values:
        step = int(value) - previous
        previous = int(value)
        if runs and runs[-1][0] == step:
            runs[-1][1] += 1
        else:
            runs.append([step, 1])
    return runs


def unpack(runs: Sequence[Sequence[int]]) -> tuple[int, ...]:
    """The values that ``pack`` packed into ``runs``."""
    out: list[int] = []
    value = 0
    for step, count in runs:
        for _ in range(int(count)):
            value += int(step)
            out.append(value)
    return tuple(out)


def _array_to_dict(a: ArraySpec) -> dict[str, Any]:
    return {
        "name": a.name,
        "shape": list(a.shape),
        "dtype": a.dtype,
        "chunks": list(a.chunks),
        "shards": list(a.shards) if a.shards is not None else None,
        "dimension_names": list(a.dimension_names) if a.dimension_names is not None else None,
        "attributes": dict(a.attributes) if a.attributes is not None else None,
        "fill_value": a.fill_value,
        # only when the kernel chose them, so that plans without are stored as before
        **({"compressors": [dict(c) for c in a.compressors]} if a.compressors is not None else {}),
    }


def _array_from_dict(d: Mapping[str, Any]) -> ArraySpec:
    shards, names, attributes = d["shards"], d["dimension_names"], d["attributes"]
    compressors = d.get("compressors")
    return ArraySpec(
        name=str(d["name"]),
        shape=tuple(int(n) for n in d["shape"]),
        dtype=str(d["dtype"]),
        chunks=tuple(int(n) for n in d["chunks"]),
        shards=tuple(int(n) for n in shards) if shards is not None else None,
        dimension_names=tuple(str(n) for n in names) if names is not None else None,
        attributes=dict(attributes) if attributes is not None else None,
        fill_value=d["fill_value"],
        compressors=tuple(dict(c) for c in compressors) if compressors is not None else None,
    )
