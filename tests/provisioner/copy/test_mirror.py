"""provisioner.copy.mirror against real registries (Distribution 2.8 with TLS and htpasswd and no
referrers API; go-containerregistry's with the API) and OCI image layouts: every digest and
every attachment arrives unchanged, nothing is copied twice, failures are clear and leave no
tag behind."""

from __future__ import annotations

import hashlib
import os
import random
import tracemalloc
from collections import Counter
from pathlib import Path

import pytest

from offline.oci.layout import OCILayout
from offline.oci.manifest import (
    OCI_EMPTY,
    OCI_EMPTY_DATA,
    OCI_EMPTY_DIGEST,
    OCI_INDEX,
    OCI_MANIFEST,
    Descriptor,
)
from offline.oci.registry import Repository
from provisioner.copy.mirror import MirrorError, MirrorReport, mirror_image
from tests.image_graphs import (
    BUNDLE,
    SBOM,
    Graph,
    check_target,
    dumps,
    populate,
    shared_base_index,
)
from tests.oci_images import (
    CONFIG,
    LAYER,
    Blob,
    make_artifact,
    make_image,
    push_artifact,
    push_image,
    push_index,
)
from tests.registries import RegistryServer

pytestmark = pytest.mark.slow


@pytest.fixture
def rng(request: pytest.FixtureRequest) -> random.Random:
    return random.Random(request.node.name)


def _repo(server: RegistryServer, request: pytest.FixtureRequest, suffix: str) -> Repository:
    """A fresh repository per test and role: the registries live for the whole session."""
    name = "".join(c if c.isalnum() else "-" for c in request.node.name.lower())
    name = "-".join(part for part in name.split("-") if part)[:100].rstrip("-")
    return server.client().repository(f"mirror/{name}-{suffix}")


def _check_report(report: MirrorReport, graph: Graph) -> None:
    assert set(report.manifests) == set(graph.manifests)
    assert report.fetch_failures == []
    assert report.attachment_counts() == {
        "cosign-sig": 1,
        "cosign-att": 1,
        "cosign-sbom": 0,
        "referrer": 3,
    }
    assert {(a.kind, a.subject, a.digest) for a in report.attachments} == {
        ("cosign-sig", graph.index.digest, graph.index_sig.digest),
        ("cosign-att", graph.index.images[1].digest, graph.child_att.digest),
        ("referrer", graph.index.digest, graph.sbom.digest),
        ("referrer", graph.sbom.digest, graph.sbom_signature.digest),
        ("referrer", graph.index.images[0].digest, graph.child_bundle.digest),
    }
    # Attachments were looked for, and none exist, on these (told apart from failures).
    assert graph.index.images[1].digest not in report.no_attachments
    assert graph.child_bundle.digest in report.no_attachments
    assert report.tags == ["v1"]


class Events:
    def __init__(self) -> None:
        self.events: list[tuple[str, str, int]] = []

    def __call__(self, event: str, digest: str, amount: int) -> None:
        self.events.append((event, digest, amount))

    def count(self, event: str) -> Counter[str]:
        return Counter(d for e, d, _ in self.events if e == event)


# ------------------------------------------------------------------------------- round trips
@pytest.mark.parametrize(
    ("first", "second"),
    [("docker_registry", "referrers_registry"), ("referrers_registry", "docker_registry")],
)
def test_registry_layout_registry_round_trip(
    first: str,
    second: str,
    request: pytest.FixtureRequest,
    rng: random.Random,
    tmp_path: Path,
) -> None:
    source = _repo(request.getfixturevalue(first), request, "src")
    target = _repo(request.getfixturevalue(second), request, "dst")
    graph = populate(source, rng)
    layout = OCILayout.create(tmp_path / "bundle")

    events = Events()
    report = mirror_image(source, layout, graph.index.digest, tags=["v1"], progress=events)
    _check_report(report, graph)
    check_target(layout, graph)
    assert set(report.manifests_copied) == set(graph.manifests)
    # The shared base layer (and the empty config all referrers share) is copied once.
    assert events.count("blob")[graph.base.digest] == 1
    assert events.count("blob")[OCI_EMPTY_DIGEST] == 1
    assert max(events.count("blob").values()) == 1
    assert sum(n for e, _, n in events.events if e == "bytes") == sum(
        len(b.data) for b in _unique_blobs(graph)
    )
    assert report.bytes_copied == sum(len(b.data) for b in _unique_blobs(graph)) + sum(
        len(m) for m in graph.manifests.values()
    )

    again = mirror_image(source, layout, graph.index.digest, tags=["v1"])
    assert again.copied_nothing and again.bytes_copied == 0
    assert set(again.manifests_present) == set(graph.manifests)
    assert set(again.blobs_present) == set(report.blobs)
    _check_report(again, graph)

    onward = mirror_image(layout, target, graph.index.digest, tags=["v1"])
    _check_report(onward, graph)
    check_target(target, graph)
    # Only the empty config can be there already: a registry may serve it from any repository.
    assert set(onward.blobs_copied) | {OCI_EMPTY_DIGEST} == set(report.blobs) | {OCI_EMPTY_DIGEST}

    last = mirror_image(layout, target, graph.index.digest, tags=["v1"])
    assert last.copied_nothing
    check_target(target, graph)


def _unique_blobs(graph: Graph) -> list[Blob]:
    blobs = [b for i in graph.index.images for b in i.blobs]
    blobs += [b for a in (graph.sbom, graph.sbom_signature, graph.child_bundle) for b in a.blobs]
    blobs += [graph.index_sig.layer, graph.child_att.layer]
    blobs += [
        Blob(CONFIG, dumps({"rootfs": {"type": "layers", "diff_ids": [c.layer.digest]}}))
        for c in (graph.index_sig, graph.child_att)
    ]
    return list({b.digest: b for b in blobs}.values())


def test_index_stays_whole_and_partial_target_is_completed(
    docker_registry: RegistryServer, request: pytest.FixtureRequest, rng: random.Random
) -> None:
    # Distribution keeps blobs per repository (go-containerregistry's are registry-wide).
    source = _repo(docker_registry, request, "src")
    target = _repo(docker_registry, request, "dst")
    index, _ = shared_base_index(rng)
    push_index(source, index)
    # The target already holds one platform image: only the rest is copied.
    push_image(target, index.images[0])
    report = mirror_image(source, target, index.digest)
    assert index.images[0].digest in report.manifests_present
    assert set(report.manifests_copied) == {index.digest, index.images[1].digest}
    assert set(report.blobs_present) == {b.digest for b in index.images[0].blobs}
    fetched = target.fetch_manifest(index.digest)
    assert fetched.raw == index.manifest
    assert [c.digest for c in fetched.children()] == [i.digest for i in index.images]
    for image in index.images:
        assert target.fetch_manifest(image.digest).raw == image.manifest
    # No attachments anywhere: "none exist" for each manifest, no failure.
    assert set(report.no_attachments) == {index.digest, *(i.digest for i in index.images)}
    assert report.attachments == [] and report.fetch_failures == []


# ---------------------------------------------------------------------------------- failures
def _delete_blob(layout: OCILayout, digest: str) -> None:
    (layout.path / "blobs" / "sha256" / digest.split(":", 1)[1]).unlink()


@pytest.mark.parametrize("target_kind", ["docker_registry", "layout"])
def test_missing_blob_fails_clearly_and_tags_nothing(
    target_kind: str, request: pytest.FixtureRequest, rng: random.Random, tmp_path: Path
) -> None:
    source = OCILayout.create(tmp_path / "src")
    image = make_image(rng)
    push_image(source, image, "v1")
    missing = image.layers[1].digest
    _delete_blob(source, missing)
    target: Repository | OCILayout
    if target_kind == "layout":
        target = OCILayout.create(tmp_path / "dst")
    else:
        target = _repo(request.getfixturevalue(target_kind), request, "dst")
    with pytest.raises(MirrorError) as failure:
        mirror_image(source, target, image.digest, tags=["v1"])
    message = str(failure.value)
    assert "\n" not in message
    assert image.digest in message and missing in message and source.location in message
    assert target.resolve_optional("v1") is None
    assert not target.blob_exists(missing)
    if isinstance(target, OCILayout):
        assert target.entries() == []
    else:
        assert not target.manifest_exists(image.digest)


def test_corrupt_blob_is_a_source_failure(rng: random.Random, tmp_path: Path) -> None:
    source = OCILayout.create(tmp_path / "src")
    image = make_image(rng)
    push_image(source, image)
    path = source.path / "blobs" / "sha256" / image.layers[0].digest.split(":", 1)[1]
    data = bytearray(path.read_bytes())
    data[-1] ^= 1
    path.write_bytes(bytes(data))
    target = OCILayout.create(tmp_path / "dst")
    with pytest.raises(MirrorError, match="corrupted or replaced"):
        mirror_image(source, target, image.digest, tags=["v1"])
    assert not target.blob_exists(image.layers[0].digest)
    assert target.entries() == []


def test_missing_attachment_raises_unless_allowed(rng: random.Random, tmp_path: Path) -> None:
    source = OCILayout.create(tmp_path / "src")
    image = make_image(rng)
    push_image(source, image, "v1")
    broken = make_artifact(image.descriptor, SBOM, b'{"spdxVersion":"SPDX-2.3"}')
    push_artifact(source, broken)
    good = make_artifact(image.descriptor, BUNDLE, b"{}", layer_type=BUNDLE)
    push_artifact(source, good)
    _delete_blob(source, broken.layer.digest)

    target = OCILayout.create(tmp_path / "dst")
    with pytest.raises(MirrorError) as failure:
        mirror_image(source, target, image.digest, tags=["v1"])
    message = str(failure.value)
    assert "\n" not in message
    assert image.digest in message and broken.digest in message
    assert broken.layer.digest in message
    assert target.resolve_optional("v1") is None

    report = mirror_image(source, target, image.digest, tags=["v1"], allow_missing=True)
    assert len(report.fetch_failures) == 1 and broken.digest in report.fetch_failures[0]
    assert image.digest not in report.no_attachments  # a failure is not "none exist"
    assert [a.digest for a in report.attachments] == [good.digest]
    assert target.resolve("v1").digest == image.digest
    assert {d.digest for d in target.referrers(image.digest).descriptors} == {good.digest}


def test_listed_referrer_with_another_subject_is_refused(
    rng: random.Random, tmp_path: Path
) -> None:
    """A listing is a hint: a referrer whose own subject is another digest is not copied."""
    source = OCILayout.create(tmp_path / "src")
    image, other = make_image(rng), make_image(rng)
    push_image(source, image)
    push_image(source, other)
    stray = make_artifact(other.descriptor, SBOM, b"{}")
    push_artifact(source, stray)
    # List it under the image's fallback tag as well, as a confused tool might.
    fallback = dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_INDEX,
            "manifests": [
                {"mediaType": OCI_MANIFEST, "digest": stray.digest, "size": len(stray.manifest)}
            ],
        }
    )
    source.push_manifest(fallback, OCI_INDEX, image.digest.replace(":", "-"))
    target = OCILayout.create(tmp_path / "dst")
    report = mirror_image(source, target, image.digest, allow_missing=True)
    assert len(report.fetch_failures) == 1 and "subject" in report.fetch_failures[0]
    assert report.attachments == []
    assert not target.blob_exists(stray.digest)


# ------------------------------------------------------------------------------------ memory
def _copy_peak(directory: Path, size: int) -> int:
    """Peak traced memory while mirroring an image with one `size`-byte layer, layout to
    layout (the blob is written to the source in chunks, never held whole)."""
    source = OCILayout.create(directory / "src")
    tmp = source.path / "blobs" / "sha256" / "big.tmp"
    hasher = hashlib.sha256()
    with open(tmp, "wb") as out:
        for _ in range(size // (1024 * 1024)):
            chunk = os.urandom(1024 * 1024)
            hasher.update(chunk)
            out.write(chunk)
    layer = Descriptor(LAYER, f"sha256:{hasher.hexdigest()}", size)
    tmp.rename(source.path / "blobs" / "sha256" / hasher.hexdigest())
    source.push_blob(OCI_EMPTY_DATA, OCI_EMPTY_DIGEST, len(OCI_EMPTY_DATA))
    manifest = dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": OCI_EMPTY, "digest": OCI_EMPTY_DIGEST, "size": 2},
            "layers": [layer.to_json()],
        }
    )
    digest = source.push_manifest(manifest, OCI_MANIFEST, "big").digest
    target = OCILayout.create(directory / "dst")
    tracemalloc.start()
    try:
        report = mirror_image(source, target, digest, tags=["big"])
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert report.blobs[layer.digest] == "copied"
    assert report.bytes_copied == size + 2 + len(manifest)
    assert (target.path / "blobs" / "sha256" / hasher.hexdigest()).stat().st_size == size
    return peak


def test_large_blob_streams_in_constant_memory(tmp_path: Path) -> None:
    # The baseline includes fixed buffers (a layout reads a manifest with a 16 MiB bound).
    small = _copy_peak(tmp_path / "small", 4 * 1024 * 1024)
    large = _copy_peak(tmp_path / "large", 64 * 1024 * 1024)
    assert large - small < 2 * 1024 * 1024, (small, large)
