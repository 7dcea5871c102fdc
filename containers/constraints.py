"""Write or check ``containers/constraints.txt``: the exact versions the image installs.

The image runs ``pip install --constraint constraints.txt ".[aws]"``. Without constraints,
pip's resolver was seen backtracking for more than 8 minutes through boto3, numpy and numba
versions (the newest boto3 needs a botocore outside the range aiobotocore, through s3fs,
pins). The constraints are the versions of this environment, the one the test suite ran with:
every distribution that ``tessera[aws]`` needs, followed through their requirements (markers
evaluated for this interpreter).

    python containers/constraints.py          # rewrite constraints.txt from this environment
    python containers/constraints.py --check  # exit 1, naming the differences, if it is stale
    python containers/constraints.py --gpu    # rewrite constraints-gpu.txt (needs the index)

``make constraints`` runs the first; the test suite runs the second, so a dependency upgraded
in the development environment without refreshing the image's pins fails the tests. ``make``
installs the development environment with these pins too, so a release upstream does not
change what the next run tests with (a CI run failed here when idna 3.21 came out between two
runs). To move a pin: upgrade it in ``.venv``, run the tests, then ``make constraints``.

``constraints-gpu.txt`` pins what ``containers/Dockerfile.gpu`` adds on top of the CPU image:
numba-cuda with its CUDA 12 wheels (``numba-cuda[cu12]``), which the development environment
does not have (its CUDA tests run on Numba's simulator). ``--gpu`` resolves them with pip
against the CPU pins (``pip install --dry-run --report``); the image build's ``pip check``
fails where the two files no longer agree.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tomllib
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement

HERE = Path(__file__).resolve().parent
OUT = HERE / "constraints.txt"
OUT_GPU = HERE / "constraints-gpu.txt"
HEADER = (
    "# Exact versions for the image (docker build ... --constraint), from the environment the\n"
    "# tests ran in. Regenerate: `make constraints`; tests/test_images.py checks it is current.\n"
)


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _wanted(req: Requirement, extras: frozenset[str]) -> bool:
    """Whether ``req`` applies here, to a distribution installed with ``extras``."""
    if req.marker is None:
        return True
    return any(req.marker.evaluate({"extra": e}) for e in (*extras, ""))


def _own_requirements(extras: tuple[str, ...] = ("aws",)) -> list[Requirement]:
    """tessera's requirements and those of ``extras``, from pyproject.toml (the source of
    truth; an editable install's metadata may be older)."""
    project = tomllib.loads((HERE.parent / "pyproject.toml").read_text())["project"]
    raw = list(project["dependencies"])
    for extra in extras:
        raw += project["optional-dependencies"][extra]
    return [Requirement(r) for r in raw]


def closure() -> dict[str, str]:
    """{distribution: version} of everything ``tessera[aws]`` needs in this environment
    (tessera itself excluded), its requirements followed through the installed
    distributions' metadata."""
    seen: dict[str, str] = {}
    todo = [(r, frozenset(r.extras)) for r in _own_requirements() if _wanted(r, frozenset())]
    while todo:
        req, extras = todo.pop()
        name = _canonical(req.name)
        if name in seen:
            continue
        dist = metadata.distribution(req.name)
        seen[name] = dist.version
        for raw in dist.requires or []:
            sub = Requirement(raw)
            if _wanted(sub, extras) and _canonical(sub.name) not in seen:
                todo.append((sub, frozenset(sub.extras)))
    return dict(sorted(seen.items()))


HEADER_GPU = (
    "# What containers/Dockerfile.gpu adds to the CPU pins: numba-cuda[cu12], resolved by\n"
    "# pip against constraints.txt. Regenerate: `make constraints`; the build's `pip check`\n"
    "# checks it.\n"
)


def render(pins: dict[str, str], header: str = HEADER) -> str:
    return header + "".join(f"{name}=={version}\n" for name, version in pins.items())


def gpu_closure() -> dict[str, str]:
    """{distribution: version} that ``numba-cuda[cu12]`` (pyproject's ``gpu`` extra) adds to
    the CPU pins: pip resolves it against ``constraints.txt`` without installing anything."""
    (spec,) = _own_requirements(("gpu",))[-1:]  # the gpu extra's one requirement
    wanted = f"{spec.name}[cu12]{spec.specifier}"
    report = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed", "--quiet",
         "--report", "-", "--constraint", str(OUT), wanted],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    cpu = {line.split("==")[0] for line in OUT.read_text().splitlines() if "==" in line}
    pins = {}
    for item in json.loads(report)["install"]:
        name = _canonical(item["metadata"]["name"])
        if name not in cpu:
            pins[name] = item["metadata"]["version"]
    return dict(sorted(pins.items()))


def main() -> int:
    if sys.argv[1:] == ["--gpu"]:
        text = render(gpu_closure(), HEADER_GPU)
        OUT_GPU.write_text(text)
        print(f"wrote {OUT_GPU} ({text.count('==')} pins)")
        return 0
    text = render(closure())
    if sys.argv[1:] == ["--check"]:
        current = OUT.read_text() if OUT.exists() else ""
        if current == text:
            return 0
        old = {line for line in current.splitlines() if "==" in line}
        new = {line for line in text.splitlines() if "==" in line}
        print(f"{OUT.name} is stale; run `make constraints`.", file=sys.stderr)
        for line in sorted(old - new):
            print(f"  - {line}", file=sys.stderr)
        for line in sorted(new - old):
            print(f"  + {line}", file=sys.stderr)
        return 1
    OUT.write_text(text)
    print(f"wrote {OUT} ({text.count('==')} pins)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
