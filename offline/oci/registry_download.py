"""A blob download that survives a dropped connection: it asks again from where it stopped
(`Range: bytes=N-`), so a multi-gigabyte layer over a flaky link is not restarted from zero.
The bytes are hashed by the BlobReader on top, so a resumed stream is checked like any other.
"""

from __future__ import annotations

from collections.abc import Callable

from offline.oci.http_client import HttpError, Response
from offline.oci.registry_http import RegistryUnavailable

# What a broken body looks like from below: the client's read errors (BodyBroken is an
# OSError) and plain socket errors.
_READ_ERRORS = (HttpError, OSError)
_SKIP_CHUNK = 1024 * 1024


class ResumableBody:
    """The body of `response`, re-requested through `reopen(offset)` when reading fails."""

    def __init__(
        self,
        response: Response,
        reopen: Callable[[int], Response],
        max_resumes: int,
        describe: Callable[[str], str],
    ) -> None:
        self._response = response
        self._reopen = reopen
        self._max_resumes = max_resumes
        self._describe = describe
        self._resumes = 0
        self._offset = 0

    def read(self, n: int = -1, /) -> bytes:
        while True:
            try:
                data: bytes = self._read(n if n >= 0 else None)
            except _READ_ERRORS as exc:
                self._resume(exc)
                continue
            self._offset += len(data)
            return data

    def _read(self, n: int | None) -> bytes:
        raw = self._response.raw
        # read1 hands over what has arrived, so a break loses nothing already received and the
        # resume starts exactly there.
        return raw.read1(n, decode_content=True)

    def _resume(self, exc: Exception) -> None:
        while True:
            self._response.close()
            if self._resumes >= self._max_resumes:
                raise RegistryUnavailable(
                    self._describe(
                        f"the download broke off after {self._offset} bytes "
                        f"{self._resumes + 1} times ({type(exc).__name__})"
                    )
                ) from None
            self._resumes += 1
            self._response = self._reopen(self._offset)
            if self._response.status_code != 200 or not self._offset:
                return
            # The server ignored Range and starts again: drop what we already have.
            try:
                self._skip(self._offset)
                return
            except _READ_ERRORS as again:
                exc = again

    def _skip(self, count: int) -> None:
        while count:
            chunk = self._response.raw.read(min(count, _SKIP_CHUNK), decode_content=True)
            if not chunk:
                return
            count -= len(chunk)

    def close(self) -> None:
        self._response.close()
