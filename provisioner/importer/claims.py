"""Which repository of the target holds each blob, and which blob is being uploaded right now,
for an import that brings several images at once (run.py).

Images that share a layer are often imported at the same time into different repositories.
The first to need the layer claims it and uploads it (or finds it there); the others wait for
that upload to be acknowledged, then mount the layer from that repository: the bytes go up
once, and nothing is mounted from a repository whose upload has not finished. A claim whose
upload failed is given up, so a waiting image tries for itself; once the import is stopping,
waiting ends with ImportStopping instead.
"""

from __future__ import annotations

import threading

from offline.errors import AirgapError

# How often a waiting image looks whether the import is stopping.
_POLL_SECONDS = 0.2


class ImportStopping(AirgapError):
    """Another image of this import failed: this one stops before writing anything more."""


class BlobHomes:
    """Thread-safe: a repository known to hold each blob (to mount it from), and the blobs
    claimed for upload by one repository each."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._homes: dict[str, str] = {}
        self._claims: dict[str, tuple[str, threading.Event]] = {}
        self.stopping = threading.Event()

    def home(self, digest: str) -> str | None:
        with self._lock:
            return self._homes.get(digest)

    def check_stopping(self) -> None:
        if self.stopping.is_set():
            raise ImportStopping("stopped: another image of this import failed")

    def claim(self, digest: str, repository: str) -> str | None:
        """Once no other upload of `digest` is under way: the repository known to hold it, or
        None, and then `repository` holds the claim until `known` or `give_up`."""
        while True:
            self.check_stopping()
            with self._lock:
                home = self._homes.get(digest)
                if home is not None:
                    return home
                claim = self._claims.get(digest)
                if claim is None:
                    self._claims[digest] = (repository, threading.Event())
                    return None
            claim[1].wait(_POLL_SECONDS)

    def known(self, digest: str, repository: str) -> None:
        """`repository` holds `digest` (the target said so): it is where to mount it from, and
        whoever waits for the upload goes on."""
        with self._lock:
            self._homes.setdefault(digest, repository)
            claim = self._claims.get(digest)
            if claim is not None and claim[0] == repository:
                del self._claims[digest]
                claim[1].set()

    def give_up(self, repository: str, digest: str | None = None) -> None:
        """`repository`'s claim on `digest` (on every blob, for None) ends without the blob."""
        with self._lock:
            for claimed, (owner, event) in list(self._claims.items()):
                if owner == repository and digest in (None, claimed):
                    del self._claims[claimed]
                    event.set()
