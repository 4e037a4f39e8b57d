"""The import journal: what the target acknowledged, for the report of a resumed import.

JSON lines, fsync'd line by line: a header `{"format": "airgap-import-journal/v2", "target":
..., "manifest": <hex SHA-256 of the bundle manifest>}`, then one `{"repo", "kind", "digest"}`
per blob, manifest or image the target acknowledged. A line is written only after the registry
answered.

The journal lives outside the bundle (default: the user state directory,
`import-journals/<16 hex of the target's sha256>-<16 hex of the manifest's>.jsonl`), so a
bundle cannot ship one, and it is never taken as proof that the target holds anything: import
asks the target about every blob and manifest, journaled or not. It tells what a rerun
resumes (images already brought), and nothing that decides what is pushed.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import stat
import threading
from pathlib import Path
from typing import IO, Literal

from offline.atomicfile import fsync_dir
from offline.errors import UsageError
from offline.oci.digests import is_digest
from provisioner.copy.inventory import Target

JOURNAL_FORMAT = "airgap-import-journal/v2"

JournalKind = Literal["blob", "manifest", "image"]


class ImportJournal:
    """What a target acknowledged during an import, one JSON line per fact, fsync'd.

    The first line names the target and the bundle manifest; every other line is
    `{"repo", "kind", "digest"}`. A torn last line (a kill while writing) is ignored; nothing
    that decides what is pushed depends on it."""

    def __init__(self, path: Path, target: str, manifest_sha256: str) -> None:
        self.path = path
        self.target = target
        self.manifest_sha256 = manifest_sha256
        self.loaded = 0
        self.written = 0
        self._done: set[tuple[str, str, str]] = set()
        self._lock = threading.Lock()
        self._file: IO[bytes] | None = None

    def open(self) -> ImportJournal:
        existing = b""
        try:
            # O_NONBLOCK: a FIFO given as the journal is refused, not waited on.
            fd = os.open(self.path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
            with os.fdopen(fd, "rb") as f:
                if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
                    raise UsageError(f"the import journal {self.path} is not a regular file")
                existing = f.read()
        except FileNotFoundError:
            pass
        except OSError as exc:
            raise UsageError(
                f"cannot read the import journal {self.path} ({exc.strerror})"
            ) from None
        lines = existing.split(b"\n")
        if existing:
            self._check_header(lines[0])
            for line in lines[1:]:
                record = _parse_record(line)
                if record is not None:
                    self._done.add(record)
            self.loaded = len(self._done)
        try:
            self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        except OSError as exc:
            raise UsageError(
                f"cannot write the import journal {self.path} ({exc.strerror}): give another "
                "journal path"
            ) from None
        self._file = os.fdopen(fd, "ab")
        if not existing:
            self._write(
                {"format": JOURNAL_FORMAT, "target": self.target, "manifest": self.manifest_sha256}
            )
            fsync_dir(self.path.parent)
        elif not existing.endswith(b"\n"):
            # A torn line: end it, so the next record starts on a line of its own.
            self._file.write(b"\n")
        return self

    def _check_header(self, line: bytes) -> None:
        try:
            header = json.loads(line)
        except ValueError:
            header = None
        if not isinstance(header, dict) or header.get("format") != JOURNAL_FORMAT:
            raise UsageError(f"{self.path} is not an import journal: remove it or give another")
        if header.get("target") != self.target:
            raise UsageError(
                f"import journal {self.path} is for target {header.get('target')!r}, not "
                f"{self.target!r}: give another journal path or remove it"
            )
        if header.get("manifest") != self.manifest_sha256:
            raise UsageError(
                f"import journal {self.path} is of another bundle: give another journal path "
                "or remove it"
            )

    def done(self, repository: str, kind: JournalKind, digest: str) -> bool:
        return (repository, kind, digest) in self._done

    def record(self, repository: str, kind: JournalKind, digest: str) -> None:
        # Blobs are copied several at a time: one line at a time into the file.
        with self._lock:
            if (repository, kind, digest) in self._done:
                return
            self._write({"repo": repository, "kind": kind, "digest": digest})
            self._done.add((repository, kind, digest))
            self.written += 1

    def _write(self, document: dict[str, str]) -> None:
        assert self._file is not None
        self._file.write(json.dumps(document, sort_keys=True).encode() + b"\n")
        self._file.flush()
        os.fsync(self._file.fileno())

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    def remove(self) -> None:
        self.close()
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()
        fsync_dir(self.path.parent)


def _parse_record(line: bytes) -> tuple[str, str, str] | None:
    try:
        record = json.loads(line)
    except ValueError:
        return None
    if not isinstance(record, dict):
        return None
    repo, kind, digest = record.get("repo"), record.get("kind"), record.get("digest")
    if not isinstance(repo, str) or kind not in ("blob", "manifest", "image"):
        return None
    if not isinstance(digest, str) or not is_digest(digest):
        return None
    return repo, kind, digest


def target_key(target: Target) -> str:
    """The target as one string that names it, whatever the working directory."""
    if target.layout is not None:
        return f"oci:{target.layout.resolve()}"
    return str(target)


def default_journal_path(target: Target, manifest_sha256: str) -> Path:
    """In the user state directory, keyed by target and bundle manifest: never in a bundle."""
    from provisioner.bundle.sequence import state_dir

    digest = hashlib.sha256(target_key(target).encode()).hexdigest()
    return state_dir() / "import-journals" / f"{digest[:16]}-{manifest_sha256[:16]}.jsonl"


def default_mapping_path(bundle_dir: Path, target: Target) -> Path:
    """Beside the bundle directory, not in it: a bundle holds only what its manifest signs."""
    digest = hashlib.sha256(target_key(target).encode()).hexdigest()
    bundle = bundle_dir.resolve()
    return bundle.parent / f"{bundle.name}.import-mapping-{digest[:16]}.json"
