"""What every benchmark records beside its numbers: machine, CPU, versions, date, git revision."""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).parent / "results"


def cpu_model() -> str:
    """The CPU model name from /proc/cpuinfo (Linux), else platform.processor()."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def git_revision() -> str:
    """The current git commit (with '-dirty' for uncommitted changes), or 'unknown'."""
    root = Path(__file__).parent.parent
    try:
        rev = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, timeout=10
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=root,
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout
        return (rev + ("-dirty" if dirty.strip() else "")) or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def simd() -> str:
    """The widest x86 vector extension the CPU reports: avx512f, avx2 or ''."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return ""
    return "avx512f" if " avx512f" in text else ("avx2" if " avx2" in text else "")


def machine() -> dict[str, Any]:
    """Machine description stored with every result."""
    import llvmlite.binding

    versions = {}
    for package in ("numpy", "numba", "llvmlite", "dask", "distributed", "zarr", "tessera"):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = None
    return {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "git": git_revision(),
        "host": platform.node(),
        "cpu_model": cpu_model(),
        "cores": os.cpu_count(),
        "simd": simd(),
        "llvm_cpu": llvmlite.binding.get_host_cpu_name(),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "versions": versions,
    }


def write_result(name: str, data: dict[str, Any], folder: Path = RESULTS) -> Path:
    """Write ``<folder>/<name>.json`` (default benchmarks/results) with the machine description;
    returns the path."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.json"
    path.write_text(json.dumps({"machine": machine(), **data}, indent=2) + "\n")
    return path
