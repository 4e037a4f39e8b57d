"""Reading one TUF metadata file: bounded, and of the role it should hold."""

from __future__ import annotations

from pathlib import Path
from typing import TypeVar

from tuf.api.metadata import Metadata, Root, Snapshot, Targets, Timestamp
from tuf.api.serialization import DeserializationError

from offline.errors import VerificationFailure
from offline.inputs import read_input

T = TypeVar("T", Root, Snapshot, Targets, Timestamp)


def read_metadata(path: Path, kind: type[T]) -> tuple[Metadata[T], bytes]:
    """The metadata in `path` and its exact bytes (what hashes and lengths are taken over)."""
    data = read_input(path, f"{kind.type} metadata")
    try:
        metadata = Metadata[T].from_bytes(data)
    except DeserializationError as exc:
        raise VerificationFailure(f"{path} is not TUF metadata ({exc})") from None
    if not isinstance(metadata.signed, kind):
        raise VerificationFailure(f"{path} is {metadata.signed.type} metadata, not {kind.type}")
    return metadata, data
