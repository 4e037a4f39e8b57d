"""The checkpoint store's files and what they hold: each log's `state.json` (the JSON form of a
LogState with a SHA-256 of its canonical bytes, parsed strictly), the export file that carries
every log's state to another host, and the directory name of each log. Nothing here opens,
locks or writes a file of the store: checkpoint_store does, and applies checkpoint_state's rules.

The checksum only catches truncation and accidents; what stops an edit is that the store
re-verifies every state it reads for pinning.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from offline.canonical_json import canonical_json
from offline.errors import UsageError
from offline.inputs import parse_json_object, read_input
from offline.strict import StrictReader, at
from offline.tlog.checkpoint_state import Anchor, LogState, StoredCheckpoint, StoredProof

STATE_FORMAT = "airgap-checkpoint-log/v1"
EXPORT_FORMAT = "airgap-checkpoint-export/v1"


def log_dir_name(log_id: bytes, origin: str) -> str:
    """A filesystem-safe, collision-free directory name for one log: its key and its tree."""
    return _dir_name(origin, log_id + b"\n" + origin.encode())


def legacy_dir_name(origin: str) -> str:
    """The name stores made before logs were keyed by their key as well; still read."""
    return _dir_name(origin, origin.encode())


def _dir_name(origin: str, identity: bytes) -> str:
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", origin).strip("._-")[:64] or "log"
    return f"{safe}-{hashlib.sha256(identity).hexdigest()[:12]}"


def format_time(value: datetime) -> str:
    """A time as the files write it: UTC, ISO 8601, `Z`."""
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def canonical(doc: dict[str, Any]) -> bytes:
    """The bytes a state file's checksum covers."""
    return canonical_json(doc, ascii_only=False)


def state_document(state: LogState) -> dict[str, Any]:
    """The JSON form of one log's state, with its checksum."""
    doc: dict[str, Any] = {
        "format": STATE_FORMAT,
        "origin": state.origin,
        "log_id": state.log_id.hex(),
        "checkpoints": [
            {"size": c.size, "root": c.root.hex(), "note": c.note, "added": format_time(c.added)}
            for c in state.checkpoints
        ],
        "proofs": [
            {"from_size": p.from_size, "to_size": p.to_size, "hashes": [h.hex() for h in p.hashes]}
            for p in state.proofs
        ],
        "anchors": [
            {"size": a.size, "root": a.root.hex(), "added": format_time(a.added)}
            for a in state.anchors
        ],
    }
    doc["sha256"] = hashlib.sha256(canonical(doc)).hexdigest()
    return doc


def _checkpoint(read: StrictReader, value: object, path: str) -> StoredCheckpoint:
    entry = read.mapping(value, path, ("size", "root", "note", "added"))
    return StoredCheckpoint(
        size=read.integer(entry["size"], at(path, "size")),
        root=read.hex_bytes(entry["root"], at(path, "root")),
        note=read.string(entry["note"], at(path, "note")),
        added=read.time(entry["added"], at(path, "added")),
    )


def _proof(read: StrictReader, value: object, path: str) -> StoredProof:
    entry = read.mapping(value, path, ("from_size", "to_size", "hashes"))
    hashes = read.sequence(entry["hashes"], at(path, "hashes"))
    return StoredProof(
        from_size=read.integer(entry["from_size"], at(path, "from_size")),
        to_size=read.integer(entry["to_size"], at(path, "to_size")),
        hashes=tuple(read.hex_bytes(h, at(at(path, "hashes"), i)) for i, h in enumerate(hashes)),
    )


def _anchor(read: StrictReader, value: object, path: str) -> Anchor:
    entry = read.mapping(value, path, ("size", "root", "added"))
    return Anchor(
        size=read.integer(entry["size"], at(path, "size")),
        root=read.hex_bytes(entry["root"], at(path, "root")),
        added=read.time(entry["added"], at(path, "added")),
    )


def decode_state(doc: dict[str, Any]) -> LogState:
    """Parse a state document (checksum already checked); ValueError says what is wrong."""
    if doc.get("format") != STATE_FORMAT:
        raise ValueError(f"unknown format {doc.get('format')!r}")
    read = StrictReader("log state")
    try:
        top = read.mapping(
            doc, "", ("format", "origin", "log_id", "checkpoints", "proofs", "anchors")
        )
        checkpoints = tuple(
            _checkpoint(read, c, at("checkpoints", i))
            for i, c in enumerate(read.sequence(top["checkpoints"], "checkpoints"))
        )
        proofs = tuple(
            _proof(read, p, at("proofs", i))
            for i, p in enumerate(read.sequence(top["proofs"], "proofs"))
        )
        anchors = tuple(
            _anchor(read, a, at("anchors", i))
            for i, a in enumerate(read.sequence(top["anchors"], "anchors"))
        )
        state = LogState(
            origin=read.string(top["origin"], "origin"),
            log_id=read.hex_bytes(top["log_id"], "log_id"),
            checkpoints=checkpoints,
            proofs=proofs,
            anchors=anchors,
        )
    except UsageError as exc:  # the store words a bad file as corrupt, with the reason
        raise ValueError(str(exc)) from None
    sizes = [c.size for c in checkpoints]
    if not sizes or sizes != sorted(set(sizes)):
        raise ValueError("checkpoints are missing, unsorted or repeated")
    return state


def parse_state_file(raw: bytes) -> LogState:
    """A state file's bytes: valid JSON, its checksum matching, every field as written;
    ValueError says what is wrong."""
    try:
        doc = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"not valid JSON, truncated? ({exc})") from exc
    if not isinstance(doc, dict) or not isinstance(doc.get("sha256"), str):
        raise ValueError("no checksum")
    checksum = doc.pop("sha256")
    if hashlib.sha256(canonical(doc)).hexdigest() != checksum:
        raise ValueError("checksum mismatch, the file was truncated or edited")
    return decode_state(doc)


def export_document(states: Sequence[LogState], exported: datetime) -> dict[str, Any]:
    """The export file's content: every log's state, as its state file holds it."""
    return {
        "format": EXPORT_FORMAT,
        "exported": format_time(exported),
        "logs": [state_document(s) for s in states],
    }


def read_export(path: Path) -> list[LogState]:
    """The log states of an export file, strictly parsed; not yet verified (the importer
    re-verifies every signature and proof)."""
    doc = parse_json_object(read_input(path, "checkpoint export"), f"checkpoint export {path}")
    if doc.get("format") != EXPORT_FORMAT:
        raise UsageError(f"checkpoint export {path}: not an {EXPORT_FORMAT} file")
    logs = doc.get("logs")
    if not isinstance(logs, list):
        raise UsageError(f"checkpoint export {path}: 'logs' is not a list")
    states = []
    for i, log in enumerate(logs):
        if not isinstance(log, dict):
            raise UsageError(f"checkpoint export {path}: log {i} is not an object")
        log.pop("sha256", None)  # everything is re-verified below
        try:
            states.append(decode_state(log))
        except ValueError as exc:
            raise UsageError(f"checkpoint export {path}: log {i}: {exc}") from exc
    logs = [(s.log_id, s.origin) for s in states]
    if len(set(logs)) != len(logs):
        raise UsageError(f"checkpoint export {path}: a log appears twice")
    return states
