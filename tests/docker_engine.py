"""A Docker engine of the test session's own, and the stand-in for the image's base.

``DockerEngine`` starts Debian's ``dockerd`` as a child of the test session:
``--storage-driver=vfs --iptables=false --bridge=none``, with its own ``--data-root``,
``--exec-root``, pid file and unix socket in a folder of its own, and gives the tests a
``DOCKER_HOST`` that points only at it (the environment of the session is not changed).
``TESSERA_TEST_DOCKER_HOST`` names an engine to use instead (a developer's, whose build cache
survives between runs).
Containers use host networking (there is no bridge). ``stop`` sends SIGTERM, waits, then
SIGKILL. ``DockerEngine.unavailable()`` says why none can start here, or ``None``.

The base image of ``containers/Dockerfile`` (``python:3.11-slim-bookworm``) cannot be pulled:
no registry is reachable. :func:`ensure_standin` builds a stand-in under the same tag from
Debian's packages: ``debootstrap --variant=minbase`` of bookworm with ``python3``,
``python3-venv`` and ``ca-certificates``, ``python`` linked to ``python3`` as in the official
image, and this machine's CA bundle, then ``docker import``ed with ``PIP_CERT`` and
``SSL_CERT_FILE`` pointing at that bundle, so that ``pip`` inside ``docker build`` reaches the
package registry as the host does (the project's Dockerfile is unchanged). The root file system
is cached as a tarball under ``.cache/containers/`` (gitignored), so debootstrap runs once per
machine.

    python -m tests.docker_engine standin     # build (or load) the stand-in into DOCKER_HOST
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CACHE = ROOT / ".cache" / "containers"
BASE_TAG = "python:3.11-slim-bookworm"
BASE_CUDA_TAG = "nvidia/cuda:12.4.1-runtime-ubuntu22.04"
SUITE = "bookworm"
MIRROR = "http://deb.debian.org/debian"
PACKAGES = ("python3", "python3-venv", "ca-certificates")
# what the official slim image leaves out too: package lists and caches, docs, man pages
JUNK = ("var/cache/apt", "var/lib/apt/lists", "usr/share/doc", "usr/share/man", "usr/share/info")
CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
# Debian's client, from the same docker.io package as the engine: it builds with the engine's own
# BuildKit (a newer client would need the buildx plugin), where a metadata step makes no layer
# (the legacy builder copies the whole file system for each step on vfs).
CLIENT = "/usr/bin/docker" if Path("/usr/bin/docker").exists() else "docker"
START_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 20.0


class DockerEngine:
    """A ``dockerd`` of the test session's own (see the module docstring)."""

    def __init__(self, host: str | None = None) -> None:
        """An engine to ``start`` (a dockerd of its own, in a folder made then), or, with
        ``host``, one already running, used as it is (``stop`` leaves it alone)."""
        self.folder: Path | None = None
        self.host = host or ""
        self.proc: subprocess.Popen[bytes] | None = None

    @staticmethod
    def unavailable() -> str | None:
        """Why no engine can start here (no ``dockerd``, no ``docker`` client, not root), or
        ``None``."""
        for tool in ("dockerd", CLIENT):
            if shutil.which(tool) is None:
                return f"{tool} is not installed (make test installs Debian's docker.io as root)"
        if os.geteuid() != 0:
            return "dockerd needs root here (no rootless setup)"
        return None

    def env(self) -> dict[str, str]:
        """The environment for a ``docker`` command or the docker SDK: DOCKER_HOST only."""
        return {**os.environ, "DOCKER_HOST": self.host, "DOCKER_BUILDKIT": "1"}

    def start(self) -> DockerEngine:
        # a short path: a unix socket's path is limited to 107 bytes
        self.folder = Path(tempfile.mkdtemp(prefix="tdk-", dir="/tmp"))
        self.socket = self.folder / "docker.sock"
        self.host = f"unix://{self.socket}"
        self.log_path = self.folder / "dockerd.log"
        args = [
            "dockerd",
            "--storage-driver=vfs",
            "--iptables=false",
            "--ip-masq=false",
            "--bridge=none",
            f"--data-root={self.folder / 'data'}",
            f"--exec-root={self.folder / 'exec'}",
            f"--pidfile={self.folder / 'docker.pid'}",
            f"--host={self.host}",
        ]
        with self.log_path.open("wb") as log:
            self.proc = subprocess.Popen(
                args, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"dockerd exited {self.proc.returncode}: {self.log_tail()}")
            if self.socket.exists() and self.docker("info", check=False).returncode == 0:
                return self
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"dockerd did not answer in {START_TIMEOUT_S:.0f} s: {self.log_tail()}")

    def log_tail(self, lines: int = 15) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def docker(
        self, *args: str, check: bool = True, timeout: float = 600, input: bytes | None = None
    ) -> subprocess.CompletedProcess[str]:
        """Run ``docker ARGS`` against this engine; raises with its output when ``check``."""
        proc = subprocess.run(
            [CLIENT, *args],
            env=self.env(),
            capture_output=True,
            text=input is None,
            input=input,
            timeout=timeout,
        )
        if check and proc.returncode != 0:
            out = proc.stdout if isinstance(proc.stdout, str) else proc.stdout.decode()
            err = proc.stderr if isinstance(proc.stderr, str) else proc.stderr.decode()
            raise RuntimeError(
                f"docker {' '.join(args[:3])} exited {proc.returncode}: {err}{out}"[-3000:]
            )
        return proc  # type: ignore[return-value]

    def stop(self) -> None:
        """SIGTERM to dockerd (which stops its containers), then SIGKILL after a timeout; the
        engine's folder is removed (its vfs layers are copies, not the cache)."""
        proc, self.proc = self.proc, None
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)
        if self.folder is None:  # an engine this object did not start
            return
        subprocess.run(["umount", "-R", str(self.folder / "exec")], capture_output=True)
        shutil.rmtree(self.folder, ignore_errors=True)

    def __enter__(self) -> DockerEngine:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _rootfs_tarball() -> Path:
    """The stand-in's root file system as a tarball, debootstrapped once per machine."""
    tarball = CACHE / f"standin-{SUITE}-python3.tar"
    if tarball.exists():
        return tarball
    if shutil.which("debootstrap") is None:
        raise RuntimeError("debootstrap is not installed (make test installs it as root)")
    CACHE.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="standin-", dir=CACHE))
    try:
        target = work / "root"
        subprocess.run(
            ["debootstrap", "--variant=minbase", f"--include={','.join(PACKAGES)}", SUITE,
             str(target), MIRROR],
            check=True, capture_output=True, timeout=1800,
        )  # fmt: skip
        # as in the official image: `python` is the interpreter
        (target / "usr/local/bin").mkdir(parents=True, exist_ok=True)
        (target / "usr/local/bin/python").symlink_to("/usr/bin/python3")
        if CA_BUNDLE.exists():  # this machine's CAs (a proxy's among them), for pip in builds
            shutil.copyfile(CA_BUNDLE, target / "etc/ssl/certs/ca-certificates.crt")
        for junk in JUNK:
            shutil.rmtree(target / junk, ignore_errors=True)
            (target / junk).mkdir(parents=True, exist_ok=True)
        partial = work / "rootfs.tar"
        subprocess.run(
            ["tar", "--numeric-owner", "--exclude=./proc/*", "--exclude=./sys/*", "-C",
             str(target), "-cf", str(partial), "."],
            check=True, timeout=600,
        )  # fmt: skip
        partial.replace(tarball)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return tarball


def ensure_standin(engine: DockerEngine, tag: str = BASE_TAG) -> str:
    """``tag`` in ``engine``: the real image when the engine has it, else the stand-in
    (imported from the cached root file system, debootstrapped when missing). Returns how
    it got there."""
    if engine.docker("image", "inspect", tag, check=False).returncode == 0:
        return "present"
    tarball = _rootfs_tarball()
    changes = [
        "ENV PATH=/usr/local/bin:/usr/local/sbin:/usr/sbin:/usr/bin:/sbin:/bin",
        "ENV LANG=C.UTF-8",
        f"ENV PIP_CERT={CA_BUNDLE}",
        f"ENV SSL_CERT_FILE={CA_BUNDLE}",
        'CMD ["python3"]',
    ]
    args = ["import"]
    for change in changes:
        args += ["--change", change]
    engine.docker(*args, str(tarball), tag, timeout=900)
    return "imported"


def main() -> int:
    if len(sys.argv) != 2 or sys.argv[1] != "standin":
        print(__doc__)
        return 2
    if "DOCKER_HOST" not in os.environ:
        print("set DOCKER_HOST to the engine to load the stand-in into", file=sys.stderr)
        return 2
    engine = DockerEngine(os.environ["DOCKER_HOST"])
    print(ensure_standin(engine))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())


# --- pytest fixtures (imported by conftest.py) ---------------------------------------------------

IMAGE_TAG = "tessera:test"
GPU_IMAGE_TAG = "tessera:test-gpu"


@pytest.fixture(scope="session")
def docker_engine() -> Iterator[DockerEngine]:
    """The session's own Docker engine; the test skips, with the reason, where none can start
    (no docker.io, not root)."""
    reuse = os.environ.get("TESSERA_TEST_DOCKER_HOST")
    if reuse:  # a developer's engine, kept between runs (its build cache makes rebuilds quick)
        engine = DockerEngine(reuse)
        yield engine
        return
    reason = DockerEngine.unavailable()
    if reason is not None:
        pytest.skip(f"no Docker engine: {reason}")
    engine = DockerEngine().start()
    try:
        yield engine
    finally:
        engine.stop()


@pytest.fixture(scope="session")
def tessera_image(docker_engine: DockerEngine) -> str:
    """``containers/Dockerfile`` built on the stand-in base (or the real one, where the engine
    has it), Numba's cache compiled for this machine's CPU target only (one target instead of
    two halves the build). Returns the tag."""
    from tessera._numba_target import cpu_flags, pick

    ensure_standin(docker_engine)
    target = pick("x86-64-v4,x86-64-v3", cpu_flags()) or "x86-64-v3"
    docker_engine.docker(
        "build", "--network", "host", "-f", "containers/Dockerfile",
        "--build-arg", f"TESSERA_NUMBA_TARGETS={target}", "-t", IMAGE_TAG, str(ROOT),
        timeout=2400,
    )  # fmt: skip
    return IMAGE_TAG


@pytest.fixture(scope="session")
def tessera_gpu_image(docker_engine: DockerEngine, tessera_image: str) -> str:
    """``containers/Dockerfile.gpu`` built on the CPU image above (its ``BASE``). Returns the
    tag."""
    docker_engine.docker(
        "build", "--network", "host", "-f", "containers/Dockerfile.gpu",
        "--build-arg", f"BASE={tessera_image}", "-t", GPU_IMAGE_TAG, str(ROOT), timeout=1800,
    )  # fmt: skip
    return GPU_IMAGE_TAG
