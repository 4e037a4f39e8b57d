"""The verifier's dependency wheels for the hosts tests, made once by .ci/setup while PyPI is
reachable, so that the tests build the airgap wheelhouse with no network at all.

    python -m tests.provisioner.hosts.wheel_cache      # .ci/setup runs this

The cache is keyed by the verifier's dependencies (pyproject.toml's [project] dependencies),
the Python version and the machine: a change to any of them makes a new directory. It also
holds the build backend (setuptools), so that airgap's own wheel builds from the checkout
with `--no-index` as well. AIRGAP_WHEELS_CACHE overrides ~/.cache/airgap/wheels.
"""

from __future__ import annotations

import hashlib
import os
import platform
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

from tests.conftest import REPO


def _requirements() -> list[str]:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())
    build = project["build-system"]["requires"]
    return [*project["project"]["dependencies"], *build]


def cache_dir() -> Path:
    default = Path.home() / ".cache" / "airgap" / "wheels"
    base = Path(os.environ.get("AIRGAP_WHEELS_CACHE", default))
    key = "\n".join([*_requirements(), sys.implementation.cache_tag, platform.machine()])
    return base / f"verifier-{hashlib.sha256(key.encode()).hexdigest()[:16]}"


def fill() -> Path:
    """Download and build the wheels (once per key); returns the directory."""
    target = cache_dir()
    if target.is_dir():
        return target
    partial = target.with_name(target.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    pip = [sys.executable, "-m", "pip", "wheel", "--quiet", "--disable-pip-version-check"]
    subprocess.run(
        [*pip, "--wheel-dir", str(partial), *_requirements()],
        check=True,
        stdin=subprocess.DEVNULL,
    )
    partial.rename(target)
    return target


if __name__ == "__main__":
    print(f"verifier wheels in {fill()}")
