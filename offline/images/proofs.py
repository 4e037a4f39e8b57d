"""`airgap proofs fetch IMAGE`: inclusion proofs for an image's signatures, kept in the registry.

Every signature or attestation of the image (and, for an index, of its platform manifests)
whose log entries cannot be tied to a pinned checkpoint is completed with fresh proofs, and the
completed bundles are attached to the image as one OCI referrer of type
`application/vnd.dev.airgap.proof.v1+json`: a layer per completed bundle, annotated with the
digest of the signature layer it completes. The original signatures are left untouched, so
cosign still reads them; `airgap verify` prefers the completed bundles, and they travel with the
image wherever its referrers go.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import cast

from offline.images.attachments import AIRGAP_PROOF_TYPE, PROOF_LAYER_ANNOTATION, discover
from offline.oci.digests import sha256_digest
from offline.oci.manifest import (
    IMAGE_MANIFESTS,
    OCI_EMPTY,
    OCI_EMPTY_DATA,
    OCI_EMPTY_DIGEST,
    OCI_MANIFEST,
)
from offline.oci.sources import ResolvedImage
from offline.oci.store import ImageSink
from offline.sigstore.proofs import EntryUpdate, complete_bundle
from offline.tlog.checkpoint_store import CheckpointStore
from offline.tlog.rekor_client import RekorClient
from offline.trust.root import TrustedRoot

PROOF_LAYER_MEDIA_TYPE = "application/vnd.dev.sigstore.bundle+json"


@dataclass(frozen=True)
class ImageProofs:
    digest: str
    completed: list[tuple[str, list[EntryUpdate]]]  # (origin of the signature, entry updates)
    referrer: str | None  # digest of the proof referrer pushed, if any


def fetch_image_proofs(
    image: ResolvedImage, client: RekorClient, store: CheckpointStore, trusted_root: TrustedRoot
) -> list[ImageProofs]:
    sink = image.source
    if not isinstance(sink, ImageSink):
        raise TypeError(f"{image.source.location} cannot be written to")
    manifest = image.source.fetch_manifest(image.digest)
    targets = [image.descriptor]
    if manifest.is_index:
        targets += [c for c in manifest.children() if c.media_type in IMAGE_MANIFESTS]
    results = []
    for target in targets:
        found = discover(image.source, target.digest)
        layers: list[tuple[bytes, str]] = []
        completed = []
        for candidate in found.candidates:
            bundle, updates = complete_bundle(
                candidate.bundle, client, store, trusted_root, candidate.origin
            )
            completed.append((candidate.origin, updates))
            if any(u.action == "added" for u in updates):
                layers.append((json.dumps(bundle).encode(), candidate.layer_digest))
        referrer = _attach(cast(ImageSink, sink), target.to_json(), layers) if layers else None
        results.append(ImageProofs(target.digest, completed, referrer))
    return results


def _attach(sink: ImageSink, subject: dict[str, object], layers: list[tuple[bytes, str]]) -> str:
    sink.push_blob(OCI_EMPTY_DATA, OCI_EMPTY_DIGEST, len(OCI_EMPTY_DATA))
    descriptors = []
    for data, completes in layers:
        digest = sha256_digest(data)
        sink.push_blob(data, digest, len(data))
        descriptors.append(
            {
                "mediaType": PROOF_LAYER_MEDIA_TYPE,
                "digest": digest,
                "size": len(data),
                "annotations": {PROOF_LAYER_ANNOTATION: completes},
            }
        )
    manifest = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "artifactType": AIRGAP_PROOF_TYPE,
        "config": {"mediaType": OCI_EMPTY, "digest": OCI_EMPTY_DIGEST, "size": 2},
        "layers": descriptors,
        "subject": {k: v for k, v in subject.items() if k in ("mediaType", "digest", "size")},
    }
    raw = json.dumps(manifest, separators=(",", ":")).encode()
    return sink.push_referrer(raw, OCI_MANIFEST).digest
