"""Streaming a blob with its digest and size checked on the way through.

Memory stays at one chunk whatever the blob's size. Too many bytes fail as soon as they arrive;
too few, or the wrong ones, fail at the end of the stream. A reader abandoned before the end
has verified nothing, which `verified` says.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from types import TracebackType
from typing import IO, Protocol

from offline.oci.digests import DigestMismatch, validate_digest

CHUNK_SIZE = 1024 * 1024


class RawStream(Protocol):
    def read(self, n: int = -1, /) -> bytes: ...

    def close(self) -> None: ...


class CheckedStream(Protocol):
    """A stream that checks what it hands out against `digest` and `size` as it is read (a
    BlobReader, or a wrapper passing its reads through unchanged): `verified` is true once a
    read returned b"" with both right. A sink that stores exactly the bytes it read from one
    need not hash them again; it must still see `verified` before it keeps them."""

    digest: str
    size: int | None

    @property
    def verified(self) -> bool: ...

    def read(self, n: int = -1, /) -> bytes: ...


class BlobReader:
    """A read-only stream over `raw` that is checked against `digest` (and `size` if known)."""

    def __init__(self, raw: RawStream | IO[bytes], digest: str, size: int | None, where: str):
        self._raw = raw
        self.digest = validate_digest(digest)
        self.size = size
        self._where = where
        self._hash = hashlib.sha256()
        self.bytes_read = 0
        self.verified = False
        self._eof = False

    def read(self, n: int = -1) -> bytes:
        """Up to `n` bytes (all the rest for -1); b"" at the end, after the checks passed."""
        if self._eof:
            return b""
        if n is None or n < 0:
            return b"".join(self.chunks())
        if n == 0:
            return b""
        data = self._raw.read(n)
        if not data:
            self._finish()
            return b""
        self._take(data)
        return data

    def chunks(self, chunk_size: int = CHUNK_SIZE) -> Iterator[bytes]:
        while True:
            data = self.read(chunk_size)
            if not data:
                return
            yield data

    def copy_to(self, out: IO[bytes], chunk_size: int = CHUNK_SIZE) -> int:
        """Write the whole blob to `out`; the count of bytes, after the checks passed."""
        for data in self.chunks(chunk_size):
            out.write(data)
        return self.bytes_read

    def _take(self, data: bytes) -> None:
        self.bytes_read += len(data)
        if self.size is not None and self.bytes_read > self.size:
            self.close()
            raise DigestMismatch(
                f"{self._where}: blob {self.digest} is longer than its size {self.size}"
            )
        self._hash.update(data)

    def _finish(self) -> None:
        self._eof = True
        if self.size is not None and self.bytes_read != self.size:
            raise DigestMismatch(
                f"{self._where}: blob {self.digest} ended after {self.bytes_read} bytes, "
                f"expected {self.size}"
            )
        actual = "sha256:" + self._hash.hexdigest()
        if actual != self.digest:
            raise DigestMismatch(
                f"{self._where}: blob {self.digest} has content with digest {actual} "
                "(corrupted or replaced)"
            )
        self.verified = True

    def close(self) -> None:
        self._raw.close()

    def __enter__(self) -> BlobReader:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
