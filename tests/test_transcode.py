"""imaging.transcode: params, output names, pixels and bytes against a plain Pillow script,
per-file failures through the real CLI, shard-count invariance, plan-time memory check, S3."""

from __future__ import annotations

import io
import json
import os
import struct
import subprocess
import sys
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from tessera.engine import executors, spec
from tessera.engine.errors import SpecError
from tessera.engine.io import Inputs
from tessera.engine.run import run_job
from tessera.kernels.imaging.transcode import KERNEL, transcode_bytes
from tessera.kernels.imaging.transcode_params import parse
from tests.jobs import write_job
from tests.natural import natural

ROOT = Path(__file__).resolve().parent.parent
LANCZOS = Image.Resampling.LANCZOS


def _save(path: Path, array: np.ndarray, **options: Any) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path, **options)
    return path


def _encoded(array: np.ndarray, fmt: str, **options: Any) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format=fmt, **options)
    return buf.getvalue()


def _png_header_only(path: Path, width: int, height: int) -> Path:
    """A PNG that claims ``width`` x ``height`` RGB pixels but holds none (decoding fails): the
    header is all that prepare reads, so a huge image costs nothing to make."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = struct.pack(">I", zlib.crc32(kind + data))
        return struct.pack(">I", len(data)) + kind + data + crc

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    body = chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b"")
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + body)
    return path


def _job(store: Path | str, params: dict[str, Any], **job: Any) -> dict[str, Any]:
    return {
        "job": {
            "name": "transcode-test",
            "kernel": "imaging.transcode",
            "store": str(store),
            **job,
        },
        "params": params,
        "retry": {"attempts": 1},
    }


@pytest.fixture(scope="module")
def frames(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Seven small PNG frames of different sizes and modes, and one corrupt file."""
    folder = tmp_path_factory.mktemp("frames")
    for i in range(4):
        _save(folder / f"frame{i}.png", natural(90 + 7 * i, 130 - 5 * i, 3, seed=i))
    _save(folder / "grey.png", natural(70, 50, 1, seed=10)[:, :, 0])
    _save(folder / "alpha.png", natural(60, 80, 4, seed=11))
    _save(folder / "deep.png", natural(40, 64, 1, seed=12, bits=16)[:, :, 0])
    (folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"not really a png")
    return folder


# --- params ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("params", "key", "match"),
    [
        ({"format": "gif"}, "format", "'gif' is not one of jpeg, png, webp, tiff"),
        ({"quality": 0}, "quality", r"expected an integer in \[1, 100\]"),
        ({"max_edge": 100, "scale": 0.5}, "scale", "either max_edge or scale"),
        ({"scale": -1}, "scale", r"expected a number in \(0, 64\]"),
        ({"max_edge": True}, "max_edge", "expected an integer"),
        ({"mode": "RGBA", "format": "jpeg"}, "mode", "jpeg cannot store mode RGBA"),
        ({"mode": "CMYK"}, "mode", "'CMYK' is not one of"),
        ({"resample": "lanczoz"}, "resample", "did you mean 'lanczos'"),
        ({"qualty": 80}, "qualty", "did you mean 'quality'"),
        ({"output": ""}, "output", "expected a path or URL"),
    ],
)
def test_bad_params_are_named(frames: Path, params: dict, key: str, match: str) -> None:
    base = {"inputs": str(frames / "*.png"), "output": "/tmp/out", "format": "png"}
    with pytest.raises(SpecError, match=match) as info:
        spec.from_dict(_job("/tmp/store", {**base, **params}))
    assert info.value.key == f"params.{key}"


def test_empty_glob_names_inputs(tmp_path: Path) -> None:
    params = {"inputs": str(tmp_path / "*.png"), "output": str(tmp_path / "out"), "format": "png"}
    with pytest.raises(SpecError, match="matched no files") as info:
        spec.from_dict(_job(tmp_path / "store", params))
    assert info.value.key == "params.inputs"


def test_prepare_resolves_sorted_files_and_headers(frames: Path, tmp_path: Path) -> None:
    params = {"inputs": str(frames / "*.png"), "output": str(tmp_path / "out"), "format": "jpg"}
    job = spec.from_dict(_job(tmp_path / "store", params, shards=3))
    canonical = job.params_dict()
    assert canonical["format"] == "jpeg"
    assert canonical["files"] == sorted(str(p) for p in frames.glob("*.png"))
    headers = dict(zip(job.params.files, job.params.headers))
    assert headers[str(frames / "frame0.png")] == (130, 90, "RGB")
    assert headers[str(frames / "deep.png")][2].startswith("I;16")
    assert headers[str(frames / "broken.png")] == (0, 0, "")  # fails later, alone
    # headers are plan data (the memory check), not part of the spec hash or of result.json
    assert "headers" not in canonical
    # the canonical params load back without listing the inputs again; prepare reads headers
    again = KERNEL.prepare(parse(canonical), io=Inputs())
    assert KERNEL.params_to_dict(again) == canonical
    assert again.headers == job.params.headers
    assert job.n_shards == 3


def test_unsupported_pixel_type_is_refused_at_plan_time(tmp_path: Path) -> None:
    _save(tmp_path / "in/ok.png", natural(8, 8, 3))
    Image.fromarray(np.ones((5, 7), np.float32)).save(tmp_path / "in/float.tif")
    params = {"inputs": str(tmp_path / "in/*"), "output": str(tmp_path / "o"), "format": "png"}
    with pytest.raises(
        SpecError, match=r"1 of 2 inputs have an unsupported pixel type: .*float.tif \(F\)"
    ) as info:
        spec.from_dict(_job(tmp_path / "store", params))
    assert info.value.key == "params.inputs"


def test_manifest_with_comments_and_relative_entries(frames: Path, tmp_path: Path) -> None:
    manifest = frames / "list.txt"
    manifest.write_text(f"# frames\nframe1.png\n\n{frames / 'frame0.png'}\nframe1.png\n")
    params = {"inputs": str(manifest), "output": str(tmp_path / "out"), "format": "webp"}
    job = spec.from_dict(_job(tmp_path / "store", params))
    assert job.params_dict()["files"] == [str(frames / "frame0.png"), str(frames / "frame1.png")]
    binary = _save(tmp_path / "img.png", natural(8, 8, 3))
    with pytest.raises(SpecError, match="not a text manifest") as info:
        spec.from_dict(_job(tmp_path / "store", {**params, "inputs": str(binary)}))
    assert info.value.key == "params.inputs"


def test_output_names_keep_subfolders_and_refuse_collisions(tmp_path: Path) -> None:
    for name in ("a/x.png", "b/x.png", "b/y.tif"):
        _save(tmp_path / "in" / name, natural(8, 8, 3))
    out = tmp_path / "out"
    params = {"inputs": str(tmp_path / "in/*/*"), "output": str(out), "format": "png"}
    job = spec.from_dict(_job(tmp_path / "store", params))
    outcome = run_job(job, executors.create("local"), lambda e: None)
    assert outcome.ok
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*")) == [
        "a",
        "a/x.png",
        "b",
        "b/x.png",
        "b/y.png",
    ]
    _save(tmp_path / "in/b/y.png", natural(8, 8, 3))
    with pytest.raises(SpecError, match="would both be written as b/y.png"):
        spec.from_dict(_job(tmp_path / "store2", params))
    in_place = {**params, "output": str(tmp_path / "in")}
    with pytest.raises(SpecError, match="would overwrite its input") as info:
        spec.from_dict(_job(tmp_path / "store3", in_place))
    assert info.value.key == "params.output"


# --- pixels and bytes against a Pillow script ----------------------------------------------


def _params(**kw: Any) -> Any:
    base = {"inputs": "/x/*.png", "output": "/y", "format": "png"}
    return parse({**base, **kw})


@pytest.mark.parametrize(
    ("fmt", "options"),
    [("jpeg", {"quality": 85}), ("webp", {"quality": 80}), ("png", {"compress_level": 6})],
)
def test_same_bytes_as_a_pillow_script(fmt: str, options: dict) -> None:
    src = natural(301, 457, 3, seed=20)
    data = _encoded(src, "PNG")
    quality = options.get("quality", 85)
    out, pixels = transcode_bytes(data, _params(format=fmt, max_edge=200, quality=quality))
    expected = Image.open(io.BytesIO(data)).resize((200, 132), LANCZOS)
    buf = io.BytesIO()
    expected.save(buf, format=fmt.upper(), **options)
    assert out == buf.getvalue()
    assert pixels == 457 * 301


def test_upscale_and_area(tmp_path: Path) -> None:
    src = natural(50, 70, 3, seed=21)
    data = _encoded(src, "PNG")
    out, _ = transcode_bytes(data, _params(scale=2.5))
    expected = np.asarray(Image.fromarray(src).resize((175, 125), LANCZOS))
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(out))), expected)
    out, _ = transcode_bytes(data, _params(scale=0.5, resample="area"))
    expected = np.asarray(Image.fromarray(src).resize((35, 25), Image.Resampling.BOX))
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(out))), expected)


def test_modes() -> None:
    rgba = natural(40, 60, 4, seed=22)
    rgba_png = _encoded(rgba, "PNG")
    # RGBA to JPEG: alpha dropped (JPEG has none), same bytes as Pillow's convert("RGB")
    out, _ = transcode_bytes(rgba_png, _params(format="jpeg"))
    assert out == _encoded(rgba[:, :, :3], "JPEG", quality=85)
    # resized with premultiplied alpha, as Pillow
    out, _ = transcode_bytes(rgba_png, _params(max_edge=30))
    expected = Image.fromarray(rgba).resize((30, 20), LANCZOS)
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(out))), np.asarray(expected))
    # to grey: BT.601 luma, as Pillow's convert("L")
    out, _ = transcode_bytes(rgba_png, _params(mode="L"))
    grey = Image.open(io.BytesIO(out))
    assert grey.mode == "L"
    assert np.array_equal(np.asarray(grey), np.asarray(Image.fromarray(rgba).convert("L")))
    # grey to WebP becomes RGB (WebP has no grey)
    out, _ = transcode_bytes(_encoded(rgba[:, :, 0], "PNG"), _params(format="webp"))
    assert Image.open(io.BytesIO(out)).mode == "RGB"
    # YCbCr JPEG: the same file as from RGB (our conversion is libjpeg's)
    rgb_png = _encoded(rgba[:, :, :3], "PNG")
    via_ycc, _ = transcode_bytes(rgb_png, _params(format="jpeg", mode="YCbCr"))
    via_rgb, _ = transcode_bytes(rgb_png, _params(format="jpeg", mode="RGB"))
    assert via_ycc == via_rgb


def test_sixteen_bit() -> None:
    deep = natural(60, 90, 1, seed=23, bits=16)[:, :, 0]
    data = _encoded(deep, "PNG")
    out, _ = transcode_bytes(data, _params(max_edge=45))  # PNG keeps 16 bits
    img = Image.open(io.BytesIO(out))
    assert img.mode.startswith("I;16") and img.size == (45, 30)
    expected = np.asarray(Image.fromarray(deep).resize((45, 30), LANCZOS))
    assert np.abs(np.asarray(img).astype(np.int64) - expected).max() <= 1
    out, _ = transcode_bytes(data, _params(mode="L"))  # 8 bits, rounded
    expected8 = (deep.astype(np.int64) * 255 + 32767) // 65535
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(out))), expected8)
    out, _ = transcode_bytes(data, _params(format="jpeg"))  # JPEG cannot hold 16 bits: L
    assert Image.open(io.BytesIO(out)).mode == "L"


def test_palette_and_icc_profile() -> None:
    pal = Image.fromarray(natural(30, 40, 3, seed=24)).convert("P", palette=Image.Palette.ADAPTIVE)
    buf = io.BytesIO()
    pal.save(buf, "PNG", icc_profile=b"fake-but-kept")
    out, _ = transcode_bytes(buf.getvalue(), _params(format="jpeg"))
    img = Image.open(io.BytesIO(out))
    assert img.mode == "RGB" and img.info.get("icc_profile") == b"fake-but-kept"
    out, _ = transcode_bytes(buf.getvalue(), _params(format="png", mode="L"))
    assert "icc_profile" not in Image.open(io.BytesIO(out)).info  # an RGB profile on grey: no


@pytest.mark.parametrize(
    ("mode", "options", "by_libpng"),
    [
        ("L", {}, True),
        ("LA", {}, True),
        ("RGB", {"icc_profile": b"kept"}, True),
        ("RGBA", {}, True),
        ("RGB", {"transparency": (1, 2, 3)}, False),  # tRNS: Pillow's alpha, as before
        ("I;16", {}, False),
        ("1", {}, False),
    ],
)
def test_png_decoding_by_libpng_gives_pillows_pixels(
    mode: str, options: dict, by_libpng: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tessera.kernels.imaging import codec

    image = Image.fromarray(natural(37, 53, 4, seed=7)).convert(mode)
    buf = io.BytesIO()
    image.save(buf, "PNG", **options)
    data = buf.getvalue()
    used = []
    real = codec._libpng
    monkeypatch.setattr(codec, "_libpng", lambda im, d: used.append(real(im, d)) or used[-1])
    got = codec.decode(data)
    assert (used[0] is not None) == by_libpng
    monkeypatch.setattr(codec, "_libpng", lambda im, d: None)  # Pillow alone
    expected = codec.decode(data)
    assert got.mode == expected.mode and got.pixels.dtype == expected.pixels.dtype
    assert np.array_equal(got.pixels, expected.pixels)
    assert got.icc_profile == expected.icc_profile == options.get("icc_profile")


@pytest.mark.parametrize(
    ("data", "match"),
    [
        (b"", "not a decodable image.*empty file"),
        (b"GIF89a-garbage", "not a decodable image"),
    ],
)
def test_undecodable_bytes_raise(data: bytes, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        transcode_bytes(data, _params())


# --- runs ------------------------------------------------------------------------------------


def _run(store: Path | str, params: dict[str, Any], shards: int) -> Any:
    job = spec.from_dict(_job(store, params, shards=shards))
    return run_job(job, executors.create("local"), lambda e: None)


def test_result_is_the_same_for_1_and_4_shards(
    frames: Path, tmp_path: Path, no_faults: None
) -> None:
    params = {
        "inputs": str(frames / "*.png"),
        "output": str(tmp_path / "out"),
        "format": "webp",
        "max_edge": 64,
    }
    results = []
    for shards in (1, 4):
        outcome = _run(tmp_path / f"store{shards}", params, shards)
        assert outcome.committed == outcome.n_shards == shards
        assert [e["input"] for e in outcome.item_errors] == [str(frames / "broken.png")]
        assert not outcome.ok  # a failed input makes the run incomplete
        results.append((tmp_path / f"store{shards}" / "result.json").read_bytes())
    assert results[0] == results[1]
    result = json.loads(results[0])
    assert result["files"] == 8 and result["written"] == 7 and result["failed"] == 1
    assert result["failed_inputs"] == [str(frames / "broken.png")]
    written = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert written == sorted(p.stem + ".webp" for p in frames.glob("*.png") if p.stem != "broken")
    assert result["output_bytes"] == sum(p.stat().st_size for p in (tmp_path / "out").iterdir())
    assert max(Image.open(p).size[0] for p in (tmp_path / "out").iterdir()) == 64


def test_corrupt_file_fails_alone_through_the_cli(frames: Path, tmp_path: Path) -> None:
    params = {"inputs": str(frames / "*.png"), "output": str(tmp_path / "out"), "format": "jpeg"}
    job_file = write_job(tmp_path / "job.toml", _job(tmp_path / "store", params, shards=2))
    env = {k: v for k, v in os.environ.items() if k != "TESSERA_FAULTS"}

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "tessera.engine.cli", *args],
            capture_output=True,
            text=True,
            timeout=240,
            cwd=ROOT,
            env=env,
        )

    broken = str(frames / "broken.png")
    run = cli("run", str(job_file), "--executor", "local")
    assert run.returncode == 1, run.stderr
    assert f"FAILED shard 0 input {broken}: OSError" in run.stdout
    assert "inputs failed" in run.stderr
    assert len(list((tmp_path / "out").iterdir())) == 7  # the others were written
    status = cli("status", str(tmp_path / "store"))
    assert status.returncode == 1
    assert f"FAILED input {broken} (shard 0)" in status.stdout
    assert "shards: 2/2 committed" in status.stdout


def test_too_large_image_is_refused_at_plan_time(tmp_path: Path) -> None:
    _save(tmp_path / "in/small.png", natural(16, 16, 3))
    _png_header_only(tmp_path / "in/huge.png", 9000, 9000)
    params = {"inputs": str(tmp_path / "in/*.png"), "output": str(tmp_path / "o"), "format": "png"}
    data = _job(tmp_path / "store", {**params, "max_edge": 1024}, shards=2)
    with pytest.raises(SpecError, match=r"shard 0 is projected to need [\d,]+ MiB") as info:
        spec.from_dict({**data, "resources": {"memory_mib": 1024}})
    assert info.value.key == "resources.memory_mib"
    job = spec.from_dict({**data, "resources": {"memory_mib": 2048}})
    assert KERNEL.shard_memory_bytes(job.params, job.kernel.layout(job.params, 2), 1) > 0


@pytest.mark.s3
def test_s3_in_and_out(
    seaweed_s3: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, no_faults: None
) -> None:
    import s3fs

    for key, value in seaweed_s3.env().items():
        monkeypatch.setenv(key, value)
    bucket = seaweed_s3.create_bucket("tessera-transcode")
    fs = s3fs.S3FileSystem(**seaweed_s3.storage_options())
    sources = {f"in/f{i}.png": natural(40 + i, 50, 3, seed=30 + i) for i in range(3)}
    for key, array in sources.items():
        fs.pipe_file(f"{bucket}/{key}", _encoded(array, "PNG"))
    fs.pipe_file(f"{bucket}/in/bad.png", b"garbage")
    fs.pipe_file(f"{bucket}/list.txt", b"in/f0.png\nin/f1.png\nin/f2.png\nin/bad.png\n")
    params = {"output": f"s3://{bucket}/out", "format": "jpeg", "max_edge": 32}
    for name, inputs in (
        ("glob", f"s3://{bucket}/in/*.png"),
        ("manifest", f"s3://{bucket}/list.txt"),
    ):
        outcome = _run(f"s3://{bucket}/store-{name}", {**params, "inputs": inputs}, shards=2)
        assert [e["input"] for e in outcome.item_errors] == [f"s3://{bucket}/in/bad.png"]
        assert outcome.result is not None and outcome.result["written"] == 3
    fs.invalidate_cache()
    assert sorted(fs.ls(f"{bucket}/out")) == [f"{bucket}/out/f{i}.jpg" for i in range(3)]
    for i in range(3):
        jpeg = fs.cat_file(f"{bucket}/out/f{i}.jpg")
        expected = Image.fromarray(sources[f"in/f{i}.png"]).resize((32, 26 + (i > 1)), LANCZOS)
        assert Image.open(io.BytesIO(jpeg)).size == expected.size
        buf = io.BytesIO()
        expected.save(buf, "JPEG", quality=85)
        assert jpeg == buf.getvalue()
    # the same result locally: the bytes do not depend on where the files live
    local = tmp_path / "in"
    for key, array in sources.items():
        _save(tmp_path / key, array)
    (local / "bad.png").write_bytes(b"garbage")
    result = _run(
        tmp_path / "store",
        {**params, "inputs": str(local / "*.png"), "output": str(tmp_path / "out")},
        1,
    ).result
    s3_result = json.loads(fs.cat_file(f"{bucket}/store-glob/result.json"))
    assert result is not None and result["sha256"] == s3_result["sha256"]


def test_resize_kernels_load_early_only_for_a_run(
    frames: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``tessera validate`` (and the S3 trigger, which checks a job the same way) must not pay
    for loading Numba's resize kernels; a job loaded to run starts them before the headers."""
    from tessera.engine import cli
    from tessera.kernels.imaging import transcode

    events: list[str] = []
    monkeypatch.setattr(transcode, "_priming", lambda resample: events.append(f"prime {resample}"))
    real_headers = transcode._headers

    def headers(files: Any, io: Any) -> Any:
        events.append("headers")
        return real_headers(files, io)

    monkeypatch.setattr(transcode, "_headers", headers)
    params = {"inputs": str(frames / "frame*.png"), "output": str(tmp_path / "out")}
    params["format"] = "webp"
    job = write_job(tmp_path / "job.toml", _job(tmp_path / "store", params))
    assert cli.main(["validate", str(job)]) == 0
    spec.from_dict(_job(tmp_path / "store", params))
    assert events == ["headers", "headers"]
    events.clear()
    spec.load(job, prime=True)
    assert events == ["prime lanczos", "headers"]
