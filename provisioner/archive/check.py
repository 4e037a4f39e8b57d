"""Checking a bundle archive's parts: the parts list's signature before anything else is read,
then every part's size and SHA-256. Every missing or damaged part is named (only those need
sending again), and the whole stream's SHA-256 is known once every part was read whole."""

from __future__ import annotations

import hashlib
import os
import stat
from dataclasses import dataclass, field
from pathlib import Path

from offline.errors import VerificationFailure
from provisioner.archive import reading
from provisioner.archive.parts_list import PartEntry, PartsList, load_parts_list
from provisioner.archive.reading import CHUNK_SIZE
from provisioner.bundle.detached import ManifestTrust


@dataclass(frozen=True)
class PartProblem:
    name: str
    reason: str


@dataclass
class PartsReport:
    """Every part that is missing or damaged (`problems`: send those again) and the SHA-256
    of the whole stream (None unless every part was read whole)."""

    path: Path
    parts_list: PartsList
    problems: list[PartProblem] = field(default_factory=list)
    total_sha256: str | None = None
    bytes_checked: int = 0

    @property
    def resend(self) -> list[str]:
        return [p.name for p in self.problems]

    @property
    def ok(self) -> bool:
        return not self.problems and self.total_sha256 == self.parts_list.sha256

    def summary(self) -> str:
        count = len(self.parts_list.parts)
        if self.ok:
            return f"{self.path}: {count} parts verified ({self.parts_list.size} bytes)"
        if not self.problems:
            return f"{self.path}: the parts together do not have the recorded sha256"
        listed = ", ".join(f"{p.name} ({p.reason})" for p in self.problems)
        return f"{self.path}: {len(self.problems)} of {count} parts must be sent again: {listed}"

    def raise_for_failure(self) -> None:
        if not self.ok:
            raise VerificationFailure(self.summary())


def check_parts(parts_list_path: str | Path, trust: ManifestTrust) -> PartsReport:
    """The parts list's signature first (nothing else is read if it fails), then every part:
    all missing or damaged parts are reported, by name."""
    path = Path(parts_list_path)
    parts_list = load_parts_list(path, trust)
    report = PartsReport(path, parts_list)
    total: hashlib._Hash | None = hashlib.sha256()
    for part in parts_list.parts:
        reason = _check_part(path.parent / part.name, part, total, report)
        if reason is not None:
            report.problems.append(PartProblem(part.name, reason))
            total = None  # the stream has a gap from here on
    if total is not None:
        report.total_sha256 = total.hexdigest()
    return report


def _check_part(
    path: Path, part: PartEntry, total: hashlib._Hash | None, report: PartsReport
) -> str | None:
    try:
        f = reading.open_for_reading(path)
    except FileNotFoundError:
        return "missing"
    except OSError as exc:
        return f"cannot be read: {exc.strerror}"
    with f:
        info = os.fstat(f.fileno())
        if not stat.S_ISREG(info.st_mode):
            return "not a regular file"
        if info.st_size != part.size:
            return f"{info.st_size} bytes, expected {part.size}"
        hasher = hashlib.sha256()
        read = 0
        try:
            while chunk := f.read(CHUNK_SIZE):
                hasher.update(chunk)
                if total is not None:
                    total.update(chunk)
                read += len(chunk)
        except OSError as exc:
            return f"cannot be read: {exc.strerror}"
    report.bytes_checked += read
    if read != part.size:
        return f"{read} bytes, expected {part.size}"
    if hasher.hexdigest() != part.sha256:
        return "damaged: sha256 differs"
    return None
