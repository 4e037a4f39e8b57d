"""Finding every signature and attestation attached to an image digest, wherever it lives.

Three places, all read here: cosign's legacy tags (`sha256-<hex>.sig` and `.att`, a layer per
signature), OCI 1.1 referrers holding Sigstore bundles (cosign v3, through the referrers API or
the `sha256-<hex>` fallback tag, which the ImageSource hides), and airgap's own proof referrers
(legacy signatures completed with inclusion proofs by `airgap proofs fetch`).

What is found is only a candidate: each is verified by the caller. A fetch that fails is kept
apart from "nothing there", so a broken registry never reads as an unsigned image.
"""

from __future__ import annotations

import json
from typing import Any, Literal

from offline.errors import AirgapError, UsageError
from offline.oci.manifest import Descriptor, NotFound, Referrers, fetch_blob_bytes
from offline.oci.store import ImageSource
from offline.record import Record
from offline.sigstore.cosign_legacy import LegacySignature, read_layer, to_sigstore_bundle
from offline.sigstore.verify import Artifact

SIGSTORE_BUNDLE_TYPES = frozenset(
    {
        "application/vnd.dev.sigstore.bundle.v0.3+json",
        "application/vnd.dev.sigstore.bundle+json;version=0.3",
    }
)
AIRGAP_PROOF_TYPE = "application/vnd.dev.airgap.proof.v1+json"
PROOF_LAYER_ANNOTATION = "dev.airgap.proof.signature-layer"
COSIGN_SIGN_PREDICATE = "https://sigstore.dev/cosign/sign/v1"
MAX_ATTACHMENT_BYTES = 64 * 1024 * 1024  # SBOMs can be large; signatures never are

Kind = Literal["signature", "attestation", "bundle"]


class Candidate(Record):
    """A bundle to verify, what it must be about, and where it was found."""

    __slots__ = ("artifact", "bundle", "kind", "layer_digest", "legacy", "origin")

    def __init__(
        self,
        kind: Kind,
        origin: str,
        bundle: dict[str, Any],
        artifact: Artifact,
        layer_digest: str = "",
        legacy: LegacySignature | None = None,
    ) -> None:
        # "bundle": a cosign v3 bundle, a signature or an attestation once verified
        self.kind = kind
        self.origin = origin
        self.bundle = bundle
        self.artifact = artifact
        # the blob the bundle came from: what a proof referrer names
        self.layer_digest = layer_digest
        self.legacy = legacy


class Attachments:
    """What discovery found for one manifest, and what it could not fetch."""

    __slots__ = ("candidates", "fetch_errors", "places")

    def __init__(self) -> None:
        self.candidates: list[Candidate] = []
        self.fetch_errors: list[str] = []
        self.places: list[str] = []


def discover(source: ImageSource, digest: str) -> Attachments:
    found = Attachments()
    # One listing of the referrers serves both the proofs and the bundles among them.
    referrers: Referrers | None = None
    listing_error: AirgapError | None = None
    try:
        referrers = source.referrers(digest)
    except AirgapError as exc:
        listing_error = exc
    if referrers is None:
        found.fetch_errors.append(f"proof referrers of {digest}: {listing_error}")
        proofs: dict[str, dict[str, Any]] = {}
    else:
        proofs = _proof_referrers(source, referrers, found)
    try:
        tags = source.cosign_attachments(digest)
    except AirgapError as exc:
        found.fetch_errors.append(f"cosign tags of {digest}: {exc}")
        tags = {}
    for suffix in ("sig", "att"):
        if suffix in tags:
            found.places.append(f"cosign .{suffix} tag")
            _legacy(source, digest, suffix, tags[suffix], proofs, found)
    if referrers is None:
        found.fetch_errors.append(f"referrers of {digest}: {listing_error}")
        return found
    for descriptor in referrers.descriptors:
        if descriptor.artifact_type in SIGSTORE_BUNDLE_TYPES:
            found.places.append("OCI referrer")
            _sigstore_referrer(source, digest, descriptor, proofs, found)
    return found


def _legacy(
    source: ImageSource,
    digest: str,
    suffix: str,
    descriptor: Descriptor,
    proofs: dict[str, dict[str, Any]],
    found: Attachments,
) -> None:
    where = f"cosign .{suffix} tag of {digest}"
    try:
        layers = source.fetch_manifest(descriptor.digest).layers()
    except NotFound as exc:
        found.fetch_errors.append(f"{where}: tag listed but its content is missing ({exc})")
        return
    except AirgapError as exc:
        found.fetch_errors.append(f"{where}: {exc}")
        return
    for i, layer in enumerate(layers):
        # One unreadable layer is an error of its own; the other layers are still read.
        try:
            payload = fetch_blob_bytes(source, layer, MAX_ATTACHMENT_BYTES)
            legacy = read_layer(layer, payload)
            # A completed bundle from `airgap proofs fetch` replaces the SET-only one.
            bundle = proofs.get(layer.digest) or to_sigstore_bundle(legacy)
        except AirgapError as exc:
            found.fetch_errors.append(f"{where} layer {i}: {exc}")
            continue
        if legacy.is_attestation:
            artifact = Artifact.from_digest(digest)
            kind: Kind = "attestation"
        else:
            artifact = Artifact.from_bytes(payload, f"signature payload {layer.digest}")
            kind = "signature"
        found.candidates.append(
            Candidate(kind, f"{where} layer {i}", bundle, artifact, layer.digest, legacy)
        )


def _sigstore_referrer(
    source: ImageSource,
    digest: str,
    descriptor: Descriptor,
    proofs: dict[str, dict[str, Any]],
    found: Attachments,
) -> None:
    where = f"referrer {descriptor.digest} of {digest}"
    try:
        layers = source.fetch_manifest(descriptor.digest).layers()
    except AirgapError as exc:
        found.fetch_errors.append(f"{where}: {exc}")
        return
    for i, layer in enumerate(layers):
        if layer.media_type not in SIGSTORE_BUNDLE_TYPES:
            continue
        try:
            bundle = _json_object(fetch_blob_bytes(source, layer, MAX_ATTACHMENT_BYTES), "bundle")
        except AirgapError as exc:
            found.fetch_errors.append(f"{where} layer {i}: {exc}")
            continue
        # A proof completed by `airgap proofs fetch` replaces one to an unpinned tree.
        bundle = proofs.get(layer.digest, bundle)
        found.candidates.append(
            Candidate("bundle", where, bundle, Artifact.from_digest(digest), layer.digest)
        )


def _proof_referrers(
    source: ImageSource, referrers: Referrers, found: Attachments
) -> dict[str, dict[str, Any]]:
    """Completed bundles for legacy signature layers, keyed by the layer's digest."""
    proofs: dict[str, dict[str, Any]] = {}
    for descriptor in referrers.descriptors:
        if descriptor.artifact_type != AIRGAP_PROOF_TYPE:
            continue
        try:
            for layer in source.fetch_manifest(descriptor.digest).layers():
                target = layer.annotations.get(PROOF_LAYER_ANNOTATION)
                if target:
                    data = fetch_blob_bytes(source, layer, MAX_ATTACHMENT_BYTES)
                    proofs[target] = _json_object(data, "proof bundle")
        except AirgapError as exc:
            found.fetch_errors.append(f"proof referrer {descriptor.digest}: {exc}")
    return proofs


def _json_object(data: bytes, what: str) -> dict[str, Any]:
    """A registry-supplied blob as a JSON object, or a one-line error."""
    try:
        document = json.loads(data)
    except (ValueError, RecursionError) as exc:
        raise UsageError(f"{what} is not JSON ({type(exc).__name__})") from exc
    if not isinstance(document, dict):
        raise UsageError(f"{what} is not a JSON object")
    return document
