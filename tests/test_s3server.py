"""Checks of the SeaweedFS S3 test server (tests/s3server.py) with the real
clients the engine uses: s3fs (aiobotocore), botocore and zarr v3."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import s3fs
import zarr

from tests.s3server import SeaweedS3, SeaweedS3Error, find_weed_binary

# The session fixture ``seaweed_s3`` comes from tests/conftest.py.

pytestmark = pytest.mark.s3


def _fresh_fs(**kwargs) -> s3fs.S3FileSystem:
    # fsspec caches filesystem instances by constructor arguments; a cached
    # instance would hide which credentials/endpoint are actually used.
    return s3fs.S3FileSystem(skip_instance_cache=True, **kwargs)


def test_weed_binary_resolves_from_the_wheel():
    weed = find_weed_binary()
    out = subprocess.run([str(weed), "version"], capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    assert "version" in out.stdout


def test_server_is_up_with_real_credentials(seaweed_s3: SeaweedS3):
    assert seaweed_s3.running
    assert seaweed_s3.endpoint_url.startswith("http://127.0.0.1:")
    assert seaweed_s3.secret_key not in repr(seaweed_s3)
    env = seaweed_s3.env()
    assert env == {
        "AWS_ENDPOINT_URL": seaweed_s3.endpoint_url,
        "AWS_ACCESS_KEY_ID": seaweed_s3.access_key,
        "AWS_SECRET_ACCESS_KEY": seaweed_s3.secret_key,
        "AWS_DEFAULT_REGION": seaweed_s3.region,
        "AWS_REGION": seaweed_s3.region,
    }
    # Wrong secret must be rejected: the server really authenticates.
    bad = _fresh_fs(
        key=seaweed_s3.access_key,
        secret="not-the-secret",
        client_kwargs={"endpoint_url": seaweed_s3.endpoint_url},
    )
    with pytest.raises(PermissionError):
        bad.ls("")
    # ... and so must anonymous access (s3fs turns a failed ListBuckets into
    # an empty listing, so probe an object instead).
    bucket = seaweed_s3.create_bucket()
    _fresh_fs(**seaweed_s3.storage_options()).pipe(f"{bucket}/secret.txt", b"x")
    anon = _fresh_fs(anon=True, client_kwargs={"endpoint_url": seaweed_s3.endpoint_url})
    with pytest.raises(PermissionError):
        anon.cat(f"{bucket}/secret.txt")


def test_s3fs_roundtrip_with_explicit_kwargs(seaweed_s3: SeaweedS3):
    bucket = seaweed_s3.create_bucket()
    fs = _fresh_fs(
        client_kwargs={"endpoint_url": seaweed_s3.endpoint_url},
        key=seaweed_s3.access_key,
        secret=seaweed_s3.secret_key,
    )
    payload = bytes(range(256)) * 4096  # 1 MiB, every byte value
    fs.pipe(f"{bucket}/dir/blob.bin", payload)
    assert fs.cat(f"{bucket}/dir/blob.bin") == payload
    assert fs.ls(f"{bucket}/dir") == [f"{bucket}/dir/blob.bin"]
    assert bucket in fs.ls("")
    # Ranged read, as zarr/partial readers do.
    assert fs.cat_file(f"{bucket}/dir/blob.bin", start=10, end=20) == payload[10:20]


def test_storage_options_helper(seaweed_s3: SeaweedS3):
    bucket = seaweed_s3.create_bucket()
    fs = _fresh_fs(**seaweed_s3.storage_options())
    fs.pipe(f"{bucket}/k", b"v")
    assert fs.cat(f"{bucket}/k") == b"v"


def test_create_bucket_exist_ok_and_no_autocreate(seaweed_s3: SeaweedS3):
    name = seaweed_s3.create_bucket()
    assert seaweed_s3.create_bucket(name) == name  # idempotent by default
    client = seaweed_s3.client()
    try:
        with pytest.raises(client.exceptions.ClientError, match="Bucket"):
            seaweed_s3.create_bucket(name, exist_ok=False)
        with pytest.raises(client.exceptions.NoSuchBucket):
            client.put_object(Bucket="no-such-bucket-tessera", Key="k", Body=b"x")
    finally:
        client.close()


def test_s3fs_from_plain_aws_env_variables(seaweed_s3: SeaweedS3, monkeypatch):
    """s3fs.S3FileSystem() with no arguments, configured only through the
    standard AWS_* variables (AWS_ENDPOINT_URL included)."""
    bucket = seaweed_s3.create_bucket()
    for var in (
        "AWS_PROFILE",
        "AWS_SESSION_TOKEN",
        "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS",
        "AWS_ENDPOINT_URL_S3",
        "FSSPEC_S3_ENDPOINT_URL",
    ):
        monkeypatch.delenv(var, raising=False)
    for var, value in seaweed_s3.env().items():
        monkeypatch.setenv(var, value)
    s3fs.S3FileSystem.clear_instance_cache()
    try:
        fs = s3fs.S3FileSystem()
        fs.pipe(f"{bucket}/from-env.txt", b"env works")
        assert fs.cat(f"{bucket}/from-env.txt") == b"env works"
        # The endpoint came from AWS_ENDPOINT_URL via botocore, not from s3fs.
        assert fs.endpoint_url is None
        assert fs.s3.meta.endpoint_url == seaweed_s3.endpoint_url
    finally:
        s3fs.S3FileSystem.clear_instance_cache()


def test_subprocess_sees_server_through_env(seaweed_s3: SeaweedS3):
    bucket = seaweed_s3.create_bucket()
    code = (
        "import sys, s3fs\n"
        "fs = s3fs.S3FileSystem()\n"
        f"fs.pipe('{bucket}/sub.txt', b'from child')\n"
        f"sys.stdout.write(fs.cat('{bucket}/sub.txt').decode())\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(seaweed_s3.env())
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout == "from child"


def test_zarr_v3_group_roundtrip(seaweed_s3: SeaweedS3):
    bucket = seaweed_s3.create_bucket()
    url = f"s3://{bucket}/prefix/store.zarr"
    opts = seaweed_s3.storage_options()
    data = np.arange(24 * 10, dtype="float32").reshape(24, 10)

    root = zarr.open_group(url, mode="w", storage_options=opts, zarr_format=3)
    root.attrs["producer"] = "tessera-test"
    arr = root.create_array("a", shape=data.shape, chunks=(8, 5), dtype=data.dtype)
    arr[:] = data

    again = zarr.open_group(url, mode="r", storage_options=opts)
    assert again.attrs["producer"] == "tessera-test"
    np.testing.assert_array_equal(again["a"][:], data)
    np.testing.assert_array_equal(again["a"][3:17, 2:9], data[3:17, 2:9])

    fs = _fresh_fs(**opts)
    meta = json.loads(fs.cat(f"{bucket}/prefix/store.zarr/zarr.json"))
    assert meta["zarr_format"] == 3 and meta["node_type"] == "group"
    assert fs.exists(f"{bucket}/prefix/store.zarr/a/c/0/0")


@pytest.mark.parametrize("hard", [False, True], ids=["graceful", "sigkill"])
def test_restart_keeps_data(seaweed_s3: SeaweedS3, hard: bool):
    bucket = seaweed_s3.create_bucket()
    opts = seaweed_s3.storage_options()
    url = f"s3://{bucket}/prefix/kept.zarr"
    data = np.random.default_rng(0).integers(0, 1000, size=(16, 16), dtype="int32")
    g = zarr.open_group(url, mode="w", storage_options=opts)
    g.create_array("x", shape=data.shape, chunks=(4, 4), dtype=data.dtype)[:] = data
    _fresh_fs(**opts).pipe(f"{bucket}/plain.bin", b"\x00\x01kept")

    endpoint, pid = seaweed_s3.endpoint_url, seaweed_s3.pid
    seaweed_s3.restart(hard=hard)
    print(
        f"restart(hard={hard}): stop {seaweed_s3.last_stop_seconds:.2f}s, "
        f"start {seaweed_s3.last_start_seconds:.2f}s"
    )
    assert seaweed_s3.pid != pid
    assert seaweed_s3.endpoint_url == endpoint  # same ports: clients keep working

    fs = _fresh_fs(**opts)
    assert fs.cat(f"{bucket}/plain.bin") == b"\x00\x01kept"
    np.testing.assert_array_equal(
        zarr.open_group(url, mode="r", storage_options=opts)["x"][:], data
    )
    # The server still accepts writes after the restart, and new file ids do
    # not collide with the ones written before it.
    fs.pipe(f"{bucket}/after.bin", b"after")
    assert fs.cat(f"{bucket}/after.bin") == b"after"
    assert fs.cat(f"{bucket}/plain.bin") == b"\x00\x01kept"


def test_startup_failure_reports_log_tail(tmp_path):
    # /bin/false exits at once: start() must fail fast, loudly, with the log.
    server = SeaweedS3(tmp_path / "broken", weed_binary="/bin/false", startup_timeout=10)
    with pytest.raises(SeaweedS3Error, match=r"exited with status 1[\s\S]*last 60 lines"):
        server.start()
    assert not server.running
    assert server.secret_key not in server.log_tail()
