"""The pinned Go programs the integration tests run, found in the cache that
tests/tools/install-go-tools.sh fills (run by `bash .ci/setup`)."""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import subprocess
from pathlib import Path

PINS = Path(__file__).with_name("go-tools.txt")


class ToolMissing(RuntimeError):
    pass


def tools_cache() -> Path:
    default = Path.home() / ".cache" / "airgap" / "go-tools"
    return Path(os.environ.get("AIRGAP_TOOLS_CACHE", default))


def pinned_versions() -> dict[str, str]:
    versions = {}
    for line in PINS.read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            name, version, _module = line.split()
            versions[name] = version
    return versions


def go_tool(name: str) -> Path:
    """The path of pinned program `name` (as named in go-tools.txt); fails loudly if not built."""
    version = pinned_versions()[name]
    directory = tools_cache() / f"{name}-{version}"
    if not (directory / ".complete").exists():
        raise ToolMissing(
            f"{name} {version} is not built in {directory}: run tests/tools/install-go-tools.sh"
        )
    binaries = [p for p in (directory / "bin").iterdir() if os.access(p, os.X_OK)]
    if len(binaries) != 1:
        raise ToolMissing(f"expected one program in {directory / 'bin'}, found {binaries}")
    return binaries[0]


def go_program_from_source(source: Path, name: str) -> Path:
    """The Go program in directory `source` (a module of its own, standard library or vendored
    go.sum only), built once per content of its files into the tools cache."""
    digest = hashlib.sha256()
    for path in sorted(source.rglob("*")):
        if path.is_file():
            digest.update(path.relative_to(source).as_posix().encode() + b"\0")
            digest.update(path.read_bytes())
    directory = tools_cache() / f"{name}-{digest.hexdigest()[:16]}"
    binary = directory / "bin" / name
    if binary.exists():
        return binary
    if shutil.which("go") is None:
        raise ToolMissing(f"go is not installed: cannot build {source}")
    directory.parent.mkdir(parents=True, exist_ok=True)
    # The same lock as tests/tools/install-go-tools.sh: one Go build at a time.
    with open(tools_cache() / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not binary.exists():
            env = {
                **os.environ,
                "GOTOOLCHAIN": "local",
                "CGO_ENABLED": "0",
                "GOFLAGS": "-mod=readonly -trimpath -buildvcs=false",
            }
            partial = directory.with_name(directory.name + ".partial")
            shutil.rmtree(partial, ignore_errors=True)
            result = subprocess.run(
                ["go", "build", "-ldflags=-s -w", "-o", str(partial / "bin" / name), "."],
                cwd=source,
                env=env,
                capture_output=True,
                text=True,
                timeout=1200,
                check=False,
            )
            if result.returncode != 0:
                raise ToolMissing(f"building {source} failed:\n{result.stderr[-3000:]}")
            shutil.rmtree(directory, ignore_errors=True)
            partial.rename(directory)
    return binary
