"""What `tessera batch` tells a user: the default image, the image a user's kernel needs, and
the same report and cost table after `batch local` as after `run`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.jobs import job_dict, to_toml, write_job

ROOT = Path(__file__).resolve().parent.parent


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tessera", *args],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=cwd,
        env={**os.environ, "TESSERA_FAULTS": "", "PYTHONPATH": str(ROOT)},
    )


def test_render_warns_of_the_default_image(tmp_path: Path) -> None:
    job = write_job(tmp_path / "job.toml", job_dict("store", shards=2, paths=16_384, steps=4))
    env_image = os.environ.pop("TESSERA_BATCH_IMAGE", None)
    try:
        done = _cli("batch", "render", str(job), cwd=tmp_path)
    finally:
        if env_image is not None:
            os.environ["TESSERA_BATCH_IMAGE"] = env_image
    assert done.returncode == 0, done.stderr
    assert "warning: no --image and no TESSERA_BATCH_IMAGE" in done.stderr
    assert json.loads(done.stdout)["containerProperties"]["image"].startswith("tessera:")
    given = _cli("batch", "render", str(job), "--image", "img:1", cwd=tmp_path)
    assert "warning" not in given.stderr and "note:" not in given.stderr  # a built-in kernel


def test_render_names_the_image_a_users_kernel_needs(tmp_path: Path) -> None:
    data = {
        "job": {"name": "probe", "kernel": "tests.probe_kernel:KERNEL", "store": "s", "shards": 2},
        "params": {"rows": 8},
    }
    (tmp_path / "job.toml").write_text(to_toml(data))
    done = _cli("batch", "render", "job.toml", "--image", "acct/tessera:1", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "kernel tests.probe_kernel:KERNEL (tests.probe_kernel:KERNEL) is not built into" in (
        done.stderr
    )
    assert "the image acct/tessera:1 must contain it" in done.stderr


def test_batch_local_ends_with_the_report_and_cost_table(tmp_path: Path) -> None:
    job = write_job(tmp_path / "job.toml", job_dict("store", shards=2, paths=16_384, steps=4))
    done = _cli("batch", "local", str(job), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    for needle in ("european_call", "2 of 2 shards committed", "CPU-seconds", "best by"):
        assert needle in done.stdout, done.stdout


def test_doctor_without_a_region_says_so(tmp_path: Path) -> None:
    job = write_job(tmp_path / "job.toml", job_dict("store", shards=2, paths=16_384, steps=4))
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update({"TESSERA_FAULTS": "", "PYTHONPATH": str(ROOT), "HOME": str(tmp_path)})
    done = subprocess.run(
        [sys.executable, "-m", "tessera", "batch", "doctor", str(job), "--queue", "q"],
        capture_output=True, text=True, timeout=120, cwd=tmp_path, env=env,
    )  # fmt: skip
    assert done.returncode == 1, done.stderr
    assert "error: no AWS region is configured: pass --region or set AWS_REGION" in done.stderr
    assert "store" not in done.stderr and "Traceback" not in done.stderr
