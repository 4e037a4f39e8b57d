"""The OCI 1.1 referrers fallback: an image index under the tag `sha256-<hex>` that lists the
manifests whose `subject` is that digest, kept by clients on registries without the referrers
API (distribution-spec "Referrers Tag Schema"), and by some tools inside image layouts.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from offline.errors import UsageError
from offline.oci.manifest import OCI_INDEX, Descriptor, Manifest

EMPTY_INDEX: dict[str, object] = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": []}


def fallback_descriptors(index: Manifest | None, subject: str) -> list[Descriptor]:
    """The referrers a fallback-tag index lists; none when there is no index, or when what the
    tag names is not an index of referrers (the spec says to assume there are none).

    Some registries answer the tag `sha256-<hex>` with the manifest `sha256:<hex>` itself
    (oras #2148); that is the subject, not a list of its referrers.
    """
    if index is None or not index.is_index or index.digest == subject:
        return []
    try:
        return index.children()
    except UsageError:
        return []


def with_referrer(
    index: Manifest | None, referrer: Descriptor, *, in_digest_order: bool = False
) -> bytes | None:
    """The fallback index with `referrer` added (the bytes to push), or None when it is already
    listed. `index` None starts a new one; an existing tag that is not an index is an error,
    because overwriting it would destroy something that is not ours."""
    return with_referrers(index, [referrer], in_digest_order=in_digest_order)


def with_referrers(
    index: Manifest | None, referrers: Sequence[Descriptor], *, in_digest_order: bool = False
) -> bytes | None:
    """`with_referrer` for several referrers at once: one index to push lists them all (in
    order, each once), or None when every one is listed already. `in_digest_order`: every
    entry sorted by digest, so the index is the same bytes whatever order they came in."""
    if index is None:
        document: dict[str, object] = dict(EMPTY_INDEX)
        entries: list[object] = []
    else:
        if not index.is_index:
            raise UsageError(
                f"the referrers fallback tag names {index.digest}, a {index.media_type}, not an "
                "image index: refusing to overwrite it"
            )
        document = index.json()
        current = document.get("manifests", [])
        entries = list(current) if isinstance(current, list) else []
    listed = {e.get("digest") for e in entries if isinstance(e, dict)}
    count = len(entries)
    for referrer in referrers:
        if referrer.digest not in listed:
            listed.add(referrer.digest)
            entries.append(referrer.to_json())
    if len(entries) == count:
        return None
    if in_digest_order:
        entries.sort(key=lambda e: str(e.get("digest")) if isinstance(e, dict) else "")
    document["manifests"] = entries
    return json.dumps(document, separators=(",", ":")).encode()


def filter_artifact_type(
    descriptors: list[Descriptor], artifact_type: str | None
) -> tuple[Descriptor, ...]:
    if artifact_type is None:
        return tuple(descriptors)
    return tuple(d for d in descriptors if d.artifact_type == artifact_type)
