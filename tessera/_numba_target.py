"""Which CPU target Numba compiles for, chosen before Numba is imported.

An image ships Numba's cache compiled for a few named CPU targets (``containers/Dockerfile``:
``TESSERA_NUMBA_TARGETS=x86-64-v4,x86-64-v3``). Numba keys its cache by the CPU name and
features, and by default those are the host's exact model (``rocketlake``, ``znver3``, ...),
which would miss the image's cache on every other machine. When ``TESSERA_NUMBA_TARGETS`` is
set and ``NUMBA_CPU_NAME`` is not, :func:`choose` picks the first listed target this CPU can
run (by the flags in ``/proc/cpuinfo``) and sets ``NUMBA_CPU_NAME`` to it, with
``NUMBA_CPU_FEATURES`` empty (the target's own feature set). A CPU that runs none of them is
left to Numba's default (it compiles for the host; correct, just not cached).

The kernels' results do not depend on the target (no fast-math, no libm:
``tessera.kernels.config``), only their speed does: AVX2 code on an AVX-512 machine is a few
tens of percent slower on the SIMD kernels.
"""

from __future__ import annotations

import os

# x86-64 micro-architecture levels (the psABI's): the /proc/cpuinfo flags each one needs
LEVELS: dict[str, frozenset[str]] = {
    "x86-64-v2": frozenset({"cx16", "lahf_lm", "popcnt", "sse4_1", "sse4_2", "ssse3"}),
    "x86-64-v3": frozenset(
        {
            "cx16",
            "lahf_lm",
            "popcnt",
            "sse4_1",
            "sse4_2",
            "ssse3",
            "avx",
            "avx2",
            "bmi1",
            "bmi2",
            "f16c",
            "fma",
            "abm",
            "movbe",
            "xsave",
        }
    ),  # fmt: skip
}
LEVELS["x86-64-v4"] = LEVELS["x86-64-v3"] | {"avx512f", "avx512bw", "avx512cd", "avx512dq",
                                             "avx512vl"}  # fmt: skip


def cpu_flags(path: str = "/proc/cpuinfo") -> frozenset[str]:
    """The first processor's flags, or none when the file cannot be read."""
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.startswith("flags"):
                    return frozenset(line.split(":", 1)[1].split())
    except OSError:
        pass
    return frozenset()


def pick(targets: str, flags: frozenset[str]) -> str | None:
    """The first of the comma-separated ``targets`` that a CPU with ``flags`` runs."""
    for name in (t.strip() for t in targets.split(",")):
        needed = LEVELS.get(name)
        if needed is not None and needed <= flags:
            return name
    return None


def choose(environ: dict[str, str] | None = None) -> str | None:
    """Set ``NUMBA_CPU_NAME`` (and an empty ``NUMBA_CPU_FEATURES``) in ``environ`` (default
    ``os.environ``) from ``TESSERA_NUMBA_TARGETS``; returns the target chosen, or ``None``
    (variable unset, ``NUMBA_CPU_NAME`` already set, or no target fits)."""
    env = os.environ if environ is None else environ
    targets = env.get("TESSERA_NUMBA_TARGETS")
    if not targets or env.get("NUMBA_CPU_NAME"):
        return None
    name = pick(targets, cpu_flags())
    if name is not None:
        env["NUMBA_CPU_NAME"] = name
        env["NUMBA_CPU_FEATURES"] = ""
    return name
