"""A realistic image graph for copy tests: a two-platform index sharing a base layer, an SBOM
referrer with a signature referrer of its own, a referrer on a platform manifest, a cosign .sig
tag on the index and a .att tag on a platform manifest; and a check that a target holds it all,
byte for byte."""

from __future__ import annotations

import json
import random
from dataclasses import dataclass

from offline.oci.digests import cosign_tag, sha256_digest
from offline.oci.manifest import OCI_INDEX, OCI_MANIFEST, Descriptor
from offline.oci.store import ImageSink, ImageSource
from tests.oci_images import (
    CONFIG,
    Artifact,
    Blob,
    TestImage,
    TestIndex,
    make_artifact,
    push_artifact,
    push_index,
    random_layer,
)

SBOM = "application/spdx+json"
BUNDLE = "application/vnd.dev.sigstore.bundle.v0.3+json"
SIMPLESIGNING = "application/vnd.dev.cosign.simplesigning.v1+json"


def dumps(document: object) -> bytes:
    return json.dumps(document, separators=(",", ":"), sort_keys=True).encode()


def image_of(rng: random.Random, layers: list[Blob], platform: tuple[str, str]) -> TestImage:
    config = Blob(
        CONFIG, dumps({"os": platform[0], "architecture": platform[1], "n": rng.random()})
    )
    manifest = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": config.descriptor.to_json(),
        "layers": [b.descriptor.to_json() for b in layers],
    }
    return TestImage(config, tuple(layers), dumps(manifest), platform=platform)


def shared_base_index(rng: random.Random) -> tuple[TestIndex, Blob]:
    """Two platform images that share their base layer, in one index."""
    base, _ = random_layer(rng, 4096)
    images = tuple(
        image_of(rng, [base, random_layer(rng, 2048)[0]], platform)
        for platform in (("linux", "amd64"), ("linux", "arm64"))
    )
    index = {
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": [i.descriptor.to_json() for i in images],
    }
    return TestIndex(images, dumps(index)), base


@dataclass
class CosignTag:
    manifest: bytes
    layer: Blob
    tag: str

    @property
    def digest(self) -> str:
        return sha256_digest(self.manifest)


def push_cosign(sink: ImageSink, subject: str, suffix: str, payload: bytes) -> CosignTag:
    """A fake cosign legacy attachment: a simple-signing layer with a signature annotation,
    under the tag `sha256-<hex>.<suffix>` (the shape cosign writes; not a valid signature)."""
    layer = Blob(SIMPLESIGNING, payload)
    config = Blob(CONFIG, dumps({"rootfs": {"type": "layers", "diff_ids": [layer.digest]}}))
    layer_json = layer.descriptor.to_json()
    layer_json["annotations"] = {"dev.cosignproject.cosign/signature": "MEUCIQ=="}
    manifest = dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": config.descriptor.to_json(),
            "layers": [layer_json],
        }
    )
    for blob in (config, layer):
        sink.push_blob(blob.data, blob.digest, len(blob.data))
    tag = cosign_tag(subject, suffix)
    sink.push_manifest(manifest, OCI_MANIFEST, tag)
    return CosignTag(manifest, layer, tag)


@dataclass
class Graph:
    index: TestIndex
    base: Blob
    sbom: Artifact  # referrer of the index
    sbom_signature: Artifact  # referrer of the sbom referrer
    child_bundle: Artifact  # referrer of the first platform manifest
    index_sig: CosignTag  # cosign .sig tag of the index
    child_att: CosignTag  # cosign .att tag of the second platform manifest

    @property
    def manifests(self) -> dict[str, bytes]:
        return {
            self.index.digest: self.index.manifest,
            **{i.digest: i.manifest for i in self.index.images},
            self.sbom.digest: self.sbom.manifest,
            self.sbom_signature.digest: self.sbom_signature.manifest,
            self.child_bundle.digest: self.child_bundle.manifest,
            self.index_sig.digest: self.index_sig.manifest,
            self.child_att.digest: self.child_att.manifest,
        }


def populate(sink: ImageSink, rng: random.Random, tag: str = "v1") -> Graph:
    index, base = shared_base_index(rng)
    push_index(sink, index, tag)
    # Every payload carries random bits: blobs never repeat across tests (some registries
    # serve a blob pushed anywhere from every repository).
    nonce = rng.getrandbits(32)
    sbom = make_artifact(index.descriptor, SBOM, b'{"spdxVersion":"SPDX-2.3","n":%d}' % nonce)
    push_artifact(sink, sbom)
    sbom_descriptor = Descriptor(OCI_MANIFEST, sbom.digest, len(sbom.manifest))
    sbom_signature = make_artifact(
        sbom_descriptor, BUNDLE, b'{"n":%d}' % rng.getrandbits(32), layer_type=BUNDLE
    )
    push_artifact(sink, sbom_signature)
    child = index.images[0]
    child_bundle = make_artifact(child.descriptor, BUNDLE, b'{"c":%d}' % nonce, layer_type=BUNDLE)
    push_artifact(sink, child_bundle)
    index_sig = push_cosign(sink, index.digest, "sig", b'{"critical":{"index":%d}}' % nonce)
    child_att = push_cosign(
        sink, index.images[1].digest, "att", b'{"payloadType":"x","n":%d}' % nonce
    )
    return Graph(index, base, sbom, sbom_signature, child_bundle, index_sig, child_att)


def check_target(target: ImageSource, graph: Graph, tag: str = "v1") -> None:
    """Every manifest byte-identical, every attachment listed where it belongs, the tag."""
    for digest, raw in graph.manifests.items():
        assert target.fetch_manifest(digest).raw == raw, digest
    for blob in (graph.base, *[b for i in graph.index.images for b in i.blobs]):
        with target.open_blob(blob.digest, len(blob.data)) as reader:
            assert reader.read() == blob.data
    assert target.resolve(tag).digest == graph.index.digest

    def referrers(subject: str) -> set[str]:
        return {d.digest for d in target.referrers(subject).descriptors}

    assert referrers(graph.index.digest) == {graph.sbom.digest}
    assert referrers(graph.sbom.digest) == {graph.sbom_signature.digest}
    assert referrers(graph.index.images[0].digest) == {graph.child_bundle.digest}
    assert referrers(graph.index.images[1].digest) == set()
    sig = target.cosign_attachments(graph.index.digest)
    assert {k: d.digest for k, d in sig.items()} == {"sig": graph.index_sig.digest}
    att = target.cosign_attachments(graph.index.images[1].digest)
    assert {k: d.digest for k, d in att.items()} == {"att": graph.child_att.digest}
