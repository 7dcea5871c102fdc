"""Compile every built-in kernel into Numba's cache (``NUMBA_CACHE_DIR``), for each CPU target
of ``TESSERA_NUMBA_TARGETS`` that this machine can run: what ``containers/Dockerfile`` runs at
build time, so that a fresh container loads its kernels instead of compiling them.

Each target compiles in a child process of its own (Numba reads the target when imported),
with ``NUMBA_CPU_NAME`` set to it and ``NUMBA_CPU_FEATURES`` empty, as
``tessera._numba_target`` sets them when the worker starts. Every variant a job can select
is warmed: the Philox, Greek, Sobol and Longstaff-Schwartz paths of ``montecarlo.gbm``,
Heston and basket with both samplers, the book, the pyramid's downsampling for 8 and 16 bits,
and the transcoder's resizers.

    NUMBA_CACHE_DIR=... TESSERA_NUMBA_TARGETS=x86-64-v4,x86-64-v3 python containers/warm.py
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

MARKET = {"spot": 100.0, "strike": 100.0, "rate": 0.03, "maturity": 1.0}
HESTON = {**MARKET, "v0": 0.04, "kappa": 1.5, "theta": 0.04, "xi": 0.3, "rho": -0.7}
BASKET = {
    "spots": [100.0, 90.0],
    "volatilities": [0.2, 0.3],
    "correlation": [[1.0, 0.5], [0.5, 1.0]],
    "strike": 95.0,
    "rate": 0.03,
    "maturity": 1.0,
}
ALL_GBM = ["european_call", "european_put", "asian_arithmetic_call", "asian_geometric_call"]
JOBS: list[tuple[str, dict[str, object]]] = [
    ("montecarlo.gbm", {"paths": 64, "steps": 4, "volatility": 0.2, **MARKET}),
    (
        "montecarlo.gbm",
        {"paths": 64, "steps": 4, "volatility": 0.2, **MARKET, "products": ALL_GBM}
        | {"greeks": ["delta", "gamma", "vega", "rho", "theta"]},
    ),
    ("montecarlo.gbm", {"paths": 64, "steps": 4, "volatility": 0.2, **MARKET, "sampler": "sobol"}),
    (
        "montecarlo.gbm",
        {"paths": 64, "steps": 4, "volatility": 0.2, **MARKET, "products": ["american_put"]}
        | {"lsm": {"calibration_paths": 1000}},
    ),
    ("montecarlo.heston", {"paths": 64, "steps": 4, **HESTON, "greeks": ["delta", "vega"]}),
    ("montecarlo.heston", {"paths": 64, "steps": 4, **HESTON, "sampler": "sobol"}),
    ("montecarlo.basket", {"paths": 64, "steps": 4, **BASKET}),
    ("montecarlo.basket", {"paths": 64, "steps": 4, **BASKET, "sampler": "sobol"}),
]


def _warm_book(folder: Path) -> None:
    from tessera.engine import spec

    trades = folder / "trades.csv"
    trades.write_text(
        "id,underlying,product,strike,maturity\n"
        "t1,A,european_call,100,1.0\nt2,B,asian_arithmetic_call,100,1.0\n"
    )
    raw = {
        "trades": str(trades),
        "rate": 0.03,
        "paths": 64,
        "steps_per_year": 4,
        "greeks": ["delta", "gamma", "vega", "rho"],
        "underlyings": {
            "A": {"model": "gbm", "spot": 100.0, "volatility": 0.2},
            "B": {
                "model": "heston",
                **{k: HESTON[k] for k in ("v0", "kappa", "theta", "xi", "rho")},
            }
            | {"spot": 100.0},
        },
    }
    job = spec.from_dict(
        {"job": {"name": "warm", "kernel": "montecarlo.book", "store": str(folder / "s")}}
        | {"params": raw}
    )
    job.kernel.warm(job.params)


def _warm_imaging() -> None:
    import numpy as np
    from PIL import Image

    from tessera.kernels.imaging.downsample import downsample2x
    from tessera.kernels.imaging.transcode import transcode_bytes
    from tessera.kernels.imaging.transcode_params import parse

    for dtype in (np.uint8, np.uint16):
        for gamma in (False, True):
            downsample2x(np.zeros((2, 2, 3), dtype=dtype), gamma)
    import io

    for resample in ("lanczos", "area"):
        buf = io.BytesIO()
        Image.new("RGB", (16, 16)).save(buf, "PNG")
        params = parse(
            {"inputs": "x/*.png", "output": "y", "format": "webp", "max_edge": 8}
            | {"resample": resample}
        )
        transcode_bytes(buf.getvalue(), params)


def child() -> None:
    from tessera.kernels import registry

    for name, raw in JOBS:
        kernel = registry.get(name)
        kernel.warm(kernel.parse_params(raw))
    with tempfile.TemporaryDirectory() as folder:
        _warm_book(Path(folder))
    _warm_imaging()


def main() -> int:
    if sys.argv[1:] == ["--child"]:
        child()
        return 0
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from tessera._numba_target import cpu_flags, pick

    targets = [t.strip() for t in os.environ.get("TESSERA_NUMBA_TARGETS", "").split(",") if t]
    if not targets or "NUMBA_CACHE_DIR" not in os.environ:
        print("set NUMBA_CACHE_DIR and TESSERA_NUMBA_TARGETS", file=sys.stderr)
        return 2
    flags = cpu_flags()
    for target in targets:
        if pick(target, flags) is None:
            print(f"skip {target}: this machine cannot run its code")
            continue
        env = {**os.environ, "NUMBA_CPU_NAME": target, "NUMBA_CPU_FEATURES": ""}
        t0 = time.monotonic()
        subprocess.run([sys.executable, __file__, "--child"], env=env, check=True)
        print(f"compiled for {target} in {time.monotonic() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
