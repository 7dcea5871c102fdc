"""Prices and cost arithmetic: what a run costs on each instance type and pricing model, and how
much work a dollar buys. Pure functions of their inputs (the catalogue is loaded separately).

Billing model (AWS, Linux):
- EC2 bills per second with a 60-second minimum each time an instance starts. A run's shards
  fill an instance's vCPUs (and memory and GPUs) with concurrent shards; the instance runs
  for the sum of shard-seconds divided by the shards it holds at once.
- Fargate bills each task per second, with a one-minute minimum, for its vCPU and memory
  rounded up to the nearest valid Fargate size. A shard is one task.
Shard seconds are those measured where the run happened; the estimate assumes the same speed
per vCPU on the priced type (calibrate on the target type for anything that matters).
"""

from __future__ import annotations

import math
import tomllib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

DEFAULT_PRICES = Path(__file__).with_name("prices.toml")
EC2_MINIMUM_SECONDS = 60.0
PRICING_MODELS = ("spot", "on-demand", "fargate-spot", "fargate")


@dataclass(frozen=True)
class InstanceType:
    """One EC2 instance type: size and $/hour on-demand and spot."""

    name: str
    vcpus: int
    memory_gib: float
    gpus: int
    arch: str
    on_demand: float
    spot: float
    source: str = ""
    date: str = ""


@dataclass(frozen=True)
class FargatePrices:
    """Fargate and Fargate Spot prices per vCPU-hour and per GB-hour."""

    vcpu_hour: float
    gb_hour: float
    spot_vcpu_hour: float
    spot_gb_hour: float
    minimum_seconds: float = 60.0
    source: str = ""
    date: str = ""


@dataclass(frozen=True)
class Catalogue:
    """Instance types by name and Fargate prices."""

    instances: Mapping[str, InstanceType]
    fargate: FargatePrices
    region: str = "us-east-1"


@dataclass(frozen=True)
class ShardUsage:
    """What one shard used: wall seconds, and the resources it asked for."""

    seconds: float
    vcpus: float = 1.0
    memory_mib: int = 2048
    gpus: int = 0


@dataclass(frozen=True)
class CostRow:
    """The cost of some work on one instance type (or Fargate) under one pricing model."""

    target: str  # instance type name, or "fargate"
    pricing: str  # one of PRICING_MODELS
    cost_usd: float
    work_per_usd: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "target": self.target,
            "pricing": self.pricing,
            "cost_usd": self.cost_usd,
            "work_per_usd": self.work_per_usd,
        }


def load_catalogue(path: str | Path | None = None) -> Catalogue:
    """The built-in catalogue, extended (rows replaced by name, new rows added) by the TOML file
    at ``path``; a file with ``replace = true`` replaces it. Raises ``ValueError`` naming the
    file and key of a bad row."""
    base = _parse(DEFAULT_PRICES.read_text(), str(DEFAULT_PRICES))
    if path is None:
        return base
    try:
        text = Path(path).read_text()
    except OSError as exc:
        raise ValueError(f"price file {path}: cannot read: {exc}") from None
    data = tomllib.loads(text)
    own = _parse(text, str(path), partial=True)
    if data.get("replace") is True:
        if not own.instances:
            raise ValueError(f"price file {path}: replace = true but no [instances.*] rows")
        return own if "fargate" in data else Catalogue(own.instances, base.fargate, own.region)
    instances = {**base.instances, **own.instances}
    fargate = own.fargate if "fargate" in data else base.fargate
    return Catalogue(instances, fargate, base.region)


def _parse(text: str, source: str, partial: bool = False) -> Catalogue:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"price file {source}: not valid TOML: {exc}") from None
    instances = {}
    for name, row in data.get("instances", {}).items():
        try:
            instances[name] = InstanceType(
                name=name,
                vcpus=int(row["vcpus"]),
                memory_gib=float(row["memory_gib"]),
                gpus=int(row.get("gpus", 0)),
                arch=str(row.get("arch", "x86_64")),
                on_demand=float(row["on_demand"]),
                spot=float(row.get("spot", row["on_demand"])),
                source=str(row.get("source", source)),
                date=str(row.get("date", "")),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(
                f"price file {source}: instances.{name}: bad or missing {exc}"
            ) from None
    f = data.get("fargate")
    if f is None:
        if not partial:
            raise ValueError(f"price file {source}: no [fargate] table")
        fargate = FargatePrices(0.0, 0.0, 0.0, 0.0)
    else:
        try:
            fargate = FargatePrices(
                vcpu_hour=float(f["vcpu_hour"]),
                gb_hour=float(f["gb_hour"]),
                spot_vcpu_hour=float(f.get("spot_vcpu_hour", f["vcpu_hour"])),
                spot_gb_hour=float(f.get("spot_gb_hour", f["gb_hour"])),
                minimum_seconds=float(f.get("minimum_seconds", 60)),
                source=str(f.get("source", source)),
                date=str(f.get("date", "")),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"price file {source}: fargate: bad or missing {exc}") from None
    return Catalogue(instances, fargate, str(data.get("region", "us-east-1")))


def slots(itype: InstanceType, usage: ShardUsage) -> int:
    """How many such shards run at once on one instance (0: one does not fit)."""
    by_cpu = math.floor(itype.vcpus / usage.vcpus + 1e-9)
    by_mem = math.floor(itype.memory_gib * 1024 / usage.memory_mib + 1e-9)
    by_gpu = itype.gpus // usage.gpus if usage.gpus else by_cpu
    if usage.gpus and not itype.gpus:
        return 0
    return max(0, min(by_cpu, by_mem, by_gpu))


def ec2_cost(usages: Sequence[ShardUsage], itype: InstanceType, hourly: float) -> float | None:
    """Dollars to run these shards on one instance of ``itype`` at ``hourly`` $/h: instance
    seconds = sum(shard seconds / shards per instance), billed per second, 60 s minimum.
    ``None`` when a shard does not fit the type."""
    if not usages:
        return 0.0
    seconds = 0.0
    for usage in usages:
        held = slots(itype, usage)
        if held == 0:
            return None
        seconds += usage.seconds / held
    return hourly * max(seconds, EC2_MINIMUM_SECONDS) / 3600.0


def fargate_size(vcpus: float, memory_mib: int) -> tuple[float, float]:
    """The smallest valid Fargate task size (vCPU, GiB) holding ``vcpus`` and ``memory_mib``
    (the menu is ``tessera.engine.batch.fargate.PAIRS``). Raises ``ValueError`` when none does
    (over 16 vCPU or 120 GiB)."""
    from tessera.engine.batch.fargate import smallest_fit

    fit = smallest_fit(vcpus, memory_mib)
    if fit is None:
        raise ValueError(
            f"{vcpus:g} vCPU with {memory_mib} MiB fits no Fargate task size (at most 16 vCPU, "
            f"120 GiB)"
        )
    return fit[0], fit[1] / 1024


def fargate_cost(usages: Sequence[ShardUsage], prices: FargatePrices, spot: bool) -> float | None:
    """Dollars to run each shard as one Fargate task (rounded to a valid size, per-second
    billing with a one-minute minimum). ``None`` if a shard needs a GPU or fits no size."""
    vcpu_rate = prices.spot_vcpu_hour if spot else prices.vcpu_hour
    gb_rate = prices.spot_gb_hour if spot else prices.gb_hour
    total = 0.0
    for usage in usages:
        if usage.gpus:
            return None
        try:
            cpu, gib = fargate_size(usage.vcpus, usage.memory_mib)
        except ValueError:
            return None
        billed = max(usage.seconds, prices.minimum_seconds)
        total += (cpu * vcpu_rate + gib * gb_rate) * billed / 3600.0
    return total


def run_costs(usages: Sequence[ShardUsage], work: float, catalogue: Catalogue) -> list[CostRow]:
    """The cost of these shards on every instance type (spot and on-demand) and on Fargate and
    Fargate Spot, with work per dollar; types a shard does not fit are left out."""
    rows = []
    for itype in catalogue.instances.values():
        for pricing, hourly in (("spot", itype.spot), ("on-demand", itype.on_demand)):
            cost = ec2_cost(usages, itype, hourly)
            if cost is not None:
                rows.append(_row(itype.name, pricing, cost, work))
    for pricing, spot in (("fargate-spot", True), ("fargate", False)):
        cost = fargate_cost(usages, catalogue.fargate, spot)
        if cost is not None:
            rows.append(_row("fargate", pricing, cost, work))
    return rows


def _row(target: str, pricing: str, cost: float, work: float) -> CostRow:
    return CostRow(target, pricing, cost, work / cost if cost > 0 else math.inf)


def best(rows: Iterable[CostRow], per_model: int = 3) -> list[CostRow]:
    """The ``per_model`` rows with the most work per dollar for each pricing model, in the
    order of PRICING_MODELS (ties broken by name, so the order is stable)."""
    out: list[CostRow] = []
    for model in PRICING_MODELS:
        mine = sorted(
            (r for r in rows if r.pricing == model), key=lambda r: (-r.work_per_usd, r.target)
        )
        out.extend(mine[:per_model])
    return out


def cheapest(rows: Iterable[CostRow], pricing: str) -> CostRow | None:
    """The lowest-cost row of one pricing model, or ``None``."""
    mine = [r for r in rows if r.pricing == pricing]
    return min(mine, key=lambda r: (r.cost_usd, r.target)) if mine else None


def project(
    done: Sequence[tuple[ShardUsage, int]], remaining_work: Sequence[int]
) -> list[ShardUsage]:
    """Usages for a whole job: the shards done (usage, work) as measured, plus one usage per
    remaining shard whose seconds scale with its work at the measured seconds per work unit.
    With nothing done yet, only the done list is returned (no basis for a projection)."""
    if not done:
        return []
    total_seconds = sum(u.seconds for u, _ in done)
    total_work = sum(w for _, w in done)
    per_unit = total_seconds / total_work if total_work else 0.0
    like = done[-1][0]
    projected = [
        ShardUsage(w * per_unit, like.vcpus, like.memory_mib, like.gpus) for w in remaining_work
    ]
    return [u for u, _ in done] + projected
