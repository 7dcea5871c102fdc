"""A small EC2 instance catalogue for ``tessera batch doctor``: vCPUs, memory and GPUs.

It covers the families Batch users usually allow (and what ``optimal`` and ``default_*`` expand
to). A type it does not know is never reported as too small: the doctor only speaks when it is
sure. The price catalogue of the cost module is the place for prices; this one only answers
"can any allowed instance type hold one shard?".
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

# Memory the ECS agent can hand to jobs: the kernel and platform keep about 3% of the installed
# memory (an m4.large with 8,192 MiB registers ~7,985), and the Batch AMI reserves 32 MiB more.
KERNEL_SHARE = 0.03
AGENT_RESERVED_MIB = 32


@dataclass(frozen=True)
class InstanceType:
    """One EC2 instance type: ``vcpus``, installed ``memory_mib`` and ``gpus``."""

    name: str
    vcpus: int
    memory_mib: int
    gpus: int = 0

    @property
    def job_memory_mib(self) -> int:
        """The memory a job can request on this type (installed minus what ECS keeps)."""
        return int(self.memory_mib * (1 - KERNEL_SHARE)) - AGENT_RESERVED_MIB


_SIZES = {
    "medium": 1,
    "large": 2,
    "xlarge": 4,
    "2xlarge": 8,
    "4xlarge": 16,
    "8xlarge": 32,
    "9xlarge": 36,
    "12xlarge": 48,
    "16xlarge": 64,
    "18xlarge": 72,
    "24xlarge": 96,
    "32xlarge": 128,
    "48xlarge": 192,
}

_UP_TO_24 = ("large", "xlarge", "2xlarge", "4xlarge", "8xlarge", "12xlarge", "16xlarge", "24xlarge")
_C5 = ("large", "xlarge", "2xlarge", "4xlarge", "9xlarge", "12xlarge", "18xlarge", "24xlarge")
_GRAVITON = ("medium", "large", "xlarge", "2xlarge", "4xlarge", "8xlarge", "12xlarge", "16xlarge")

# family -> (GiB per vCPU, sizes): families whose memory is a fixed multiple of the vCPUs.
_REGULAR: dict[str, tuple[float, tuple[str, ...]]] = {
    "c5": (2, _C5),
    "m5": (4, _UP_TO_24),
    "r5": (8, _UP_TO_24),
    "c6i": (2, (*_UP_TO_24, "32xlarge")),
    "m6i": (4, (*_UP_TO_24, "32xlarge")),
    "r6i": (8, (*_UP_TO_24, "32xlarge")),
    "c7i": (2, (*_UP_TO_24, "48xlarge")),
    "m7i": (4, (*_UP_TO_24, "48xlarge")),
    "r7i": (8, (*_UP_TO_24, "48xlarge")),
    "c6g": (2, _GRAVITON),
    "m6g": (4, _GRAVITON),
    "r6g": (8, _GRAVITON),
}

# Irregular families: (size, vCPUs, memory GiB, GPUs).
_IRREGULAR: dict[str, tuple[tuple[str, int, float, int], ...]] = {
    "c4": (
        ("large", 2, 3.75, 0),
        ("xlarge", 4, 7.5, 0),
        ("2xlarge", 8, 15, 0),
        ("4xlarge", 16, 30, 0),
        ("8xlarge", 36, 60, 0),
    ),
    "m4": (
        ("large", 2, 8, 0),
        ("xlarge", 4, 16, 0),
        ("2xlarge", 8, 32, 0),
        ("4xlarge", 16, 64, 0),
        ("10xlarge", 40, 160, 0),
        ("16xlarge", 64, 256, 0),
    ),
    "r4": (
        ("large", 2, 15.25, 0),
        ("xlarge", 4, 30.5, 0),
        ("2xlarge", 8, 61, 0),
        ("4xlarge", 16, 122, 0),
        ("8xlarge", 32, 244, 0),
        ("16xlarge", 64, 488, 0),
    ),
    "g4dn": (
        ("xlarge", 4, 16, 1),
        ("2xlarge", 8, 32, 1),
        ("4xlarge", 16, 64, 1),
        ("8xlarge", 32, 128, 1),
        ("12xlarge", 48, 192, 4),
        ("16xlarge", 64, 256, 1),
    ),
    "g5": (
        ("xlarge", 4, 16, 1),
        ("2xlarge", 8, 32, 1),
        ("4xlarge", 16, 64, 1),
        ("8xlarge", 32, 128, 1),
        ("12xlarge", 48, 192, 4),
        ("16xlarge", 64, 256, 1),
        ("24xlarge", 96, 384, 4),
        ("48xlarge", 192, 768, 8),
    ),
    "g6": (
        ("xlarge", 4, 16, 1),
        ("2xlarge", 8, 32, 1),
        ("4xlarge", 16, 64, 1),
        ("8xlarge", 32, 128, 1),
        ("12xlarge", 48, 192, 4),
        ("16xlarge", 64, 256, 1),
        ("24xlarge", 96, 384, 4),
        ("48xlarge", 192, 768, 8),
    ),
    "p3": (("2xlarge", 8, 61, 1), ("8xlarge", 32, 244, 4), ("16xlarge", 64, 488, 8)),
    "p4d": (("24xlarge", 96, 1152, 8),),
}

# What Batch's special instanceTypes values expand to (the union over regions, so that the
# doctor never calls a job too big for a type that some region would pick).
ALIASES: dict[str, tuple[str, ...]] = {
    "optimal": ("c4", "m4", "r4", "c5", "m5", "r5"),
    "default_x86_64": ("c6i", "m6i", "r6i", "c5", "m5", "r5"),
    "default_arm64": ("c6g", "m6g", "r6g"),
}


def _build() -> dict[str, list[InstanceType]]:
    families: dict[str, list[InstanceType]] = {}
    for family, (ratio, sizes) in _REGULAR.items():
        families[family] = [
            InstanceType(f"{family}.{s}", _SIZES[s], int(_SIZES[s] * ratio * 1024)) for s in sizes
        ]
    for family, rows in _IRREGULAR.items():
        families[family] = [
            InstanceType(f"{family}.{s}", cpu, int(gib * 1024), gpu) for s, cpu, gib, gpu in rows
        ]
    return families


FAMILIES = _build()
TYPES = {t.name: t for types in FAMILIES.values() for t in types}


def expand(allowed: Iterable[str]) -> tuple[list[InstanceType], list[str]]:
    """The known instance types behind a compute environment's ``instanceTypes`` (types,
    families and aliases), and the names this catalogue does not know."""
    known: dict[str, InstanceType] = {}
    unknown: list[str] = []
    for name in allowed:
        names = ALIASES.get(name, (name,))
        for item in names:
            if item in TYPES:
                known[item] = TYPES[item]
            elif item in FAMILIES:
                known.update((t.name, t) for t in FAMILIES[item])
            else:
                unknown.append(item)
    return sorted(known.values(), key=lambda t: (t.vcpus, t.memory_mib, t.name)), unknown


def fits(t: InstanceType, vcpus: float, memory_mib: int, gpus: int) -> bool:
    """Whether one job of this size can be placed on an instance of type ``t``."""
    return t.vcpus >= vcpus and t.job_memory_mib >= memory_mib and t.gpus >= gpus
