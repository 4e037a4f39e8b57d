"""The checkpoint store: per log, the signature-checked checkpoints this host has pinned, the
consistency proofs that link them, and anchors proven consistent with them.

A log is what signs it and which tree: its log ID (the key) and the checkpoint origin (for
Rekor v1 `<host> - <tree ID>`). Layout: `<store>/<safe origin>-<hash of both>/state.json`, and
`evidence/` beside it for every refused inconsistency.

What protects the files: the SHA-256 inside each state file only catches truncation and
accidents (anyone who can edit the file can recompute it). What stops an edit is that every
state is re-verified when read for pinning: each checkpoint's signature against the trusted
root, each stored consistency proof, each link to the latest checkpoint. An edited root, proof
or size is refused; a deleted file or store only forgets (pinning for that log is then off
under the default mode), so protect the directory with file permissions.
Writes go through a temporary file and a rename, under a lock. The rules live in
`checkpoint_state`, the files' format (state files, exports, directory names) in
`checkpoint_files`.
"""

from __future__ import annotations

import fcntl
import json
import os
import secrets
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from offline.datadir import user_data_dir
from offline.errors import AirgapError, UsageError, VerificationFailure
from offline.inputs import MAX_INPUT_SIZE, open_regular
from offline.record import Record
from offline.tlog import checkpoint_state as rules
from offline.tlog.checkpoint import Checkpoint, CheckpointError, verify_checkpoint
from offline.tlog.checkpoint_files import (
    export_document,
    format_time,
    legacy_dir_name,
    log_dir_name,
    parse_state_file,
    read_export,
    state_document,
)
from offline.tlog.checkpoint_state import (
    AddResult,
    Anchor,
    ConsistencyProofRequired,
    InconsistentLogError,
    LogMismatchError,
    LogState,
    PinResult,
    SplitViewError,
    StaleProofError,
    StoreConflict,
    StoredCheckpoint,
    StoredProof,
    UnpinnedError,
)
from offline.tlog.witness import WitnessPolicy
from offline.trust.root import LogInstance, TrustedRoot

__all__ = [
    "AddResult",
    "Anchor",
    "CheckpointStore",
    "ConsistencyProofRequired",
    "ImportResult",
    "InconsistentLogError",
    "LogMismatchError",
    "LogState",
    "PinResult",
    "SplitViewError",
    "StaleProofError",
    "StoreCorruptError",
    "StoredCheckpoint",
    "StoredProof",
    "UnpinnedError",
    "default_checkpoint_dir",
]

STORE_ENV = "AIRGAP_CHECKPOINTS"
STATE_FILE = "state.json"
EVIDENCE_DIR = "evidence"
LOCK_FILE = ".lock"


class StoreCorruptError(AirgapError):
    """A state file is unreadable, truncated or edited; nothing is reset automatically."""


class ImportResult(Record):
    __slots__ = ("anchors_added", "checkpoints_added", "latest_size", "origin")

    def __init__(
        self, origin: str, checkpoints_added: int, anchors_added: int, latest_size: int
    ) -> None:
        self.origin = origin
        self.checkpoints_added = checkpoints_added
        self.anchors_added = anchors_added
        self.latest_size = latest_size


def atomic_write(path: Path, data: bytes) -> None:
    """offline.atomicfile's, imported when the store is written: reading it (a verification)
    pays for none of what writing needs."""
    from offline import atomicfile

    atomicfile.atomic_write(path, data)


def default_checkpoint_dir() -> Path:
    """$AIRGAP_CHECKPOINTS, else `checkpoints` in the airgap user data directory."""
    env = os.environ.get(STORE_ENV)
    if env:
        return Path(env)
    return user_data_dir() / "checkpoints"


def _signed_head(note: str, log: LogInstance) -> tuple[str, int, bytes]:
    checkpoint = verify_checkpoint(note, log)
    return checkpoint.origin, checkpoint.size, checkpoint.root_hash


def _utcnow() -> datetime:
    return datetime.now(UTC)


class CheckpointStore:
    """The store at `path`. With a trusted root, every log state read is re-verified (each
    checkpoint's signature, each proof, each link), so an edited file cannot pin anything;
    pinning refuses to run without one."""

    def __init__(
        self,
        path: str | Path | None = None,
        clock: Callable[[], datetime] = _utcnow,
        *,
        trusted_root: TrustedRoot | None = None,
    ) -> None:
        self.path = Path(path) if path is not None else default_checkpoint_dir()
        self._clock = clock
        self.trusted_root = trusted_root
        self._verified: dict[Path, tuple[tuple[int, int, int], LogState]] = {}

    # -- reading ---------------------------------------------------------------------------

    def _corrupt(self, path: Path, reason: str) -> StoreCorruptError:
        return StoreCorruptError(
            f"checkpoint store file {path} is corrupt: {reason}; nothing was changed: restore it "
            "from a backup or an `airgap checkpoint export`, or move it aside to pin this log anew"
        )

    def _read_file(self, path: Path) -> LogState | None:
        try:
            # A regular file within the input limit: a FIFO put here would block every run.
            with open_regular(path, "checkpoint store file") as f:
                raw = f.read(MAX_INPUT_SIZE + 1)
        except FileNotFoundError:
            return None
        if len(raw) > MAX_INPUT_SIZE:
            raise self._corrupt(path, f"larger than {MAX_INPUT_SIZE} bytes")
        try:
            state = parse_state_file(raw)
        except ValueError as exc:
            raise self._corrupt(path, str(exc)) from exc
        names = (log_dir_name(state.log_id, state.origin), legacy_dir_name(state.origin))
        if path.parent.name not in names:
            raise self._corrupt(path, f"it holds log {state.origin!r}, not this directory's log")
        return state

    def _state_files(self) -> list[Path]:
        if not self.path.is_dir():
            return []
        # Anything named state.json is read (and refused if not a regular file): a FIFO or a
        # link in its place must not make the store quietly forget a log.
        return sorted(
            d / STATE_FILE
            for d in self.path.iterdir()
            if d.is_dir() and os.path.lexists(d / STATE_FILE)
        )

    def _load(self, path: Path) -> LogState | None:
        """One state file, re-verified against the trusted root when the store has one.

        A log the trusted root no longer lists is read but cannot pin: no entry of it verifies.
        """
        if self.trusted_root is None:
            return self._read_file(path)
        try:
            info = path.stat()
        except FileNotFoundError:
            return None
        stamp = (info.st_mtime_ns, info.st_size, info.st_ino)
        cached = self._verified.get(path)
        if cached is not None and cached[0] == stamp:
            return cached[1]
        state = self._read_file(path)
        if state is None:
            return None
        log = self.trusted_root.tlog_by_id(state.log_id)
        if log is not None:
            try:
                rules.check_state(state, lambda note: _signed_head(note, log))
            except ValueError as exc:
                raise self._corrupt(path, str(exc)) from exc
        self._verified[path] = (stamp, state)
        return state

    def _located(self) -> list[tuple[Path, LogState]]:
        found = []
        for path in self._state_files():
            state = self._load(path)
            if state is not None:
                found.append((path.parent, state))
        return found

    def _find(self, log_id: bytes, origin: str) -> tuple[Path, LogState] | None:
        matches = [(d, s) for d, s in self._located() if (s.log_id, s.origin) == (log_id, origin)]
        if len(matches) > 1:
            raise self._corrupt(matches[1][0] / STATE_FILE, f"a second state file for {origin}")
        return matches[0] if matches else None

    def _log_dir(self, log_id: bytes, origin: str) -> Path:
        found = self._find(log_id, origin)
        return found[0] if found else self.path / log_dir_name(log_id, origin)

    def states(self) -> list[LogState]:
        return sorted((s for _, s in self._located()), key=lambda s: (s.origin, s.log_id))

    def states_of(self, log_id: bytes) -> list[LogState]:
        """Every tree (origin) the store pins for the log with this key."""
        return [s for s in self.states() if s.log_id == log_id]

    def origins(self) -> list[str]:
        return [s.origin for s in self.states()]

    def state(self, log_id: bytes, origin: str) -> LogState | None:
        found = self._find(log_id, origin)
        return found[1] if found else None

    def knows(self, log_id: bytes, origin: str | None = None) -> bool:
        """Whether the store pins this log (any of its trees, or the one under `origin`)."""
        if origin is None:
            return bool(self.states_of(log_id))
        return self.state(log_id, origin) is not None

    def newest_added(self, log_id: bytes, origin: str | None = None) -> datetime | None:
        """When the newest checkpoint of this log (of the tree under `origin`, if given) was
        pinned: what a maximum checkpoint age is measured against."""
        states = [s for s in self.states_of(log_id) if origin is None or s.origin == origin]
        return max((s.latest.added for s in states), default=None)

    def pins_origin(self, origin: str) -> bool:
        """Whether any log (under any key) is pinned under this origin."""
        return any(s.origin == origin for s in self.states())

    def latest(self, log_id: bytes, origin: str) -> StoredCheckpoint | None:
        state = self.state(log_id, origin)
        return state.latest if state else None

    def root_at(self, log_id: bytes, origin: str, size: int) -> bytes | None:
        state = self.state(log_id, origin)
        pinned = state.pinned_at(size) if state else None
        return pinned.root if pinned else None

    def proof_endpoints(self, log_id: bytes, origin: str, size: int) -> tuple[int, int] | None:
        """(from_size, to_size) of the consistency proof that adding a checkpoint at `size`
        needs, or None when it needs none (first, already pinned, or empty)."""
        return rules.proof_endpoints(self.state(log_id, origin), size)

    def pin(
        self, log_id: bytes, origin: str, size: int, root: bytes, note: str | None = None
    ) -> PinResult:
        """Whether (size, root) of the log with key `log_id` is pinned: a stored checkpoint or
        anchor of that log, under that origin, has exactly that.

        Raises UnpinnedError when the store cannot tell, SplitViewError (and keeps evidence,
        including `note` if given) when the store holds another root for that size.
        """
        if self.trusted_root is None:
            raise UsageError("pinning needs the trusted root, to re-verify the stored checkpoints")
        state = self.state(log_id, origin)
        if state is None:
            self._refuse_other_tree(log_id, origin)
        try:
            return rules.pin(state, origin, size, root, note)
        except StoreConflict as conflict:
            raise self._refuse(log_id, origin, conflict) from None

    def _refuse_other_tree(self, log_id: bytes, origin: str) -> None:
        """An unpinned (key, origin) next to pinned ones: say which pinned log it is not."""
        same_key = [s.origin for s in self.states_of(log_id)]
        if same_key:
            raise UnpinnedError(
                f"log {origin}: not pinned, but its key ({log_id.hex()[:16]}…) is pinned for "
                f"{', '.join(same_key)}; a checkpoint under another origin (another tree or host) "
                "is not the pinned log; if it is a new shard of that log, pin it with `airgap "
                "checkpoint add`"
            )
        other_key = [s for s in self.states() if s.origin == origin]
        if other_key:
            raise UnpinnedError(
                f"log {origin}: pinned for log key {other_key[0].log_id.hex()[:16]}…, but this "
                f"checkpoint is signed by key {log_id.hex()[:16]}…; another log's key cannot "
                "speak for a pinned log"
            )

    # -- changing --------------------------------------------------------------------------

    @contextmanager
    def _locked(self) -> Iterator[None]:
        self.path.mkdir(parents=True, exist_ok=True, mode=0o755)
        with open(self.path / LOCK_FILE, "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def _write(self, state: LogState) -> None:
        directory = self._log_dir(state.log_id, state.origin)
        directory.mkdir(parents=True, exist_ok=True, mode=0o755)
        content = json.dumps(state_document(state), indent=2, ensure_ascii=False) + "\n"
        atomic_write(directory / STATE_FILE, content.encode())

    def _refuse(self, log_id: bytes, origin: str, conflict: StoreConflict) -> AirgapError:
        """Keep the evidence of a refused inconsistency; the error says where it is."""
        now = self._clock()
        directory = self._log_dir(log_id, origin) / EVIDENCE_DIR
        stamp = now.astimezone(UTC).strftime("%Y%m%dT%H%M%S.%fZ")
        path = directory / f"{stamp}-{conflict.kind}-{secrets.token_hex(3)}.json"
        record = {
            "kind": conflict.kind,
            "origin": origin,
            "log_id": log_id.hex(),
            "detected": format_time(now),
            "summary": conflict.summary,
            **conflict.evidence,
        }
        try:
            directory.mkdir(parents=True, exist_ok=True, mode=0o755)
            atomic_write(path, (json.dumps(record, indent=2, ensure_ascii=False) + "\n").encode())
        except OSError as exc:  # a read-only store must still report the inconsistency
            return conflict.error(
                f"{conflict.summary}; could not save the evidence in {directory} "
                f"({exc.strerror}); {conflict.advice}"
            )
        return conflict.error(f"{conflict.summary}; evidence saved to {path}; {conflict.advice}")

    def _refuse_mixed_keys(self, log_id: bytes, origin: str) -> None:
        for other in self.states():
            if other.origin == origin and other.log_id != log_id:
                raise LogMismatchError(
                    f"log {origin}: pinned checkpoints were signed by log ID "
                    f"{other.log_id.hex()[:16]}…, this one by {log_id.hex()[:16]}…; refusing to "
                    "mix two keys under one origin"
                )

    def add(
        self,
        checkpoint: Checkpoint,
        log: LogInstance,
        proof: Sequence[bytes] | None = None,
        *,
        proof_sizes: tuple[int, int] | None = None,
    ) -> AddResult:
        """Pin a checkpoint the caller verified against `log`.

        `proof` is the consistency proof from the latest pinned checkpoint to this one, or, for
        an older checkpoint, from this one to the next larger pinned checkpoint; `proof_sizes`
        says which sizes the caller fetched it for. The state is read again under the lock: if
        another run moved the store meanwhile, the proof is stale (StaleProofError), not a lie.
        """
        with self._locked():
            self._refuse_mixed_keys(log.log_id, checkpoint.origin)
            state = self.state(log.log_id, checkpoint.origin)
            needed = rules.proof_endpoints(state, checkpoint.size)
            if proof is not None and proof_sizes is not None and needed not in (None, proof_sizes):
                raise StaleProofError(
                    f"log {checkpoint.origin}: the store moved while this ran: the proof from "
                    f"size {proof_sizes[0]} to {proof_sizes[1]} no longer applies, adding size "
                    f"{checkpoint.size} now needs one from size {needed[0]} to {needed[1]}; "
                    "fetch that proof and run again"
                )
            try:
                new, result = rules.add_checkpoint(
                    state, checkpoint, log.log_id, proof, self._clock()
                )
            except StoreConflict as conflict:
                linked = None
                if state is not None and proof is not None and needed is not None:
                    linked = rules.stale_link(state, checkpoint, proof)
                if linked is not None and needed is not None:
                    raise StaleProofError(
                        f"log {checkpoint.origin}: the proof links sizes {linked[0]} and "
                        f"{linked[1]}, but adding size {checkpoint.size} now needs one from size "
                        f"{needed[0]} to {needed[1]} (did the store move since it was fetched?); "
                        "fetch that proof and run again"
                    ) from None
                raise self._refuse(log.log_id, checkpoint.origin, conflict) from None
            if new is not None and new != state:
                self._write(new)
            return result

    def add_anchor(
        self,
        log_id: bytes,
        origin: str,
        size: int,
        root: bytes,
        proof: Sequence[bytes],
        to_size: int,
    ) -> AddResult:
        """Pin (size, root) by a consistency proof to the pinned checkpoint at `to_size`."""
        with self._locked():
            state = self.state(log_id, origin)
            if state is None:
                raise UnpinnedError(
                    f"log {origin}: no pinned checkpoint to prove size {size} against; run "
                    "`airgap checkpoint add` first"
                )
            try:
                new, result = rules.add_anchor(state, size, root, proof, to_size, self._clock())
            except StoreConflict as conflict:
                raise self._refuse(log_id, origin, conflict) from None
            if new != state:
                self._write(new)
            return result

    # -- moving between hosts --------------------------------------------------------------

    def export_document(self) -> dict[str, Any]:
        return export_document(self.states(), self._clock())

    def export(self, path: str | Path) -> int:
        """Write every log's state to one JSON file; returns the number of logs."""
        doc = self.export_document()
        path = Path(path)
        atomic_write(path, (json.dumps(doc, indent=2, ensure_ascii=False) + "\n").encode())
        return len(doc["logs"])

    def import_(
        self,
        path: str | Path,
        trusted_root: TrustedRoot,
        witness_policy: WitnessPolicy | None = None,
    ) -> list[ImportResult]:
        """Merge an export into this store after re-verifying every checkpoint signature
        against `trusted_root` and every consistency proof. All or nothing."""
        incoming = [
            _reverify(state, trusted_root, witness_policy, str(path))
            for state in read_export(Path(path))
        ]
        with self._locked():
            merged: list[tuple[LogState | None, LogState]] = []
            for state in incoming:
                self._refuse_mixed_keys(state.log_id, state.origin)
                local = self.state(state.log_id, state.origin)
                try:
                    merged.append((local, rules.merge(local, state)))
                except StoreConflict as conflict:
                    raise self._refuse(state.log_id, state.origin, conflict) from None
            for local, new in merged:
                if new != local:
                    self._write(new)
            return [_import_result(local, new) for local, new in merged]


def _import_result(local: LogState | None, new: LogState) -> ImportResult:
    return ImportResult(
        origin=new.origin,
        checkpoints_added=len(new.checkpoints) - (len(local.checkpoints) if local else 0),
        anchors_added=len(new.anchors) - (len(local.anchors) if local else 0),
        latest_size=new.latest.size,
    )


def _reverify(
    state: LogState, trusted_root: TrustedRoot, policy: WitnessPolicy | None, source: str
) -> LogState:
    """`state` with every checkpoint's signature checked against the trusted root."""
    log = trusted_root.tlog_by_id(state.log_id)
    if log is None:
        raise VerificationFailure(
            f"checkpoint export {source}: log {state.origin}: log ID {state.log_id.hex()[:16]}… "
            "is not in the trusted root"
        )
    for stored in state.checkpoints:
        try:
            checkpoint = verify_checkpoint(stored.note, log, policy)
        except CheckpointError as exc:
            raise CheckpointError(f"checkpoint export {source}: {exc}") from exc
        if (checkpoint.origin, checkpoint.size, checkpoint.root_hash) != (
            state.origin,
            stored.size,
            stored.root,
        ):
            raise VerificationFailure(
                f"checkpoint export {source}: log {state.origin}: the entry at size "
                f"{stored.size} holds a note for {checkpoint.describe()}"
            )
    return state
