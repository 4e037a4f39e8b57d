"""One interface for every image store: what reads, what writes, and what some stores can do more.

A registry repository (offline.oci.registry), an OCI image layout on disk (offline.oci.layout),
one repository's view of a bundle's layout (provisioner.copy.layout) and the import's stand-in
for a layout a dry run must not create all implement it, so everything above them (finding
signatures, verifying, copying across the gap, importing) is written once.

Modelled on oras-go (`content.ReadOnlyStorage`, `content.Storage`, with `registry.Mounter` and
`registry.ReferrerLister` as optional interfaces found by type assertion during a copy) and on
regclient (a scheme with optional interfaces, asked of it the same way):

- `ImageSource`: reads (resolve, manifests, blobs, tags, referrers, cosign's tags).
- `ImageSink`: writes (blobs, manifests, referrers), with the blob existence check copying needs.
- `Store`: both, and `manifest_exists`: what an import target repository is.

Optional capabilities are asked of a store with `isinstance(store, Capability)`: what it can do,
never which class it is, so a wrapper or a test double that has the capability gets the same
treatment as the real store, and one that lacks it gets the plain path:

- `ManifestChecker`: whether a manifest is present, by digest (HEAD in a registry).
- `BlobMounter`: link a blob from another repository of the same registry, no bytes sent.
- `AbsentBlobPusher`: upload a blob the caller has just found absent, without asking again.
- `CheckedBlobPusher`: store a blob from a stream that checks itself, without hashing again.
- `BlobClaimer`: one copy of a blob at a time when several images are copied into it at once.
- `ReferrersProber`: ask the registry whether it serves the OCI 1.1 referrers API.
- `IndexedStore`: a store whose images are found only through its index (an OCI layout's
  index.json): a manifest stored there but not listed is invisible to other tools.

These are runtime protocols: `isinstance` checks that the methods exist, not their signatures
(mypy checks those), so each capability has a method name no other store uses differently.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import IO, Protocol, runtime_checkable

from offline.oci.blobstream import BlobReader, CheckedStream
from offline.oci.manifest import Descriptor, Manifest, Referrers


@runtime_checkable
class ImageSource(Protocol):
    """Read access to one repository (or one layout directory)."""

    @property
    def location(self) -> str:
        """Where this is, for messages: `registry/repository` or `oci:DIR`."""
        ...

    def resolve(self, reference: str) -> Descriptor:
        """A tag (or ref name) or a digest to the manifest descriptor it names, now."""
        ...

    def resolve_optional(self, reference: str) -> Descriptor | None:
        """Like resolve, but None when the store says it does not exist."""
        ...

    def fetch_manifest(self, digest: str) -> Manifest:
        """The manifest with this digest; its bytes are checked against the digest."""
        ...

    def open_blob(self, digest: str, size: int | None = None) -> BlobReader:
        """A stream of the blob that checks its size and digest as it is read."""
        ...

    def list_tags(self) -> list[str]: ...

    def referrers(self, digest: str, artifact_type: str | None = None) -> Referrers: ...

    def cosign_attachments(self, digest: str) -> dict[str, Descriptor]:
        """cosign's `sha256-<hex>.sig|.att|.sbom` tags of `digest` that exist, by suffix."""
        ...


@runtime_checkable
class ImageSink(Protocol):
    """Write access: what copying an image graph and attaching proofs needs."""

    def blob_exists(self, digest: str) -> bool: ...

    def push_blob(self, data: bytes | IO[bytes], digest: str, size: int) -> None:
        """Store a blob; the content is checked against `digest` and `size` before it counts."""
        ...

    def push_manifest(
        self, raw: bytes, media_type: str, reference: str | None = None
    ) -> Descriptor:
        """Store a manifest by digest, and under tag `reference` when given."""
        ...

    def push_referrer(self, raw: bytes, media_type: str) -> Descriptor:
        """Store a manifest that has a `subject`, so that `referrers(subject)` lists it."""
        ...


@runtime_checkable
class ManifestChecker(Protocol):
    def manifest_exists(self, digest: str) -> bool:
        """Whether the store holds the manifest `digest` (not whether anything lists it)."""
        ...


@runtime_checkable
class Store(ImageSource, ImageSink, ManifestChecker, Protocol):
    """Read and write, with manifest existence: a registry repository, an OCI layout, one
    repository's view of a layout, a stand-in for a target that does not exist yet."""


@runtime_checkable
class BlobMounter(Protocol):
    def mount_blob(self, digest: str, from_repository: str) -> bool:
        """Link blob `digest` from `from_repository` of the same registry without copying
        it; False when the store would not (the caller then uploads)."""
        ...


@runtime_checkable
class AbsentBlobPusher(Protocol):
    def push_absent_blob(self, data: bytes | IO[bytes], digest: str, size: int) -> None:
        """`push_blob` for a blob the caller has just been told is absent: the store does not
        ask again (one request fewer per blob)."""
        ...


@runtime_checkable
class CheckedBlobPusher(Protocol):
    def push_checked_blob(self, data: CheckedStream, digest: str, size: int) -> None:
        """`push_blob` of a stream that checks its bytes against `digest` and `size` as they
        are read (a BlobReader): a store that keeps exactly what it read need not hash again,
        and takes the bytes in whatever pieces they arrive."""
        ...


@runtime_checkable
class BlobClaimer(Protocol):
    def claim_blob(self, digest: str) -> AbstractContextManager[None]:
        """Held while a copy checks for blob `digest` and writes it: another copy into the same
        store at the same time waits, then finds it there, instead of fetching it again."""
        ...


@runtime_checkable
class ReferrersProber(Protocol):
    def has_referrers_api(self, digest: str) -> bool:
        """Whether the store serves the OCI 1.1 referrers API, asked about `digest`."""
        ...


@runtime_checkable
class IndexedStore(Protocol):
    def entries(self) -> list[Descriptor]:
        """The manifests the store's index lists: the only ones other tools find."""
        ...


__all__ = [
    "AbsentBlobPusher",
    "BlobClaimer",
    "BlobMounter",
    "CheckedBlobPusher",
    "ImageSink",
    "ImageSource",
    "IndexedStore",
    "ManifestChecker",
    "ReferrersProber",
    "Store",
]
