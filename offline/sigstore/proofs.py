"""Completing log entries with inclusion proofs against pinned checkpoints, while Rekor is
reachable, so that later verification needs no Rekor at all.

An entry needs a proof when it has none (cosign's legacy format carries only a SET) or when its
proof leads to a checkpoint the store cannot tie to a pinned one. The fresh proof Rekor returns
is against its current tree; the store is moved forward to that tree (with a verified
consistency proof) before the proof is written into the bundle.
"""

from __future__ import annotations

import base64
import binascii
import copy
import json
from dataclasses import dataclass
from typing import Any

from offline.errors import VerificationFailure
from offline.sigstore.model import fill_proto3_defaults, parse_bundle
from offline.tlog.checkpoint import verify_checkpoint
from offline.tlog.checkpoint_state import UnpinnedError
from offline.tlog.checkpoint_store import CheckpointStore
from offline.tlog.checkpoint_sync import advance
from offline.tlog.merkle import MerkleError, leaf_hash, verify_inclusion
from offline.tlog.rekor_client import RekorClient
from offline.tlog.rekor_json import parse_consistency_proof
from offline.trust.root import TrustedRoot


class ProofFailure(VerificationFailure):
    pass


@dataclass(frozen=True)
class EntryUpdate:
    log_index: int
    action: str  # "kept" (already pinned) or "added" (a fresh proof was written)
    tree_size: int


def _pinned(store: CheckpointStore, entry: dict[str, Any]) -> bool:
    proof = entry.get("inclusionProof") or {}
    envelope = (proof.get("checkpoint") or {}).get("envelope")
    if not envelope:
        return False
    from offline.tlog.checkpoint import parse_checkpoint

    checkpoint = parse_checkpoint(envelope)
    log_id = base64.b64decode(entry["logId"]["keyId"])
    try:
        store.pin(log_id, checkpoint.origin, checkpoint.size, checkpoint.root_hash)
    except UnpinnedError:
        return False
    return True


def complete_bundle(
    bundle: dict[str, Any],
    client: RekorClient,
    store: CheckpointStore,
    trusted_root: TrustedRoot,
    name: str = "bundle",
) -> tuple[dict[str, Any], list[EntryUpdate]]:
    """A copy of `bundle` whose every log entry has an inclusion proof to a pinned checkpoint."""
    parse_bundle(json.dumps(bundle).encode(), name)  # well-formed before anything is fetched
    completed = copy.deepcopy(bundle)
    # protojson leaves out zeros: cosign writes no logIndex for a log's first entry.
    fill_proto3_defaults(completed)
    updates = []
    for entry in completed["verificationMaterial"].get("tlogEntries", []):
        index = int(entry["logIndex"])
        if _pinned(store, entry):
            size = int(entry["inclusionProof"]["treeSize"])
            updates.append(EntryUpdate(index, "kept", size))
            continue
        entry["inclusionProof"] = _fresh_proof(entry, client, store, trusted_root)
        updates.append(EntryUpdate(index, "added", int(entry["inclusionProof"]["treeSize"])))
    return completed, updates


@dataclass(frozen=True)
class _RekorProof:
    body: bytes
    checkpoint: str
    index: int
    tree_size: int
    root: bytes
    hashes: tuple[bytes, ...]


def _read_answer(fetched: dict[str, Any], index: int, base_url: str) -> _RekorProof:
    """Rekor's entry with its inclusion proof; wrong types raise what the caller turns into one
    line."""
    raw = (fetched.get("verification") or {}).get("inclusionProof")
    if not isinstance(raw, dict) or not raw.get("checkpoint"):
        raise ProofFailure(f"Rekor at {base_url} sent no inclusion proof for entry {index}")
    hashes = parse_consistency_proof(
        json.dumps(raw.get("hashes") or []).encode(), f"inclusion proof of entry {index}"
    ).hashes
    return _RekorProof(
        body=base64.b64decode(fetched.get("body", ""), validate=True),
        checkpoint=str(raw["checkpoint"]),
        index=int(raw["logIndex"]),
        tree_size=int(raw["treeSize"]),
        root=bytes.fromhex(raw["rootHash"]),
        hashes=tuple(hashes),
    )


def _fresh_proof(
    entry: dict[str, Any], client: RekorClient, store: CheckpointStore, trusted_root: TrustedRoot
) -> dict[str, Any]:
    log_id = base64.b64decode(entry["logId"]["keyId"])
    log = trusted_root.tlog_by_id(log_id)
    if log is None:
        raise ProofFailure(f"log entry {entry['logIndex']}: its log is not in the trusted root")
    index = int(entry["logIndex"])
    body = base64.b64decode(entry["canonicalizedBody"])
    fetched = client.entry_by_index(index)
    try:
        answer = _read_answer(fetched, index, client.base_url)
    except (KeyError, TypeError, ValueError, AttributeError, binascii.Error) as exc:
        # What Rekor sends is checked like any input: a malformed answer is one line.
        raise ProofFailure(
            f"Rekor at {client.base_url} sent a malformed answer for entry {index} "
            f"({type(exc).__name__})"
        ) from exc
    if answer.body != body:
        raise ProofFailure(
            f"Rekor at {client.base_url} returns another body for log index {index} than the "
            f"bundle records: the entry was not logged as the bundle claims"
        )
    checkpoint = verify_checkpoint(answer.checkpoint, log)
    proof_index, tree_size, hashes = answer.index, answer.tree_size, answer.hashes
    if tree_size != checkpoint.size or answer.root != checkpoint.root_hash:
        raise ProofFailure(
            f"inclusion proof of entry {index} is for another tree than its signed checkpoint"
        )
    try:
        verify_inclusion(leaf_hash(body), proof_index, tree_size, hashes, checkpoint.root_hash)
    except MerkleError as exc:
        raise ProofFailure(f"inclusion proof of entry {index} does not hold: {exc}") from exc
    # The proof counts only once its tree is pinned: move the store forward to it.
    advance(store, client, checkpoint, log)
    return {
        "logIndex": str(proof_index),
        "rootHash": base64.b64encode(checkpoint.root_hash).decode(),
        "treeSize": str(tree_size),
        "hashes": [base64.b64encode(h).decode() for h in hashes],
        "checkpoint": {"envelope": checkpoint.note.serialize()},
    }
