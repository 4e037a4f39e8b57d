"""Where each part of a TUF repository directory lives (see the package docstring)."""

from __future__ import annotations

import fcntl
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from offline.errors import UsageError

ONLINE_ROLES = ("targets", "snapshot", "timestamp")
TOP_LEVEL_ROLES = ("root", *ONLINE_ROLES)
_GENERATION = re.compile(r"[0-9]{8}")


@dataclass(frozen=True)
class RepoLayout:
    path: Path

    @contextmanager
    def writing(self) -> Iterator[None]:
        """One writer at a time (build, refresh, rotate-root); a second one is refused."""
        with open(self.path / ".lock", "a") as lock:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise UsageError(
                    f"{self.path} is being changed by another airgap trust command; "
                    f"run again when it has finished"
                ) from None
            yield

    @property
    def policy(self) -> Path:
        return self.path / "policy.json"

    @property
    def default_root_keys(self) -> Path:
        return self.path / "keys" / "root"

    @property
    def online_keys(self) -> Path:
        return self.path / "keys" / "online"

    def online_key(self, role: str) -> Path:
        return self.online_keys / f"{role}.key"

    @property
    def roots(self) -> Path:
        return self.path / "roots"

    def root_file(self, version: int) -> Path:
        return self.roots / f"{version}.root.json"

    @property
    def generations(self) -> Path:
        return self.path / "generations"

    def generation(self, number: int) -> Path:
        return self.generations / f"{number:08d}"

    @property
    def current(self) -> Path:
        """A symbolic link to the published generation (absent before the first build)."""
        return self.path / "current"

    def root_versions(self) -> list[int]:
        """The versions in roots/, which must run 1, 2, ... with no gap."""
        if not self.roots.is_dir():
            raise UsageError(
                f"{self.path} is not a TUF repository made by airgap (no roots/): "
                f"run airgap trust init --dir {self.path}"
            )
        versions = sorted(
            int(p.name.split(".", 1)[0])
            for p in self.roots.iterdir()
            if re.fullmatch(r"[1-9][0-9]*\.root\.json", p.name)
        )
        if not versions or versions != list(range(1, len(versions) + 1)):
            raise UsageError(
                f"{self.roots}: root versions {versions} do not run 1, 2, ... without a gap"
            )
        return versions

    def current_generation(self) -> Path | None:
        """The published generation's directory, or None before the first build."""
        if not self.current.is_symlink():
            if self.current.exists():
                raise UsageError(f"{self.current} is not a link to a generation")
            return None
        target = self.current.readlink()
        if target.parent != Path("generations") or not _GENERATION.fullmatch(target.name):
            raise UsageError(f"{self.current} points to {target}, not to generations/NNNNNNNN")
        directory = self.path / target
        if not directory.is_dir():
            raise UsageError(f"{self.current} points to {target}, which does not exist")
        return directory


def repository_dir(generation: Path) -> Path:
    return generation / "repository"


def pinned_root(generation: Path) -> Path:
    return generation / "root.json"


def secret_file(generation: Path) -> Path:
    return generation / "tuf-root.secret.json"
