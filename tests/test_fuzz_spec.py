"""Fuzzed job files (issue 6, item 6): hypothesis writes TOML with random values and types,
unknown keys, huge numbers, names with ``/`` and ``..`` and URLs of odd schemes. Every case
either validates or ends in a ``SpecError`` naming a key (one that is in the file, or one that
the file must have); never another exception, and validating writes nothing anywhere."""

from __future__ import annotations

import copy
import dataclasses
import datetime as dt
import json
import math
import os
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from tessera.engine import spec
from tessera.engine.errors import SpecError
from tessera.engine.plan import plan
from tessera.kernels.imaging import pyramid_params, transcode_params
from tessera.kernels.montecarlo import params as gbm_params
from tests.jobs import job_dict

# Strings that have broken job loaders elsewhere: path escapes, URL schemes fsspec knows (and
# would try to reach), schemes nobody knows, chained URLs, control characters.
ODD_STRINGS = [
    "..",
    "../..",
    "../../../../etc/passwd",
    "a/b",
    "/",
    "job/../../x",
    "~/x",
    "",
    " ",
    "\x00",
    "\n",
    "C:\\store",
    "ftp://127.0.0.1:1/x",
    "http://127.0.0.1:1/x/*.png",
    "https://example.invalid/a.tif",
    "gs://bucket/x",
    "memory://x",
    "zip::s3://b/x.zip",
    "simplecache::s3://b/x",
    "data:,abc",
    "file://../../x",
    "file:///",
    "s3://",
    "s3:///key",
    "s3://bucket/../../x",
    "zzz://a/b",
    "S3://Bucket/x",
]

EDGES: list[Any] = [
    10**400,
    -(10**400),
    2**64,
    2**63,
    -(2**63) - 1,
    math.nan,
    math.inf,
    -math.inf,
    1e308,
    -0.0,
    True,
    [],
    {},
    [1, "x"],
    dt.date(1, 1, 1),
    *ODD_STRINGS[:8],
]
_TEXT = st.text(st.characters(exclude_categories=("Cs",)), max_size=24)
_SCALARS = st.one_of(
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.sampled_from([0, -1, 1, 2**31, 2**53 + 1, 2**63 - 1, 2**64, 10**30, -(10**30), 10**400]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([1e308, -1e308, 5e-324, -0.0, 0.25, 1e-300]),
    _TEXT,
    st.sampled_from(ODD_STRINGS),
    st.datetimes(timezones=st.sampled_from([None, dt.UTC])),
    st.dates(),
    st.times(),
)
_VALUES = st.recursive(
    _SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_TEXT, inner, max_size=3),
    max_leaves=6,
)

SECTION_KEYS = {name: list(keys) for name, keys in spec._SECTIONS.items()}
PARAM_KEYS = sorted(
    set(gbm_params.KEYS)
    | set(transcode_params.KEYS)
    | set(pyramid_params.KEYS)
    | {"seconds", "payload_kib"}  # bench.spin
)
KNOWN_KEYS = (
    {""}
    | set(spec._SECTIONS)
    | {f"{s}.{k}" for s, keys in spec._SECTIONS.items() for k in keys}
    | {f"params.{k}" for k in PARAM_KEYS}
    | {f"params.dzi.{k}" for k in pyramid_params.DZI_KEYS}
)


# -- TOML writing (tomllib only reads) ---------------------------------------------------------


def _toml_string(text: str) -> str:
    # JSON's escapes (\" \\ \n \uXXXX ...) are TOML's; DEL must be escaped in TOML too.
    return json.dumps(text, ensure_ascii=False).replace("\x7f", "\\u007f")


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, str):
        return _toml_string(value)
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        items = (f"{_toml_string(str(k))} = {_toml_value(v)}" for k, v in value.items())
        return "{" + ", ".join(items) + "}"
    raise TypeError(f"cannot write {value!r} as TOML")


def to_toml(data: dict[str, Any]) -> str:
    """TOML text of ``data``: top-level values first, then one table per dict value."""
    lines = [f"{_toml_string(k)} = {_toml_value(v)}" for k, v in data.items() if not _table(v)]
    for key, table in data.items():
        if _table(table):
            lines.append(f"[{_toml_string(key)}]")
            lines += [f"{_toml_string(str(k))} = {_toml_value(v)}" for k, v in table.items()]
    return "\n".join(lines) + "\n"


def _table(value: Any) -> bool:
    return isinstance(value, dict)


def test_toml_writer_round_trips() -> None:
    data = {
        "top": [1, "x", {"a": 2}],
        "job": {"name": 'a"b\\c\n\x7f\x00', "n": 2**70, "f": -0.0, "nan": math.inf},
        "params": {"when": dt.datetime(2020, 1, 2, 3, 4, 5, 6, tzinfo=dt.UTC), "d": dt.date.min},
    }
    assert tomllib.loads(to_toml(data)) == data


# -- the jobs that get mutated -----------------------------------------------------------------


@pytest.fixture(scope="module")
def bases(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    """One valid job per kernel; imaging inputs are two tiny PNGs in a read-only place."""
    folder = tmp_path_factory.mktemp("fuzz-inputs")
    for i in range(2):
        Image.fromarray(np.full((16, 24, 3), 40 * i, np.uint8)).save(folder / f"f{i}.png")
    gbm = job_dict("store", shards=2)
    spin = {
        "job": {"name": "spin", "kernel": "benchmarks.spin:KERNEL", "store": "store", "shards": 3}
    }
    spin["params"] = {"seconds": 0.0, "payload_kib": 1}
    transcode = {
        "job": {"name": "tc", "kernel": "imaging.transcode", "store": "store"},
        "params": {"inputs": str(folder / "*.png"), "output": "out", "format": "webp"},
    }
    pyramid = {
        "job": {"name": "pyr", "kernel": "imaging.pyramid", "store": "store"},
        "params": {"source": str(folder / "f0.png"), "tile_size": 64, "dzi": {"format": "png"}},
    }
    for base in (gbm, spin, transcode, pyramid):
        spec.from_dict(base)  # each base is valid
    return {"gbm": gbm, "spin": spin, "transcode": transcode, "pyramid": pyramid}


@st.composite
def mutated(draw: st.DrawFn, bases: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """A base job with one to three random changes."""
    data = copy.deepcopy(bases[draw(st.sampled_from(sorted(bases)))])
    for _ in range(draw(st.integers(1, 3))):
        op = draw(
            st.sampled_from(["set", "set", "edge", "edge", "unknown", "delete", "section", "top"])
        )
        section = draw(st.sampled_from(["job", "job", "params", "params", "resources", "retry"]))
        table = data.get(section)
        if not isinstance(table, dict):
            table = data[section] = {}
        known = PARAM_KEYS if section == "params" else SECTION_KEYS[section]
        if op == "set":
            key = draw(st.sampled_from(known))
            table[key] = draw(_VALUES | st.sampled_from(ODD_STRINGS))
        elif op == "edge":  # a known key, an edge value: huge, not finite, odd string, bad type
            table[draw(st.sampled_from(known))] = draw(st.sampled_from(EDGES))
        elif op == "unknown":
            table[draw(_TEXT | st.sampled_from(ODD_STRINGS))] = draw(_VALUES)
        elif op == "delete" and table:
            del table[draw(st.sampled_from(sorted(table)))]
        elif op == "section":
            data[draw(st.sampled_from(["job", "params", "resources", "retry", "tags"]))] = draw(
                _SCALARS
            )
        elif op == "top":
            data[draw(_TEXT)] = draw(_VALUES)
    if draw(st.booleans()):  # names and stores with / and .., odd URL schemes
        job = data.get("job")
        if isinstance(job, dict):
            job[draw(st.sampled_from(["name", "store"]))] = draw(st.sampled_from(ODD_STRINGS))
    return data


def _dotted_keys(data: Any, prefix: str = "") -> set[str]:
    keys = set()
    if isinstance(data, dict):
        for key, value in data.items():
            name = f"{prefix}.{key}" if prefix else str(key)
            keys.add(name)
            keys |= _dotted_keys(value, name)
    return keys


def _local(store: str) -> str:
    return spec.normalise_store_url(store) if "\x00" not in store else ""


def _snapshot(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


def test_fuzzed_job_files_validate_or_name_the_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, bases: dict[str, dict[str, Any]]
) -> None:
    """Up to 200 mutated job files through ``spec.load`` and the plan (what ``tessera validate``
    does), from a working directory two levels inside an empty folder (so ``..`` stays inside
    it): each validates or raises ``SpecError`` with a key from the file or a known key; the
    folder holds nothing but the job files afterwards, and no store was created."""
    work = tmp_path / "a" / "b"
    work.mkdir(parents=True)
    monkeypatch.chdir(work)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))  # "~/x" stays inside too
    for name in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3"):
        monkeypatch.setenv(name, "http://127.0.0.1:1")  # an s3:// input fails fast, offline
    jobs = tmp_path / "jobs"
    jobs.mkdir()
    seen = {"valid": 0, "refused": 0}

    @settings(
        max_examples=200,
        deadline=None,
        database=None,  # no .hypothesis/ folder: a run writes nothing but its job files
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(st.data())
    def check(data: st.DataObject) -> None:
        job_data = data.draw(mutated(bases))
        text = to_toml(job_data)
        assert to_toml(tomllib.loads(text)) == text  # exact (nan too), so keys are meaningful
        path = jobs / "job.toml"
        path.write_text(text, encoding="utf-8")
        before = _snapshot(tmp_path)
        store = (
            job_data.get("job", {}).get("store") if isinstance(job_data.get("job"), dict) else None
        )
        existed = isinstance(store, str) and os.path.exists(_local(store))
        try:
            job = spec.load(path)
            plan(job)
        except SpecError as exc:
            seen["refused"] += 1
            allowed = KNOWN_KEYS | _dotted_keys(job_data) | {f"params.{k}" for k in PARAM_KEYS}
            assert exc.key in allowed, (exc.key, str(exc), job_data)
            # '' names the whole file; a parseable file is refused so only for a key named ''
            assert exc.key or "" in _dotted_keys(job_data), f"refused without a key: {exc}"
            assert "Traceback" not in str(exc)
        else:
            seen["valid"] += 1
            assert os.path.exists(job.store) == existed, "validating created the store"
        assert _snapshot(tmp_path) == before, "validating wrote files"

    check()
    print(f"fuzzed job files: {seen}")
    assert seen["refused"] > 100 and sum(seen.values()) >= 150, seen


@pytest.mark.parametrize(
    "url", [u for u in ODD_STRINGS if "://" in u and not u.startswith(("s3://", "file://"))]
)
def test_odd_store_schemes_are_refused(tmp_path: Path, url: str) -> None:
    with pytest.raises(SpecError, match="unsupported scheme|names no bucket") as info:
        spec.from_dict(job_dict(url))
    assert info.value.key == "job.store"
    with pytest.raises(SpecError, match="names no bucket"):
        spec.from_dict(job_dict("s3://"))


@pytest.mark.parametrize("scheme", ["ftp", "http", "gs", "memory", "zzz"])
def test_inputs_of_odd_schemes_are_refused_before_any_network(
    bases: dict[str, dict[str, Any]], scheme: str
) -> None:
    transcode = copy.deepcopy(bases["transcode"])
    transcode["params"]["inputs"] = f"{scheme}://127.0.0.1:1/x/*.png"
    with pytest.raises(SpecError, match=f"unsupported URL scheme {scheme}://") as info:
        spec.from_dict(transcode)
    assert info.value.key == "params"
    pyramid = copy.deepcopy(bases["pyramid"])
    pyramid["params"]["source"] = f"{scheme}://127.0.0.1:1/x.tif"
    with pytest.raises(SpecError, match=f"unsupported URL scheme {scheme}://") as info:
        spec.from_dict(pyramid)
    assert info.value.key == "params.source"


def test_the_fuzzer_knows_every_kernel_parameter() -> None:
    """The fuzzer's key list covers every kernel's parameters (so it reaches every check)."""
    from benchmarks import spin as bench

    for params in (gbm_params.Params, transcode_params.Params, pyramid_params.Params, bench.Params):
        assert {f.name for f in dataclasses.fields(params)} <= set(PARAM_KEYS), params


@pytest.mark.parametrize(
    ("section", "key", "value", "expected"),
    [
        ("job", "store", "ftp://127.0.0.1:1/runs", "error: job.store: 'ftp://127.0.0.1:1/runs'"),
        ("job", "name", "../../etc", "error: job.name: '../../etc' is not 1-128 characters"),
        ("job", "timeout_s", 10**400, "error: job.timeout_s: an integer of 401 digits"),
        ("params", "spot", -(10**400), "error: params.spot: expected a finite number"),
        ("jobs", "name", "x", "error: jobs: unknown section"),
    ],
)
def test_tessera_validate_names_the_key_without_a_traceback(
    tmp_path: Path, section: str, key: str, value: Any, expected: str
) -> None:
    """The same through the real command line: exit 2, one line naming the key, nothing written."""
    data = job_dict(tmp_path / "store")
    data.setdefault(section, {})[key] = value
    path = tmp_path / "job.toml"
    path.write_text(to_toml(data), encoding="utf-8")
    proc = subprocess.run(
        [sys.executable, "-m", "tessera.engine.cli", "validate", str(path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.startswith(expected) and "Traceback" not in proc.stderr, proc.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["job.toml"]


NUMERIC_KEYS = [
    ("job", "shards"),
    ("job", "shard_size"),
    ("job", "seed"),
    ("job", "timeout_s"),
    ("job", "budget_usd"),
    ("resources", "vcpus"),
    ("resources", "memory_mib"),
    ("resources", "gpus"),
    ("retry", "attempts"),
    *(("params", k) for k in ("paths", "steps", "spot", "strike", "rate", "volatility")),
    *(("params", k) for k in ("maturity", "barrier")),
]


@pytest.mark.parametrize(("section", "key"), NUMERIC_KEYS)
@pytest.mark.parametrize(
    "value",
    [10**400, -(10**400), 2**64, math.nan, math.inf, "1e3", True],
    ids=["1e400", "-1e400", "2**64", "nan", "inf", "str", "bool"],
)
def test_huge_and_wrong_numbers_name_their_key(section: str, key: str, value: Any) -> None:
    """The cases the fuzzer finds only now and then, every time: a 401-digit integer where a
    float is expected once crashed with OverflowError. Large but representable values may be
    valid (a timeout of 2**64 s; a shard_size beyond the job is one shard)."""
    data = job_dict("store")
    data.setdefault(section, {})[key] = value
    if key == "shard_size":
        del data["job"]["shards"]
    try:
        job = spec.from_dict(data)
    except SpecError as exc:
        # a spot of 2**64 is a price; the barrier of 130 below it is what is wrong then
        spot_above_barrier = key == "spot" and value == 2**64
        assert exc.key == ("params.barrier" if spot_above_barrier else f"{section}.{key}"), exc
    else:
        assert value == 2**64 or (key == "shard_size" and value == 10**400), job


@pytest.mark.parametrize("value", [10**400, -(10**400)])
def test_huge_numbers_in_imaging_params_are_spec_errors(
    bases: dict[str, dict[str, Any]], value: int
) -> None:
    for kernel, key in [("transcode", "scale"), ("transcode", "quality"), ("pyramid", "tile_size")]:
        data = copy.deepcopy(bases[kernel])
        data["params"][key] = value
        with pytest.raises(SpecError) as info:
            spec.from_dict(data)
        assert info.value.key in ("params", f"params.{key}")
