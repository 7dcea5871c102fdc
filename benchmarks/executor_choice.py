"""Benchmark: the figures the default executor chooses by (``tessera.engine.choose``).

Two measurements, in one run:

1. **Each built-in kernel's projected rate against its measured one.** A one-shard job of each
   (sized to about ``--seconds`` of projected work) runs in this process on the local
   executor, twice (the first loads Numba's cache); the second shard's seconds, from its commit
   record, are set against ``projected_seconds`` for the same shard. A ratio near 1 means the
   choice projects this machine well; the choice only needs the right side of a few seconds.
2. **What a local Dask cluster adds**: a 4-shard ``montecarlo.gbm`` job of about 0.1 s of
   work (``--repeats`` times) and an 8-shard one of about 9 s (twice), as whole processes,
   ``tessera run`` with ``--executor local``, with ``--executor dask`` and with the default
   (``auto``), interleaved. The short job's difference is what ``DASK_START_S`` stands for;
   the long one shows that one-thread workers lose to this process's threads.

    python benchmarks/executor_choice.py [--seconds 1.5] [--repeats 3] [--workdir DIR]
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run from a checkout without installing
    sys.path.insert(0, str(ROOT))

from benchmarks.common import write_result  # noqa: E402

GBM = {
    "spot": 100.0,
    "strike": 100.0,
    "rate": 0.05,
    "volatility": 0.2,
    "maturity": 1.0,
    "products": ["european_call", "asian_arithmetic_call", "barrier_up_out_call"],
    "barrier": 130.0,
}
HESTON = {
    **{"spot": 100.0, "strike": 100.0, "rate": 0.03, "maturity": 1.0},
    **{"v0": 0.04, "kappa": 1.5, "theta": 0.04, "xi": 0.3, "rho": -0.7},
}
BASKET = {
    "spots": [100.0, 90.0, 110.0],
    "volatilities": [0.2, 0.3, 0.25],
    "weights": [0.4, 0.3, 0.3],
    "correlation": [[1.0, 0.5, 0.3], [0.5, 1.0, 0.4], [0.3, 0.4, 1.0]],
    "strike": 100.0,
    "rate": 0.03,
    "maturity": 1.0,
    "steps": 4,
}


def jobs(work: Path) -> dict[str, tuple[dict[str, Any], str]]:
    """Per row: a job dict at unit size, and the params key scaled to reach the seconds."""
    import tomllib

    from examples.make_images import make_image, write_pillow, write_tiff

    frames = work / "frames"
    frames.mkdir(parents=True, exist_ok=True)
    for i in range(64):
        if not (frames / f"f{i:03d}.png").exists():
            write_pillow(frames / f"f{i:03d}.png", make_image(1536, 1024, "RGB", 8, seed=i))
    slide = work / "slide-8192.tif"
    if not slide.exists():
        write_tiff(slide, 8192, 8192, "RGB", 8, 0, 256)
    book = tomllib.loads((ROOT / "examples" / "book.toml").read_text())
    book["params"]["trades"] = str(ROOT / "examples" / "book-trades.csv")

    def mc(kernel: str, params: dict[str, Any]) -> dict[str, Any]:
        return {"job": {"kernel": kernel}, "params": params}

    return {
        "montecarlo.gbm": (mc("montecarlo.gbm", {**GBM, "paths": 2**16, "steps": 252}), "paths"),
        "montecarlo.gbm, sobol": (
            mc("montecarlo.gbm", {**GBM, "paths": 2**14, "steps": 64, "sampler": "sobol"}),
            "paths",
        ),
        "montecarlo.gbm, american (LSM)": (
            mc(
                "montecarlo.gbm",
                {
                    **{k: v for k, v in GBM.items() if k not in ("products", "barrier")},
                    **{"paths": 2**14, "steps": 50, "products": ["american_put"]},
                },
            ),
            "paths",
        ),
        "montecarlo.heston": (
            mc("montecarlo.heston", {**HESTON, "paths": 2**14, "steps": 64}),
            "paths",
        ),
        "montecarlo.basket": (mc("montecarlo.basket", {**BASKET, "paths": 2**16}), "paths"),
        "montecarlo.book": (
            {"job": {"kernel": "montecarlo.book"}, "params": book["params"]},
            "paths",
        ),
        "imaging.pyramid": (
            {
                "job": {"kernel": "imaging.pyramid"},
                "params": {"source": str(slide), "tile_size": 256},
            },
            "",
        ),
        "imaging.transcode": (
            {
                "job": {"kernel": "imaging.transcode", "shard_size": 64},
                "params": {
                    "inputs": f"{frames}/*.png",
                    "output": str(work / "webp"),
                    "format": "webp",
                    "quality": 80,
                    "max_edge": 768,
                },
            },
            "",
        ),
    }


def one_shard(name: str, data: dict[str, Any], key: str, seconds: float, work: Path) -> dict:
    """Run the job scaled to about ``seconds`` projected, one shard, in this process, twice;
    the second run's shard seconds against the projection."""
    from tessera.engine import executors, spec
    from tessera.engine.run import run_job
    from tessera.engine.store import Store

    store = work / "stores" / name.replace(" ", "_").replace(",", "").replace("(", "")
    data = json.loads(json.dumps(data))
    data["job"] |= {"name": "choice", "store": str(store), "seed": 1}
    if "shard_size" not in data["job"]:
        data["job"]["shards"] = 1
    data.setdefault("resources", {})["memory_mib"] = 16384

    def planned() -> Any:
        shutil.rmtree(store, ignore_errors=True)
        return spec.from_dict(data)

    job = planned()
    if key:  # scale the work to about `seconds` projected
        projected = job.kernel.projected_seconds(job.params, job.layout, 0)
        data["params"][key] = max(
            1024, int(data["params"][key] * seconds / projected) // 1024 * 1024
        )
        job = planned()
    projected = float(job.kernel.projected_seconds(job.params, job.layout, 0))
    for _ in range(2):  # the first loads Numba's cache in this process
        job = planned()
        outcome = run_job(job, executors.create("local"), lambda event: None)
        if not outcome.ok:
            raise RuntimeError(f"{name} failed: {outcome.failures}")
    record = Store.open_existing(str(store)).commit_records()[0]
    measured = float(record["seconds"])
    return {
        "kernel": name,
        "work": int(job.layout.shard_work[0]),
        "work_unit": job.layout.work_unit,
        "projected_s": round(projected, 3),
        "measured_s": round(measured, 3),
        "measured_over_projected": round(measured / projected, 2),
    }


def whole_processes(
    work: Path, repeats: int, name: str, shards: int, paths: int, steps: int
) -> dict[str, Any]:
    """A gbm job, ``tessera run`` with each executor as whole processes, interleaved."""
    tessera = str(Path(sys.executable).with_name("tessera"))
    job = work / f"{name}.toml"
    store = work / name
    params = {**GBM, "paths": paths, "steps": steps}
    lines = ["[job]", f'name = "{name}"', 'kernel = "montecarlo.gbm"', f'store = "{store}"']
    lines += [f"shards = {shards}", "seed = 1", "[params]"]
    lines += [f"{k} = {json.dumps(v)}" for k, v in params.items()]
    job.write_text("\n".join(lines) + "\n")
    runs: dict[str, list[float]] = {"local": [], "dask": [], "default (auto)": []}
    chosen = ""
    for _ in range(repeats):
        for executor in runs:
            shutil.rmtree(store, ignore_errors=True)
            extra = [] if executor.startswith("default") else ["--executor", executor]
            t0 = time.perf_counter()
            done = subprocess.run(
                [tessera, "run", str(job), *extra], capture_output=True, text=True
            )
            runs[executor].append(round(time.perf_counter() - t0, 2))
            if done.returncode != 0:
                raise RuntimeError(f"tessera run {extra} failed: {done.stderr[-2000:]}")
            if not extra:
                lines = (done.stdout + done.stderr).splitlines()
                chosen = next((ln for ln in lines if ln.startswith("executor:")), "")
            print(f"{name} gbm, {executor}: {runs[executor][-1]:.2f} s", flush=True)
    return {
        "job": f"montecarlo.gbm, {shards} shards, {paths} paths x {steps} steps",
        "seconds": runs,
        "dask_minus_local_s": round(min(runs["dask"]) - min(runs["local"]), 2),
        "default_printed": chosen,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=1.5, help="projected seconds per kernel")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--workdir", type=Path, default=None)
    args = ap.parse_args(argv)
    work = args.workdir or Path(tempfile.gettempdir()) / "tessera-bench-choice"
    work.mkdir(parents=True, exist_ok=True)
    tiny = whole_processes(work, args.repeats, "tiny", 4, 2**16, 64)
    long = whole_processes(work, 2, "long", 8, 2**24, 504)  # about 9 s of work
    rates = []
    for name, (data, key) in jobs(work).items():
        row = one_shard(name, data, key, args.seconds, work)
        rates.append(row)
        print(
            f"{name:32s} {row['work']:>12,} {row['work_unit']:17s} projected "
            f"{row['projected_s']:7.3f} s  measured {row['measured_s']:7.3f} s  "
            f"ratio {row['measured_over_projected']}",
            flush=True,
        )
    path = write_result("executor_choice", {"rates": rates, "tiny_job": tiny, "long_job": long})
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
