"""Benchmark: Longstaff-Schwartz in montecarlo.gbm, its two stages against the European kernel.

For the American put of Longstaff and Schwartz (2001), Table 1 (S = 36, K = 40, r = 0.06,
sigma = 0.2, T = 1, 50 exercise dates), in one process, warm (compiled first):

* the calibrate stage's seconds (M calibration paths, regression at every date) against the
  pricing stage's seconds (N fresh paths exercised by the stored coefficients);
* path-steps per second of the pricing stage against the European Philox kernel
  (``simulate_blocks``) on the same paths and steps: the price of early exercise per path-step;
* every row of Table 1: the estimate, its standard error and the finite-difference value.

Writes ``benchmarks/results/lsm.json``.

    python benchmarks/lsm.py [--paths N] [--calibration-paths M] [--repeats N]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run from a checkout without installing
    sys.path.insert(0, str(ROOT))

import numba  # noqa: E402

from benchmarks.common import RESULTS, machine  # noqa: E402
from tessera.kernels.montecarlo import lsm_gbm  # noqa: E402
from tessera.kernels.montecarlo.gbm import KERNEL  # noqa: E402
from tessera.kernels.montecarlo.params import parse  # noqa: E402
from tests.test_lsm import TABLE_1_FD  # noqa: E402


def job(spot: float, vol: float, maturity: int, paths: int, calibration: int) -> dict[str, Any]:
    return {
        "paths": paths,
        "steps": 50 * maturity,
        "spot": spot,
        "strike": 40.0,
        "rate": 0.06,
        "volatility": vol,
        "maturity": float(maturity),
        "products": ["american_put"],
        "lsm": {"calibration_paths": calibration},
    }


def best_of(repeats: int, fn: Any) -> tuple[float, Any]:
    times, out = [], None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return min(times), out


def stages(paths: int, calibration: int, repeats: int) -> dict[str, Any]:
    params = parse(job(36.0, 0.2, 1, paths, calibration))
    lsm_gbm.warm(params)
    cal_s, (coefs, _) = best_of(repeats, lambda: lsm_gbm.calibrate(params, 1))
    blocks = lsm_gbm.n_blocks(params)
    price_s, _ = best_of(repeats, lambda: lsm_gbm.price(params, 1, coefs, 0, blocks))
    plain = {k: v for k, v in job(36.0, 0.2, 1, paths, calibration).items() if k != "lsm"}
    european = KERNEL.parse_params(plain | {"products": ["european_put"]})
    layout = KERNEL.layout(european, 1)
    KERNEL.warm(european)
    euro_s, _ = best_of(repeats, lambda: KERNEL.compute(european, 1, layout, 0))
    path_steps = paths * params.steps
    return {
        "paths": paths,
        "calibration_paths": calibration,
        "steps": params.steps,
        "threads": numba.get_num_threads(),
        "calibrate_s": cal_s,
        "price_s": price_s,
        "calibrate_over_price": cal_s / price_s,
        "price_path_steps_per_s": path_steps / price_s,
        "european_path_steps_per_s": path_steps / euro_s,
        "price_over_european_rate": euro_s / price_s,
    }


def table_1(paths: int, calibration: int) -> list[dict[str, Any]]:
    rows = []
    for (spot, vol, maturity), fd in TABLE_1_FD.items():
        params = parse(job(spot, vol, maturity, paths, calibration))
        coefs, calib = lsm_gbm.calibrate(params, 11)
        sums = lsm_gbm.price(params, 11, coefs, 0, lsm_gbm.n_blocks(params))
        answer = lsm_gbm._answer(params, sums, calib)["products"]["american_put"]
        rows.append(
            {
                "spot": spot,
                "volatility": vol,
                "maturity": maturity,
                "lsm": answer["price"],
                "stderr": answer["stderr"],
                "fd": fd,
                "lsm_minus_fd": answer["price"] - fd,
            }
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--paths", type=int, default=1_048_576)
    parser.add_argument("--calibration-paths", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    result = {
        "machine": machine(),
        "stages": stages(args.paths, args.calibration_paths, args.repeats),
        "table_1": table_1(100_000, args.calibration_paths),
    }
    s = result["stages"]
    print(
        f"calibrate {s['calibration_paths']:,} paths: {s['calibrate_s']:.3f} s; "
        f"price {s['paths']:,} paths: {s['price_s']:.3f} s "
        f"(calibrate/price = {s['calibrate_over_price']:.2f}), {s['threads']} threads"
    )
    print(
        f"pricing stage {s['price_path_steps_per_s'] / 1e6:.0f} M path-steps/s, European "
        f"kernel {s['european_path_steps_per_s'] / 1e6:.0f} M path-steps/s "
        f"(the LSM pricing stage runs at {s['price_over_european_rate']:.2f}x the European rate)"
    )
    print(f"{'S':>4} {'sigma':>5} {'T':>2} {'LSM':>7} {'SE':>6} {'FD':>6} {'LSM-FD':>7}")
    for r in result["table_1"]:
        print(
            f"{r['spot']:4.0f} {r['volatility']:5.1f} {r['maturity']:2d} {r['lsm']:7.3f} "
            f"{r['stderr']:6.3f} {r['fd']:6.3f} {r['lsm_minus_fd']:+7.3f}"
        )
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "lsm.json").write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
