"""Verifying a bundle directory: signature, then every blob, then files, then the graph."""

from __future__ import annotations

import hashlib
import os
import random
import tracemalloc
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path

import pytest

from offline.errors import UsageError, VerificationFailure
from offline.oci.digests import sha256_digest
from offline.oci.layout import OCILayout
from offline.oci.manifest import Descriptor
from provisioner.bundle.check import short, verify_bundle_dir
from provisioner.bundle.manifest import (
    MANIFEST_FILE,
    BlobEntry,
    BundleManifest,
    ChartEntry,
    FileEntry,
    GraphNode,
    ImageEntry,
    layout_files,
)
from provisioner.bundle.signing import (
    KEY_KINDS,
    SIGNATURE_FILE,
    KeyKind,
    PrivateKey,
    PublicKey,
    generate_key,
    load_private_key,
    load_public_key,
    sign_manifest,
)
from tests.oci_images import (
    make_artifact,
    make_image,
    make_index,
    push_artifact,
    push_image,
    push_index,
)

TOOL = b"#!/bin/sh\necho tool\n"
CHART = b"not really a gzip'd chart, but bytes with a digest"


@dataclass
class Bundle:
    path: Path
    manifest: BundleManifest
    private: PrivateKey
    public: PublicKey
    kind: KeyKind

    def blob(self, digest: str) -> Path:
        return self.path / "oci" / "blobs" / "sha256" / digest.split(":", 1)[1]

    def resign(self, manifest: BundleManifest) -> None:
        self.manifest = manifest
        write_manifest(self.path, manifest, self.private)


def graph_of(layout: OCILayout, digest: str, nodes: dict[str, GraphNode]) -> None:
    """`digest` and every manifest under it, each with what it references."""
    if digest in nodes:
        return
    manifest = layout.fetch_manifest(digest)
    children = manifest.children()
    references = [d.digest for d in children]
    subject = manifest.subject()
    if subject is not None:
        references.append(subject.digest)
    nodes[digest] = GraphNode(digest, manifest.media_type, tuple(references))
    for child in children:
        if child.media_type in (
            "application/vnd.oci.image.manifest.v1+json",
            "application/vnd.oci.image.index.v1+json",
        ):
            graph_of(layout, child.digest, nodes)


def write_manifest(path: Path, manifest: BundleManifest, private: PrivateKey) -> None:
    data = manifest.to_bytes()
    (path / MANIFEST_FILE).write_bytes(data)
    (path / SIGNATURE_FILE).write_bytes(sign_manifest(data, private))


def build_bundle(root: Path, kind: KeyKind) -> Bundle:
    """A bundle of one image with a referrer, one two-platform index, a chart and a file."""
    path = root / "bundle"
    layout = OCILayout.create(path / "oci")
    rng = random.Random(4)
    image = make_image(rng, layers=3)
    index = make_index(rng)
    push_image(layout, image, "app:v1")
    push_index(layout, index, "multi:v1")
    signature = make_artifact(
        Descriptor(image.media_type, image.digest, len(image.manifest)),
        "application/vnd.dev.cosign.artifact.sig.v1+json",
        b"a signature",
    )
    push_artifact(layout, signature)

    app_nodes: dict[str, GraphNode] = {}
    graph_of(layout, image.digest, app_nodes)
    graph_of(layout, signature.digest, app_nodes)
    multi_nodes: dict[str, GraphNode] = {}
    graph_of(layout, index.digest, multi_nodes)
    images = (
        ImageEntry(
            "registry.example/app:v1",
            image.digest,
            tuple(app_nodes.values()),
            {"referrer": (signature.digest,)},
        ),
        ImageEntry("registry.example/multi:v1", index.digest, tuple(multi_nodes.values())),
    )
    blob_dir = path / "oci" / "blobs" / "sha256"
    blobs = tuple(
        BlobEntry(f"sha256:{p.name}", p.stat().st_size) for p in sorted(blob_dir.iterdir())
    )
    (path / "files").mkdir()
    (path / "files" / "tool").write_bytes(TOOL)
    (path / "charts").mkdir()
    (path / "charts" / "demo-1.0.0.tgz").write_bytes(CHART)
    manifest = BundleManifest(
        created=datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC),
        name="test",
        sequence=1,
        layout=layout_files(path),
        images=images,
        blobs=blobs,
        charts=(ChartEntry("demo", "1.0.0", sha256_digest(CHART), "charts/demo-1.0.0.tgz"),),
        files=(FileEntry("files/tool", hashlib.sha256(TOOL).hexdigest(), len(TOOL)),),
    )
    key_path = root / "keys" / "operator.key"
    key_path.parent.mkdir()
    public = load_public_key(generate_key(key_path, kind))
    private = load_private_key(key_path)
    write_manifest(path, manifest, private)
    return Bundle(path, manifest, private, public, kind)


@pytest.fixture(params=KEY_KINDS)
def bundle(request: pytest.FixtureRequest, tmp_path: Path) -> Bundle:
    return build_bundle(tmp_path, request.param)


def flip(path: Path, offset: int) -> bytes:
    """Flip one bit of the byte at `offset` (negative: from the end); returns the original."""
    original = path.read_bytes()
    changed = bytearray(original)
    changed[offset] ^= 0x01
    path.write_bytes(bytes(changed))
    return original


def problem(bundle: Bundle, public: PublicKey | None = None) -> str:
    report = verify_bundle_dir(bundle.path, public or bundle.public)
    assert not report.ok
    assert report.problem is not None
    assert "\n" not in report.problem
    return report.problem


# -------------------------------------------------------------------------------- good
def test_good_bundle_verifies(bundle: Bundle) -> None:
    report = verify_bundle_dir(bundle.path, bundle.public)
    assert report.ok, report.problem
    report.raise_for_failure()
    assert report.signature_ok
    assert report.blobs_checked == len(bundle.manifest.blobs) >= 14
    assert report.blob_bytes_checked == sum(b.size for b in bundle.manifest.blobs)
    assert report.files_checked == 1
    assert report.charts_checked == 1
    assert report.images_checked == 2
    # app: image + referrer; multi: index + two platform manifests
    assert report.manifests_checked == 5
    assert report.extra_blobs == []
    assert "verified" in report.summary()


# ------------------------------------------------------------------------ the signature
def test_flipped_manifest_byte_is_caught_before_anything_else(bundle: Bundle) -> None:
    size = (bundle.path / MANIFEST_FILE).stat().st_size
    for offset in (0, 1, size // 3, size // 2, size - 2, size - 1):
        original = flip(bundle.path / MANIFEST_FILE, offset)
        report = verify_bundle_dir(bundle.path, bundle.public)
        assert report.problem is not None
        assert report.problem.startswith("signature: the signature does not match the manifest")
        assert report.blobs_checked == 0
        assert report.manifest is None
        (bundle.path / MANIFEST_FILE).write_bytes(original)
    assert verify_bundle_dir(bundle.path, bundle.public).ok


def test_every_flipped_signature_byte_is_caught(bundle: Bundle) -> None:
    signature_path = bundle.path / SIGNATURE_FILE
    for offset in range(signature_path.stat().st_size):
        original = flip(signature_path, offset)
        assert problem(bundle).startswith("signature: ")
        signature_path.write_bytes(original)


def test_wrong_public_key(bundle: Bundle, tmp_path: Path) -> None:
    other = load_public_key(generate_key(tmp_path / "other.key", bundle.kind))
    assert "wrong public key" in problem(bundle, other)


def test_missing_signature_or_manifest(bundle: Bundle) -> None:
    signature = (bundle.path / SIGNATURE_FILE).read_bytes()
    (bundle.path / SIGNATURE_FILE).unlink()
    assert problem(bundle) == f"{SIGNATURE_FILE} is missing"
    (bundle.path / SIGNATURE_FILE).write_bytes(signature)
    (bundle.path / MANIFEST_FILE).unlink()
    assert problem(bundle) == f"{MANIFEST_FILE} is missing"


def test_a_directory_that_is_not_a_bundle_is_bad_input(bundle: Bundle, tmp_path: Path) -> None:
    """Bad input (exit 2), told apart from a bundle that fails its checks (exit 1)."""
    for path in (tmp_path / "empty", tmp_path / "absent", bundle.path / "oci"):
        path.mkdir(exist_ok=path.name != "empty")
        if path.name == "absent":
            path.rmdir()
        with pytest.raises(UsageError) as caught:
            verify_bundle_dir(path, bundle.public)
        assert caught.value.exit_code == 2 and "\n" not in str(caught.value)
    (tmp_path / "file").write_bytes(b"x")
    with pytest.raises(UsageError, match="is not a directory"):
        verify_bundle_dir(tmp_path / "file", bundle.public)


def test_signature_is_checked_first(bundle: Bundle) -> None:
    first = bundle.manifest.blobs[0]
    bundle.blob(first.digest).unlink()
    flip(bundle.path / MANIFEST_FILE, 10)
    assert problem(bundle).startswith("signature: ")


def test_raise_for_failure(bundle: Bundle) -> None:
    flip(bundle.path / SIGNATURE_FILE, 5)
    report = verify_bundle_dir(bundle.path, bundle.public)
    with pytest.raises(VerificationFailure, match=r"^bundle .*: signature: "):
        report.raise_for_failure()
    assert "FAILED" in report.summary()


# ---------------------------------------------------------------------------- the blobs
def test_flipped_byte_in_any_blob_is_caught(bundle: Bundle) -> None:
    for blob in bundle.manifest.blobs:
        if blob.size == 0:
            continue
        for offset in (0, blob.size // 2, -1):
            original = flip(bundle.blob(blob.digest), offset)
            message = problem(bundle)
            assert message.startswith(f"blob {short(blob.digest)} has content with digest ")
            assert message.endswith("(corrupted)")
            bundle.blob(blob.digest).write_bytes(original)
    assert verify_bundle_dir(bundle.path, bundle.public).ok


def test_missing_blob(bundle: Bundle) -> None:
    blob = bundle.manifest.blobs[3]
    bundle.blob(blob.digest).unlink()
    assert problem(bundle) == f"blob {short(blob.digest)} is missing"


def test_of_several_bad_blobs_the_first_listed_is_reported(bundle: Bundle) -> None:
    """Blobs are hashed several at a time; the outcome is still that of a check in the
    manifest's order: the first bad blob listed is named, those before it counted."""
    blobs = [b for b in bundle.manifest.blobs if b.size > 0]
    first, last = blobs[2], blobs[-1]
    bundle.blob(last.digest).unlink()  # the quickest failure comes last in the list
    flip(bundle.blob(first.digest), 0)
    for _ in range(5):
        report = verify_bundle_dir(bundle.path, bundle.public)
        assert report.problem is not None
        assert report.problem.startswith(f"blob {short(first.digest)} has content with digest ")
        assert report.blobs_checked == bundle.manifest.blobs.index(first)


def test_blob_one_byte_longer_or_shorter(bundle: Bundle) -> None:
    blob = next(b for b in bundle.manifest.blobs if b.size > 100)
    path = bundle.blob(blob.digest)
    original = path.read_bytes()
    path.write_bytes(original + b"\0")
    assert problem(bundle) == (f"blob {short(blob.digest)} is 1 byte longer than the manifest says")
    path.write_bytes(original[:-10])
    assert problem(bundle) == (
        f"blob {short(blob.digest)} is 10 bytes shorter than the manifest says"
    )


def test_extra_blobs_are_reported(bundle: Bundle) -> None:
    layout = OCILayout(bundle.path / "oci")
    extras = sorted(sha256_digest(data) for data in (b"one", b"two"))
    for data in (b"one", b"two"):
        layout.push_blob(data, sha256_digest(data), len(data))
    report = verify_bundle_dir(bundle.path, bundle.public)
    assert report.extra_blobs == extras
    assert report.problem == (
        f"blob {short(extras[0])} (and 1 more) in the layout is not in the manifest"
    )
    assert report.blobs_checked == len(bundle.manifest.blobs)


def test_stray_file_in_blob_directory_is_reported(bundle: Bundle) -> None:
    (bundle.path / "oci" / "blobs" / "sha256" / ".tmp-x.partial").write_bytes(b"")
    report = verify_bundle_dir(bundle.path, bundle.public)
    assert report.extra_blobs == ["blobs/sha256/.tmp-x.partial"]
    assert not report.ok


# ------------------------------------------------------ nothing unsigned in the bundle
@pytest.mark.parametrize(
    "name",
    [
        "notes.txt",
        ".import-journal-0123456789abcdef.jsonl",  # a journal shipped in the bundle
        "oci/extra.json",
        "files/unlisted-tool",
        "charts/other-1.0.0.tgz",
        f"{MANIFEST_FILE}.sigstore.json",  # a signature of the other kind
    ],
)
def test_a_file_the_manifest_does_not_list_is_refused_by_name(bundle: Bundle, name: str) -> None:
    path = bundle.path / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"unsigned")
    report = verify_bundle_dir(bundle.path, bundle.public)
    assert report.problem == (
        f"{name} is in the bundle but not in {MANIFEST_FILE} "
        "(nothing unsigned is accepted: remove it)"
    )
    assert report.unlisted == [name]


def test_unlisted_directories_links_and_fifos_are_all_named(bundle: Bundle) -> None:
    (bundle.path / "empty-dir").mkdir()
    (bundle.path / "trust" / "deep").mkdir(parents=True)  # named once, not descended into
    (bundle.path / "trust" / "deep" / "x").write_bytes(b"x")
    (bundle.path / "link").symlink_to(bundle.path / MANIFEST_FILE)
    os.mkfifo(bundle.path / "oci" / "fifo")
    (bundle.path / "files" / "tool-link").symlink_to("tool")
    report = verify_bundle_dir(bundle.path, bundle.public)
    assert report.unlisted == ["empty-dir", "files/tool-link", "link", "oci/fifo", "trust"]
    assert report.problem is not None
    assert report.problem.startswith(
        "empty-dir, files/tool-link, link, oci/fifo, trust are in the bundle"
    )


def test_an_extra_tag_in_index_json_is_refused(bundle: Bundle) -> None:
    """skopeo, oras and crane read tags from index.json: one added after signing names an
    unsigned image (here: a signed blob under a new tag)."""
    layout = OCILayout(bundle.path / "oci")
    image = bundle.manifest.images[0]
    node = image.graph[0]
    size = bundle.blob(node.digest).stat().st_size
    layout.add_to_index(Descriptor(node.media_type, node.digest, size), "evil:latest")
    assert problem(bundle) == "oci/index.json is 278 bytes longer than the manifest says"


def test_an_index_json_changed_at_its_size_is_refused(bundle: Bundle) -> None:
    path = bundle.path / "oci" / "index.json"
    path.write_bytes(path.read_bytes().replace(b"app:v1", b"app:v2"))
    assert problem(bundle).startswith("oci/index.json has content with digest ")


def test_a_changed_oci_layout_file_is_refused(bundle: Bundle) -> None:
    path = bundle.path / "oci" / "oci-layout"
    path.write_bytes(path.read_bytes().replace(b"1.0.0", b"1.1.0"))
    assert problem(bundle).startswith("oci/oci-layout has content with digest ")


def test_a_missing_index_json_is_refused(bundle: Bundle) -> None:
    (bundle.path / "oci" / "index.json").unlink()
    assert problem(bundle) == "oci/index.json is missing"


def test_symlinked_blob_is_refused(bundle: Bundle, tmp_path: Path) -> None:
    blob = bundle.manifest.blobs[0]
    outside = tmp_path / "outside"
    outside.write_bytes(bundle.blob(blob.digest).read_bytes())
    bundle.blob(blob.digest).unlink()
    bundle.blob(blob.digest).symlink_to(outside)
    assert problem(bundle).startswith(f"blob {short(blob.digest)} cannot be opened")


def test_large_blob_is_hashed_with_flat_memory(tmp_path: Path) -> None:
    bundle = build_bundle(tmp_path, "ed25519")
    big = random.Random(1).randbytes(24 * 1024 * 1024)
    digest = sha256_digest(big)
    OCILayout(bundle.path / "oci").push_blob(big, digest, len(big))
    del big
    bundle.resign(
        replace(bundle.manifest, blobs=(*bundle.manifest.blobs, BlobEntry(digest, 24 << 20)))
    )
    tracemalloc.start()
    try:
        report = verify_bundle_dir(bundle.path, bundle.public)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert report.ok, report.problem
    assert peak < 4 * 1024 * 1024


# ---------------------------------------------------------------------------- the files
def test_truncated_file(bundle: Bundle) -> None:
    path = bundle.path / "files" / "tool"
    path.write_bytes(TOOL[:-1])
    assert problem(bundle) == "file files/tool is 1 byte shorter than the manifest says"


def test_flipped_file_byte(bundle: Bundle) -> None:
    flip(bundle.path / "files" / "tool", 3)
    assert problem(bundle).startswith("file files/tool has content with digest ")


def test_missing_or_changed_chart(bundle: Bundle) -> None:
    chart = bundle.path / "charts" / "demo-1.0.0.tgz"
    flip(chart, 0)
    assert problem(bundle).startswith("chart demo 1.0.0 (charts/demo-1.0.0.tgz) has content ")
    chart.unlink()
    assert problem(bundle) == "chart demo 1.0.0 (charts/demo-1.0.0.tgz) is missing"


def test_file_behind_a_symlinked_directory_is_refused(bundle: Bundle, tmp_path: Path) -> None:
    files = bundle.path / "files"
    files.rename(tmp_path / "elsewhere")
    os.symlink(tmp_path / "elsewhere", files)
    assert problem(bundle) == "file files/tool: files is a symbolic link"


# ---------------------------------------------------------------------------- the graph
def test_graph_reference_not_in_the_bundle(bundle: Bundle) -> None:
    image = bundle.manifest.images[0]
    layer = image.graph[0].references[-1]
    bundle.blob(layer).unlink()
    blobs = tuple(b for b in bundle.manifest.blobs if b.digest != layer)
    bundle.resign(replace(bundle.manifest, blobs=blobs))
    assert problem(bundle) == (
        f"image registry.example/app:v1: manifest {short(image.digest)} references "
        f"{short(layer)}, which is not in the bundle"
    )


def test_graph_entry_that_lies_about_references(bundle: Bundle) -> None:
    image = bundle.manifest.images[0]
    node = image.graph[0]
    lying = replace(node, references=node.references[:-1])
    images = (replace(image, graph=(lying, *image.graph[1:])), *bundle.manifest.images[1:])
    bundle.resign(replace(bundle.manifest, images=images))
    assert problem(bundle) == (
        f"image registry.example/app:v1: manifest {short(node.digest)} references "
        f"{short(node.references[-1])}, unlike its graph entry in the manifest"
    )


def test_graph_entry_with_wrong_media_type(bundle: Bundle) -> None:
    image = bundle.manifest.images[1]
    node = image.graph[0]
    wrong = replace(node, media_type="application/vnd.oci.image.manifest.v1+json")
    images = (bundle.manifest.images[0], replace(image, graph=(wrong, *image.graph[1:])))
    bundle.resign(replace(bundle.manifest, images=images))
    assert problem(bundle) == (
        f"image registry.example/multi:v1: manifest {short(node.digest)} is a "
        "application/vnd.oci.image.index.v1+json, recorded as "
        "application/vnd.oci.image.manifest.v1+json"
    )


def test_graph_node_that_is_not_a_manifest(bundle: Bundle) -> None:
    image = bundle.manifest.images[0]
    layer = image.graph[0].references[-1]
    bogus = GraphNode(layer, "application/vnd.oci.image.manifest.v1+json", ())
    images = (replace(image, graph=(*image.graph, bogus)), *bundle.manifest.images[1:])
    bundle.resign(replace(bundle.manifest, images=images))
    assert problem(bundle).startswith(
        f"image registry.example/app:v1: manifest {short(layer)} does not parse: "
    )


def test_image_digest_and_attachments_must_be_in_the_graph(bundle: Bundle) -> None:
    image = bundle.manifest.images[0]
    stray = "sha256:" + "e" * 64
    images = (replace(image, attachments={"sig": (stray,)}), *bundle.manifest.images[1:])
    bundle.resign(replace(bundle.manifest, images=images))
    assert problem(bundle) == (
        f"image registry.example/app:v1: sig attachment {short(stray)} is not in its graph"
    )
    images = (replace(image, graph=image.graph[1:]), *bundle.manifest.images[1:])
    bundle.resign(replace(bundle.manifest, images=images))
    assert problem(bundle) == (
        f"image registry.example/app:v1: digest {short(image.digest)} is not in its graph"
    )


def test_manifest_that_parses_badly_after_signing_is_reported(bundle: Bundle) -> None:
    data = b'{"format":"airgap-bundle/v2"}'
    (bundle.path / MANIFEST_FILE).write_bytes(data)
    (bundle.path / SIGNATURE_FILE).write_bytes(sign_manifest(data, bundle.private))
    assert problem(bundle) == "airgap-bundle.json: missing created"
