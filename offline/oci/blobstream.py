"""Streaming a blob with its digest and size checked on the way through.

Memory stays at one chunk whatever the blob's size. Too many bytes fail as soon as they arrive;
too few, or the wrong ones, fail at the end of the stream. A reader abandoned before the end
has verified nothing, which `verified` says. A reader over a seekable file can be moved back
(an upload resumed after a failure sends a part again): it then hashes from the start anew, so
what it verifies at the end is always the bytes it delivered last.
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
        self._start: int | None = None
        seekable = getattr(raw, "seekable", None)
        if seekable is not None and seekable():
            self._start = raw.tell()  # type: ignore[union-attr]
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

    def readinto(self, buffer: bytearray | memoryview) -> int:
        """`read` into `buffer` (no bytes object made when the stream can read into one)."""
        if self._eof:
            return 0
        view = memoryview(buffer).cast("B")
        if not len(view):
            return 0
        readinto = getattr(self._raw, "readinto", None)
        if readinto is not None:
            count = readinto(view) or 0
        else:
            data = self._raw.read(len(view))
            count = len(data)
            view[:count] = data
        if not count:
            self._finish()
            return 0
        self._take(view[:count])
        return count

    def seekable(self) -> bool:
        return self._start is not None

    def tell(self) -> int:
        return self.bytes_read

    def seek(self, offset: int, whence: int = 0) -> int:
        """Move to `offset` (from the start of the blob; `whence` 1 with 0 only tells where
        it is). Back: read again from the start, hashing, so the digest check still covers
        every byte delivered."""
        if whence == 1 and offset == 0:
            return self.bytes_read
        if whence != 0 or offset < 0 or self._start is None:
            raise OSError(f"{self._where}: blob {self.digest} cannot be read again from {offset}")
        if offset < self.bytes_read:
            self._raw.seek(self._start)  # type: ignore[union-attr]
            self._hash = hashlib.sha256()
            self.bytes_read = 0
            self._eof = self.verified = False
        scratch = bytearray(min(CHUNK_SIZE, max(0, offset - self.bytes_read)))
        while self.bytes_read < offset:
            if not self.readinto(memoryview(scratch)[: offset - self.bytes_read]):
                break
        return self.bytes_read

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

    def _take(self, data: bytes | memoryview) -> None:
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
