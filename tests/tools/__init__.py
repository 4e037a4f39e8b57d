"""The pinned Go programs the integration tests run, found in the cache that
tests/tools/install-go-tools.sh fills (run by `bash .ci/setup`)."""

from __future__ import annotations

import os
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
