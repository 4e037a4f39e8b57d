"""Every attachment of an image in a store (cosign's tags and OCI referrers, of the image, of
every manifest under it and of the attachments themselves), and those the signed manifest lists
that a store lacks: checked in the bundle before an import and in the target after it."""

from __future__ import annotations

from collections.abc import Mapping

from offline.oci.manifest import MANIFEST_MEDIA_TYPES
from offline.oci.store import ImageSource
from provisioner.bundle.manifest import ImageEntry
from provisioner.copy.mirror import ATTACHMENT_KINDS


def discover_attachments(source: ImageSource, digest: str) -> dict[str, set[str]]:
    """Every attachment of the image `digest` in `source`, by kind (`cosign-sig`, `cosign-att`,
    `cosign-sbom`, `referrer`): those of the image and of every manifest under it, and of every
    attachment and what is under it (referrers of referrers), as mirror_image copies them."""
    found: dict[str, set[str]] = {kind: set() for kind in ATTACHMENT_KINDS}
    seen: set[str] = set()
    pending = [digest]
    while pending:
        current = pending.pop()
        if current in seen:
            continue
        seen.add(current)
        manifest = source.fetch_manifest(current)
        if manifest.is_index:
            pending.extend(
                c.digest for c in manifest.children() if c.media_type in MANIFEST_MEDIA_TYPES
            )
        for suffix, descriptor in source.cosign_attachments(current).items():
            found[f"cosign-{suffix}"].add(descriptor.digest)
            pending.append(descriptor.digest)
        for descriptor in source.referrers(current).descriptors:
            found["referrer"].add(descriptor.digest)
            pending.append(descriptor.digest)
    return found


def missing_attachments(entry: ImageEntry, found: Mapping[str, set[str]]) -> list[str]:
    return [
        f"{kind} attachment {digest}"
        for kind, digests in sorted(entry.attachments.items())
        for digest in digests
        if digest not in found.get(kind, set())
    ]
