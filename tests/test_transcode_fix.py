"""imaging.transcode after some inputs failed: fix them in place and run again (only they are
redone, every other output is kept, the result equals a clean run's), or drop them (a new job,
in a new store); short store-mismatch messages for thousands of inputs; globs that match
folders."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from tessera.engine import executors, spec
from tessera.engine.errors import SpecError, StoreMismatchError
from tessera.engine.plan import plan
from tessera.engine.run import run_job
from tessera.engine.store import Store, _diff
from tessera.kernels.imaging import transcode
from tessera.kernels.imaging.transcode import transcode_bytes
from tests.jobs import write_job
from tests.natural import natural

ROOT = Path(__file__).resolve().parent.parent
FRAMES = 8
BROKEN = (1, 6)  # in shards 0 and 3 of 4: each shares its shard with a good frame
CORRUPT = b"\x89PNG\r\n\x1a\n" + b"not really a png"


def _png(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, "PNG")
    return buf.getvalue()


def _frame(i: int) -> bytes:
    return _png(natural(30 + i, 40, 3, seed=i))


def _frames(folder: Path) -> list[Path]:
    """``FRAMES`` PNG frames, those of ``BROKEN`` corrupt."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(FRAMES):
        path = folder / f"frame{i}.png"
        path.write_bytes(CORRUPT + bytes([i]) if i in BROKEN else _frame(i))
        paths.append(path)
    return paths


def _fix(paths: list[Path]) -> None:
    for i in BROKEN:
        paths[i].write_bytes(_png(natural(33, 41, 3, seed=100 + i)))  # valid, another size


def _job(store: Path, inputs: str, out: Path) -> dict[str, Any]:
    return {
        "job": {"name": "fix", "kernel": "imaging.transcode", "store": str(store), "shards": 4},
        "params": {"inputs": inputs, "output": str(out), "format": "jpeg", "max_edge": 24},
        "retry": {"attempts": 1},
    }


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "TESSERA_FAULTS"}
    return subprocess.run(
        [sys.executable, "-m", "tessera.engine.cli", *args],
        capture_output=True,
        text=True,
        timeout=240,
        cwd=ROOT,
        env=env,
    )


def _stamps(folder: Path) -> dict[str, tuple[int, int]]:
    """Inode and mtime of every output: a file written again (temporary name and rename) gets
    a new inode and mtime."""
    return {p.name: (p.stat().st_ino, p.stat().st_mtime_ns) for p in sorted(folder.iterdir())}


def _expected_outputs(paths: list[Path], params: Any) -> dict[str, bytes]:
    """Each input transcoded on its own by the kernel's ``transcode_bytes``."""
    return {p.stem + ".jpg": transcode_bytes(p.read_bytes(), params)[0] for p in paths}


def _outputs(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


# --- fix in place, run again -------------------------------------------------------------------


def test_fixed_inputs_are_redone_and_nothing_else_through_the_cli(tmp_path: Path) -> None:
    paths = _frames(tmp_path / "frames")
    out = tmp_path / "out"
    data = _job(tmp_path / "store", str(tmp_path / "frames" / "*.png"), out)
    job_file = write_job(tmp_path / "job.toml", data)
    broken = [str(paths[i]) for i in BROKEN]

    first = _cli("run", str(job_file), "--executor", "local")
    assert first.returncode == 1, first.stderr
    assert "2 inputs failed" in first.stderr
    command = f"tessera run {job_file} --executor local"  # the exact commands
    assert f"run `{command}` again" in first.stderr
    assert f"`{command} --store NEW_LOCATION`" in first.stderr
    status = _cli("status", str(tmp_path / "store"))
    assert status.returncode == 1
    for url in broken:
        assert f"FAILED input {url} (shard " in status.stdout
    kept = _stamps(out)
    assert len(kept) == FRAMES - len(BROKEN)

    _fix(paths)
    again = _cli("run", str(job_file), "--executor", "local")
    assert again.returncode == 0, again.stderr
    assert f"result: {tmp_path / 'store'}/result.json" in again.stdout
    stamps = _stamps(out)
    assert {name: stamps[name] for name in kept} == kept  # not one good output written again
    assert len(stamps) == FRAMES
    job = spec.from_dict(data)
    assert _outputs(out) == _expected_outputs(paths, job.params)
    status = _cli("status", str(tmp_path / "store"))
    assert status.returncode == 0, status.stdout
    assert "shards: 4/4 committed, 0 failed, 0 pending" in status.stdout
    assert "FAILED" not in status.stdout

    # a clean run of the fixed inputs (same params, another store) gives the same result.json
    clean = _cli("run", str(job_file), "--executor", "local", "--store", str(tmp_path / "clean"))
    assert clean.returncode == 0, clean.stderr
    fixed = (tmp_path / "store" / "result.json").read_bytes()
    assert fixed == (tmp_path / "clean" / "result.json").read_bytes()
    result = json.loads(fixed)
    assert result["written"] == FRAMES and result["failed"] == 0 and result["failed_inputs"] == []
    assert "headers" not in result["params"]


@pytest.fixture
def counted(monkeypatch: pytest.MonkeyPatch) -> Counter[bytes]:
    """How often an input was decoded (``decode_input``), by input bytes (the engine's warm-up
    image is not an input, so it counts under a key no test asks for)."""
    calls: Counter[bytes] = Counter()
    real = transcode.decode_input

    def counting(data: bytes) -> Any:
        calls[data] += 1
        return real(data)

    monkeypatch.setattr(transcode, "decode_input", counting)
    return calls


def _run(data: dict[str, Any]) -> Any:
    job = spec.from_dict(data)  # planned again, as `tessera run` does: headers read again
    return job, run_job(job, executors.create("local"), lambda e: None)


def test_only_failed_and_changed_inputs_are_transcoded_again(
    tmp_path: Path, counted: Counter[bytes], no_faults: None
) -> None:
    paths = _frames(tmp_path / "frames")
    out = tmp_path / "out"
    data = _job(tmp_path / "store", str(tmp_path / "frames" / "*.png"), out)

    def transcoded() -> list[int]:
        by_input = {p.read_bytes(): i for i, p in enumerate(paths)}
        done = sorted(by_input[d] for d, n in counted.items() for _ in range(n) if d in by_input)
        counted.clear()
        return done

    _, outcome = _run(data)
    assert not outcome.ok and len(outcome.item_errors) == 2
    assert transcoded() == list(range(FRAMES))

    _, outcome = _run(data)  # run again unfixed: only the two are tried, and fail again
    assert not outcome.ok and [e["input"] for e in outcome.item_errors] == [
        str(paths[i]) for i in BROKEN
    ]
    assert transcoded() == list(BROKEN)

    _fix(paths)
    paths[0].write_bytes(_frame(10))  # changed since, in a shard with a failed file: redone
    (out / "frame7.jpg").unlink()  # an output deleted since, in such a shard: redone
    paths[2].write_bytes(_frame(12))  # in a shard without failures: that shard is not rerun
    job, outcome = _run(data)
    assert outcome.ok, outcome.item_errors
    assert transcoded() == [0, 1, 6, 7]
    records = Store.open_existing(str(tmp_path / "store")).commit_records()
    assert {i: r["stats"]["kept"] for i, r in records.items() if i in (0, 3)} == {0: 0, 3: 0}
    expected = _expected_outputs(paths, job.params)
    expected["frame2.jpg"] = transcode_bytes(_frame(2), job.params)[0]  # as the README says
    assert _outputs(out) == expected
    counted.clear()  # the references just made decoded the inputs too

    before = _stamps(out)
    _, outcome = _run(data)  # a complete store: nothing reopened, nothing written
    assert outcome.ok and transcoded() == [] and _stamps(out) == before


def test_a_reopened_shard_keeps_the_files_it_wrote(
    tmp_path: Path, counted: Counter[bytes], no_faults: None
) -> None:
    paths = _frames(tmp_path / "frames")
    out = tmp_path / "out"
    data = _job(tmp_path / "store", str(tmp_path / "frames" / "*.png"), out)
    _run(data)
    counted.clear()
    _fix(paths)
    _, outcome = _run(data)
    assert outcome.ok
    assert sorted(counted[p.read_bytes()] for p in paths) == [0] * 6 + [1] * 2
    records = Store.open_existing(str(tmp_path / "store")).commit_records()
    assert records[0]["stats"]["kept"] == 1 and records[3]["stats"]["kept"] == 1
    assert records[0]["attempt"] == 2 and records[1]["attempt"] == 1


# --- drop: a new job -------------------------------------------------------------------------


def test_dropped_inputs_are_a_new_job_in_a_new_store(tmp_path: Path) -> None:
    paths = _frames(tmp_path / "frames")
    manifest = tmp_path / "frames" / "list.txt"
    manifest.write_text("".join(f"{p.name}\n" for p in paths))
    out = tmp_path / "out"
    data = _job(tmp_path / "store", str(manifest), out)
    job_file = write_job(tmp_path / "job.toml", data)
    assert _cli("run", str(job_file), "--executor", "local").returncode == 1

    manifest.write_text("".join(f"{p.name}\n" for i, p in enumerate(paths) if i not in BROKEN))
    refused = _cli("run", str(job_file), "--executor", "local")
    assert refused.returncode == 1
    folder = f"{tmp_path / 'frames'}/"
    assert (
        f"params.files: 2 of 8 entries changed (in {folder}): frame1.png (removed), frame6.png "
        f"(removed)" in refused.stderr
    ), refused.stderr
    assert "run it into a new store, `tessera run JOB --store NEW_LOCATION`" in refused.stderr

    new = _cli("run", str(job_file), "--executor", "local", "--store", str(tmp_path / "new"))
    assert new.returncode == 0, new.stderr
    result = json.loads((tmp_path / "new" / "result.json").read_text())
    assert result["files"] == result["written"] == 6 and result["failed"] == 0
    kept = [p for i, p in enumerate(paths) if i not in BROKEN]
    assert _outputs(out) == _expected_outputs(kept, spec.from_dict(data).params)


# --- short mismatch messages -----------------------------------------------------------------


def test_a_mismatch_names_a_few_of_1204_inputs_with_counts(tmp_path: Path) -> None:
    folder = tmp_path / "many"
    folder.mkdir()
    tiny = _png(np.zeros((2, 2, 3), np.uint8))
    names = [f"f{i:04d}.png" for i in range(1204)]
    for name in names:
        (folder / name).write_bytes(tiny)
    manifest = tmp_path / "list.txt"
    manifest.write_text("".join(f"many/{n}\n" for n in names))
    data = _job(tmp_path / "store", str(manifest), tmp_path / "out")
    job = spec.from_dict(data)
    Store.open_for_job(job, plan(job))

    # a file fixed (its header changes) is the same job
    (folder / "f0007.png").write_bytes(_png(np.zeros((3, 5), np.uint8)))
    same = spec.from_dict(data)
    assert same.params.headers != job.params.headers and same.spec_hash == job.spec_hash
    Store.open_for_job(same, plan(same))

    manifest.write_text("".join(f"many/{n}\n" for n in names[3:]))
    with pytest.raises(StoreMismatchError) as info:
        Store.open_for_job(spec.from_dict(data), plan(job))
    message = str(info.value)
    assert (
        f"params.files: 3 of 1,204 entries changed (in {folder}/): f0000.png (removed), "
        f"f0001.png (removed), f0002.png (removed)" in message
    ), message
    assert len(message) < 1000, message

    manifest.write_text("".join(f"many/{n}\n" for n in [*names[7:], "f9999.png"]))
    (folder / "f9999.png").write_bytes(tiny)
    with pytest.raises(StoreMismatchError) as info:
        Store.open_for_job(spec.from_dict(data), plan(job))
    message = str(info.value)
    assert "8 of 1,205 entries changed" in message and ", ... and 3 more" in message
    assert message.count(".png") == 5 and len(message) < 1000, message


def test_diff_of_long_lists_is_one_short_line() -> None:
    headers = [[2, 2, "RGB"] for _ in range(1204)]
    changed = [list(h) for h in headers]
    for i in (7, 500, 1203):
        changed[i] = [3, 5, "L"]
    old = {"params": {"headers": headers, "format": "png"}}
    (line,) = _diff(old, {"params": {"headers": changed, "format": "png"}})
    assert line == (
        "params.headers: 3 of 1,204 entries differ: [7] stored [2, 2, 'RGB'], this job "
        "[3, 5, 'L'], [500] stored [2, 2, 'RGB'], this job [3, 5, 'L'], [1203] stored "
        "[2, 2, 'RGB'], this job [3, 5, 'L']"
    )
    # a store written when headers were hashed, against this tessera's job
    (line,) = _diff(old, {"params": {"format": "png"}})
    assert line == "params.headers: stored a list of 1,204 entries, not in this job"
    assert _diff({"seed": 7}, {"seed": 99}) == ["seed: stored 7, this job 99"]


# --- globs and folders -----------------------------------------------------------------------


def test_a_glob_never_takes_a_folder_for_an_input(tmp_path: Path, no_faults: None) -> None:
    frames = tmp_path / "frames"
    wanted = ["top.png", "a/x.png", "a/b/y.png", "a/b/c/z.png", "d.png/w.png"]
    for i, name in enumerate(wanted):
        (frames / name).parent.mkdir(parents=True, exist_ok=True)
        (frames / name).write_bytes(_frame(i))
    (frames / "empty").mkdir()
    (frames / "a" / "empty").mkdir()
    out = tmp_path / "out"
    job = spec.from_dict(_job(tmp_path / "store", f"{frames}/**/*", out))
    assert job.params.files == tuple(sorted(str(frames / n) for n in wanted))
    outcome = run_job(job, executors.create("local"), lambda e: None)
    assert outcome.ok, outcome.item_errors
    written = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
    assert written == sorted(n.rsplit(".", 1)[0] + ".jpg" for n in wanted)

    (tmp_path / "only" / "sub").mkdir(parents=True)
    with pytest.raises(SpecError, match="matched only folders") as info:
        spec.from_dict(_job(tmp_path / "store2", f"{tmp_path / 'only'}/**/*", out))
    assert info.value.key == "params.inputs"


@pytest.mark.s3
def test_fix_and_rerun_on_s3(
    seaweed_s3: Any, monkeypatch: pytest.MonkeyPatch, counted: Counter[bytes], no_faults: None
) -> None:
    """Inputs, outputs and store on S3: the reopened shard reads its rows and its outputs
    back from S3 and transcodes only the fixed file."""
    import s3fs

    for key, value in seaweed_s3.env().items():
        monkeypatch.setenv(key, value)
    bucket = seaweed_s3.create_bucket()
    fs = s3fs.S3FileSystem(**seaweed_s3.storage_options())
    frames = {f"in/f{i}.png": _frame(i) for i in range(4)}
    for key, body in {**frames, "in/f1.png": CORRUPT}.items():
        fs.pipe_file(f"{bucket}/{key}", body)
    data = _job(Path("unused"), f"s3://{bucket}/in/*.png", Path("unused"))
    data["job"].update(store=f"s3://{bucket}/store", shards=2)
    data["params"]["output"] = f"s3://{bucket}/out"
    job, outcome = _run(data)
    assert [e["input"] for e in outcome.item_errors] == [f"s3://{bucket}/in/f1.png"]
    fs.pipe_file(f"{bucket}/in/f1.png", frames["in/f1.png"])
    counted.clear()
    job, outcome = _run(data)
    assert outcome.ok, outcome.item_errors
    assert [counted[body] for body in frames.values()] == [0, 1, 0, 0]
    fs.invalidate_cache()
    for i in range(4):
        expected = transcode_bytes(frames[f"in/f{i}.png"], job.params)[0]
        assert fs.cat_file(f"{bucket}/out/f{i}.jpg") == expected
