"""Build the S3 trigger's Lambda deployment zip: tessera's code and boto3, nothing compiled.

    python containers/lambda/build_zip.py [--out build/tessera-lambda.zip]

The handler (``tessera.engine.trigger.handler``) checks job files with ``spec.check``, which
imports no kernel code, so the zip holds tessera's Python files and boto3/botocore (pinned to
the versions installed here: the Lambda runtime's own boto3 may predate conditional writes,
``IfNoneMatch`` on PutObject). No NumPy, Numba, Dask, Zarr or Pillow. Prints the sizes, against
Lambda's 250 MB limit (unzipped), as one JSON line. Entries are sorted and dated 1980-01-01, so
the same inputs give the same bytes.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
LIMIT_UNZIPPED = 250 * 10**6  # Lambda: deployment package, unzipped, including layers
DEPENDENCIES = ("boto3", "botocore", "s3transfer", "jmespath", "python-dateutil", "urllib3", "six")
SKIP = {"__pycache__", "tests"}


def copy_tessera(into: Path) -> None:
    """tessera/ with its links (engine, kernels) resolved, without caches."""
    shutil.copytree(
        ROOT / "tessera",
        into / "tessera",
        symlinks=False,
        ignore=lambda folder, names: [n for n in names if n in SKIP or n.endswith(".pyc")],
    )


def install_dependencies(into: Path) -> None:
    """boto3 and its dependencies, of the versions installed in this environment."""
    pins = []
    for name in DEPENDENCIES:
        try:
            pins.append(f"{name}=={importlib.metadata.version(name)}")
        except importlib.metadata.PackageNotFoundError:
            pins.append(name)
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-compile"]
        + ["--target", str(into), *pins],
        check=True,
    )


def write_zip(tree: Path, out: Path) -> tuple[int, int]:
    """Zip ``tree`` deterministically; returns (unzipped bytes, zip bytes)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    files = sorted(p for p in tree.rglob("*") if p.is_file() and "__pycache__" not in p.parts)
    total = 0
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as zf:
        for path in files:
            info = zipfile.ZipInfo(
                path.relative_to(tree).as_posix(), date_time=(1980, 1, 1, 0, 0, 0)
            )
            info.external_attr = 0o644 << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            data = path.read_bytes()
            total += len(data)
            zf.writestr(info, data, compresslevel=9)
    return total, out.stat().st_size


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(ROOT / "build" / "tessera-lambda.zip"))
    parser.add_argument("--tree", help="also leave the unzipped tree here (for tests)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        tree = Path(args.tree) if args.tree else Path(tmp) / "tree"
        tree.mkdir(parents=True, exist_ok=True)
        install_dependencies(tree)
        copy_tessera(tree)
        unzipped, zipped = write_zip(tree, Path(args.out))
    report = {
        "zip": os.path.relpath(args.out),
        "unzipped_mb": round(unzipped / 1e6, 1),
        "zipped_mb": round(zipped / 1e6, 1),
        "limit_unzipped_mb": LIMIT_UNZIPPED / 1e6,
    }
    print(json.dumps(report))
    return 0 if unzipped <= LIMIT_UNZIPPED else 1


if __name__ == "__main__":
    sys.exit(main())
