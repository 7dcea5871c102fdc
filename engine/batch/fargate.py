"""The vCPU/memory pairs that AWS Batch accepts on Fargate (API reference, ResourceRequirement).

Fargate sizes a task from a fixed menu; any other pair is refused at submission, so tessera checks
it when it renders the job definition.
"""

from __future__ import annotations

from tessera.engine.errors import SpecError


def _mib(lo_gib: int, hi_gib: int, step_gib: int) -> tuple[int, ...]:
    return tuple(g * 1024 for g in range(lo_gib, hi_gib + 1, step_gib))


# vCPUs -> allowed memory in MiB
PAIRS: dict[float, tuple[int, ...]] = {
    0.25: (512, 1024, 2048),
    0.5: _mib(1, 4, 1),
    1.0: _mib(2, 8, 1),
    2.0: _mib(4, 16, 1),
    4.0: _mib(8, 30, 1),
    8.0: _mib(16, 60, 4),
    16.0: _mib(32, 120, 8),
}


def check(vcpus: float, memory_mib: int, gpus: int = 0) -> None:
    """Refuse a Fargate size Batch would refuse. Raises ``SpecError`` naming the key and the
    nearest valid choices."""
    if gpus:
        raise SpecError(
            "resources.gpus",
            f"{gpus}: Fargate has no GPUs; use --platform EC2 with a GPU compute environment",
        )
    if vcpus not in PAIRS:
        sizes = ", ".join(f"{v:g}" for v in PAIRS)
        raise SpecError(
            "resources.vcpus", f"{vcpus:g} is not a Fargate size; expected one of {sizes}"
        )
    allowed = PAIRS[vcpus]
    if memory_mib not in allowed:
        raise SpecError(
            "resources.memory_mib",
            f"{memory_mib:,} MiB is not valid with {vcpus:g} vCPU on Fargate; expected one of "
            f"{', '.join(f'{m:,}' for m in allowed)} MiB",
        )


def smallest_fit(vcpus: float, memory_mib: int) -> tuple[float, int] | None:
    """The smallest Fargate pair holding at least ``vcpus`` and ``memory_mib``, or ``None``."""
    for cpu, memories in PAIRS.items():
        if cpu < vcpus:
            continue
        for memory in memories:
            if memory >= memory_mib:
                return cpu, memory
    return None
