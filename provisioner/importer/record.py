"""What a target has imported: per bundle name, the highest sequence and its manifest's SHA-256.

    records = ImportRecords(target, registry)                       # registry: None for oci:
    records.check(manifest, manifest_sha256, allow_rollback=False)  # before anything is pushed
    ...                                                               # the import
    records.remember(manifest, manifest_sha256)                       # after it verified

A bundle whose sequence is below the highest imported of its name is refused (it would move
tags back to what an older bundle named), and so is another bundle with the same sequence
(two different bundles cannot both be that version); the same bundle again is a rerun, always
allowed. `allow_rollback` lets an older one through, and the record keeps the highest.

The record is kept in two places, and the higher of the two counts:

- in the user state directory of the importing host, `imported/<16 hex digits of the sha256 of
  the target>.json` (`airgap-imported/v1`, JSON): the operator's own memory of the target, which
  neither a bundle nor whoever can write to the registry can lower. It is keyed by target
  (registry and prefix, or the layout's absolute path): tags under another prefix are other tags;
- in the target itself, so that another import host (or this one reinstalled) knows it too: for
  `oci:DIR` the file `DIR/airgap-imported.json` (same format; it travels with a layout that is
  copied or served elsewhere); for a registry an OCI artifact `PREFIX/airgap-imported:NAME`
  (artifactType `application/vnd.airgap.import-record.v1+json`, empty config and layer, the
  record in its annotations), written by the same credentials that push the tags. Whoever can
  push to the registry could lower that one, but could move the tags anyway; the host's record
  still holds.

An unreadable or malformed record is refused with its path (exit 2), never taken as "nothing
imported": that would let any old bundle in.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from offline.atomicfile import atomic_write
from offline.canonical_json import canonical_json
from offline.errors import UsageError, VerificationFailure
from offline.inputs import decode_strict_json, read_input
from offline.oci.digests import SHA256_HEX
from offline.oci.manifest import OCI_EMPTY, OCI_EMPTY_DATA, OCI_EMPTY_DIGEST, OCI_MANIFEST
from offline.oci.registry import Registry
from offline.strict import StrictReader, at
from provisioner.bundle.manifest import (
    BundleManifest,
    check_name,
    check_sequence,
    format_created,
)
from provisioner.bundle.sequence import state_dir
from provisioner.copy.inventory import Target
from provisioner.importer.journal import target_key

FORMAT = "airgap-imported/v1"
LAYOUT_RECORD = "airgap-imported.json"
_MAX_RECORD_SIZE = 16 * 1024 * 1024


class RollbackRefused(VerificationFailure):
    """An older bundle (or another one with the same sequence) than the target already has."""


@dataclass(frozen=True)
class Imported:
    sequence: int
    manifest_sha256: str
    at: str  # when it was recorded (UTC), for the message


def record_path(target: Target) -> Path:
    digest = hashlib.sha256(target_key(target).encode()).hexdigest()
    return state_dir() / "imported" / f"{digest[:16]}.json"


class ImportRecords:
    """The records of one target: the host's, and the target's own (a layout's file, or the
    registry's artifact when `registry` is given)."""

    def __init__(self, target: Target, registry: Registry | None = None) -> None:
        self.target = target
        self.paths = [record_path(target)]
        if target.layout is not None:
            self.paths.append(target.layout / LAYOUT_RECORD)
        self.in_registry = (
            _RegistryRecord(registry, target)
            if registry is not None and not target.is_layout
            else None
        )

    def highest(self, name: str) -> Imported | None:
        found = [r for r in (_load(p, self.target).get(name) for p in self.paths) if r]
        if self.in_registry is not None:
            found += [r for r in [self.in_registry.get(name)] if r]
        return max(found, key=lambda r: r.sequence, default=None)

    def check(self, manifest: BundleManifest, manifest_sha256: str, allow_rollback: bool) -> None:
        """Refuse a bundle older than (or another than, at the same sequence) the newest of its
        name this target imported, unless `allow_rollback`."""
        known = self.highest(manifest.name)
        if known is None or allow_rollback or manifest.sequence > known.sequence:
            return
        if manifest.sequence == known.sequence:
            if manifest_sha256 == known.manifest_sha256:
                return  # the same bundle again: a rerun
            raise RollbackRefused(
                f"bundle {manifest.name} sequence {manifest.sequence} is not the bundle of that "
                f"sequence {self.target} imported at {known.at} (its manifest has another "
                "SHA-256): two bundles claim one version"
            )
        raise RollbackRefused(
            f"bundle {manifest.name} sequence {manifest.sequence} is older than sequence "
            f"{known.sequence}, which {self.target} imported at {known.at}: importing it would "
            "move tags back"
        )

    def remember(self, manifest: BundleManifest, manifest_sha256: str) -> None:
        """Record the import in every place, keeping the highest sequence of the name."""
        now = format_created(datetime.now(UTC))
        # One lock, in the host's state directory (none is left in a layout), for both.
        with _locked(self.paths[0]):
            for path in self.paths:
                records = _load(path, self.target)
                if not _newer(records.get(manifest.name), manifest, manifest_sha256):
                    continue
                records[manifest.name] = Imported(manifest.sequence, manifest_sha256, now)
                _store(path, self.target, records)
        if self.in_registry is not None:
            known = self.in_registry.get(manifest.name)
            if _newer(known, manifest, manifest_sha256):
                self.in_registry.put(
                    manifest.name, Imported(manifest.sequence, manifest_sha256, now)
                )


def _newer(known: Imported | None, manifest: BundleManifest, manifest_sha256: str) -> bool:
    """Whether to record `manifest`: the record keeps the highest, and is not rewritten for
    the same bundle again."""
    if known is None or manifest.sequence > known.sequence:
        return True
    return manifest.sequence == known.sequence and manifest_sha256 != known.manifest_sha256


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        lock = open(path.with_name(f"{path.name}.lock"), "a")  # noqa: SIM115
    except OSError as exc:
        raise UsageError(f"cannot write the import record {path}: {exc.strerror}") from None
    with lock:
        fcntl.flock(lock.fileno(), fcntl.LOCK_EX)
        yield


def _load(path: Path, target: Target) -> dict[str, Imported]:
    if not os.path.lexists(path):
        return {}  # nothing imported yet; a dangling link is there, and refused below
    # Not through a link: whoever can place one could point the record at another file.
    data = read_input(path, "the import record", _MAX_RECORD_SIZE, follow_symlinks=False)
    try:
        return _parse(decode_strict_json(data, "record"), _record_target(path, target))
    except UsageError as exc:
        raise UsageError(
            f"the import record {path} is damaged ({exc}): restore it; it is what keeps older "
            "bundles out of the target"
        ) from None


def _record_target(path: Path, target: Target) -> str:
    # A layout's own record names no path: the layout may be moved.
    return "layout" if path.name == LAYOUT_RECORD else target_key(target)


def _parse(document: object, expected_target: str) -> dict[str, Imported]:
    read = StrictReader("record")
    top = read.mapping(document, "", ("format", "target", "bundles"))
    read.choice(top["format"], "format", (FORMAT,))
    if top["target"] != expected_target:
        read.fail("target", f"the record of {top['target']!r}, not of {expected_target!r}")
    records: dict[str, Imported] = {}
    for name, value in read.table(top["bundles"], "bundles").items():
        here = at("bundles", name)
        check_name(name, f"{read.where}: bundle name")
        entry = read.mapping(value, here, ("sequence", "manifestSha256", "imported"))
        records[name] = Imported(
            check_sequence(entry["sequence"], f"{read.where}: {at(here, 'sequence')}"),
            read.hex_bytes(entry["manifestSha256"], at(here, "manifestSha256")).hex(),
            read.string(entry["imported"], at(here, "imported")),
        )
    return records


def _store(path: Path, target: Target, records: dict[str, Imported]) -> None:
    document = {
        "format": FORMAT,
        "target": _record_target(path, target),
        "bundles": {
            name: {"sequence": r.sequence, "manifestSha256": r.manifest_sha256, "imported": r.at}
            for name, r in sorted(records.items())
        },
    }
    try:
        atomic_write(path, canonical_json(document, ascii_only=False) + b"\n")
    except OSError as exc:
        raise UsageError(f"cannot write the import record {path}: {exc.strerror}") from None


# ------------------------------------------------------------------------- in a registry
RECORD_REPOSITORY = "airgap-imported"
RECORD_TYPE = "application/vnd.airgap.import-record.v1+json"
_NAME_KEY = "dev.airgap.bundle.name"
_SEQUENCE_KEY = "dev.airgap.bundle.sequence"
_SHA_KEY = "dev.airgap.bundle.manifest-sha256"
_AT_KEY = "dev.airgap.bundle.imported"


class _RegistryRecord:
    """`PREFIX/airgap-imported:NAME`: an artifact whose annotations are the record."""

    def __init__(self, registry: Registry, target: Target) -> None:
        self.repository = registry.repository(target.repository_for(RECORD_REPOSITORY))

    @staticmethod
    def tag(name: str) -> str:
        # A tag is at most 128 characters; a longer name is named by its digest.
        return name if len(name) <= 128 else hashlib.sha256(name.encode()).hexdigest()

    def get(self, name: str) -> Imported | None:
        where = f"the import record {self.repository.location}:{self.tag(name)}"
        descriptor = self.repository.resolve_optional(self.tag(name))
        if descriptor is None:
            return None
        document = self.repository.fetch_manifest(descriptor.digest).json()
        annotations = document.get("annotations")
        try:
            if document.get("artifactType") != RECORD_TYPE or not isinstance(annotations, dict):
                raise UsageError(f"it is not a {RECORD_TYPE}")
            if annotations.get(_NAME_KEY) != name:
                raise UsageError(f"it names bundle {annotations.get(_NAME_KEY)!r}")
            text = annotations.get(_SEQUENCE_KEY)
            if not isinstance(text, str) or not text.isdigit() or len(text) > 19:
                raise UsageError(f"sequence {text!r} is not a number")
            sequence = check_sequence(int(text), "sequence")
            digest, when = annotations.get(_SHA_KEY), annotations.get(_AT_KEY)
            if not isinstance(digest, str) or not SHA256_HEX.fullmatch(digest):
                raise UsageError("its manifest SHA-256 is not 64 lowercase hex digits")
            if not isinstance(when, str):
                raise UsageError("its import time is not a string")
        except UsageError as exc:
            raise UsageError(
                f"{where} is damaged ({exc}): restore it, or delete that tag if this host's "
                "record is to count alone"
            ) from None
        return Imported(sequence, digest, when)

    def put(self, name: str, imported: Imported) -> None:
        self.repository.push_blob(OCI_EMPTY_DATA, OCI_EMPTY_DIGEST, len(OCI_EMPTY_DATA))
        empty = {"mediaType": OCI_EMPTY, "digest": OCI_EMPTY_DIGEST, "size": len(OCI_EMPTY_DATA)}
        manifest = {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "artifactType": RECORD_TYPE,
            "config": empty,
            "layers": [empty],
            "annotations": {
                _NAME_KEY: name,
                _SEQUENCE_KEY: str(imported.sequence),
                _SHA_KEY: imported.manifest_sha256,
                _AT_KEY: imported.at,
            },
        }
        raw = canonical_json(manifest, ascii_only=False)
        self.repository.push_manifest(raw, OCI_MANIFEST, self.tag(name))
