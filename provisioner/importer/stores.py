"""The stores an import reads through, besides the target repository itself.

- `SignedSource`: one image of a verified bundle as its signed manifest describes it, read from
  the bundle's layout. After verification the manifest is the only authority, so this is what
  every image is copied from.
- `AbsentLayout`: a layout target that does not exist yet, for a dry run (which must not create
  it): a `Store` (offline.oci.store) that holds nothing and refuses every write.
- `TagListed`: reads of a registry repository through its tag list, read once, so the many tags
  an import asks about that do not exist cost no request each.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import IO

from offline.oci.blobstream import BlobReader
from offline.oci.digests import fallback_tag, is_digest
from offline.oci.manifest import (
    Descriptor,
    Manifest,
    NotFound,
    Referrers,
    cosign_attachments_by_tag,
    referrer_descriptor,
)
from offline.oci.referrers import filter_artifact_type
from offline.oci.store import Store
from provisioner.bundle.manifest import ImageEntry
from provisioner.copy.layout import RepositoryView


class SignedSource:
    """One image of the bundle as the signed manifest describes it, read from the bundle's
    layout: only its graph's manifests, only blobs the bundle carries, referrers from the
    graph, and cosign tags of index.json only when the manifest lists what they name."""

    def __init__(self, view: RepositoryView, entry: ImageEntry, carried: Mapping[str, int]):
        self.view = view
        self.entry = entry
        self.nodes = {node.digest: node for node in entry.graph}
        self.carried = carried

    @property
    def location(self) -> str:
        return self.view.location

    def resolve(self, reference: str) -> Descriptor:
        descriptor = self.resolve_optional(reference)
        if descriptor is None:
            raise NotFound(f"{self.location}: {reference} is not in the signed bundle manifest")
        return descriptor

    def resolve_optional(self, reference: str) -> Descriptor | None:
        if not is_digest(reference) or reference not in self.nodes:
            return None
        return self.fetch_manifest(reference).descriptor

    def fetch_manifest(self, digest: str) -> Manifest:
        if digest not in self.nodes:
            raise NotFound(f"{self.location}: manifest {digest} is not in the signed manifest")
        return self.view.fetch_manifest(digest)

    def open_blob(self, digest: str, size: int | None = None) -> BlobReader:
        if digest not in self.carried:
            raise NotFound(
                f"{self.location}: blob {digest} is not carried by this bundle (a delta bundle "
                "leaves out what the target holds)"
            )
        return self.view.open_blob(digest, size)

    def list_tags(self) -> list[str]:
        return self.view.list_tags()

    def referrers(self, digest: str, artifact_type: str | None = None) -> Referrers:
        found = []
        for candidate in self.entry.attachments.get("referrer", ()):
            node = self.nodes.get(candidate)
            if node is None or digest not in node.references:
                continue
            manifest = self.fetch_manifest(candidate)
            subject = manifest.subject()
            if subject is not None and subject.digest == digest:
                found.append(referrer_descriptor(manifest))
        found.sort(key=lambda d: d.digest)
        return Referrers(digest, filter_artifact_type(found, artifact_type), "layout")

    def cosign_attachments(self, digest: str) -> dict[str, Descriptor]:
        if digest not in self.nodes:
            return {}
        return {
            suffix: descriptor
            for suffix, descriptor in self.view.cosign_attachments(digest).items()
            if descriptor.digest in self.entry.attachments.get(f"cosign-{suffix}", ())
        }


class AbsentLayout:
    """A layout target that does not exist yet, for a dry run (which must not create it)."""

    def __init__(self, location: str) -> None:
        self.location = location

    def resolve(self, reference: str) -> Descriptor:
        raise NotFound(f"{self.location}: no {reference}")

    def resolve_optional(self, reference: str) -> Descriptor | None:
        return None

    def fetch_manifest(self, digest: str) -> Manifest:
        raise NotFound(f"{self.location}: no manifest {digest}")

    def open_blob(self, digest: str, size: int | None = None) -> BlobReader:
        raise NotFound(f"{self.location}: no blob {digest}")

    def list_tags(self) -> list[str]:
        return []

    def referrers(self, digest: str, artifact_type: str | None = None) -> Referrers:
        return Referrers(digest, (), "layout")

    def cosign_attachments(self, digest: str) -> dict[str, Descriptor]:
        return {}

    def blob_exists(self, digest: str) -> bool:
        return False

    def manifest_exists(self, digest: str) -> bool:
        return False

    def push_blob(self, data: bytes | IO[bytes], digest: str, size: int) -> None:
        raise AssertionError("a dry run writes nothing")

    def push_manifest(
        self, raw: bytes, media_type: str, reference: str | None = None
    ) -> Descriptor:
        raise AssertionError("a dry run writes nothing")

    def push_referrer(self, raw: bytes, media_type: str) -> Descriptor:
        raise AssertionError("a dry run writes nothing")


class TagListed:
    """Reads of a registry repository that consult its tag list first (one request), so the
    many tags an import asks about that do not exist (cosign's, the referrers fallback tags on
    a registry without the referrers API) cost no request each. The list is read once: only
    for a phase in which this import writes no tag."""

    def __init__(self, store: Store, referrers_api: bool | None) -> None:
        self.store = store
        self.referrers_api = referrers_api
        self._tags: set[str] | None = None

    @property
    def location(self) -> str:
        return self.store.location

    def tags(self) -> set[str]:
        if self._tags is None:
            try:
                self._tags = set(self.store.list_tags())
            except NotFound:
                self._tags = set()  # no such repository yet
        return self._tags

    def resolve(self, reference: str) -> Descriptor:
        return self.store.resolve(reference)

    def resolve_optional(self, reference: str) -> Descriptor | None:
        if not is_digest(reference) and reference not in self.tags():
            return None
        return self.store.resolve_optional(reference)

    def fetch_manifest(self, digest: str) -> Manifest:
        return self.store.fetch_manifest(digest)

    def open_blob(self, digest: str, size: int | None = None) -> BlobReader:
        return self.store.open_blob(digest, size)

    def list_tags(self) -> list[str]:
        return sorted(self.tags())

    def referrers(self, digest: str, artifact_type: str | None = None) -> Referrers:
        if self.referrers_api is False and fallback_tag(digest) not in self.tags():
            return Referrers(digest, (), "fallback-tag")
        return self.store.referrers(digest, artifact_type)

    def cosign_attachments(self, digest: str) -> dict[str, Descriptor]:
        return cosign_attachments_by_tag(self.resolve_optional, digest)
