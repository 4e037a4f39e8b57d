"""Pinning: a log entry counts as logged only when its checkpoint is tied to the store.

The bundle's own checkpoint proves the entry is in *some* tree the log signed. Pinning proves it
is in *the* tree this site has seen and kept consistent: the same (size, root) as a stored
checkpoint or anchor. A split view is always fatal; an entry the store cannot tie is fatal under
`require`, reported under `warn`, and not looked at under `off`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from offline.errors import UsageError
from offline.tlog import VerifiedEntry

PinningMode = Literal["require", "warn", "off"]


@dataclass(frozen=True)
class PinOutcome:
    status: Literal["pinned", "unpinned", "not-checked"]
    message: str

    def as_dict(self) -> dict[str, str]:
        return {"status": self.status, "message": self.message}


Pinner = Callable[[VerifiedEntry], PinOutcome]


def make_pinner(checkpoints: Path | None, mode: PinningMode | None) -> Pinner:
    """A pinner over the store at `checkpoints` (or the default store).

    `mode` None means: require for the logs the store knows, off for the others.
    """
    from offline.checkpoint_state import UnpinnedError
    from offline.checkpoint_store import CheckpointStore

    if checkpoints is not None and not checkpoints.is_dir():
        raise UsageError(f"checkpoint store {checkpoints} does not exist or is not a directory")
    store = CheckpointStore(checkpoints) if checkpoints is not None else CheckpointStore.default()

    def pin(entry: VerifiedEntry) -> PinOutcome:
        checkpoint = entry.checkpoint
        origin = checkpoint.origin if checkpoint else None
        effective = mode or ("require" if origin and store.knows(origin) else "off")
        if effective == "off":
            where = origin or entry.log.base_url
            return PinOutcome("not-checked", f"log {where}: pinning off (store does not know it)")
        if checkpoint is None:
            message = (
                f"log {entry.log.base_url}: entry {entry.log_index} has no inclusion proof, so "
                f"it cannot be pinned; fetch one with `airgap proofs fetch` while the log is "
                f"reachable"
            )
        else:
            try:
                result = store.pin(checkpoint.origin, checkpoint.size, checkpoint.root_hash)
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
