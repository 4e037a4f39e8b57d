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
from dataclasses import dataclass, field
from typing import Any, Literal

from offline.bundle_verify import Artifact
from offline.cosign_legacy import LegacyFormatError, LegacySignature, read_layer, to_sigstore_bundle
from offline.errors import AirgapError
from offline.oci import Descriptor, ImageSource, NotFound, fetch_blob_bytes

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


@dataclass(frozen=True)
class Candidate:
    """A bundle to verify, what it must be about, and where it was found."""

    kind: Kind  # "bundle": a cosign v3 bundle, a signature or an attestation once verified
    origin: str
    bundle: dict[str, Any]
    artifact: Artifact
    layer_digest: str = ""  # the blob the bundle came from: what a proof referrer names
    legacy: LegacySignature | None = None


@dataclass
class Attachments:
    candidates: list[Candidate] = field(default_factory=list)
    fetch_errors: list[str] = field(default_factory=list)
    places: list[str] = field(default_factory=list)


def discover(source: ImageSource, digest: str) -> Attachments:
    found = Attachments()
    proofs = _proof_referrers(source, digest, found)
    try:
        tags = source.cosign_attachments(digest)
    except AirgapError as exc:
        found.fetch_errors.append(f"cosign tags of {digest}: {exc}")
        tags = {}
    for suffix in ("sig", "att"):
        if suffix in tags:
            found.places.append(f"cosign .{suffix} tag")
            _legacy(source, digest, suffix, tags[suffix], proofs, found)
    try:
        referrers = source.referrers(digest)
    except AirgapError as exc:
        found.fetch_errors.append(f"referrers of {digest}: {exc}")
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
        manifest = source.fetch_manifest(descriptor.digest)
        layers = manifest.json().get("layers") or []
        for i, raw_layer in enumerate(layers):
            layer = Descriptor.from_json(raw_layer, f"{where} layer {i}")
            payload = fetch_blob_bytes(source, layer, MAX_ATTACHMENT_BYTES)
            try:
                legacy = read_layer(raw_layer, payload)
            except LegacyFormatError as exc:
                found.fetch_errors.append(f"{where} layer {i}: {exc}")
                continue
            # A completed bundle from `airgap proofs fetch` replaces the SET-only one.
            bundle = proofs.get(layer.digest) or to_sigstore_bundle(legacy)
            if legacy.is_attestation:
                artifact = Artifact.from_digest(digest)
                kind: Kind = "attestation"
            else:
                artifact = Artifact.from_bytes(payload, f"signature payload {layer.digest}")
                kind = "signature"
            found.candidates.append(
                Candidate(kind, f"{where} layer {i}", bundle, artifact, layer.digest, legacy)
            )
    except NotFound as exc:
        found.fetch_errors.append(f"{where}: tag listed but its content is missing ({exc})")
    except AirgapError as exc:
        found.fetch_errors.append(f"{where}: {exc}")


def _sigstore_referrer(
    source: ImageSource,
    digest: str,
    descriptor: Descriptor,
    proofs: dict[str, dict[str, Any]],
    found: Attachments,
) -> None:
    where = f"referrer {descriptor.digest} of {digest}"
    try:
        manifest = source.fetch_manifest(descriptor.digest)
        for i, raw_layer in enumerate(manifest.json().get("layers") or []):
            layer = Descriptor.from_json(raw_layer, f"{where} layer {i}")
            if layer.media_type not in SIGSTORE_BUNDLE_TYPES:
                continue
            raw = fetch_blob_bytes(source, layer, MAX_ATTACHMENT_BYTES)
            try:
                bundle = json.loads(raw)
            except ValueError:
                found.fetch_errors.append(f"{where} layer {i}: not JSON")
                continue
            # A proof completed by `airgap proofs fetch` replaces one to an unpinned tree.
            bundle = proofs.get(layer.digest, bundle)
            found.candidates.append(
                Candidate("bundle", where, bundle, Artifact.from_digest(digest), layer.digest)
            )
    except AirgapError as exc:
        found.fetch_errors.append(f"{where}: {exc}")


def _proof_referrers(
    source: ImageSource, digest: str, found: Attachments
) -> dict[str, dict[str, Any]]:
    """Completed bundles for legacy signature layers, keyed by the layer's digest."""
    try:
        referrers = source.referrers(digest, AIRGAP_PROOF_TYPE)
    except AirgapError as exc:
        found.fetch_errors.append(f"proof referrers of {digest}: {exc}")
        return {}
    proofs: dict[str, dict[str, Any]] = {}
    for descriptor in referrers.descriptors:
        if descriptor.artifact_type != AIRGAP_PROOF_TYPE:
            continue
        try:
            manifest = source.fetch_manifest(descriptor.digest)
            for raw_layer in manifest.json().get("layers") or []:
                layer = Descriptor.from_json(raw_layer, f"proof referrer {descriptor.digest}")
                target = (raw_layer.get("annotations") or {}).get(PROOF_LAYER_ANNOTATION)
                if target:
                    data = fetch_blob_bytes(source, layer, MAX_ATTACHMENT_BYTES)
                    proofs[str(target)] = json.loads(data)
        except (AirgapError, ValueError) as exc:
            found.fetch_errors.append(f"proof referrer {descriptor.digest}: {exc}")
    return proofs
