"""One import name: ``import tessera`` from anywhere, nothing named ``engine`` or ``kernels``
outside the checkout, a light import, and a wheel that holds only ``tessera``."""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tests.jobs import job_dict, write_job

ROOT = Path(__file__).resolve().parent.parent


def _python(code: str, cwd: Path, *flags: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *flags, "-c", code],
        capture_output=True,
        text=True,
        timeout=240,
        cwd=cwd,
        env={"PATH": "/usr/bin:/bin", "HOME": str(cwd), "TESSERA_FAULTS": ""},
    )


def test_engine_and_kernels_are_not_importable_from_outside(tmp_path: Path) -> None:
    for name in ("engine", "kernels"):
        done = _python(f"import {name}", tmp_path)
        assert done.returncode == 1
        assert f"No module named '{name}'" in done.stderr
    done = _python("import tessera.engine.store, tessera.kernels.registry; print('ok')", tmp_path)
    assert done.stdout.strip() == "ok", done.stderr


def test_import_tessera_is_light(tmp_path: Path) -> None:
    code = (
        "import sys, tessera; heavy = ('numba', 'dask', 'distributed', 'zarr', 'boto3', "
        "'botocore', 'fsspec', 'PIL'); print([m for m in heavy if m in sys.modules])"
    )
    done = _python(code, tmp_path)
    assert done.stdout.strip() == "[]", done.stderr
    timing = _python("import tessera", tmp_path, "-X", "importtime")
    rows = [line.split("|") for line in timing.stderr.splitlines() if line.endswith(" tessera")]
    assert rows, timing.stderr  # the line of the top-level package: its cumulative microseconds
    print(f"import tessera: {int(rows[-1][1]) / 1e6:.3f} s cumulative")


def test_the_api_from_outside_the_checkout_matches_the_cli(tmp_path: Path) -> None:
    job = write_job(tmp_path / "job.toml", job_dict("cli-store", shards=2, paths=16_384, steps=4))
    cli = subprocess.run(
        [sys.executable, "-m", "tessera", "run", str(job), "--executor", "local"],
        capture_output=True,
        text=True,
        timeout=240,
        cwd=tmp_path,
    )
    assert cli.returncode == 0, cli.stderr
    code = (
        "import json, tessera\n"
        "job = tessera.load('job.toml', store='api-store', shards=3)\n"
        "out = tessera.run(job, executor='local', progress=False)\n"
        "again = tessera.run(tessera.load('job.toml', store='api-2'), executor='local')\n"
        "print(json.dumps({'ok': out.ok and again.ok, 'result': out.result,\n"
        "                  'committed': tessera.status('api-store').committed}))\n"
    )
    done = _python(code, tmp_path)
    assert done.returncode == 0, done.stderr
    answer = json.loads(done.stdout)
    assert answer["ok"] and answer["committed"] == 2  # 2 blocks: at most 2 shards
    assert answer["result"] == json.loads((tmp_path / "cli-store" / "result.json").read_text())


@pytest.mark.slow
def test_a_wheel_holds_only_the_tessera_package(tmp_path: Path) -> None:
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", str(ROOT), "-w", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert built.returncode == 0, built.stderr[-2000:]
    (wheel,) = tmp_path.glob("tessera-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert {n.split("/")[0] for n in names} == {
        "tessera",
        wheel.name.split("-py3")[0] + ".dist-info",
    }
    assert "tessera/engine/prices.toml" in names and "tessera/kernels/sdk.py" in names
    assert "tessera/kernels/montecarlo/data/new-joe-kuo-6.21201.npz" in names  # Sobol's table
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    subprocess.run(
        [str(venv / "bin/pip"), "install", "-q", "--no-deps", str(wheel)], check=True, timeout=300
    )
    done = subprocess.run(
        [str(venv / "bin/python"), "-c", "import tessera; print(tessera.__version__)"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "0.1.0"
