"""What the checkpoint store knows about one log, and the rules for changing it.

Invariant: every stored (size, root), checkpoint or anchor, is proven by stored consistency
proofs to be a prefix of the latest checkpoint. So the store only moves forward, a smaller
checkpoint is accepted as history only with a proof, and one size never has two roots.

Everything here is pure; `checkpoint_store` reads and writes files and keeps evidence, and
`checkpoint_files` is their format.

Why one module of some 500 lines: the model (LogState and what it holds) and the rules that
keep the invariant above (add, pin, merge, check, and the conflicts they refuse with) are one
concern. Every rule reads and rebuilds the model, and every refusal records it as evidence;
apart, the invariant would be stated in one file and kept only in another.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from typing import Any, Literal

from offline.errors import AirgapError, UsageError, VerificationFailure
from offline.record import Record
from offline.tlog.checkpoint import Checkpoint
from offline.tlog.merkle import EMPTY_ROOT, MerkleError, verify_consistency


class SplitViewError(VerificationFailure):
    """The log showed two different roots for one tree size."""


class InconsistentLogError(VerificationFailure):
    """A consistency proof between two pinned trees does not hold."""


class UnpinnedError(VerificationFailure):
    """A tree head cannot be tied to a pinned checkpoint with what the store holds."""


class ConsistencyProofRequired(UsageError):
    """Adding this checkpoint needs a consistency proof the caller did not give."""


class LogMismatchError(VerificationFailure):
    """A checkpoint's origin is pinned under a different log key."""


class StaleProofError(UsageError):
    """The store moved while a consistency proof was being fetched: not a lie, just late."""


class StoredCheckpoint(Record):
    __slots__ = ("added", "note", "root", "size")

    def __init__(self, size: int, root: bytes, note: str, added: datetime) -> None:
        self.size = size
        self.root = root
        self.note = note
        self.added = added


class Anchor(Record):
    """A (size, root) that is not a signed checkpoint but is proven consistent with one."""

    __slots__ = ("added", "root", "size")

    def __init__(self, size: int, root: bytes, added: datetime) -> None:
        self.size = size
        self.root = root
        self.added = added


class StoredProof(Record):
    __slots__ = ("from_size", "hashes", "to_size")

    def __init__(self, from_size: int, to_size: int, hashes: tuple[bytes, ...]) -> None:
        self.from_size = from_size
        self.to_size = to_size
        self.hashes = hashes


Pinned = StoredCheckpoint | Anchor


class LogState(Record):
    __slots__ = ("anchors", "checkpoints", "log_id", "origin", "proofs")

    def __init__(
        self,
        origin: str,
        log_id: bytes,
        checkpoints: tuple[StoredCheckpoint, ...],
        proofs: tuple[StoredProof, ...] = (),
        anchors: tuple[Anchor, ...] = (),
    ) -> None:
        self.origin = origin
        self.log_id = log_id
        self.checkpoints = checkpoints
        self.proofs = proofs
        self.anchors = anchors

    @property
    def latest(self) -> StoredCheckpoint:
        return self.checkpoints[-1]

    def items(self) -> list[Pinned]:
        return [*self.checkpoints, *self.anchors]

    def pinned_at(self, size: int) -> Pinned | None:
        found = next((c for c in self.checkpoints if c.size == size), None)
        return found or next((a for a in self.anchors if a.size == size), None)

    def checkpoint_at(self, size: int) -> StoredCheckpoint | None:
        return next((c for c in self.checkpoints if c.size == size), None)

    def next_larger(self, size: int) -> StoredCheckpoint | None:
        return next((c for c in self.checkpoints if c.size > size), None)

    def with_checkpoint(self, cp: StoredCheckpoint, proof: StoredProof | None) -> LogState:
        checkpoints = tuple(sorted((*self.checkpoints, cp), key=lambda c: c.size))
        return self.replace(checkpoints=checkpoints, proofs=_with_proof(self.proofs, proof))

    def with_anchor(self, anchor: Anchor, proof: StoredProof) -> LogState:
        anchors = tuple(sorted((*self.anchors, anchor), key=lambda a: a.size))
        return self.replace(anchors=anchors, proofs=_with_proof(self.proofs, proof))


def _with_proof(
    proofs: tuple[StoredProof, ...], proof: StoredProof | None
) -> tuple[StoredProof, ...]:
    if proof is None or proof in proofs:
        return proofs
    return tuple(sorted((*proofs, proof), key=lambda p: (p.from_size, p.to_size)))


class PinResult(Record):
    __slots__ = ("latest_size", "origin", "pinned_by", "root", "size")

    def __init__(
        self,
        origin: str,
        size: int,
        root: bytes,
        pinned_by: Literal["checkpoint", "anchor"],
        latest_size: int,
    ) -> None:
        self.origin = origin
        self.size = size
        self.root = root
        self.pinned_by = pinned_by
        self.latest_size = latest_size


AddOutcome = Literal["added", "unchanged", "skipped-empty"]


class AddResult(Record):
    __slots__ = ("origin", "outcome", "previous_latest", "root", "size")

    def __init__(
        self, origin: str, size: int, root: bytes, outcome: AddOutcome, previous_latest: int | None
    ) -> None:
        self.origin = origin
        self.size = size
        self.root = root
        self.outcome = outcome
        self.previous_latest = previous_latest


class StoreConflict(Exception):
    """An inconsistency to refuse and keep as evidence; the store adds where it saved it."""

    def __init__(
        self,
        error: type[AirgapError],
        kind: str,
        summary: str,
        advice: str,
        evidence: dict[str, Any],
    ) -> None:
        super().__init__(summary)
        self.error = error
        self.kind = kind
        self.summary = summary
        self.advice = advice
        self.evidence = evidence


def short(root: bytes) -> str:
    return root.hex()[:16] + "…"


def _record(origin: str, size: int, root: bytes, note: str | None = None) -> dict[str, Any]:
    record: dict[str, Any] = {"origin": origin, "size": size, "root": root.hex()}
    if note is not None:
        record["note"] = note
    return record


def _pinned_record(state: LogState, item: Pinned) -> dict[str, Any]:
    note = item.note if isinstance(item, StoredCheckpoint) else None
    return _record(state.origin, item.size, item.root, note) | {"kind": _kind(item)}


def _kind(item: Pinned) -> Literal["checkpoint", "anchor"]:
    return "checkpoint" if isinstance(item, StoredCheckpoint) else "anchor"


def _proof_record(proof: StoredProof) -> dict[str, Any]:
    return {
        "from_size": proof.from_size,
        "to_size": proof.to_size,
        "hashes": [h.hex() for h in proof.hashes],
    }


def split_view(
    state: LogState, stored: Pinned, root: bytes, what: str, note: str | None = None
) -> StoreConflict:
    return StoreConflict(
        error=SplitViewError,
        kind="split-view",
        summary=(
            f"log {state.origin}: split view at size {stored.size}: the pinned {_kind(stored)} "
            f"has root {short(stored.root)} but {what} has root {short(root)}"
        ),
        advice=(
            "the log has shown two different trees: stop trusting it and report the evidence "
            "to its operator"
        ),
        evidence={
            "stored": _pinned_record(state, stored),
            "offered": _record(state.origin, stored.size, root, note),
        },
    )


def _check_proof(
    state: LogState,
    proof: StoredProof,
    old: tuple[bytes, str | None],
    new: tuple[bytes, str | None],
) -> None:
    """Raise a StoreConflict (kept as evidence) unless `proof` links old to new."""
    try:
        verify_consistency(proof.from_size, proof.to_size, proof.hashes, old[0], new[0])
    except MerkleError as exc:
        raise StoreConflict(
            error=InconsistentLogError,
            kind="inconsistent-proof",
            summary=(
                f"log {state.origin}: consistency proof from size {proof.from_size} to "
                f"{proof.to_size} does not hold ({exc}); refused"
            ),
            advice=(
                "fetch a fresh consistency proof from the log; if it fails again, treat the "
                "log as compromised"
            ),
            evidence={
                "older": _record(state.origin, proof.from_size, old[0], old[1]),
                "newer": _record(state.origin, proof.to_size, new[0], new[1]),
                "proof": _proof_record(proof),
            },
        ) from exc


def proof_hint(origin: str, tree_id: int | None, from_size: int, to_size: int) -> str:
    if tree_id is not None:
        return (
            f"GET /api/v1/log/proof?firstSize={from_size}&lastSize={to_size}&treeID={tree_id} "
            "on the log gives it"
        )
    return "compute it from the log's tiles"


def new_state(checkpoint: Checkpoint, log_id: bytes, now: datetime) -> LogState:
    stored = StoredCheckpoint(checkpoint.size, checkpoint.root_hash, checkpoint.note_text, now)
    return LogState(origin=checkpoint.origin, log_id=log_id, checkpoints=(stored,))


def proof_endpoints(state: LogState | None, size: int) -> tuple[int, int] | None:
    """(from_size, to_size) of the consistency proof adding a checkpoint at `size` needs."""
    if state is None or size == 0 or state.pinned_at(size) is not None:
        return None
    if size > state.latest.size:
        return state.latest.size, size
    larger = state.next_larger(size)
    assert larger is not None  # size < latest.size
    return size, larger.size


def add_checkpoint(
    state: LogState | None,
    checkpoint: Checkpoint,
    log_id: bytes,
    proof: Sequence[bytes] | None,
    now: datetime,
) -> tuple[LogState | None, AddResult]:
    """Add a signature-verified checkpoint under the store's rules."""
    previous = state.latest.size if state else None

    def result(outcome: AddOutcome) -> AddResult:
        return AddResult(
            checkpoint.origin, checkpoint.size, checkpoint.root_hash, outcome, previous
        )

    if checkpoint.size == 0:
        if checkpoint.root_hash != EMPTY_ROOT:
            raise VerificationFailure(
                f"{checkpoint.describe()}: the empty tree must have root {short(EMPTY_ROOT)}"
            )
        # The empty tree pins nothing, and no consistency proof can start from it.
        return state, result("skipped-empty")
    if state is None:
        return new_state(checkpoint, log_id, now), result("added")
    if state.log_id != log_id:
        raise LogMismatchError(
            f"log {state.origin}: pinned checkpoints were signed by log ID "
            f"{state.log_id.hex()[:16]}…, this one by {log_id.hex()[:16]}…; refusing to mix "
            "two keys under one origin"
        )
    note = checkpoint.note_text
    stored = StoredCheckpoint(checkpoint.size, checkpoint.root_hash, note, now)
    pinned = state.pinned_at(checkpoint.size)
    if pinned is not None:
        if pinned.root != checkpoint.root_hash:
            raise split_view(state, pinned, checkpoint.root_hash, "the new checkpoint", note)
        if isinstance(pinned, StoredCheckpoint):
            return state, result("unchanged")
        return state.with_checkpoint(stored, None), result("added")  # an anchor, now signed

    endpoints = proof_endpoints(state, checkpoint.size)
    assert endpoints is not None  # not pinned, not empty
    from_size, to_size = endpoints
    if proof is None:
        hint = proof_hint(state.origin, checkpoint.tree_id, from_size, to_size)
        if checkpoint.size > state.latest.size:
            raise ConsistencyProofRequired(
                f"log {state.origin}: checkpoint at size {checkpoint.size} is newer than the "
                f"latest pinned checkpoint (size {state.latest.size}); it needs a consistency "
                f"proof from size {from_size} to {to_size} (`airgap checkpoint add --proof FILE` "
                f"takes it; {hint})"
            )
        raise ConsistencyProofRequired(
            f"log {state.origin}: checkpoint at size {checkpoint.size} is older than the latest "
            f"pinned checkpoint (size {state.latest.size}); refused as a possible rollback "
            f"unless a consistency proof from size {from_size} to {to_size} shows it is history "
            f"(`airgap checkpoint add --proof FILE` takes it; {hint})"
        )
    link = StoredProof(from_size, to_size, tuple(proof))
    if checkpoint.size > state.latest.size:
        _check_proof(state, link, (state.latest.root, state.latest.note), (stored.root, note))
    else:
        larger = state.checkpoint_at(to_size)
        assert larger is not None
        _check_proof(state, link, (stored.root, note), (larger.root, larger.note))
    return state.with_checkpoint(stored, link), result("added")


def stale_link(
    state: LogState, checkpoint: Checkpoint, proof: Sequence[bytes]
) -> tuple[int, int] | None:
    """The sizes `proof` does link, when it is an honest proof between the new checkpoint and
    another pinned tree head than the ones the store needs now (fetched before the store
    moved): late, not a lie. None when it links nothing the store holds."""
    new = (checkpoint.size, checkpoint.root_hash)
    for item in state.items():
        old = (item.size, item.root)
        lo, hi = (old, new) if item.size < checkpoint.size else (new, old)
        if lo[0] == hi[0]:
            continue
        try:
            verify_consistency(lo[0], hi[0], proof, lo[1], hi[1])
        except MerkleError:
            continue
        return lo[0], hi[0]
    return None


def add_anchor(
    state: LogState,
    size: int,
    root: bytes,
    proof: Sequence[bytes],
    to_size: int,
    now: datetime,
) -> tuple[LogState, AddResult]:
    """Pin (size, root) through a consistency proof to the stored checkpoint at `to_size`."""
    previous = state.latest.size
    pinned = state.pinned_at(size)
    if pinned is not None:
        if pinned.root != root:
            raise split_view(state, pinned, root, "the proven tree head")
        return state, AddResult(state.origin, size, root, "unchanged", previous)
    target = state.checkpoint_at(to_size)
    if target is None:
        raise UnpinnedError(
            f"log {state.origin}: no pinned checkpoint at size {to_size} to prove size {size} "
            "against; add that checkpoint first"
        )
    if not 0 < size < to_size:
        raise UsageError(
            f"log {state.origin}: an anchor at size {size} needs a proof to a larger checkpoint, "
            f"not to size {to_size}"
        )
    link = StoredProof(size, to_size, tuple(proof))
    _check_proof(state, link, (root, None), (target.root, target.note))
    anchor = Anchor(size, root, now)
    return state.with_anchor(anchor, link), AddResult(state.origin, size, root, "added", previous)


def pin(
    state: LogState | None, origin: str, size: int, root: bytes, note: str | None = None
) -> PinResult:
    """Whether (size, root) is pinned; raises UnpinnedError or a split-view StoreConflict."""
    if state is None:
        raise UnpinnedError(
            f"log {origin}: no pinned checkpoint; run `airgap checkpoint add` (or `airgap "
            "checkpoint fetch` where the log is reachable) to pin one"
        )
    pinned = state.pinned_at(size)
    if pinned is not None:
        if pinned.root != root:
            raise split_view(state, pinned, root, "the offered tree head", note)
        return PinResult(origin, size, root, _kind(pinned), state.latest.size)
    if size > state.latest.size:
        raise UnpinnedError(
            f"log {origin}: bundle checkpoint at size {size} is beyond the latest pinned "
            f"checkpoint (size {state.latest.size}); run `airgap checkpoint add` (or `airgap "
            "checkpoint fetch` where the log is reachable) to move the store forward"
        )
    larger = state.next_larger(size)
    to = f" (the next pinned checkpoint is at size {larger.size})" if larger else ""
    raise UnpinnedError(
        f"log {origin}: no stored consistency proof from size {size} to a pinned checkpoint{to}; "
        "add one with `airgap checkpoint add --proof`"
    )


def merge(local: LogState | None, incoming: LogState) -> LogState:
    """Merge an imported log state (signatures already re-verified) into the local one.

    Same rules as adding one at a time: same size needs the same root, and each new tree head
    must be linked to the pinned ones by a consistency proof, which is verified again here.
    """
    state = local or LogState(incoming.origin, incoming.log_id, (incoming.latest,))
    if state.log_id != incoming.log_id:
        raise LogMismatchError(
            f"log {state.origin}: the import pins log ID {incoming.log_id.hex()[:16]}…, the "
            f"local store {state.log_id.hex()[:16]}…; refusing to mix two keys under one origin"
        )
    items = incoming.items()
    roots: dict[int, tuple[bytes, str | None]] = {}
    for item in state.items():
        roots.setdefault(item.size, (item.root, _note_of(item)))
    for item in items:
        pinned = state.pinned_at(item.size)
        if pinned is not None and pinned.root != item.root:
            raise split_view(state, pinned, item.root, "the imported tree head", _note_of(item))
        roots.setdefault(item.size, (item.root, _note_of(item)))
    usable = [p for p in incoming.proofs if p.from_size in roots and p.to_size in roots]
    for proof in usable:
        _check_proof(state, proof, roots[proof.from_size], roots[proof.to_size])

    pending = list(items)
    progress = True
    while pending and progress:
        progress = False
        for item in list(pending):
            pinned = state.pinned_at(item.size)
            if pinned is not None:
                if pinned.root != item.root:
                    raise split_view(state, pinned, item.root, "the imported tree head")
                pending.remove(item)
                continue
            linked = _link(state, item, usable)
            if linked is not None:
                state = linked
                pending.remove(item)
                progress = True
    if pending:
        item = pending[0]
        raise UnpinnedError(
            f"log {state.origin}: the imported {_kind(item)} at size {item.size} is not linked "
            f"to the pinned checkpoints (latest size {state.latest.size}) by any consistency "
            "proof; import refused, nothing changed"
        )
    extra = [p for p in usable if p not in state.proofs]
    for proof in extra:
        if state.pinned_at(proof.from_size) and state.pinned_at(proof.to_size):
            state = state.replace(proofs=_with_proof(state.proofs, proof))
    return state


def _note_of(item: Pinned) -> str | None:
    return item.note if isinstance(item, StoredCheckpoint) else None


def _link(state: LogState, item: Pinned, proofs: Iterable[StoredProof]) -> LogState | None:
    """`state` with `item` added if a (verified) proof ties it to the pinned tree heads."""
    if isinstance(item, StoredCheckpoint) and item.size > state.latest.size:
        for proof in proofs:
            if proof.from_size == state.latest.size and proof.to_size == item.size:
                return state.with_checkpoint(item, proof)
        return None
    for proof in proofs:
        if proof.from_size == item.size and state.checkpoint_at(proof.to_size) is not None:
            if isinstance(item, StoredCheckpoint):
                return state.with_checkpoint(item, proof)
            return state.with_anchor(item, proof)
    return None


def check_state(state: LogState, verify_note: Callable[[str], tuple[str, int, bytes]]) -> None:
    """Raise ValueError unless every stored tree head is proven, not merely written down.

    `verify_note` checks a note's signature against the log's key and returns its (origin,
    size, root). Each checkpoint must be a note the log signed for exactly that tree head, each
    stored proof must hold between the roots it links, and every checkpoint and anchor must
    reach the latest checkpoint through such proofs. An edited root, proof or size cannot pass.
    """
    for stored in state.checkpoints:
        try:
            signed = verify_note(stored.note)
        except AirgapError as exc:
            reason = f"the checkpoint at size {stored.size} does not verify ({exc})"
            raise ValueError(reason) from exc
        if signed != (state.origin, stored.size, stored.root):
            raise ValueError(
                f"the checkpoint at size {stored.size} holds a note for another tree head"
            )
    roots: dict[int, bytes] = {}
    for item in state.items():  # an anchor later signed is stored as both, with one root
        if roots.setdefault(item.size, item.root) != item.root:
            raise ValueError(f"two roots are stored for size {item.size}")
    links: dict[int, set[int]] = {}
    for proof in state.proofs:
        if proof.from_size not in roots or proof.to_size not in roots:
            raise ValueError(
                f"the proof from size {proof.from_size} to {proof.to_size} links sizes the "
                "store does not hold"
            )
        try:
            verify_consistency(
                proof.from_size,
                proof.to_size,
                proof.hashes,
                roots[proof.from_size],
                roots[proof.to_size],
            )
        except MerkleError as exc:
            raise ValueError(
                f"the proof from size {proof.from_size} to {proof.to_size} does not hold ({exc})"
            ) from exc
        links.setdefault(proof.from_size, set()).add(proof.to_size)
    latest = state.latest.size
    reaches = {latest}
    for size in sorted(roots, reverse=True):  # a proof always runs from a smaller size up
        if links.get(size, set()) & reaches:
            reaches.add(size)
    unlinked = sorted(set(roots) - reaches)
    if unlinked:
        raise ValueError(
            f"the tree head at size {unlinked[0]} is not linked to the latest checkpoint "
            f"(size {latest}) by stored proofs"
        )
