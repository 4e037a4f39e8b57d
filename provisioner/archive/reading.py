"""Reading a bundle archive's files: small ones (manifests, signatures, the parts list) whole
and bounded, parts streamed in chunks through one opener that never waits on a FIFO."""

from __future__ import annotations

import os
from pathlib import Path
from typing import IO

from offline.inputs import read_input

# What the archive is read and written in: parts, tar members, the zstd stream.
CHUNK_SIZE = 1024 * 1024


def read_bounded(path: Path, limit: int, what: str) -> bytes:
    """A regular file of at most `limit` bytes, whole; else a one-line error naming `what`
    (offline.inputs' reader: checked before and after opening, a FIFO never waited on)."""
    return read_input(path, what, limit)


def open_for_reading(path: Path) -> IO[bytes]:
    """A part, to check or to extract: both do it through here (so that tests can watch it)."""
    # O_NONBLOCK: a FIFO in place of a part is refused as not a regular file, not waited on.
    return os.fdopen(os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC), "rb")
