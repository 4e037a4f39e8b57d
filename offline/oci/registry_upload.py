"""Blob uploads (distribution-spec "Pushing blobs"): monolithic (POST, then PUT with the
content and its digest), chunked (POST, PATCH with Content-Range per chunk, PUT with the digest),
and cross-repository mounts (POST ?mount=&from=).

The content is hashed while it goes out and checked before the final PUT, so a bad source never
becomes a committed blob even on a registry that would not check. A chunk that fails halfway is
not sent again blindly: we ask the registry how far it got (GET on the upload) and continue
from there, which is what lets a multi-gigabyte layer cross a flaky link; when the registry has
dropped the session, a source that can be rewound is uploaded again.
"""

from __future__ import annotations

import contextlib
import hashlib
import time
from dataclasses import dataclass
from typing import IO

from offline.oci.digests import DigestMismatch, validate_digest
from offline.oci.http_client import Response
from offline.oci.registry_http import RETRY_STATUSES, RegistryError, RegistryUnavailable, Transport

CHUNK_SIZE = 16 * 1024 * 1024
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
        body: bytes | None = None,
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
        offset = 0
        policy = self.transport.retry
        for attempt in range(policy.attempts):
            end = start + len(chunk) - 1
            headers = {
                "Content-Type": _OCTETS,
                "Content-Range": f"{start + offset}-{end}",
                "Content-Length": str(len(chunk) - offset),
            }
            failure: str
            try:
                response = self.request(
                    "PATCH", location, what, headers=headers, body=chunk[offset:], retry=False
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
            if not start <= received <= start + len(chunk):
                raise RegistryError(
                    self.message(what, f"the upload holds {received} bytes, expected {start}..")
                )
            offset = received - start
            if offset == len(chunk):
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
    uploader: Uploader, data: bytes | IO[bytes], digest: str, size: int, chunk_size: int
) -> None:
    validate_digest(digest)
    what = f"uploading blob {digest}"
    if isinstance(data, bytes):
        _monolithic(uploader, data, digest, size, what)
        return
    start = data.tell() if data.seekable() else None
    try:
        _upload_stream(uploader, data, digest, size, chunk_size, what)
    except UploadLost:
        # The registry dropped the session (Distribution does, once an answer is lost, since
        # its upload state travels in the location). A source we can rewind starts again.
        if start is None:
            raise
        data.seek(start)
        _upload_stream(uploader, data, digest, size, chunk_size, what)


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
