"""What the verifier reads from an image store, whichever store it is: descriptors, manifests,
referrer lists, and helpers over any `ImageSource` (the store interface, offline.oci.store).

Trust model: nothing here trusts the store. A tag is resolved once into a digest; every manifest
is checked against the digest it was asked for, every blob is hashed while it streams. What a
store *lists* (tags, referrers) is only a hint: a caller that relies on a referrer's `subject`
checks it in the manifest it fetched.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from offline.errors import AirgapError, UsageError
from offline.inputs import decode_json
from offline.oci.digests import (
    COSIGN_SUFFIXES,
    DigestMismatch,
    cosign_tag,
    is_digest,
    sha256_digest,
)
from offline.record import Record

if TYPE_CHECKING:
    from offline.oci.store import ImageSource

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
OCI_EMPTY = "application/vnd.oci.empty.v1+json"
OCI_EMPTY_DIGEST = "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"
OCI_EMPTY_DATA = b"{}"

IMAGE_MANIFESTS = frozenset({OCI_MANIFEST, DOCKER_MANIFEST})
INDEXES = frozenset({OCI_INDEX, DOCKER_MANIFEST_LIST})
MANIFEST_MEDIA_TYPES = IMAGE_MANIFESTS | INDEXES
# What we ask a registry for. Docker schema 1 is left out on purpose: its digest is not the
# sha256 of the bytes served (the JWS signatures are cut out first), so it cannot be checked.
MANIFEST_ACCEPT = ", ".join(sorted(MANIFEST_MEDIA_TYPES))

ANNOTATION_REF_NAME = "org.opencontainers.image.ref.name"
# image-spec PR #1171: marks a layout's index.json entry as a referrer of the named digest.
ANNOTATION_REFERRER_SUBJECT = "org.opencontainers.image.referrer.subject"

# Manifests are small; a store that sends more is broken or hostile. The spec asks registries
# to accept at least 4 MiB.
MAX_MANIFEST_SIZE = 16 * 1024 * 1024


class NotFound(AirgapError):
    """The store answered that the tag, manifest or blob does not exist."""


class Descriptor(Record):
    """An OCI content descriptor: what a manifest is, its digest and size, and its labels."""

    __slots__ = ("annotations", "artifact_type", "digest", "media_type", "platform", "size")

    def __init__(
        self,
        media_type: str,
        digest: str,
        size: int,
        annotations: Mapping[str, str] | None = None,
        artifact_type: str | None = None,
        platform: Mapping[str, Any] | None = None,
    ) -> None:
        self.media_type = media_type
        self.digest = digest
        self.size = size
        # Read-only maps, left out of the hash (a mapping is not hashable); equality uses them.
        self.annotations = MappingProxyType({}) if annotations is None else annotations
        self.artifact_type = artifact_type
        self.platform = platform

    def __hash__(self) -> int:
        return hash((self.media_type, self.digest, self.size, self.artifact_type))

    @classmethod
    def from_json(cls, value: object, where: str) -> Descriptor:
        if not isinstance(value, dict):
            raise UsageError(f"{where}: descriptor is not a JSON object")
        media_type = value.get("mediaType")
        digest = value.get("digest")
        size = value.get("size")
        if not isinstance(media_type, str) or not media_type:
            raise UsageError(f"{where}: descriptor has no mediaType")
        if not isinstance(digest, str) or not is_digest(digest):
            raise UsageError(f"{where}: descriptor digest {digest!r} is not sha256:<64 hex>")
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise UsageError(f"{where}: descriptor size {size!r} is not a non-negative integer")
        annotations = value.get("annotations") or {}
        if not isinstance(annotations, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in annotations.items()
        ):
            raise UsageError(f"{where}: descriptor annotations are not a string map")
        artifact_type = value.get("artifactType")
        if artifact_type is not None and not isinstance(artifact_type, str):
            raise UsageError(f"{where}: descriptor artifactType is not a string")
        platform = value.get("platform")
        if platform is not None and not isinstance(platform, dict):
            raise UsageError(f"{where}: descriptor platform is not an object")
        return cls(
            media_type=media_type,
            digest=digest,
            size=size,
            annotations=MappingProxyType(dict(annotations)),
            artifact_type=artifact_type,
            platform=MappingProxyType(dict(platform)) if platform is not None else None,
        )

    def to_json(self) -> dict[str, Any]:
        value: dict[str, Any] = {
            "mediaType": self.media_type,
            "digest": self.digest,
            "size": self.size,
        }
        if self.artifact_type is not None:
            value["artifactType"] = self.artifact_type
        if self.platform is not None:
            value["platform"] = dict(self.platform)
        if self.annotations:
            value["annotations"] = dict(self.annotations)
        return value


class Manifest(Record):
    """A manifest or index exactly as stored: `raw` hashes to `descriptor.digest`."""

    __slots__ = ("descriptor", "raw")

    def __init__(self, descriptor: Descriptor, raw: bytes) -> None:
        self.descriptor = descriptor
        self.raw = raw

    @property
    def media_type(self) -> str:
        return self.descriptor.media_type

    @property
    def digest(self) -> str:
        return self.descriptor.digest

    @property
    def is_index(self) -> bool:
        return self.descriptor.media_type in INDEXES

    def json(self) -> dict[str, Any]:
        return parse_manifest_json(self.raw, self.digest)

    def children(self) -> list[Descriptor]:
        """An index's manifests, or an image manifest's config and layers."""
        document = self.json()
        where = f"manifest {self.digest}"
        if self.is_index:
            return [Descriptor.from_json(d, where) for d in _list(document, "manifests", where)]
        config = [Descriptor.from_json(document.get("config"), f"{where} config")]
        return config + [Descriptor.from_json(d, where) for d in _list(document, "layers", where)]

    def layers(self) -> list[Descriptor]:
        """An image manifest's layers, each checked to be a descriptor."""
        where = f"manifest {self.digest}"
        layers = _list(self.json(), "layers", where)
        return [Descriptor.from_json(d, f"{where} layer {i}") for i, d in enumerate(layers)]

    def subject(self) -> Descriptor | None:
        subject = self.json().get("subject")
        if subject is None:
            return None
        return Descriptor.from_json(subject, f"manifest {self.digest} subject")


class Referrers(Record):
    """The manifests that name a digest as their subject, and how they were found.

    `via` is "api" (OCI 1.1 referrers API), "fallback-tag" (the `sha256-<hex>` index tag of a
    registry without the API) or "layout" (an image layout's index.json and manifests).
    """

    __slots__ = ("descriptors", "subject", "via")

    def __init__(self, subject: str, descriptors: tuple[Descriptor, ...], via: str) -> None:
        self.subject = subject
        self.descriptors = descriptors
        self.via = via


def cosign_attachments_by_tag(
    resolve_optional: Callable[[str], Descriptor | None], digest: str
) -> dict[str, Descriptor]:
    """cosign's `sha256-<hex>.sig|.att|.sbom` tags of `digest` that resolve, by suffix."""
    found = {}
    for suffix in COSIGN_SUFFIXES:
        descriptor = resolve_optional(cosign_tag(digest, suffix))
        if descriptor is not None:
            found[suffix] = descriptor
    return found


def fetch_blob_bytes(source: ImageSource, descriptor: Descriptor, limit: int) -> bytes:
    """A small blob (a config, a signature layer) in memory, refusing anything over `limit`."""
    if descriptor.size > limit:
        raise UsageError(
            f"{source.location}: blob {descriptor.digest} is {descriptor.size} bytes, "
            f"more than the {limit} expected for a {descriptor.media_type}"
        )
    with source.open_blob(descriptor.digest, descriptor.size) as reader:
        return reader.read()


def walk(source: ImageSource, digest: str) -> Iterator[Manifest]:
    """The manifest `digest` and, for an index, every manifest under it (depth first)."""
    seen: set[str] = set()
    pending = [digest]
    while pending:
        current = pending.pop()
        if current in seen:
            continue
        seen.add(current)
        manifest = source.fetch_manifest(current)
        yield manifest
        if manifest.is_index:
            pending.extend(
                d.digest
                for d in reversed(manifest.children())
                if d.media_type in MANIFEST_MEDIA_TYPES
            )


def check_manifest(raw: bytes, digest: str, where: str, declared: str | None = None) -> Manifest:
    """`raw` as the manifest `digest`, after checking that it is exactly that content."""
    actual = sha256_digest(raw)
    if actual != digest:
        raise DigestMismatch(
            f"{where}: manifest {digest} has content with digest {actual} (corrupted or replaced)"
        )
    media_type = manifest_media_type(raw, digest, declared)
    return Manifest(Descriptor(media_type=media_type, digest=digest, size=len(raw)), raw)


def parse_manifest_json(raw: bytes, digest: str) -> dict[str, Any]:
    document = decode_json(raw, f"manifest {digest}")
    if not isinstance(document, dict):
        raise UsageError(f"manifest {digest} is not a JSON object")
    return document


def manifest_media_type(raw: bytes, digest: str, declared: str | None) -> str:
    """The media type of a manifest: its own `mediaType` field, which is part of the signed
    bytes, over whatever the store declared; only the four manifest and index types."""
    document = parse_manifest_json(raw, digest)
    own = document.get("mediaType")
    if own is not None and not isinstance(own, str):
        raise UsageError(f"manifest {digest}: mediaType is not a string")
    if own is None:
        # OCI allows leaving mediaType out; tell an index from a manifest by its shape.
        own = declared if declared in MANIFEST_MEDIA_TYPES else None
        if own is None:
            own = OCI_INDEX if "manifests" in document else OCI_MANIFEST
    if own not in MANIFEST_MEDIA_TYPES:
        if document.get("schemaVersion") == 1:
            raise UsageError(f"manifest {digest} is a Docker schema 1 manifest, not supported")
        raise UsageError(f"manifest {digest} has unsupported media type {own!r}")
    return own


def referrer_descriptor(manifest: Manifest) -> Descriptor:
    """How a referrer is listed (distribution-spec): its artifactType, else its config's media
    type, and its annotations."""
    document = manifest.json()
    artifact_type = document.get("artifactType")
    if not isinstance(artifact_type, str):
        config = document.get("config")
        artifact_type = config.get("mediaType") if isinstance(config, dict) else None
    annotations = document.get("annotations") or {}
    if not isinstance(annotations, dict):
        annotations = {}
    return Descriptor(
        media_type=manifest.media_type,
        digest=manifest.digest,
        size=manifest.descriptor.size,
        annotations=MappingProxyType({str(k): str(v) for k, v in annotations.items()}),
        artifact_type=artifact_type if isinstance(artifact_type, str) else None,
    )


def complete_referrers(source: ImageSource, descriptors: list[Descriptor]) -> list[Descriptor]:
    """Listed referrers, with those that lack a usable artifactType completed from the
    manifest itself.

    The spec makes artifactType mandatory when the config is the empty descriptor, so a listing
    that shows the empty config type (go-containerregistry's API does) or nothing (hand-kept
    fallback indexes) hides the real type, and filtering on it would miss the referrer.
    """
    completed = []
    for descriptor in descriptors:
        if descriptor.artifact_type in (None, OCI_EMPTY) and descriptor.media_type in (
            IMAGE_MANIFESTS
        ):
            # A dangling entry stays as listed; a caller that fetches it meets NotFound.
            with contextlib.suppress(NotFound):
                descriptor = referrer_descriptor(source.fetch_manifest(descriptor.digest))
        completed.append(descriptor)
    return completed


def _list(document: dict[str, Any], key: str, where: str) -> list[Any]:
    value = document.get(key, [])
    if not isinstance(value, list):
        raise UsageError(f"{where}: {key} is not a list")
    return value
