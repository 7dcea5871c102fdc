"""Benchmark: batch transcoding with imaging.transcode against Pillow and vipsthumbnail.

The workload (issue 15, item 5): ``--files`` PNGs of 1536 x 1024 RGB (the deterministic scene of
``examples/make_images.py``, a different seed each) made into WebP at quality 80 with
``max_edge = 768``, on the machine's cores. Whole processes, interleaved round by round, best
of ``--repeats`` each:

* ``tessera run job.toml``: the default executor (``auto``), and ``--executor local`` and
  ``--executor dask``;
* a plain Pillow script: ``Image.open``, ``thumbnail((768, 768), LANCZOS)``, ``save(quality=80)``,
  over a ``multiprocessing.Pool`` of ``--cores`` processes;
* ``vipsthumbnail --size 768 -o %s.webp[Q=80]`` with ``xargs -P <cores>``, one file per call.

Then, in this process on one thread, where a file's time goes: reading the bytes, decoding
(tessera's, and Pillow's alone), resizing (tessera's Lanczos and Pillow's), encoding (Pillow),
and the largest difference between tessera's resize and Pillow's.

    python benchmarks/transcode.py [--files 120] [--repeats 3] [--cores N] [--workdir DIR]
"""

from __future__ import annotations

import argparse
import os
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

import numpy as np  # noqa: E402

from benchmarks.common import write_result  # noqa: E402

WIDTH, HEIGHT, MAX_EDGE, QUALITY = 1536, 1024, 768, 80

PILLOW_SCRIPT = """
import sys
from multiprocessing import Pool
from pathlib import Path
from PIL import Image

def one(args):
    src, dst = args
    with Image.open(src) as im:
        im.thumbnail(({edge}, {edge}), Image.Resampling.LANCZOS)
        im.save(dst, quality={quality})

if __name__ == "__main__":
    out = Path(sys.argv[2])
    jobs = [(p, out / (p.stem + ".webp")) for p in sorted(Path(sys.argv[1]).glob("*.png"))]
    with Pool(int(sys.argv[3])) as pool:
        pool.map(one, jobs, chunksize=1)
"""


def make_inputs(folder: Path, n: int) -> list[Path]:
    """``n`` PNGs of the deterministic scene, seeds 0..n-1 (kept between runs)."""
    from examples.make_images import make_image, write_pillow

    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n):
        path = folder / f"frame{i:04d}.png"
        if not path.exists():
            write_pillow(path, make_image(WIDTH, HEIGHT, "RGB", 8, seed=i))
        paths.append(path)
    return paths


def job_file(work: Path, inputs: Path, out: Path) -> Path:
    path = work / "transcode.toml"
    path.write_text(
        f"""[job]
name = "bench-transcode"
kernel = "imaging.transcode"
store = "{work / "store"}"

[params]
inputs = "{inputs}/*.png"
output = "{out}"
format = "webp"
quality = {QUALITY}
max_edge = {MAX_EDGE}
"""
    )
    return path


def whole(cmd: list[str] | str, **kw: Any) -> float:
    """Wall seconds of a whole process; raises when it fails."""
    t0 = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True, **kw)
    seconds = time.perf_counter() - t0
    if done.returncode != 0:
        raise RuntimeError(f"{cmd} failed ({done.returncode}): {done.stderr[-2000:]}")
    return seconds


def contenders(work: Path, inputs: Path, cores: int) -> dict[str, Any]:
    tessera = str(Path(sys.executable).with_name("tessera"))
    out = work / "out"
    job = job_file(work, inputs, out)
    pillow = work / "pillow.py"
    pillow.write_text(PILLOW_SCRIPT.format(edge=MAX_EDGE, quality=QUALITY))

    def fresh() -> None:
        shutil.rmtree(out, ignore_errors=True)
        shutil.rmtree(work / "store", ignore_errors=True)
        out.mkdir(parents=True)

    def run_tessera(*extra: str) -> Any:
        def go() -> float:
            fresh()
            return whole([tessera, "run", str(job), *extra])

        return go

    def run_pillow() -> float:
        fresh()
        return whole([sys.executable, str(pillow), str(inputs), str(out), str(cores)])

    def run_vips() -> float:
        fresh()
        shell = (
            f"ls {inputs}/*.png | xargs -P {cores} -n 1 "
            f"vipsthumbnail --size {MAX_EDGE} -o '{out}/%s.webp[Q={QUALITY}]'"
        )
        return whole(shell, shell=True)

    rows: dict[str, Any] = {
        "tessera, default executor": run_tessera(),
        "tessera, --executor local": run_tessera("--executor", "local"),
        "tessera, --executor dask": run_tessera("--executor", "dask"),
        f"Pillow script, {cores} processes": run_pillow,
    }
    if shutil.which("vipsthumbnail"):
        rows[f"vipsthumbnail, xargs -P {cores}"] = run_vips
    return rows


def breakdown(paths: list[Path], n: int) -> dict[str, float]:
    """Milliseconds per file on one thread of each step, over the first ``n`` files."""
    import io

    import numba
    from PIL import Image

    from tessera.kernels.imaging import codec
    from tessera.kernels.imaging.resize import output_size, resize

    numba.set_num_threads(1)
    times = dict.fromkeys(
        ("read", "decode", "decode_pillow", "resize", "resize_pillow", "encode"), 0.0
    )
    worst = 0
    resize(np.zeros((16, 16, 3), np.uint8), 8, 8, "lanczos")  # compile / load the cache
    for path in paths[:n]:
        t0 = time.perf_counter()
        data = path.read_bytes()
        t1 = time.perf_counter()
        img = codec.decode(data)
        t2 = time.perf_counter()
        with Image.open(io.BytesIO(data)) as im:  # what the Pillow script decodes with
            im.load()
        t2p = time.perf_counter()
        h, w = img.pixels.shape[:2]
        ow, oh = output_size(w, h, MAX_EDGE, None)
        small = resize(img.pixels, oh, ow, "lanczos")
        t3 = time.perf_counter()
        ref = np.asarray(Image.fromarray(img.pixels).resize((ow, oh), Image.Resampling.LANCZOS))
        t4 = time.perf_counter()
        codec.encode(small, "RGB", "webp", QUALITY)
        t5 = time.perf_counter()
        worst = max(worst, int(np.abs(small.astype(int) - ref.astype(int)).max()))
        for key, (a, b) in {
            "read": (t0, t1),
            "decode": (t1, t2),
            "decode_pillow": (t2, t2p),
            "resize": (t2p, t3),
            "resize_pillow": (t3, t4),
            "encode": (t4, t5),
        }.items():
            times[key] += (b - a) * 1000 / n
    return {**{f"{k}_ms": round(v, 2) for k, v in times.items()}, "max_abs_diff": worst}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--files", type=int, default=120)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--cores", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--workdir", type=Path, default=None)
    ap.add_argument("--only", default="", help="comma list of row-name prefixes to run")
    args = ap.parse_args(argv)
    work = args.workdir or Path(tempfile.gettempdir()) / "tessera-bench-transcode"
    inputs = work / "inputs"
    paths = make_inputs(inputs, args.files)
    rows = contenders(work, inputs, args.cores)
    if args.only:
        keep = [p.strip() for p in args.only.split(",")]
        rows = {k: v for k, v in rows.items() if any(k.startswith(p) for p in keep)}
    seconds: dict[str, list[float]] = {name: [] for name in rows}
    for round_ in range(args.repeats):
        for name, fn in rows.items():
            seconds[name].append(fn())
            print(f"round {round_ + 1}: {name}: {seconds[name][-1]:.2f} s", flush=True)
    best = {name: min(v) for name, v in seconds.items()}
    table = []
    base = {k: v for k, v in best.items() if not k.startswith("tessera")}
    for name, s in best.items():
        row: dict[str, Any] = {"what": name, "best_s": round(s, 2), "all_s": seconds[name]}
        if name.startswith("tessera"):
            for other, o in base.items():
                row[f"x {other}"] = round(o / s, 2)
        table.append(row)
        print(
            f"{name:40s} {s:7.2f} s  "
            + "  ".join(f"{k} {v}" for k, v in row.items() if k.startswith("x "))
        )
    steps = breakdown(paths, min(20, len(paths)))
    print("one thread, ms per file:", steps)
    load = os.getloadavg()
    path = write_result(
        "transcode",
        {
            "workload": {
                "files": args.files,
                "size": [WIDTH, HEIGHT],
                "format": "webp",
                "quality": QUALITY,
                "max_edge": MAX_EDGE,
                "cores": args.cores,
                "repeats": args.repeats,
            },
            "rows": table,
            "one_thread_ms_per_file": steps,
            "loadavg": load,
        },
    )
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
