"""A store never deletes what tessera did not write: every case a user met, through the CLI, on
local disk and on a real S3 server; every file that was there before is there after, byte for
byte."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from tessera.engine import urls
from tests.jobs import job_dict, to_toml, write_job

TESSERA = [sys.executable, "-m", "tessera.engine.cli"]


def _cli(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*TESSERA, *args],
        capture_output=True,
        text=True,
        timeout=240,
        cwd=cwd,
        env={**os.environ, **(env or {})},
        preexec_fn=lambda: os.umask(0o022),
    )


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()
    }


def test_run_refuses_a_foreign_folder_and_keeps_it(tmp_path: Path) -> None:
    foreign = tmp_path / "foreign"
    (foreign / "sub").mkdir(parents=True)
    (foreign / "notes.txt").write_text("my notes\n")
    (foreign / "sub" / "keep.txt").write_text("keep me\n")
    write_job(tmp_path / "job.toml", job_dict("runs/x", shards=2))
    before = _snapshot(tmp_path)
    done = _cli("run", "job.toml", "--store", "foreign", "--executor", "local", cwd=tmp_path)
    assert done.returncode == 1, done.stderr
    assert "is not empty and is not a tessera store" in done.stderr
    assert "2 entries (notes.txt, sub)" in done.stderr
    assert "--store with a new location" in done.stderr
    assert _snapshot(tmp_path) == before


def test_store_dot_keeps_the_job_file(tmp_path: Path) -> None:
    write_job(tmp_path / "job.toml", job_dict("runs/x", shards=2))
    before = _snapshot(tmp_path)
    done = _cli("run", "job.toml", "--store", ".", "--executor", "local", cwd=tmp_path)
    assert done.returncode == 1, done.stderr
    assert "1 entry (job.toml)" in done.stderr
    assert _snapshot(tmp_path) == before


def _frames(folder: Path, n: int = 3) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        pixels = np.random.default_rng(i).integers(0, 256, (16, 24, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(folder / f"f{i}.png")


def _transcode_job(store: str, inputs: str, output: str) -> dict[str, Any]:
    return {
        "job": {"name": "tc", "kernel": "imaging.transcode", "store": store, "shards": 1},
        "params": {"inputs": inputs, "output": output, "format": "webp"},
    }


@pytest.mark.parametrize(
    ("store", "inputs", "output", "relation", "key"),
    [
        ("fc", "fc/*.png", "out", "would hold the job's input", "inputs"),
        (".", "fc/*.png", "out", "would hold the job's input", "inputs"),
        ("fc/store", "fc/**/*.png", "out", "would sit inside the job's input", "inputs"),
        ("fc/store", "fc/*", "out", "would sit inside the job's input", "inputs"),
        ("out/store", "fc/*.png", "out", "would sit inside the job's output", "output"),
        ("dest", "fc/*.png", "dest/webp", "would hold the job's output", "output"),
    ],
)
def test_transcode_store_may_not_hold_or_sit_in_its_inputs_or_outputs(
    tmp_path: Path, store: str, inputs: str, output: str, relation: str, key: str
) -> None:
    _frames(tmp_path / "fc")
    (tmp_path / "job.toml").write_text(to_toml(_transcode_job(store, inputs, output)))
    before = _snapshot(tmp_path)
    for command in (["validate", "job.toml"], ["run", "job.toml", "--executor", "local"]):
        done = _cli(*command, cwd=tmp_path)
        assert done.returncode == 2, done.stderr
        assert f"job.store: {os.path.realpath(tmp_path / store)} {relation}" in done.stderr
        assert f"(params.{key})" in done.stderr
        assert _snapshot(tmp_path) == before


def test_a_store_beside_the_inputs_is_fine(tmp_path: Path) -> None:
    _frames(tmp_path / "fc")
    (tmp_path / "job.toml").write_text(to_toml(_transcode_job("fc/store", "fc/*.png", "out")))
    done = _cli("run", "job.toml", "--executor", "local", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["f0.webp", "f1.webp", "f2.webp"]
    for out in (tmp_path / "out").iterdir():  # transcoded files follow the umask (022 here)
        assert oct(out.stat().st_mode & 0o777) == oct(0o644), out


@pytest.mark.s3
def test_s3_prefix_with_user_objects_is_refused_and_kept(tmp_path: Path, seaweed_s3: Any) -> None:
    bucket = seaweed_s3.create_bucket()
    client = seaweed_s3.client()
    owned = {"team/precious.csv": b"a,b\n1,2\n", "team/sub/model.bin": bytes(range(256))}
    for key, data in owned.items():
        client.put_object(Bucket=bucket, Key=key, Body=data)
    write_job(tmp_path / "job.toml", job_dict("runs/x", shards=2))
    for store in (f"s3://{bucket}/team", f"s3://{bucket}"):
        done = _cli(
            "run", "job.toml", "--store", store, "--executor", "local", cwd=tmp_path,
            env=seaweed_s3.env(),
        )  # fmt: skip
        assert done.returncode == 1, done.stderr
        assert f"store {store} is not empty and is not a tessera store" in done.stderr
        listed = client.list_objects_v2(Bucket=bucket)["Contents"]
        assert sorted(o["Key"] for o in listed) == sorted(owned)
        for key, data in owned.items():
            assert client.get_object(Bucket=bucket, Key=key)["Body"].read() == data
    client.close()


@pytest.mark.s3
def test_s3_transcode_store_holding_its_inputs_is_refused(tmp_path: Path, seaweed_s3: Any) -> None:
    bucket = seaweed_s3.create_bucket()
    client = seaweed_s3.client()
    _frames(tmp_path / "fc", 1)
    client.put_object(Bucket=bucket, Key="fc/f0.png", Body=(tmp_path / "fc/f0.png").read_bytes())
    job = _transcode_job(f"s3://{bucket}/fc", f"s3://{bucket}/fc/*.png", f"s3://{bucket}/out")
    (tmp_path / "job.toml").write_text(to_toml(job))
    done = _cli("validate", "job.toml", cwd=tmp_path, env=seaweed_s3.env())
    assert done.returncode == 2, done.stderr
    assert f"s3://{bucket}/fc would hold the job's input" in done.stderr
    client.close()


@pytest.mark.parametrize(
    ("store", "location", "expected"),
    [
        ("/d/s", "/d/s/x.png", True),
        ("/d/s", "/d/s", True),
        ("/d", "/d/s/*.png", True),
        ("/d/s", "/d/*.png", False),
        ("/d/s.png", "/d/*.png", True),
        ("/d/a/b", "/d/*/x.png", False),
        ("/d/a", "/d/*/x.png", True),
        ("/d/a/b/c", "/d/**/*.png", True),
        ("/e", "/d/**/*.png", False),
        ("/d/src.zarr/pyr", "/d/src.zarr", True),
        ("s3://b/p", "s3://b/p/in/*.tif", True),
        ("s3://b", "s3://b/p/in.tif", True),
        ("s3://b/q", "s3://b/p/*.tif", False),
        ("s3://b/p", "/b/p/x.tif", False),
        ("s3://b/pq", "s3://b/p/x.tif", False),
    ],
)
def test_overlaps(store: str, location: str, expected: bool) -> None:
    assert urls.overlaps(store, location) is expected


def test_written_files_follow_the_umask(tmp_path: Path) -> None:
    """result.json, commit records and report.json get the mode the umask gives (0644 under
    022), not mkstemp's 0600, so a web server or another user can read them."""
    write_job(tmp_path / "job.toml", job_dict(tmp_path / "store", shards=2))
    done = subprocess.run(
        [*TESSERA, "run", "job.toml", "--executor", "local"],
        capture_output=True,
        text=True,
        timeout=240,
        cwd=tmp_path,
        preexec_fn=lambda: os.umask(0o022),
    )
    assert done.returncode == 0, done.stderr
    for name in ("result.json", "report.json", "_shards/0.json", "_shards/1.json"):
        assert oct((tmp_path / "store" / name).stat().st_mode & 0o777) == oct(0o644), name


def test_a_store_under_an_unwritable_path_names_the_store(tmp_path: Path) -> None:
    write_job(tmp_path / "job.toml", job_dict("runs/x", shards=2))
    done = _cli("run", "job.toml", "--store", "/sys/tessera-store", "--executor", "local",
                cwd=tmp_path)  # fmt: skip
    assert done.returncode == 1, done.stderr
    assert "error: store /sys/tessera-store cannot be created: Operation not permitted" in (
        done.stderr
    )
    assert "Traceback" not in done.stderr
