"""Blob uploads (distribution-spec "Pushing blobs"): monolithic (POST, then PUT with the
content and its digest), chunked (POST, PATCH with Content-Range per chunk, PUT with the digest),
and cross-repository mounts (POST ?mount=&from=).

The content is hashed while it goes out and checked before the final PUT, so a bad source never
becomes a committed blob even on a registry that would not check. A source that checks itself
as it is read (a CheckedStream: a BlobReader) is not hashed a second time: it must say it
verified, at its end, before the final PUT. A chunk that fails halfway is
not sent again blindly: we ask the registry how far it got (GET on the upload) and continue
from there, which is what lets a multi-gigabyte layer cross a flaky link; when the registry has
dropped the session, a source that can be rewound is uploaded again.

A source that can be read again (a seekable file, a BlobReader over one) is streamed: each chunk
goes out in pieces read as they are sent, and a resumed chunk reads its part again, so memory
stays at one piece per upload whatever the chunk size. Any other stream is read a chunk at a
time into memory, since a chunk resumed halfway must be sent again from what was kept.
"""

from __future__ import annotations

import contextlib
import hashlib
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import IO, TYPE_CHECKING

from offline.oci.blobstream import CheckedStream
from offline.oci.digests import DigestMismatch, validate_digest
from offline.oci.http_client import Body, Response
from offline.oci.registry_http import RETRY_STATUSES, RegistryError, RegistryUnavailable, Transport

if TYPE_CHECKING:
    from hashlib import _Hash

CHUNK_SIZE = 16 * 1024 * 1024
# What a streamed upload reads and sends at a time (and keeps in memory).
PIECE_SIZE = 256 * 1024
# Blobs up to this size go in one PUT from memory even from a seekable source: streaming them
# would cost a PATCH more each.
STREAM_ABOVE = 1024 * 1024
_OCTETS = "application/octet-stream"


class UploadLost(RegistryError):
    """The registry no longer knows an upload session (after an interrupted chunk)."""


@dataclass(frozen=True)
class Uploader:
    transport: Transport
    repository: str
    scopes: tuple[str, ...]

    def request(
        self,
        method: str,
        url: str,
        what: str,
        *,
        headers: dict[str, str] | None = None,
        body: Body = None,
        retry: bool = True,
    ) -> Response:
        return self.transport.request(
            method,
            url,
            what=what,
            repository=self.repository,
            scopes=self.scopes,
            headers=headers,
            body=body,
            retry=retry,
        )

    def message(self, what: str, reason: str) -> str:
        return self.transport.message(self.repository, what, reason)

    def start(self, what: str) -> tuple[str, int]:
        """A new upload session: its location, and the smallest chunk the registry takes
        (`OCI-Chunk-Min-Length`; some cloud registries want 5 MiB)."""
        url = self.transport.url(f"/v2/{self.repository}/blobs/uploads/")
        response = self.request("POST", url, what, headers={"Content-Length": "0"})
        with response:
            if response.status_code != 202:
                raise self.transport.error(response, self.repository, what)
            minimum = response.headers.get("OCI-Chunk-Min-Length", "")
            return self._location(response, what), int(minimum) if minimum.isdigit() else 0

    def _location(self, response: Response, what: str) -> str:
        location = response.headers.get("Location")
        if not location:
            raise RegistryError(self.message(what, "the registry gave no upload location"))
        return self.transport.url(location)

    def cancel(self, location: str) -> None:
        """Best effort: a registry forgets abandoned uploads anyway."""
        with contextlib.suppress(RegistryError):
            self.request("DELETE", location, "cancelling an upload", retry=False).close()

    def finish(self, location: str, digest: str, body: bytes, what: str) -> None:
        url = self.transport.url(location, {"digest": digest})
        headers = {"Content-Type": _OCTETS, "Content-Length": str(len(body))}
        response = self.request("PUT", url, what, headers=headers, body=body)
        with response:
            if response.status_code == 201:
                stored = response.headers.get("Docker-Content-Digest")
                if stored and stored != digest:
                    raise DigestMismatch(self.message(what, f"the registry stored {stored}"))
                return
            error = self.transport.error(response, self.repository, what)
        # A retried PUT may find the upload already committed by the attempt that "failed".
        if self._blob_exists(digest):
            return
        raise error

    def _blob_exists(self, digest: str) -> bool:
        url = self.transport.url(f"/v2/{self.repository}/blobs/{digest}")
        response = self.request("HEAD", url, f"checking blob {digest}")
        with response:
            return response.status_code == 200

    def patch(self, location: str, chunk: bytes, start: int, what: str) -> str:
        """Send `chunk` as bytes `start`.. of the upload; the next location."""
        return self.patch_from(location, lambda offset: chunk[offset:], len(chunk), start, what)

    def patch_from(
        self,
        location: str,
        body: Callable[[int], bytes | _Section],
        length: int,
        start: int,
        what: str,
    ) -> str:
        """Send `length` bytes as bytes `start`.. of the upload, `body(offset)` giving them
        from `offset` on (after a failure, from where the registry says it got to); the next
        location."""
        offset = 0
        policy = self.transport.retry
        for attempt in range(policy.attempts):
            end = start + length - 1
            headers = {
                "Content-Type": _OCTETS,
                "Content-Range": f"{start + offset}-{end}",
                "Content-Length": str(length - offset),
            }
            failure: str
            try:
                response = self.request(
                    "PATCH", location, what, headers=headers, body=body(offset), retry=False
                )
            except RegistryUnavailable as exc:
                failure = str(exc).rsplit(" failed: ", 1)[-1]
            else:
                with response:
                    if response.status_code == 202:
                        return self._location(response, what)
                    if response.status_code not in RETRY_STATUSES | {416}:
                        raise self.transport.error(response, self.repository, what)
                    failure = f"HTTP {response.status_code}"
            if attempt + 1 == policy.attempts:
                raise RegistryUnavailable(
                    self.message(what, f"{failure} (after {policy.attempts} attempts)")
                )
            time.sleep(policy.delay(attempt))
            location, received = self.progress(location, what)
            if not start <= received <= start + length:
                raise RegistryError(
                    self.message(what, f"the upload holds {received} bytes, expected {start}..")
                )
            offset = received - start
            if offset == length:
                return location
        raise AssertionError("unreachable")

    def progress(self, location: str, what: str) -> tuple[str, int]:
        """How many bytes an upload session holds (its `Range: 0-N`), and its location."""
        response = self.request("GET", location, what)
        with response:
            if response.status_code == 404:
                raise UploadLost(self.message(what, "the registry no longer knows the upload"))
            if response.status_code != 204:
                raise self.transport.error(response, self.repository, what)
            received = 0
            last = response.headers.get("Range", "").rpartition("-")[2]
            # "0-0" is how Distribution says both "nothing" and "one byte"; nothing is likelier.
            if last.isdigit() and int(last) > 0:
                received = int(last) + 1
            next_location = (
                self._location(response, what) if response.headers.get("Location") else location
            )
            return next_location, received


def upload(
    uploader: Uploader,
    data: bytes | IO[bytes],
    digest: str,
    size: int,
    chunk_size: int,
    checked: CheckedStream | None = None,
) -> None:
    """Upload `data` as blob `digest`; `checked`: `data` itself, checking its own digest and
    size (those of this blob) as it is read, so that a streamed upload does not hash again."""
    validate_digest(digest)
    # Trusted only as the very stream sent, checking this very blob: else hashed here.
    if checked is not None and (
        id(checked) != id(data) or (checked.digest, checked.size) != (digest, size)
    ):
        checked = None
    what = f"uploading blob {digest}"
    if isinstance(data, bytes):
        _monolithic(uploader, data, digest, size, what)
        return
    start = data.tell() if data.seekable() else None

    def send() -> None:
        if start is not None and size > STREAM_ABOVE:
            _streamed(uploader, data, digest, size, chunk_size, what, checked)
        else:
            _upload_stream(uploader, data, digest, size, chunk_size, what)

    try:
        send()
    except UploadLost:
        # The registry dropped the session (Distribution does, once an answer is lost, since
        # its upload state travels in the location). A source we can rewind starts again.
        if start is None:
            raise
        data.seek(start)
        send()


class _Section:
    """Bytes `start`..`end` of a seekable source (positions from `base`) as a request body
    that can be sent again: each iteration seeks and reads them anew, a piece at a time into
    one buffer, hashing every byte from `start` onto a copy of `hasher` (None: the source
    checks itself) and sending those from `skip` on (what the registry already holds of the
    chunk is hashed, not sent)."""

    def __init__(
        self,
        source: IO[bytes],
        base: int,
        span: tuple[int, int, int],
        hasher: _Hash | None,
        buffer: bytearray,
        message: Callable[[str], str],
    ) -> None:
        self.source, self.base = source, base
        self.start, self.skip, self.end = span
        self._hasher = hasher
        self.hasher = hasher.copy() if hasher is not None else None
        self.buffer = buffer
        self.message = message
        self.done = False  # every byte of the section read and hashed

    def __iter__(self) -> Iterator[memoryview]:
        self.hasher = self._hasher.copy() if self._hasher is not None else None
        self.done = False
        self.source.seek(self.base + self.start)
        view = memoryview(self.buffer)
        position = self.start
        while position < self.end:
            count = self.source.readinto(view[: min(len(view), self.end - position)])  # type: ignore[attr-defined]
            if not count:
                raise DigestMismatch(self.message(f"the source ended after {position} bytes"))
            piece = view[:count]
            if self.hasher is not None:
                self.hasher.update(piece)
            if position + count > self.skip:
                yield piece[max(0, self.skip - position) :]
            position += count
        self.done = True

    def hashed(self) -> _Hash | None:
        """The hash through the section's end: read again if the sending stopped short of it
        (the registry had the rest already)."""
        if self.done or self._hasher is None:
            return self.hasher
        span = (self.start, self.end, self.end)  # hashed only, nothing to send
        again = _Section(self.source, self.base, span, self._hasher, self.buffer, self.message)
        for _ in again:
            pass
        return again.hasher


def _upload_stream(
    uploader: Uploader, data: IO[bytes], digest: str, size: int, chunk_size: int, what: str
) -> None:
    # Small streams go in one request; only larger ones pay for chunking.
    first = _read_up_to(data, chunk_size)
    carry = _read_up_to(data, 1) if len(first) == chunk_size else b""
    if not carry:
        _monolithic(uploader, first, digest, size, what)
        return
    # Handed over in a list that _chunked empties, so this frame does not keep the first
    # chunk alive for the whole upload.
    pieces = [first, carry]
    del first, carry
    _chunked(uploader, pieces, data, digest, size, chunk_size, what)


def _streamed(
    uploader: Uploader,
    data: IO[bytes],
    digest: str,
    size: int,
    chunk_size: int,
    what: str,
    checked: CheckedStream | None,
) -> None:
    """PATCH after PATCH of a seekable source, each streamed from it (see _Section); the
    digest checked before the final PUT (by `checked` itself, when given)."""
    base = data.tell()
    location, minimum = uploader.start(what)
    chunk_size = max(chunk_size, minimum)
    hasher: _Hash | None = hashlib.sha256() if checked is None else None
    buffer = bytearray(PIECE_SIZE)
    sent = 0

    def message(reason: str) -> str:
        return uploader.message(what, reason)

    try:
        while sent < size:
            end = min(size, sent + chunk_size)
            sections: list[_Section] = []

            def body(
                offset: int,
                start: int = sent,
                end: int = end,
                hashed: _Hash | None = hasher,
                sections: list[_Section] = sections,
            ) -> _Section:
                span = (start, start + offset, end)
                sections.append(_Section(data, base, span, hashed, buffer, message))
                return sections[-1]

            location = uploader.patch_from(location, body, end - sent, sent, what)
            hasher = sections[-1].hashed()
            sent = end
        if checked is not None and data.tell() != base + size:
            data.seek(base + size)  # the last part the registry had: read (and hashed) by it
        # The end of the source (a BlobReader checks its own digest there).
        if data.read(1):
            raise DigestMismatch(uploader.message(what, f"the source is longer than {size}"))
        if checked is None:
            assert hasher is not None
            _check(uploader, what, digest, size, hasher.hexdigest(), sent)
        elif not checked.verified:
            raise DigestMismatch(uploader.message(what, "the source did not verify its digest"))
    except BaseException:
        uploader.cancel(location)
        raise
    uploader.finish(location, digest, b"", what)


def _monolithic(uploader: Uploader, data: bytes, digest: str, size: int, what: str) -> None:
    _check(uploader, what, digest, size, hashlib.sha256(data).hexdigest(), len(data))
    location, _ = uploader.start(what)
    uploader.finish(location, digest, data, what)


def _chunked(
    uploader: Uploader,
    pieces: list[bytes],
    rest: IO[bytes],
    digest: str,
    size: int,
    chunk_size: int,
    what: str,
) -> None:
    """PATCH chunk after chunk; at most two chunks are in memory (the one going out is let go
    before the next is read)."""
    first, carry = pieces
    pieces.clear()
    location, minimum = uploader.start(what)
    if minimum > chunk_size:
        chunk_size = minimum
        first += carry + _read_up_to(rest, chunk_size - len(first) - len(carry))
        carry = b""
    hasher = hashlib.sha256()
    sent = 0
    chunk = first
    del first
    try:
        while chunk:
            if sent + len(chunk) > size:
                raise DigestMismatch(uploader.message(what, f"the source is longer than {size}"))
            hasher.update(chunk)
            location = uploader.patch(location, chunk, sent, what)
            sent += len(chunk)
            chunk = b""
            chunk = _read_up_to(rest, chunk_size - len(carry))
            if carry:
                chunk, carry = carry + chunk, b""
        _check(uploader, what, digest, size, hasher.hexdigest(), sent)
    except BaseException:
        uploader.cancel(location)
        raise
    uploader.finish(location, digest, b"", what)


def mount(uploader: Uploader, digest: str, from_repository: str) -> bool:
    validate_digest(digest)
    what = f"mounting blob {digest} from {from_repository}"
    url = uploader.transport.url(
        f"/v2/{uploader.repository}/blobs/uploads/", {"mount": digest, "from": from_repository}
    )
    response = uploader.request("POST", url, what, headers={"Content-Length": "0"})
    with response:
        if response.status_code == 201:
            return True
        if response.status_code != 202:
            raise uploader.transport.error(response, uploader.repository, what)
        # Not mounted; the registry opened an ordinary upload instead, which we do not need.
        location = response.headers.get("Location")
    if location:
        uploader.cancel(uploader.transport.url(location))
    return False


def _check(uploader: Uploader, what: str, digest: str, size: int, hexdigest: str, got: int) -> None:
    if got != size:
        raise DigestMismatch(uploader.message(what, f"the source has {got} bytes, expected {size}"))
    if f"sha256:{hexdigest}" != digest:
        raise DigestMismatch(
            uploader.message(what, f"the source has digest sha256:{hexdigest}, not {digest}")
        )


def _read_up_to(stream: IO[bytes], count: int) -> bytes:
    """Exactly `count` bytes, or fewer at the end of the stream (a pipe returns short reads)."""
    parts: list[bytes] = []
    remaining = count
    while remaining:
        data = stream.read(remaining)
        if not data:
            break
        parts.append(data)
        remaining -= len(data)
    return b"".join(parts)
