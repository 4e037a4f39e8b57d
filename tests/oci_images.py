"""Small, real test images built in memory and pushed through our own client (any ImageSink:
a registry repository or an image layout): gzip'd tar layers holding random bytes, an image
config with matching diff_ids, an image manifest, and optionally an index of two platforms.
Also referrer artifacts (an empty config, one layer, a subject)."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import random
import tarfile
from dataclasses import dataclass, field

from offline.oci.digests import sha256_digest
from offline.oci.manifest import (
    OCI_EMPTY,
    OCI_EMPTY_DATA,
    OCI_EMPTY_DIGEST,
    OCI_INDEX,
    OCI_MANIFEST,
    Descriptor,
)
from offline.oci.store import ImageSink

LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
CONFIG = "application/vnd.oci.image.config.v1+json"
PLATFORMS = (("linux", "amd64"), ("linux", "arm64"))


def _dumps(document: object) -> bytes:
    return json.dumps(document, separators=(",", ":"), sort_keys=True).encode()


@dataclass(frozen=True)
class Blob:
    media_type: str
    data: bytes

    @property
    def digest(self) -> str:
        return sha256_digest(self.data)

    @property
    def descriptor(self) -> Descriptor:
        return Descriptor(self.media_type, self.digest, len(self.data))


@dataclass(frozen=True)
class TestImage:
    __test__ = False

    config: Blob
    layers: tuple[Blob, ...]
    manifest: bytes
    media_type: str = OCI_MANIFEST
    platform: tuple[str, str] | None = None

    @property
    def digest(self) -> str:
        return sha256_digest(self.manifest)

    @property
    def descriptor(self) -> Descriptor:
        platform = (
            {"os": self.platform[0], "architecture": self.platform[1]} if self.platform else None
        )
        return Descriptor(self.media_type, self.digest, len(self.manifest), platform=platform)

    @property
    def blobs(self) -> tuple[Blob, ...]:
        return (self.config, *self.layers)


@dataclass(frozen=True)
class TestIndex:
    __test__ = False

    images: tuple[TestImage, ...]
    manifest: bytes
    media_type: str = OCI_INDEX

    @property
    def digest(self) -> str:
        return sha256_digest(self.manifest)

    @property
    def descriptor(self) -> Descriptor:
        return Descriptor(self.media_type, self.digest, len(self.manifest))


@dataclass(frozen=True)
class Artifact:
    """A referrer: an OCI manifest with an artifactType, an empty config, one layer, and a
    subject."""

    manifest: bytes
    layer: Blob
    artifact_type: str
    extra: dict[str, str] = field(default_factory=dict)

    @property
    def digest(self) -> str:
        return sha256_digest(self.manifest)

    @property
    def blobs(self) -> tuple[Blob, ...]:
        return (Blob(OCI_EMPTY, OCI_EMPTY_DATA), self.layer)


def random_layer(rng: random.Random, size: int) -> tuple[Blob, str]:
    """A gzip'd tar with one file of random bytes, and its diff_id (digest of the tar)."""
    payload = rng.randbytes(size)
    tar_buffer = io.BytesIO()
    with tarfile.open(fileobj=tar_buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        info = tarfile.TarInfo(f"data-{rng.getrandbits(32):08x}.bin")
        info.size = len(payload)
        info.mtime = 0
        tar.addfile(info, io.BytesIO(payload))
    tar_bytes = tar_buffer.getvalue()
    return Blob(LAYER, gzip.compress(tar_bytes, mtime=0)), "sha256:" + hashlib.sha256(
        tar_bytes
    ).hexdigest()


def make_image(
    rng: random.Random,
    *,
    layers: int = 2,
    layer_size: int = 2048,
    platform: tuple[str, str] = ("linux", "amd64"),
    annotations: dict[str, str] | None = None,
) -> TestImage:
    blobs, diff_ids = zip(*(random_layer(rng, layer_size) for _ in range(layers)), strict=True)
    config = Blob(
        CONFIG,
        _dumps(
            {
                "architecture": platform[1],
                "os": platform[0],
                "config": {"Env": [f"NONCE={rng.getrandbits(64)}"]},
                "rootfs": {"type": "layers", "diff_ids": list(diff_ids)},
            }
        ),
    )
    manifest: dict[str, object] = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": config.descriptor.to_json(),
        "layers": [b.descriptor.to_json() for b in blobs],
    }
    if annotations:
        manifest["annotations"] = annotations
    return TestImage(config, tuple(blobs), _dumps(manifest), platform=platform)


def make_index(rng: random.Random, platforms: tuple[tuple[str, str], ...] = PLATFORMS) -> TestIndex:
    images = tuple(make_image(rng, platform=p) for p in platforms)
    index = {
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": [i.descriptor.to_json() for i in images],
    }
    return TestIndex(images, _dumps(index))


def make_artifact(
    subject: Descriptor,
    artifact_type: str,
    payload: bytes,
    *,
    layer_type: str = "application/octet-stream",
    annotations: dict[str, str] | None = None,
) -> Artifact:
    layer = Blob(layer_type, payload)
    manifest: dict[str, object] = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "artifactType": artifact_type,
        "config": {"mediaType": OCI_EMPTY, "digest": OCI_EMPTY_DIGEST, "size": 2},
        "layers": [layer.descriptor.to_json()],
        "subject": Descriptor(subject.media_type, subject.digest, subject.size).to_json(),
    }
    if annotations:
        manifest["annotations"] = annotations
    return Artifact(_dumps(manifest), layer, artifact_type, dict(annotations or {}))


def push_image(sink: ImageSink, image: TestImage, tag: str | None = None) -> Descriptor:
    for blob in image.blobs:
        sink.push_blob(blob.data, blob.digest, len(blob.data))
    return sink.push_manifest(image.manifest, image.media_type, tag)


def push_index(sink: ImageSink, index: TestIndex, tag: str | None = None) -> Descriptor:
    for image in index.images:
        push_image(sink, image)
    return sink.push_manifest(index.manifest, index.media_type, tag)


def push_artifact(sink: ImageSink, artifact: Artifact) -> Descriptor:
    for blob in artifact.blobs:
        sink.push_blob(blob.data, blob.digest, len(blob.data))
    return sink.push_referrer(artifact.manifest, OCI_MANIFEST)
