"""Plan once: a job is prepared and laid out where it is validated, its plan is stored in the
store, and neither workers nor Batch children plan it again (a transcode child lists no inputs,
a pyramid child reads no header before its pixels)."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from tessera.engine import executors, spec
from tessera.engine.batch import index, submit
from tessera.engine.plan import Plan, pack, plan, unpack
from tessera.engine.run import run_job
from tessera.engine.store import Store
from tests.jobs import job_dict, write_job

ROOT = Path(__file__).resolve().parent.parent


def _transcode(store: Path, frames: Path, out: Path, shards: int = 3) -> dict[str, Any]:
    return {
        "job": {
            "name": "frames",
            "kernel": "imaging.transcode",
            "store": str(store),
            "shards": shards,
        },
        "params": {"inputs": str(frames / "*.png"), "output": str(out), "format": "jpeg"},
    }


def _pyramid(store: Path, source: Path, shards: int = 4) -> dict[str, Any]:
    return {
        "job": {
            "name": "slide",
            "kernel": "imaging.pyramid",
            "store": str(store),
            "shards": shards,
        },
        "params": {"source": str(source), "tile_size": 64, "dzi": {"format": "png"}},
    }


@pytest.fixture
def frames(tmp_path: Path) -> Path:
    folder = tmp_path / "frames"
    folder.mkdir()
    rng = np.random.default_rng(3)
    for i in range(6):
        pixels = rng.integers(0, 256, (24 + i, 32, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(folder / f"f{i}.png")
    return folder


@pytest.fixture
def slide(tmp_path: Path) -> Path:
    pixels = np.random.default_rng(5).integers(0, 256, (200, 300, 3), dtype=np.uint8)
    path = tmp_path / "slide.png"
    Image.fromarray(pixels).save(path)
    return path


def _submitted(data: dict[str, Any]) -> submit.Submission:
    """A submission of every shard, written to the store, as `tessera batch submit` makes it."""
    s = submit.prepare(spec.from_dict(data), queue="q", definition="d")
    submit.finalize(s, depends_on=[])
    submit.write_files(s)
    return s


# A Batch child, as the container runs it, with every way of planning again made to fail: the
# kernel's prepare and layout, listing inputs, resolving the transcode glob. Opening the
# pyramid source is counted (the child opens it once, to read its pixels).
_CHILD = textwrap.dedent(
    """
    import sys
    from tessera.engine import io
    from tessera.engine.cli import main
    from tessera.kernels.imaging import pyramid, transcode

    def refuse(what):
        def call(*args, **kwargs):
            raise AssertionError(f"{what} ran again in the child")
        return call

    for kernel in (pyramid.KERNEL, transcode.KERNEL):
        type(kernel).prepare = refuse(f"{kernel.name} prepare")
        type(kernel).layout = refuse(f"{kernel.name} layout")
    io.Inputs.list_inputs = refuse("listing inputs")
    transcode.resolve_inputs = refuse("resolve_inputs")
    opened = []
    real_open = pyramid.open_source

    def counting(*args, **kwargs):
        opened.append(args[0])
        return real_open(*args, **kwargs)

    pyramid.open_source = counting
    code = main(sys.argv[1:])
    print(f"OPENED {len(opened)}", file=sys.stderr)
    sys.exit(code)
    """
)


def _child(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", _CHILD, *args],
        capture_output=True,
        text=True,
        timeout=240,
        cwd=ROOT,
    )


def _committed(stdout: str) -> list[int]:
    lines = [json.loads(line) for line in stdout.splitlines() if line.startswith("{")]
    return [e["shard"] for e in lines if e["event"] == "shard_committed"]


def test_pack_is_runs_of_equal_steps() -> None:
    assert pack((0, 3, 6, 9, 10)) == [[0, 1], [3, 3], [1, 1]]
    assert unpack(pack((0, 3, 6, 9, 10))) == (0, 3, 6, 9, 10)
    assert pack(()) == [] and unpack([]) == ()
    million = tuple(range(0, 4_000_001, 4))
    assert pack(million) == [[0, 1], [4, 1_000_000]] and unpack(pack(million)) == million


def test_the_store_holds_the_whole_plan(tmp_path: Path, frames: Path, slide: Path) -> None:
    jobs = [
        spec.from_dict(job_dict(tmp_path / "mc", shards=5)),
        spec.from_dict(_transcode(tmp_path / "tc", frames, tmp_path / "out")),
        spec.from_dict(_pyramid(tmp_path / "py", slide)),
    ]
    for job in jobs:
        job_plan = plan(job)
        Store.open_for_job(job, job_plan)
        stored = Store.open_existing(job.store).plan()
        assert stored is not None
        layout, back = job_plan.layout, stored.layout
        assert back.bounds == layout.bounds and back.shard_work == layout.shard_work
        assert back.work_unit == layout.work_unit and back.n_shards == job.n_shards
        for a, b in zip(layout.arrays, back.arrays, strict=True):
            assert (a.name, a.shape, a.dtype, a.chunks, a.shards) == (
                b.name,
                b.shape,
                b.dtype,
                b.chunks,
                b.shards,
            )
            assert (a.dimension_names, a.fill_value) == (b.dimension_names, b.fill_value)
        assert [g.name for g in back.groups] == [g.name for g in layout.groups]
        assert json.loads(json.dumps(stored.to_dict())) == json.loads(
            json.dumps(job_plan.to_dict())
        )
        assert back.region(job.n_shards - 1) == layout.region(job.n_shards - 1)
        again = Store.open_existing(job.store).stored_job()
        assert again.spec_hash == job.spec_hash and again.layout == back


def test_a_plan_without_its_layout_is_refused_by_from_dict() -> None:
    assert Plan.stored({"n_shards": 2, "work": 4, "work_unit": "x", "arrays": []}) is None
    with pytest.raises(ValueError, match="incomplete"):
        Plan.from_dict({"layout_version": 1, "n_shards": 2})
    with pytest.raises(ValueError, match="layout version 9"):
        Plan.from_dict({"layout_version": 9})


def test_workers_use_the_jobs_layout(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The driver's job carries its layout: no worker asks the kernel for it again."""
    job = spec.from_dict(job_dict(tmp_path / "store", shards=3))
    kernel = type(job.kernel)

    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("planned again")

    monkeypatch.setattr(kernel, "layout", refuse)
    monkeypatch.setattr(kernel, "prepare", refuse)
    outcome = run_job(job, executors.create("local"), lambda e: None)
    assert outcome.ok and outcome.committed == 3


def test_a_transcode_child_does_not_list_its_inputs_again(tmp_path: Path, frames: Path) -> None:
    data = _transcode(tmp_path / "store", frames, tmp_path / "out", shards=3)
    s = _submitted(data)
    files = s.job.params.files
    assert len(files) == 6 and s.job.n_shards == 3
    for name in files[:2]:  # shard 0's inputs are gone: shard 1 does not need them
        Path(name).unlink()
    proc = _child("worker", s.job_url, "--index-file", "index-0.json", "--index", "1")
    assert proc.returncode == 0, proc.stderr
    assert _committed(proc.stdout) == [1]
    written = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert written == ["f2.jpg", "f3.jpg"]


def test_a_pyramid_child_does_not_read_the_source_header_again(tmp_path: Path, slide: Path) -> None:
    s = _submitted(_pyramid(tmp_path / "store", slide, shards=6))
    assert s.job.n_shards == 6  # super-tiles of 128 pixels: 3 x 2
    for i in range(s.job.n_shards):
        proc = _child("worker", s.job_url, "--index-file", "index-0.json", "--index", str(i))
        assert proc.returncode == 0, proc.stderr
        assert _committed(proc.stdout) == [i]
        assert "OPENED 1" in proc.stderr  # compute reads its pixels; nothing read the header
    reduced = _child("worker", s.job_url, "--reduce")
    assert reduced.returncode == 0, reduced.stderr
    assert "OPENED 0" in reduced.stderr
    local = spec.from_dict(_pyramid(tmp_path / "local", slide, shards=1))
    assert run_job(local, executors.create("local"), lambda e: None).ok
    result = (tmp_path / "store" / "result.json").read_bytes()
    assert result == (tmp_path / "local" / "result.json").read_bytes()
    assert json.loads(result)["dzi"]["viewer"] == "dzi/viewer.html"
    assert "image.dzi" in (tmp_path / "store" / "dzi" / "viewer.html").read_text()


def test_a_job_file_that_is_not_the_stored_job_is_planned_and_checked(
    tmp_path: Path, frames: Path
) -> None:
    """`tessera worker JOB.toml` with the user's own file (inputs not resolved in it) plans it
    as `tessera run` would; the store's spec check still refuses another job."""
    data = _transcode(tmp_path / "store", frames, tmp_path / "out", shards=2)
    job = spec.from_dict(data)
    Store.open_for_job(job, plan(job))
    path = write_job(tmp_path / "job.toml", data)
    loaded, _ = index.open_job(str(path))
    assert loaded.spec_hash == job.spec_hash and loaded.layout is not None
    proc = subprocess.run(
        [sys.executable, "-m", "tessera.engine.cli", "worker", str(path), "--index", "0"],
        capture_output=True,
        text=True,
        timeout=240,
        cwd=ROOT,
    )
    assert proc.returncode == 0, proc.stderr
    other = write_job(tmp_path / "other.toml", {**data, "job": {**data["job"], "shards": 3}})
    refused = subprocess.run(
        [sys.executable, "-m", "tessera.engine.cli", "worker", str(other), "--index", "0"],
        capture_output=True,
        text=True,
        timeout=240,
        cwd=ROOT,
    )
    assert refused.returncode == 1 and "made by a different job" in refused.stderr


def test_a_store_from_before_stored_layouts_still_serves_children(tmp_path: Path) -> None:
    """A store whose plan lacks the layout (an earlier tessera) is laid out by the kernel."""
    s = _submitted(job_dict(tmp_path / "store", shards=2))
    meta_path = tmp_path / "store" / "zarr.json"
    meta = json.loads(meta_path.read_text())
    stored_plan = meta["attributes"]["tessera"]["plan"]
    for key in ("layout_version", "bounds", "shard_work", "groups"):
        stored_plan.pop(key)
    meta_path.write_text(json.dumps(meta))
    assert Store.open_existing(str(tmp_path / "store")).plan() is None
    job, _ = index.open_job(s.job_url)
    assert job.spec_hash == s.job.spec_hash and job.layout == s.job.layout
