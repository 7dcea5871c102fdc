"""This checkout against another commit, in the same run: per-shard engine overhead through a
LocalCluster and the Monte Carlo end-to-end ratio, alternating the two trees so that machine
load hits both alike.

    .venv/bin/python benchmarks/against.py --base c5819b0 [--rounds 2]

The base commit is checked out into a temporary git worktree and run by the same interpreter
with its own folder first on ``PYTHONPATH`` (older commits import ``engine``, this one
``tessera``). Each tree runs its own ``benchmarks/suite.py --only engine --quick`` (empty shards:
microseconds per shard per worker) and ``benchmarks/engine.py --shard-seconds 1 --shards 8``
(path-steps/s end to end over the kernel alone). Prints each number, the median per tree and
the ratio this/base; writes benchmarks/results/against.json.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


def _run(tree: Path, script: str, args: list[str], results: Path) -> dict[str, Any]:
    env = {**os.environ, "PYTHONPATH": str(tree)}
    env.pop("TESSERA_FAULTS", None)
    # -P: the script's folder is not put first on sys.path (benchmarks/engine.py would shadow
    # the package `engine` of older commits)
    command = [sys.executable, "-P", str(tree / "benchmarks" / script), *args]
    if script == "suite.py":
        command += ["--results", str(results)]
    written = tree / "benchmarks" / "results" / "engine.json"
    kept = written.read_bytes() if written.exists() else None  # the tree's published numbers
    done = subprocess.run(command, capture_output=True, text=True, env=env, cwd=tree, timeout=1800)
    if script == "engine.py":
        measured = written.read_bytes()
        if kept is not None:
            written.write_bytes(kept)
        written = results / "engine.json"
        written.write_bytes(measured)
    if done.returncode != 0:
        raise SystemExit(f"{tree}: {script} failed:\n{done.stdout[-2000:]}\n{done.stderr[-4000:]}")
    if script == "suite.py":
        data = json.loads(next(results.glob("*.json")).read_text())
        section = data["results"]["engine"]["empty_shards"]
        return {"us_per_shard": section["us_per_shard"]}
    data = json.loads(written.read_text())
    return {"e2e_ratio": data["runs"][0]["ratio_excluding_startup"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", required=True, help="the commit to compare against")
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp) / "base"
        subprocess.run(
            ["git", "-C", str(ROOT), "worktree", "add", "--detach", str(base), args.base],
            check=True,
            capture_output=True,
        )
        try:
            samples: dict[str, dict[str, list[float]]] = {"this": {}, "base": {}}
            for round_ in range(args.rounds):
                for name, tree in (("base", base), ("this", ROOT)):
                    for script, extra in (
                        ("suite.py", ["--only", "engine", "--quick"]),
                        ("engine.py", ["--shard-seconds", "1", "--shards", "8"]),
                    ):
                        out = Path(tmp) / f"{name}-{round_}-{script}"
                        out.mkdir()
                        for key, value in _run(tree, script, extra, out).items():
                            samples[name].setdefault(key, []).append(value)
                            print(f"round {round_ + 1} {name:>4} {key}: {value:.4g}", flush=True)
        finally:
            subprocess.run(
                ["git", "-C", str(ROOT), "worktree", "remove", "--force", str(base)],
                capture_output=True,
            )
    summary = {}
    for key in samples["this"]:
        this, then = (
            statistics.median(samples["this"][key]),
            statistics.median(samples["base"][key]),
        )
        summary[key] = {"this": this, "base": then, "ratio_this_over_base": this / then}
        print(f"{key}: this {this:.4g}, base {then:.4g}, this/base {this / then:.3f}")
    out = ROOT / "benchmarks" / "results" / "against.json"
    doc = {
        "command": f"python benchmarks/against.py --base {args.base} --rounds {args.rounds}",
        "base": args.base,
        "samples": samples,
        "summary": summary,
    }
    out.write_text(json.dumps(doc, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
