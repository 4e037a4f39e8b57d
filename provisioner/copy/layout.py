"""One repository's view of a bundle's OCI layout, which holds the images of many repositories.

    layout = OCILayout.create(bundle / "oci")
    view = RepositoryView(layout, "ghcr.io/sigstore/fulcio")
    mirror_image(source, view, digest, tags=("v1.8.8",))  # named ghcr.io/sigstore/fulcio:v1.8.8

Tags (the image's own and cosign's `sha256-<hex>.sig|.att|.sbom`) are stored in index.json as
`REPOSITORY:TAG`, so two repositories holding signatures for the same digest never overwrite
each other's, and skopeo, oras and crane can still read an image by that full name. Blobs and
manifests are shared by every repository (stored once); referrers are found by subject digest.

`DeltaView` makes blobs the target registry already holds (from an inventory) look present, so
mirroring into it leaves them out of the bundle.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from typing import IO

from offline.oci.blobstream import BlobReader, CheckedStream
from offline.oci.digests import is_digest
from offline.oci.layout import OCILayout
from offline.oci.manifest import Descriptor, Manifest, Referrers, cosign_attachments_by_tag


class BlobClaims:
    """The blobs being copied into one layout by several copies at once (one view per image):
    a second copy of a blob waits for the first, then finds it present (or, when the first
    failed, copies it itself). A claim covers one blob's check and write, nothing else, so
    no two claims ever wait for each other."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._blobs: dict[str, threading.Lock] = {}

    @contextlib.contextmanager
    def claim(self, digest: str) -> Iterator[None]:
        with self._lock:
            blob = self._blobs.setdefault(digest, threading.Lock())
        with blob:
            yield


class RepositoryView:
    """ImageSource and ImageSink over `layout` for the images of `repository`; views of one
    layout that copy at the same time share `claims`."""

    def __init__(
        self, layout: OCILayout, repository: str, claims: BlobClaims | None = None
    ) -> None:
        self.layout = layout
        self.repository = repository
        self.claims = claims if claims is not None else BlobClaims()

    @property
    def location(self) -> str:
        return f"{self.layout.location} ({self.repository})"

    def _name(self, reference: str) -> str:
        return reference if is_digest(reference) else f"{self.repository}:{reference}"

    # ------------------------------------------------------------------------ ImageSource
    def resolve(self, reference: str) -> Descriptor:
        return self.layout.resolve(self._name(reference))

    def resolve_optional(self, reference: str) -> Descriptor | None:
        if is_digest(reference):
            return self.layout.resolve_optional(reference)
        # Exact names only: a bare-tag match in another repository must not count.
        wanted = self._name(reference)
        for entry in self.layout.entries():
            if entry.annotations.get("org.opencontainers.image.ref.name") == wanted:
                return entry
        return None

    def fetch_manifest(self, digest: str) -> Manifest:
        return self.layout.fetch_manifest(digest)

    def open_blob(self, digest: str, size: int | None = None) -> BlobReader:
        return self.layout.open_blob(digest, size)

    def list_tags(self) -> list[str]:
        prefix = f"{self.repository}:"
        return [name[len(prefix) :] for name in self.layout.list_tags() if name.startswith(prefix)]

    def referrers(self, digest: str, artifact_type: str | None = None) -> Referrers:
        return self.layout.referrers(digest, artifact_type)

    def cosign_attachments(self, digest: str) -> dict[str, Descriptor]:
        return cosign_attachments_by_tag(self.resolve_optional, digest)

    # -------------------------------------------------------------------------- ImageSink
    def blob_exists(self, digest: str) -> bool:
        return self.layout.blob_exists(digest)

    def manifest_exists(self, digest: str) -> bool:
        # Manifests are always carried, even in a delta bundle (they are small, and tags and
        # referrers on the target are written from them); create lists each image's root.
        return self.layout.blob_exists(digest)

    def push_blob(self, data: bytes | IO[bytes], digest: str, size: int) -> None:
        self.layout.push_blob(data, digest, size)

    def claim_blob(self, digest: str) -> contextlib.AbstractContextManager[None]:
        return self.claims.claim(digest)

    def push_checked_blob(self, data: CheckedStream, digest: str, size: int) -> None:
        self.layout.push_checked_blob(data, digest, size)

    def push_manifest(
        self, raw: bytes, media_type: str, reference: str | None = None
    ) -> Descriptor:
        return self.layout.push_manifest(
            raw, media_type, None if reference is None else self._name(reference)
        )

    def push_referrer(self, raw: bytes, media_type: str) -> Descriptor:
        return self.layout.push_referrer(raw, media_type)


class DeltaView(RepositoryView):
    """A RepositoryView in which the blobs of `on_target` count as present (not copied)."""

    def __init__(
        self,
        layout: OCILayout,
        repository: str,
        on_target: frozenset[str],
        claims: BlobClaims | None = None,
    ) -> None:
        super().__init__(layout, repository, claims)
        self.on_target = on_target

    def blob_exists(self, digest: str) -> bool:
        return digest in self.on_target or super().blob_exists(digest)
