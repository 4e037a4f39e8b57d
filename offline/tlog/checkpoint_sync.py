"""Moving the checkpoint store forward from a reachable Rekor: the online side of pinning.

For each signed tree head the log serves (the active shard and the inactive ones), verify its
signature with the trusted root, then either pin it on first use, or fetch and verify the
consistency proof from the latest pinned checkpoint to it. A smaller tree than the pinned one,
two roots for one size, or a proof that does not hold is refused, and the store keeps evidence.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from offline.errors import VerificationFailure
from offline.tlog.checkpoint import Checkpoint, find_log_for_checkpoint
from offline.tlog.checkpoint_store import AddResult, CheckpointStore, StaleProofError
from offline.tlog.rekor_client import RekorClient
from offline.tlog.rekor_json import parse_consistency_proof, parse_tree_heads
from offline.tlog.witness import WitnessPolicy
from offline.trust.root import LogInstance, TrustedRoot


class RollbackError(VerificationFailure):
    """The log serves a smaller tree than one already pinned."""


@dataclass(frozen=True)
class SyncResult:
    checkpoint: Checkpoint
    log: LogInstance
    added: AddResult
    first_use: bool


STALE_RETRIES = 3


def advance(
    store: CheckpointStore,
    client: RekorClient,
    checkpoint: Checkpoint,
    log: LogInstance,
) -> SyncResult:
    """Pin a verified checkpoint of `client`'s log, fetching the consistency proof it needs.

    Another run may move the store between reading it and adding: the proof is then stale
    (the store says so under its lock) and is fetched again for the new latest checkpoint.
    """
    for attempt in range(STALE_RETRIES):
        try:
            return _advance_once(store, client, checkpoint, log)
        except StaleProofError:
            if attempt == STALE_RETRIES - 1:
                raise
    raise AssertionError("unreachable")


def _advance_once(
    store: CheckpointStore, client: RekorClient, checkpoint: Checkpoint, log: LogInstance
) -> SyncResult:
    latest = store.latest(log.log_id, checkpoint.origin)
    if latest is None or latest.size == checkpoint.size:
        # First use, or the same size again (the store refuses a second root as a split view).
        return SyncResult(checkpoint, log, store.add(checkpoint, log), latest is None)
    if checkpoint.size < latest.size:
        raise RollbackError(
            f"log {checkpoint.origin} at {client.base_url} serves size {checkpoint.size}, smaller "
            f"than the pinned size {latest.size}: a rollback, or another log under the same key; "
            f"nothing was stored"
        )
    tree_id = checkpoint.tree_id
    if tree_id is None:
        raise VerificationFailure(
            f"log {checkpoint.origin}: not a Rekor v1 origin (host - treeID), so its consistency "
            f"proofs cannot be asked for through the v1 API"
        )
    raw = client.consistency_proof(latest.size, checkpoint.size, str(tree_id))
    source = f"{client.base_url} consistency proof {latest.size}..{checkpoint.size}"
    proof = parse_consistency_proof(json.dumps(raw).encode(), source)
    if proof.root_hash is not None and proof.root_hash != checkpoint.root_hash:
        raise VerificationFailure(
            f"{source} ends at root {proof.root_hash.hex()[:16]}…, but the signed checkpoint at "
            f"size {checkpoint.size} has root {checkpoint.root_hash.hex()[:16]}…"
        )
    added = store.add(checkpoint, log, proof.hashes, proof_sizes=(latest.size, checkpoint.size))
    return SyncResult(checkpoint, log, added, False)


def sync_from_rekor(
    client: RekorClient,
    store: CheckpointStore,
    trusted_root: TrustedRoot,
    witness_policy: WitnessPolicy | None = None,
) -> list[SyncResult]:
    info = client.log_info()
    heads = parse_tree_heads(json.dumps(info).encode(), f"{client.base_url}/api/v1/log")
    results = []
    for head in heads:
        checkpoint, log = find_log_for_checkpoint(head.note, trusted_root, witness_policy)
        if (head.claimed_size not in (None, checkpoint.size)) or (
            head.claimed_root not in (None, checkpoint.root_hash)
        ):
            raise VerificationFailure(
                f"{client.base_url}: treeSize/rootHash disagree with the signed "
                f"{checkpoint.describe()}"
            )
        results.append(advance(store, client, checkpoint, log))
    return results
