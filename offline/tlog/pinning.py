"""Pinning: a log entry counts as logged only when its checkpoint is tied to the store.

The bundle's own checkpoint proves the entry is in *some* tree the log signed. Pinning proves it
is in *the* tree this site has seen and kept consistent: the same (size, root) as a stored
checkpoint or anchor. A split view is always fatal; an entry the store cannot tie is fatal under
`require`, reported under `warn`, and not looked at under `off`. The default (no mode given) is
`require` for every log whose key the store pins and every checkpoint claiming a pinned origin,
`off` for logs it has never seen.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from offline.errors import UsageError
from offline.record import Record
from offline.tlog.entry import VerifiedEntry
from offline.trust.root import TrustedRoot

if TYPE_CHECKING:
    from offline.tlog.checkpoint_store import CheckpointStore

PinningMode = Literal["require", "warn", "off"]


class PinOutcome(Record):
    __slots__ = ("message", "status")

    def __init__(self, status: Literal["pinned", "unpinned", "not-checked"], message: str) -> None:
        self.status = status
        self.message = message

    def as_dict(self) -> dict[str, str]:
        return {"status": self.status, "message": self.message}


Pinner = Callable[[VerifiedEntry], PinOutcome]


def open_store(checkpoints: Path | None, trusted_root: TrustedRoot | None) -> CheckpointStore:
    """The store at `checkpoints` (a command's --checkpoints, a bundle spec's
    verify.checkpoints), else $AIRGAP_CHECKPOINTS, else the one in airgap's data directory.

    A store named explicitly (flag or environment) must exist: a typo must not quietly turn
    pinning off. Only the default location may be absent (nothing pinned yet).
    """
    from offline.tlog.checkpoint_store import STORE_ENV, CheckpointStore, default_checkpoint_dir

    if checkpoints is not None:
        if not checkpoints.is_dir():
            raise UsageError(f"checkpoint store {checkpoints} does not exist or is not a directory")
        return CheckpointStore(checkpoints, trusted_root=trusted_root)
    path = default_checkpoint_dir()
    if os.environ.get(STORE_ENV) and not path.is_dir():
        raise UsageError(
            f"checkpoint store {path} (from ${STORE_ENV}) does not exist or is not a directory"
        )
    return CheckpointStore(path, trusted_root=trusted_root)


def make_pinner(store: CheckpointStore, mode: PinningMode | None) -> Pinner:
    """A pinner over `store`.

    `mode` None means: require for every log the store pins (by its key, whatever tree or
    origin an entry names, and whether or not the entry carries a proof), off for the others.
    """
    from offline.tlog.checkpoint_state import UnpinnedError

    def pin(entry: VerifiedEntry) -> PinOutcome:
        checkpoint = entry.checkpoint
        log_id = entry.log.log_id
        # Known by its key, or claiming an origin the store pins for another key: both pinned.
        known = store.knows(log_id) or (
            checkpoint is not None and store.pins_origin(checkpoint.origin)
        )
        effective = mode or ("require" if known else "off")
        if effective == "off":
            where = checkpoint.origin if checkpoint else entry.log.base_url
            return PinOutcome("not-checked", f"log {where}: pinning off (store does not know it)")
        if checkpoint is None:
            message = (
                f"log {entry.log.base_url}: entry {entry.log_index} has no inclusion proof, only "
                f"a signed entry timestamp, so it cannot be pinned; run `airgap proofs fetch` "
                f"while the log is reachable to add one"
            )
        else:
            try:
                result = store.pin(log_id, checkpoint.origin, checkpoint.size, checkpoint.root_hash)
            except UnpinnedError as exc:
                message = str(exc)
            else:
                return PinOutcome(
                    "pinned",
                    f"log {result.origin}: entry {entry.log_index} is in the pinned tree at size "
                    f"{result.size} (a stored {result.pinned_by}; latest {result.latest_size})",
                )
        if effective == "require":
            raise UnpinnedError(message)
        return PinOutcome("unpinned", message)

    return pin
