"""Transparency log entries in a bundle: signed entry timestamps, inclusion proofs, checkpoints.

Our own checks, stricter than the stock clients': the log must be in the trusted root and its
key valid at the entry's time, the proof's tree must be the one the signed checkpoint commits
to, the index must lie inside it, and unknown signature lines on the checkpoint are ignored
rather than fatal (C2SP). Pinning against the checkpoint store builds on the result.
"""

from __future__ import annotations

import base64
from datetime import UTC, datetime

import rfc8785
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding

from offline.errors import VerificationFailure
from offline.record import Record
from offline.tlog.checkpoint import Checkpoint, verify_checkpoint
from offline.tlog.entry_message import TransparencyLogEntry
from offline.tlog.merkle import MerkleError, leaf_hash, verify_inclusion
from offline.tlog.witness import WitnessPolicy
from offline.trust.root import LogInstance, TrustedRoot


class LogEntryFailure(VerificationFailure):
    pass


class VerifiedEntry(Record):
    """What a log entry proved: where it is logged, when, and against which checkpoint."""

    __slots__ = ("checkpoint", "integrated_time", "log", "log_index", "proof_index")

    def __init__(
        self,
        log: LogInstance,
        log_index: int,
        integrated_time: datetime | None,
        checkpoint: Checkpoint | None,
        proof_index: int | None,
    ) -> None:
        self.log = log
        self.log_index = log_index
        self.integrated_time = integrated_time
        self.checkpoint = checkpoint
        self.proof_index = proof_index


def verify_set(entry: TransparencyLogEntry, log: LogInstance) -> None:
    """The signed entry timestamp: the log's promise to include this body at this time."""
    if entry.inclusion_promise is None:
        raise LogEntryFailure(f"log entry {entry.log_index} has no signed entry timestamp")
    try:
        payload = rfc8785.dumps(
            {
                "body": base64.b64encode(entry.canonicalized_body).decode(),
                "integratedTime": entry.integrated_time,
                "logID": entry.log_id.key_id.hex(),
                "logIndex": entry.log_index,
            }
        )
    except rfc8785.CanonicalizationError as exc:  # a log index or time beyond 2**53
        raise LogEntryFailure(
            f"log entry {entry.log_index}: its fields cannot be what a log signed ({exc})"
        ) from exc
    signature = entry.inclusion_promise.signed_entry_timestamp
    key = log.public_key
    try:
        if isinstance(key, ec.EllipticCurvePublicKey):
            key.verify(signature, payload, ec.ECDSA(hashes.SHA256()))
        elif isinstance(key, ed25519.Ed25519PublicKey):
            key.verify(signature, payload)
        else:
            key.verify(signature, payload, padding.PKCS1v15(), hashes.SHA256())
    except InvalidSignature as exc:
        raise LogEntryFailure(
            f"signed entry timestamp of entry {entry.log_index} in {log.base_url} does not verify"
        ) from exc


def _entry_time(entry: TransparencyLogEntry) -> datetime:
    """The integrated time a verified SET vouches for; one the clock cannot hold is refused."""
    if entry.integrated_time is None:
        raise LogEntryFailure(f"log entry {entry.log_index}: its SET vouches for no time")
    try:
        return datetime.fromtimestamp(entry.integrated_time, tz=UTC)
    except (OverflowError, OSError, ValueError) as exc:
        raise LogEntryFailure(
            f"log entry {entry.log_index}: integrated time {entry.integrated_time} is not a "
            f"representable time"
        ) from exc


def _check_path(
    entry: TransparencyLogEntry, index: int, size: int, path: list[bytes], root: bytes
) -> None:
    try:
        verify_inclusion(leaf_hash(entry.canonicalized_body), index, size, path, root)
    except MerkleError as exc:
        raise LogEntryFailure(
            f"inclusion proof of entry {entry.log_index} does not lead to the root it names "
            f"at size {size}: {exc}"
        ) from exc


# Checkpoints whose log signature verified, by the note's text and the log key that signed it:
# the entries of a batch mostly share the checkpoint their proofs lead to, so its signature is
# checked once per process. Only successes are kept; a note checked against a witness policy is
# checked every time.
_verified_checkpoints: dict[tuple[str, bytes, bytes, str, str], Checkpoint] = {}


def _verified_checkpoint(
    note: str, log: LogInstance, witness_policy: WitnessPolicy | None
) -> Checkpoint:
    if witness_policy is not None:
        return verify_checkpoint(note, log, witness_policy)
    key = (note, log.log_id, log.public_key_der, log.base_url, log.key_details)
    checkpoint = _verified_checkpoints.get(key)
    if checkpoint is None:
        checkpoint = _verified_checkpoints[key] = verify_checkpoint(note, log)
    return checkpoint


def verify_entry(
    entry: TransparencyLogEntry,
    trusted_root: TrustedRoot,
    *,
    require_proof: bool,
    witness_policy: WitnessPolicy | None = None,
) -> VerifiedEntry:
    log = trusted_root.tlog_by_id(entry.log_id.key_id)
    if log is None:
        raise LogEntryFailure(
            f"log entry {entry.log_index} comes from log {entry.log_id.key_id.hex()[:16]}…, "
            f"which the trusted root does not list"
        )

    # Every field below is under the bundle author's control. Whatever is present must verify,
    # and at least one of the two proofs must be present: zero and "absent" are not a pass.
    integrated_time: datetime | None = None
    if entry.inclusion_promise is not None:
        verify_set(entry, log)
        integrated_time = _entry_time(entry)
        if not log.valid_at(integrated_time):
            raise LogEntryFailure(
                f"log {log.base_url} key was not valid at the entry's integrated time "
                f"{integrated_time.isoformat()}"
            )

    proof = entry.inclusion_proof
    if proof is None or proof.checkpoint is None:
        if entry.inclusion_promise is None:
            raise LogEntryFailure(
                f"log entry {entry.log_index} in {log.base_url} carries neither a signed entry "
                f"timestamp nor an inclusion proof with a checkpoint, so nothing shows it was "
                f"ever logged"
            )
        if require_proof or witness_policy is not None:
            raise LogEntryFailure(
                f"log entry {entry.log_index} in {log.base_url} has no inclusion proof with a "
                f"checkpoint; fetch one with `airgap proofs fetch` while the log is reachable"
            )
        if proof is not None:
            # A proof with no signed checkpoint proves nothing, but what is present must hold:
            # its path must lead to the root it names (as sigstore-python checks it).
            _check_path(entry, proof.log_index, proof.tree_size, proof.hashes, proof.root_hash)
        return VerifiedEntry(log, entry.log_index, integrated_time, None, None)

    checkpoint = _verified_checkpoint(proof.checkpoint.envelope, log, witness_policy)
    if checkpoint.size != proof.tree_size or checkpoint.root_hash != proof.root_hash:
        raise LogEntryFailure(
            f"inclusion proof of entry {entry.log_index} is for tree size {proof.tree_size} "
            f"root {proof.root_hash.hex()[:16]}…, but the signed checkpoint commits to size "
            f"{checkpoint.size} root {checkpoint.root_hash.hex()[:16]}…"
        )
    try:
        verify_inclusion(
            leaf_hash(entry.canonicalized_body),
            proof.log_index,
            checkpoint.size,
            proof.hashes,
            checkpoint.root_hash,
        )
    except MerkleError as exc:
        raise LogEntryFailure(
            f"entry {entry.log_index} is not in {checkpoint.origin} at size {checkpoint.size}: "
            f"{exc}"
        ) from exc
    return VerifiedEntry(log, entry.log_index, integrated_time, checkpoint, proof.log_index)
