"""Telling a BuildKit attestation manifest inside an image index from something a runtime runs.

BuildKit stores provenance and SBOMs as extra manifests in the image index: platform
`unknown/unknown`, layers of in-toto statements, and the annotations
`vnd.docker.reference.type: attestation-manifest` and `vnd.docker.reference.digest: <the
platform manifest it describes>`. They carry no signature of their own, and need none, because
no runtime would run one.

Everything about an index entry is under the control of whoever wrote the index, which for an
unsigned index is the registry. A runtime chooses a child by its `platform` (containerd takes a
child with no platform to match any platform), never by its annotations, so the annotation
alone proves nothing: an entry counts as an attestation manifest only when its platform cannot
be chosen and its content cannot be run.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from offline.errors import AirgapError
from offline.oci.manifest import IMAGE_MANIFESTS, Descriptor
from offline.oci.store import ImageSource

REFERENCE_TYPE = "vnd.docker.reference.type"
REFERENCE_DIGEST = "vnd.docker.reference.digest"
ATTESTATION_MANIFEST = "attestation-manifest"
IN_TOTO_LAYER = "application/vnd.in-toto+json"
UNKNOWN_PLATFORM = {"os": "unknown", "architecture": "unknown"}


def claims_attestation(child: Descriptor) -> bool:
    """Whether the index entry says it is an attestation manifest (a claim, not a proof)."""
    return child.annotations.get(REFERENCE_TYPE) == ATTESTATION_MANIFEST


def attestation_problem(
    source: ImageSource, child: Descriptor, siblings: Sequence[Descriptor]
) -> str | None:
    """None when `child` is an attestation manifest no runtime would run; else why it is not.

    `siblings` are all the entries of the index `child` is listed in.
    """
    if not claims_attestation(child):
        return f"it is not annotated {REFERENCE_TYPE}: {ATTESTATION_MANIFEST}"
    if child.platform is None:
        return "it has no platform, which a runtime takes to match every platform"
    if dict(child.platform) != UNKNOWN_PLATFORM:
        return (
            f"its platform {describe_platform(child.platform)} is one a runtime can choose "
            f"(an attestation manifest's is unknown/unknown)"
        )
    if child.media_type not in IMAGE_MANIFESTS:
        return f"its media type {child.media_type!r} is not an image manifest"
    described = child.annotations.get(REFERENCE_DIGEST)
    platform_manifests = {
        s.digest for s in siblings if not claims_attestation(s) and s.digest != child.digest
    }
    if described not in platform_manifests:
        return f"its {REFERENCE_DIGEST} {described!r} names no platform manifest of this index"
    try:
        manifest = source.fetch_manifest(child.digest)
        if manifest.is_index:
            return "it is an index, not an image manifest"
        layers = manifest.children()[1:]
    except AirgapError as exc:
        return f"it cannot be read ({exc})"
    if not layers or any(layer.media_type != IN_TOTO_LAYER for layer in layers):
        return f"its layers are not all in-toto statements ({IN_TOTO_LAYER})"
    return None


def describe_platform(platform: Mapping[str, Any] | None) -> str:
    """`os/architecture[/variant]` for messages, whatever types the index put there."""
    if platform is None:
        return "no platform"
    parts = [_text(platform.get("os", "?")), _text(platform.get("architecture", "?"))]
    if platform.get("variant"):
        parts.append(_text(platform["variant"]))
    return "/".join(parts)


def _text(value: object) -> str:
    # Whatever the index holds stays on one line of the report.
    return value if isinstance(value, str) and value.isprintable() else repr(value)
