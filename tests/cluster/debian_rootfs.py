"""Root filesystems from Debian packages, for images built with no pull from anywhere.

The packages are fetched with `apt-get download` (the host's own apt sources; nothing named
here) into a cache outside the repository, one file per package version, so a second build
downloads nothing; `dpkg-deb -x` unpacks them (no maintainer scripts run, so what they would do
is the image's business). `check_libraries` proves a rootfs complete: every shared library of
its main programs must resolve inside it, through the rootfs's own dynamic loader.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

LIBRARY_DIRS = ("lib/x86_64-linux-gnu", "usr/lib/x86_64-linux-gnu")
# The loader itself: lib64/ld-linux-x86-64.so.2 is an absolute link (to the host's, from outside).
LOADER = "lib/x86_64-linux-gnu/ld-linux-x86-64.so.2"
# What an image never needs of a package.
UNNEEDED = (
    "usr/share/doc",
    "usr/share/man",
    "usr/share/info",
    "usr/share/lintian",
    "usr/share/locale",
)


class DebianError(RuntimeError):
    pass


def debs_cache() -> Path:
    default = Path.home() / ".cache" / "airgap" / "debs"
    return Path(os.environ.get("AIRGAP_DEBS_CACHE", default))


@dataclass(frozen=True)
class Deb:
    package: str
    version: str
    path: Path


def candidate_versions(packages: Sequence[str]) -> dict[str, str]:
    """The version apt would install of each package (the host's apt lists)."""
    shown = subprocess.run(
        ["apt-cache", "show", "--no-all-versions", *packages],
        capture_output=True,
        text=True,
        check=False,
    )
    versions: dict[str, str] = {}
    package = None
    for line in shown.stdout.splitlines():
        if line.startswith("Package: "):
            package = line.split(": ", 1)[1]
        elif line.startswith("Version: ") and package is not None:
            versions.setdefault(package, line.split(": ", 1)[1])
    missing = [p for p in packages if p not in versions]
    if missing:
        raise DebianError(f"apt knows no candidate for {', '.join(missing)}: {shown.stderr}")
    return versions


def _cached(directory: Path, package: str, version: str) -> Path | None:
    # apt-get download's own naming, the epoch's colon written %3a; arch is amd64 or all.
    found = sorted(directory.glob(f"{package}_{version.replace(':', '%3a')}_*.deb"))
    return found[0] if found else None


def fetch(packages: Sequence[str]) -> list[Deb]:
    """The .deb of each package's candidate version, downloaded unless cached."""
    directory = debs_cache()
    directory.mkdir(parents=True, exist_ok=True)
    versions = candidate_versions(packages)
    with open(directory / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        wanted = [p for p in packages if _cached(directory, p, versions[p]) is None]
        if wanted:
            result = subprocess.run(
                ["apt-get", "download", *(f"{p}={versions[p]}" for p in wanted)],
                cwd=directory,
                capture_output=True,
                text=True,
                check=False,
            )
            if result.returncode != 0:
                raise DebianError(f"apt-get download {' '.join(wanted)}: {result.stderr[-2000:]}")
    debs = []
    for package in packages:
        path = _cached(directory, package, versions[package])
        if path is None:
            raise DebianError(f"apt-get download left no file for {package} {versions[package]}")
        debs.append(Deb(package, versions[package], path))
    return debs


def unpack(debs: Iterable[Deb], root: Path) -> None:
    """Unpack `debs` into `root` (made empty first), without what an image never needs."""
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    for deb in debs:
        subprocess.run(["dpkg-deb", "-x", str(deb.path), str(root)], check=True)
    for unneeded in UNNEEDED:
        shutil.rmtree(root / unneeded, ignore_errors=True)


def check_libraries(root: Path, programs: Sequence[str]) -> None:
    """Every shared library of `programs` (paths inside `root`) resolves inside `root`: the
    rootfs's own ld.so lists them, searching the rootfs's library directories first; a library
    found nowhere, or only in the host's directories (the loader's defaults), is an error."""
    loader = root / LOADER
    search = ":".join(str(root / d) for d in LIBRARY_DIRS)
    problems = []
    for program in programs:
        listed = subprocess.run(
            [
                str(loader),
                "--inhibit-cache",
                "--library-path",
                search,
                "--list",
                str(root / program),
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        if listed.returncode != 0:
            problems.append(f"{program}: {(listed.stderr or listed.stdout).strip()}")
            continue
        for line in listed.stdout.splitlines():
            if "=>" not in line:
                continue  # the vDSO and the loader itself
            target = line.split("=>", 1)[1].strip().split(" (")[0]
            if target == "not found" or not target.startswith(f"{root}/"):
                problems.append(f"{program}: {line.strip()}")
    if problems:
        raise DebianError("libraries missing from the rootfs:\n" + "\n".join(problems))
