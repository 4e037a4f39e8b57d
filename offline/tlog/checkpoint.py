"""Checkpoints (signed tree heads) of Rekor v1 and Rekor v2 / C2SP tlog-checkpoint logs.

A checkpoint is a signed note whose text is: origin, decimal tree size, base64 root hash, then
optional non-empty extension lines. Rekor v1 origins are `<hostname> - <treeID>` and its
signature line is named after the hostname alone; a C2SP log signs under its origin.

For Rekor v1 the signer name is not compared with the trusted root's baseUrl: Rekor takes it from
`--rekor_server.hostname`, which a private deployment may leave at the pod's hostname. The key
(and with it the key ID) is what identifies the log. For Rekor v2 the origin must equal the
baseUrl's hostname, as sigstore-go requires.
"""

from __future__ import annotations

import base64
import binascii
import re
from datetime import UTC, datetime

from offline.errors import AirgapError, VerificationFailure
from offline.record import Record
from offline.tlog.merkle import HASH_SIZE
from offline.tlog.note import (
    CosignatureVerifier,
    KeyVerifier,
    NoteError,
    NoteFormatError,
    NoteVerifier,
    SignedNote,
    as_note,
    c2sp_log_verifier,
    cosignature_timestamp,
    rekor_v1_verifier,
    verify_note,
)
from offline.tlog.witness import WitnessPolicy
from offline.trust.root import LogInstance, TrustedRoot

# Trillian tree IDs are int64 and sizes uint64: at most 19 and 20 digits, so that no number is
# ever converted from an arbitrarily long string.
REKOR_V1_ORIGIN = re.compile(r"(?P<host>.*) - (?P<tree>[0-9]{1,19})")
SIZE = re.compile(r"0|[1-9][0-9]{0,19}")
MAX_SIZE = (1 << 64) - 1


class CheckpointError(VerificationFailure):
    """A checkpoint is malformed, or is not signed as its log requires."""


class CheckpointFormatError(CheckpointError):
    """A checkpoint that cannot be read at all: bad input (exit 2), not a failed check."""

    exit_code = 2


class Cosignature(Record):
    """A witness cosignature that verified: who, and the time the witness vouched for."""

    __slots__ = ("key_name", "timestamp", "witness")

    def __init__(self, witness: str, key_name: str, timestamp: int) -> None:
        self.witness = witness
        self.key_name = key_name
        self.timestamp = timestamp

    @property
    def time(self) -> datetime:
        return datetime.fromtimestamp(self.timestamp, UTC)


class Checkpoint(Record):
    __slots__ = ("cosignatures", "extensions", "note", "origin", "root_hash", "size")

    def __init__(
        self,
        origin: str,
        size: int,
        root_hash: bytes,
        extensions: tuple[str, ...],
        note: SignedNote,
        cosignatures: tuple[Cosignature, ...] = (),
    ) -> None:
        self.origin = origin
        self.size = size
        self.root_hash = root_hash
        self.extensions = extensions
        self.note = note
        self.cosignatures = cosignatures

    @property
    def is_rekor_v1(self) -> bool:
        return REKOR_V1_ORIGIN.fullmatch(self.origin) is not None

    @property
    def signer_name(self) -> str:
        """The key name the log signs under: Rekor v1's hostname, else the origin."""
        match = REKOR_V1_ORIGIN.fullmatch(self.origin)
        return match["host"] if match else self.origin

    @property
    def tree_id(self) -> int | None:
        match = REKOR_V1_ORIGIN.fullmatch(self.origin)
        return int(match["tree"]) if match else None

    @property
    def text(self) -> str:
        return self.note.text

    @property
    def note_text(self) -> str:
        """The whole signed note (text and signature lines)."""
        return self.note.serialize()

    def describe(self) -> str:
        return f"checkpoint {self.origin} at size {self.size}"


def parse_checkpoint(data: bytes | str | SignedNote) -> Checkpoint:
    """Parse (not verify) a checkpoint note."""
    try:
        note = as_note(data)
    except NoteFormatError as exc:
        raise CheckpointFormatError(f"checkpoint: {exc}") from exc
    except NoteError as exc:
        raise CheckpointError(f"checkpoint: {exc}") from exc
    lines = note.text.split("\n")[:-1]  # the text ends with "\n"
    if len(lines) < 3:
        raise CheckpointFormatError(
            f"checkpoint has {len(lines)} text lines, needs origin, tree size and root hash"
        )
    origin, size_line, root_line, extensions = lines[0], lines[1], lines[2], tuple(lines[3:])
    if not origin:
        raise CheckpointFormatError("checkpoint has an empty origin line")
    where = f"checkpoint {origin}"
    if not SIZE.fullmatch(size_line) or int(size_line) > MAX_SIZE:
        raise CheckpointFormatError(
            f"{where}: tree size {size_line[:40]!r} is not a decimal number"
        )
    size = int(size_line)
    try:
        root = base64.b64decode(root_line, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise CheckpointFormatError(f"{where} at size {size}: root hash is not base64") from exc
    if len(root) != HASH_SIZE:
        raise CheckpointFormatError(
            f"{where} at size {size}: root hash is {len(root)} bytes, expected {HASH_SIZE}"
        )
    if any(not line for line in extensions):
        raise CheckpointFormatError(f"{where} at size {size}: empty extension line")
    return Checkpoint(origin, size, root, extensions, note)


def log_verifier(checkpoint: Checkpoint, log: LogInstance) -> KeyVerifier:
    """The note verifier `log` signs `checkpoint` with (Rekor v1 or C2SP rules)."""
    if checkpoint.is_rekor_v1:
        return rekor_v1_verifier(checkpoint.signer_name, log.public_key, log.public_key_der)
    if checkpoint.origin != log.hostname:
        raise CheckpointError(
            f"{checkpoint.describe()}: origin does not match the log's hostname "
            f"{log.hostname!r} (from baseUrl {log.base_url}); check the log's --hostname "
            "and the trusted root"
        )
    return c2sp_log_verifier(checkpoint.origin, log.public_key, log.public_key_der, log.key_details)


def verify_checkpoint(
    data: bytes | str | SignedNote | Checkpoint,
    log: LogInstance,
    witness_policy: WitnessPolicy | None = None,
) -> Checkpoint:
    """Verify that `log` signed the checkpoint and, if given, that the witness quorum holds.

    Signature lines from unknown keys are ignored; a known key (the log's or a policy witness's)
    whose signature fails rejects the checkpoint.
    """
    checkpoint = data if isinstance(data, Checkpoint) else parse_checkpoint(data)
    verifier = log_verifier(checkpoint, log)
    witnesses = witness_policy.verifiers() if witness_policy else ()
    verifiers: list[NoteVerifier] = [verifier, *witnesses]
    try:
        verified = verify_note(checkpoint.note, verifiers)
    except NoteError as exc:
        raise CheckpointError(f"{checkpoint.describe()}: {exc}") from exc
    if not any(v.verifier is verifier for v in verified):
        raise CheckpointError(
            f"{checkpoint.describe()}: not signed by the log {log.base_url} "
            f"(expected a signature from {verifier.describe()})"
        )
    cosignatures: list[Cosignature] = []
    if witness_policy is not None:
        for v in verified:
            if isinstance(v.verifier, CosignatureVerifier):
                name = witness_policy.witness_name(v.verifier) or v.verifier.name
                stamp = cosignature_timestamp(v.signature.signature)
                cosignatures.append(Cosignature(name, v.verifier.name, stamp))
        cosigned = {c.witness for c in cosignatures}
        if not witness_policy.satisfied(cosigned):
            raise CheckpointError(
                f"{checkpoint.describe()}: witness {witness_policy.describe_quorum()} not met "
                f"(valid cosignatures from: {', '.join(sorted(cosigned)) or 'none'})"
            )
    return Checkpoint(
        checkpoint.origin,
        checkpoint.size,
        checkpoint.root_hash,
        checkpoint.extensions,
        checkpoint.note,
        tuple(cosignatures),
    )


def candidate_logs(checkpoint: Checkpoint, trusted_root: TrustedRoot) -> list[LogInstance]:
    """Logs whose key could have made one of the checkpoint's signatures, by key hint."""
    hints = {sig.key_id for sig in checkpoint.note.signatures}
    found: list[LogInstance] = []
    for hint in hints:
        found.extend(t for t in trusted_root.tlogs_with_hint(hint) if t not in found)
    for tlog in trusted_root.tlogs:
        # A private log's logId may be computed differently from its checkpoint key ID.
        if tlog not in found and _key_id_or_none(checkpoint, tlog) in hints:
            found.append(tlog)
    return found


def _key_id_or_none(checkpoint: Checkpoint, log: LogInstance) -> bytes | None:
    try:
        return log_verifier(checkpoint, log).key_id
    except AirgapError:  # e.g. a key type that cannot sign checkpoints: not a candidate
        return None


def find_log_for_checkpoint(
    data: bytes | str | SignedNote | Checkpoint,
    trusted_root: TrustedRoot,
    witness_policy: WitnessPolicy | None = None,
) -> tuple[Checkpoint, LogInstance]:
    """Select the trusted root's log that signed the checkpoint (by key hint), and verify."""
    checkpoint = data if isinstance(data, Checkpoint) else parse_checkpoint(data)
    candidates = candidate_logs(checkpoint, trusted_root)
    if not candidates:
        hints = ", ".join(s.key_id.hex() for s in checkpoint.note.signatures)
        raise CheckpointError(
            f"{checkpoint.describe()}: no log in the trusted root matches its key IDs ({hints}); "
            "is this the right trusted root?"
        )
    failure: CheckpointError | None = None
    for log in candidates:
        try:
            return verify_checkpoint(checkpoint, log, witness_policy), log
        except CheckpointError as exc:
            failure = failure or exc
    assert failure is not None
    raise failure
