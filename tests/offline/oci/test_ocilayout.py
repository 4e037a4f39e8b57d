"""OCI image layouts: write and read back, the ref-name conventions of other tools, referrers
wherever tools put them, digest checks on every read, crash-safe writes, and interop with
skopeo both ways."""

from __future__ import annotations

import io
import json
import random
import shutil
import subprocess
from pathlib import Path

import pytest

from offline.errors import UsageError, VerificationFailure
from offline.oci.blobstream import BlobReader
from offline.oci.digests import DigestMismatch, cosign_tag, fallback_tag, sha256_digest
from offline.oci.layout import OCILayout
from offline.oci.manifest import (
    ANNOTATION_REF_NAME,
    ANNOTATION_REFERRER_SUBJECT,
    OCI_INDEX,
    OCI_MANIFEST,
    Descriptor,
    NotFound,
    fetch_blob_bytes,
    walk,
)
from offline.oci.sources import Sources
from offline.oci.store import ImageSink, ImageSource
from tests.oci_images import (
    make_artifact,
    make_image,
    make_index,
    push_artifact,
    push_image,
    push_index,
)
from tests.registries import RegistryServer
from tests.tools import ToolMissing, go_tool

SBOM = "application/spdx+json"


@pytest.fixture
def rng() -> random.Random:
    return random.Random(7)


@pytest.fixture
def layout(tmp_path: Path) -> OCILayout:
    return OCILayout.create(tmp_path / "layout")


def test_round_trip(layout: OCILayout, rng: random.Random) -> None:
    assert isinstance(layout, ImageSource) and isinstance(layout, ImageSink)
    image = make_image(rng)
    index = make_index(rng)
    push_image(layout, image, "app:v1")
    push_index(layout, index, "multi")

    reopened = OCILayout(layout.path)
    assert sorted(reopened.list_tags()) == ["app:v1", "multi"]
    assert reopened.resolve("app:v1").digest == image.digest
    assert reopened.resolve("multi") == index.descriptor.__class__(
        OCI_INDEX, index.digest, len(index.manifest), {ANNOTATION_REF_NAME: "multi"}
    )
    manifest = reopened.fetch_manifest(image.digest)
    assert manifest.raw == image.manifest and manifest.media_type == OCI_MANIFEST
    for child, blob in zip(manifest.children(), image.blobs, strict=True):
        with reopened.open_blob(child.digest, child.size) as reader:
            assert reader.read() == blob.data
            assert reader.verified
    walked = [m.digest for m in walk(reopened, index.digest)]
    assert walked == [index.digest, *(i.digest for i in index.images)]
    # A child manifest is found by digest though index.json does not list it.
    platform_image = index.images[1]
    assert reopened.resolve(platform_image.digest).digest == platform_image.digest
    config = platform_image.config
    assert fetch_blob_bytes(reopened, config.descriptor, 4096) == config.data
    with pytest.raises(UsageError, match="more than the 10 expected"):
        fetch_blob_bytes(reopened, config.descriptor, 10)


def test_layout_files(layout: OCILayout, rng: random.Random) -> None:
    image = make_image(rng)
    push_image(layout, image, "v1")
    assert json.loads((layout.path / "oci-layout").read_text()) == {"imageLayoutVersion": "1.0.0"}
    index = json.loads((layout.path / "index.json").read_text())
    assert index["schemaVersion"] == 2 and index["mediaType"] == OCI_INDEX
    assert [m["digest"] for m in index["manifests"]] == [image.digest]
    blobs = sorted(p.name for p in (layout.path / "blobs" / "sha256").iterdir())
    expected = sorted(d.split(":")[1] for d in [image.digest, *(b.digest for b in image.blobs)])
    assert blobs == expected  # no temporary files left behind
    # Retagging moves the name; pushing the same content again changes nothing.
    other = make_image(rng)
    push_image(layout, other, "v1")
    push_image(layout, other, "v1")
    assert [e.digest for e in layout.entries()] == [other.digest]


def test_default_image_and_ambiguity(layout: OCILayout, rng: random.Random) -> None:
    image = make_image(rng)
    push_image(layout, image, "v1")
    push_artifact(layout, make_artifact(image.descriptor, SBOM, b"{}"))
    # Referrers and fallback tags are not images: the layout still holds one.
    with Sources() as sources:
        resolved = sources.resolve(f"oci:{layout.path}")
        assert resolved.digest == image.digest
    push_image(layout, make_image(rng), "v2")
    with pytest.raises(UsageError, match=r"holds 2 images \(v1, v2\): name one"):
        layout.resolve_default()


def test_an_image_annotated_as_a_referrer_is_still_an_image(
    layout: OCILayout, rng: random.Random
) -> None:
    """index.json's referrer annotation is a claim: an entry whose manifest has no such subject
    is an image, so `oci:DIR` cannot silently pick the other one."""
    image, hidden = make_image(rng), make_image(rng)
    push_image(layout, image, "v1")
    push_image(layout, hidden)
    claim = {ANNOTATION_REFERRER_SUBJECT: image.digest}
    layout.add_to_index(
        Descriptor(OCI_MANIFEST, hidden.digest, len(hidden.manifest), annotations=claim), None
    )
    with pytest.raises(UsageError, match=r"holds 2 images"):
        layout.resolve_default()


def test_ref_name_conventions(layout: OCILayout, rng: random.Random) -> None:
    """Tags (oras), full references (Zarf, crane --annotate-ref), paths with tags (Hauler)."""
    full, path, bare = make_image(rng), make_image(rng), make_image(rng)
    push_image(layout, full, "docker.io/library/nginx:1.25")
    push_image(layout, path, "team/app:2.0")
    push_image(layout, bare, "v3")
    assert layout.resolve("docker.io/library/nginx:1.25").digest == full.digest
    assert layout.resolve("nginx:1.25").digest == full.digest  # same image reference
    assert layout.resolve("1.25").digest == full.digest  # by tag
    assert layout.resolve("docker.io/team/app:2.0").digest == path.digest
    assert layout.resolve("2.0").digest == path.digest
    assert layout.resolve("v3").digest == bare.digest
    assert layout.resolve_optional("9.9") is None
    with pytest.raises(NotFound, match="no image named 'other:1'"):
        layout.resolve("other:1")
    push_image(layout, make_image(rng), "docker.io/library/redis:1.25")
    with pytest.raises(UsageError, match=r"'1\.25' is ambiguous"):
        layout.resolve("1.25")


def test_corrupt_blob_is_caught(layout: OCILayout, rng: random.Random) -> None:
    image = make_image(rng)
    push_image(layout, image, "v1")
    layer = image.layers[0]
    path = layout.path / "blobs" / "sha256" / layer.digest.split(":")[1]
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))
    with (
        layout.open_blob(layer.digest, len(data)) as reader,
        pytest.raises(DigestMismatch, match="corrupted or replaced") as caught,
    ):
        reader.read()
    assert isinstance(caught.value, VerificationFailure) and caught.value.exit_code == 1
    assert not reader.verified
    # A truncated blob fails before a byte is read.
    path.write_bytes(bytes(data[:-1]))
    with pytest.raises(DigestMismatch, match=r"has \d+ bytes, the descriptor says"):
        layout.open_blob(layer.digest, len(data))
    # A manifest that no longer matches its digest.
    manifest_path = layout.path / "blobs" / "sha256" / image.digest.split(":")[1]
    manifest_path.write_bytes(image.manifest.replace(b'"layers"', b'"layers" '))
    with pytest.raises(DigestMismatch, match=f"manifest {image.digest} has content with digest"):
        layout.fetch_manifest(image.digest)


def test_missing_blob_is_not_found(layout: OCILayout, rng: random.Random) -> None:
    """A layout may omit blobs (a delta bundle): that is NotFound, not corruption."""
    image = make_image(rng)
    layout.push_blob(image.config.data, image.config.digest, len(image.config.data))
    layout.push_manifest(image.manifest, OCI_MANIFEST, "v1")
    with pytest.raises(NotFound, match="is not in the layout"):
        layout.open_blob(image.layers[0].digest)
    assert not layout.blob_exists(image.layers[0].digest)


def test_writes_check_digests(layout: OCILayout, tmp_path: Path) -> None:
    data = b"some layer bytes"
    wrong = sha256_digest(b"something else")
    with pytest.raises(DigestMismatch, match="source has 16 bytes and digest"):
        layout.push_blob(data, wrong, len(data))
    with pytest.raises(DigestMismatch, match="longer than 3"):
        layout.push_blob(data, sha256_digest(data), 3)
    assert not layout.blob_exists(wrong)
    assert list((layout.path / "blobs" / "sha256").iterdir()) == []  # no temporary files
    # Streams are written chunk by chunk.
    source = tmp_path / "big.bin"
    source.write_bytes(random.Random(1).randbytes(3 * 1024 * 1024 + 5))
    digest = sha256_digest(source.read_bytes())
    with source.open("rb") as f:
        layout.push_blob(f, digest, source.stat().st_size)
    with layout.open_blob(digest) as reader:
        assert sum(len(c) for c in reader.chunks()) == source.stat().st_size
    with pytest.raises(DigestMismatch):
        layout.push_manifest(b'{"schemaVersion":2}', OCI_MANIFEST, wrong)
    with pytest.raises(UsageError, match="pushed as"):
        layout.push_manifest(json.dumps({"mediaType": OCI_INDEX}).encode(), OCI_MANIFEST)


class _Unchecked:
    """A stream claiming a digest and size that never checks them (verified stays False)."""

    def __init__(self, data: bytes, digest: str) -> None:
        self._stream = io.BytesIO(data)
        self.digest = digest
        self.size: int | None = len(data)
        self.verified = False

    def read(self, n: int = -1, /) -> bytes:
        return self._stream.read(n)


def test_a_self_checking_stream_is_trusted_only_for_its_own_digest_once_verified(
    layout: OCILayout,
) -> None:
    data, other = b"the real layer", b"another layer!"  # the same length
    digest, wrong = sha256_digest(data), sha256_digest(other)
    blobs = layout.path / "blobs" / "sha256"
    # The stream checks itself: the wrong bytes fail at its end, nothing is kept.
    with pytest.raises(DigestMismatch, match="corrupted or replaced"):
        layout.push_checked_blob(
            BlobReader(io.BytesIO(other), digest, len(other), "src"), digest, 14
        )
    # Checked against another digest than the one pushed: the layout hashes for itself.
    with pytest.raises(DigestMismatch, match=f"digest {digest}"):
        layout.push_checked_blob(BlobReader(io.BytesIO(data), digest, len(data), "src"), wrong, 14)
    # A stream that never says it verified its bytes is refused.
    with pytest.raises(DigestMismatch, match="not verified by its stream"):
        layout.push_checked_blob(_Unchecked(other, digest), digest, len(other))
    assert list(blobs.iterdir()) == []  # no blob, no temporary file
    layout.push_checked_blob(
        BlobReader(io.BytesIO(data), digest, len(data), "src"), digest, len(data)
    )
    assert (blobs / digest.split(":", 1)[1]).read_bytes() == data


def test_sorting_the_index_gives_one_order_whatever_the_order_of_writes(
    tmp_path: Path, rng: random.Random
) -> None:
    images = [make_image(rng) for _ in range(3)]
    files = []
    for number, order in enumerate(([0, 1, 2], [2, 0, 1])):
        layout = OCILayout.create(tmp_path / f"layout{number}")
        for i in order:
            push_image(layout, images[i], f"app:v{i}")
            layout.add_to_index(images[i].descriptor, None)
        layout.sort_index()
        files.append((layout.path / "index.json").read_bytes())
        assert {e.digest for e in layout.entries()} == {i.digest for i in images}
    assert files[0] == files[1]


def test_the_index_is_parsed_again_only_when_its_bytes_change(
    layout: OCILayout, rng: random.Random, monkeypatch: pytest.MonkeyPatch
) -> None:
    first, second = make_image(rng), make_image(rng)
    push_image(layout, first, "app:v1")
    push_image(layout, second, "app:v2")
    parsed: list[object] = []
    from_json = Descriptor.from_json

    def counting(value: object, where: str) -> Descriptor:
        parsed.append(value)
        return from_json(value, where)

    monkeypatch.setattr(Descriptor, "from_json", counting)
    assert layout.resolve("app:v1").digest == first.digest
    assert layout.resolve("app:v2").digest == second.digest
    layout.fetch_manifest(first.digest)
    assert len(parsed) == 2  # the two entries, once

    # Another writer moves v1 onto the second image: an index of the very same size, most
    # likely within the same mtime tick; the next look-up must see it.
    OCILayout(layout.path).add_to_index(second.descriptor, "app:v1")
    assert layout.resolve("app:v1").digest == second.digest
    # An entry gone bad after a good parse is refused, not served from the last parse.
    index = json.loads((layout.path / "index.json").read_text())
    index["manifests"][0]["digest"] = "sha256:1"
    (layout.path / "index.json").write_text(json.dumps(index))
    with pytest.raises(UsageError, match="descriptor digest 'sha256:1' is not sha256"):
        layout.resolve("app:v2")


def test_referrers(layout: OCILayout, rng: random.Random) -> None:
    image = make_image(rng)
    push_image(layout, image, "v1")
    sbom = make_artifact(image.descriptor, SBOM, b'{"spdxVersion":"SPDX-2.3"}')
    sig = make_artifact(
        image.descriptor,
        "application/vnd.dev.sigstore.bundle.v0.3+json",
        b"{}",
        annotations={"org.example": "x"},
    )
    listed = push_artifact(layout, sbom)
    push_artifact(layout, sig)
    push_artifact(layout, sig)  # again: listed once

    found = layout.referrers(image.digest)
    assert found.via == "layout"
    assert sorted(d.digest for d in found.descriptors) == sorted([sbom.digest, sig.digest])
    only = layout.referrers(image.digest, SBOM).descriptors
    assert only == (listed,)
    assert listed.artifact_type == SBOM
    by_digest = {d.digest: d for d in found.descriptors}
    assert by_digest[sig.digest].annotations == {"org.example": "x"}
    # The fallback tag's index lists both too (what regclient reads).
    assert fallback_tag(image.digest) in layout.list_tags()
    index = layout.fetch_manifest(layout.resolve(fallback_tag(image.digest)).digest)
    assert sorted(d.digest for d in index.children()) == sorted([sbom.digest, sig.digest])
    assert layout.referrers(make_image(rng).digest).descriptors == ()


def test_a_subjects_referrers_give_one_layout_whatever_order_they_come_in(
    tmp_path: Path, rng: random.Random
) -> None:
    """Bundle create carries images at once: two that reach the same subject may add its
    referrers in either order; the layout must come out the same bytes."""
    image = make_image(rng)
    artifacts = [make_artifact(image.descriptor, SBOM, bytes([n])) for n in range(3)]
    files = []
    for number, order in enumerate(([0, 1, 2], [2, 1, 0], [1, 2, 0])):
        layout = OCILayout.create(tmp_path / f"layout{number}")
        push_image(layout, image, "app:v1")
        for i in order:
            push_artifact(layout, artifacts[i])
        layout.sort_index()
        tag = layout.resolve(fallback_tag(image.digest))
        fallback = layout.fetch_manifest(tag.digest)
        assert [d.digest for d in fallback.children()] == sorted(a.digest for a in artifacts)
        files.append((layout.path / "index.json").read_bytes())  # names the fallback index
    assert files[0] == files[1] == files[2]


def test_referrers_other_tools_leave(tmp_path: Path, rng: random.Random) -> None:
    """cosign save leaves referrers as unlisted blobs; regclient lists them only in a fallback
    tag index; oras-go lists them untagged in index.json."""
    image = make_image(rng)
    unlisted = make_artifact(image.descriptor, "application/x.cosign", b"1")
    tagged = make_artifact(image.descriptor, "application/x.regclient", b"2")
    untagged = make_artifact(image.descriptor, "application/x.oras", b"3")

    layout = OCILayout.create(tmp_path / "l")
    push_image(layout, image, "v1")
    for artifact in (unlisted, tagged, untagged):
        for blob in artifact.blobs:
            layout.push_blob(blob.data, blob.digest, len(blob.data))
        layout.push_manifest(artifact.manifest, OCI_MANIFEST)
    layout.push_manifest(untagged.manifest, OCI_MANIFEST, untagged.digest)
    fallback = {
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": [
            {
                "mediaType": OCI_MANIFEST,
                "digest": tagged.digest,
                "size": len(tagged.manifest),
                "artifactType": tagged.artifact_type,
            }
        ],
    }
    raw = json.dumps(fallback).encode()
    layout.push_manifest(raw, OCI_INDEX, fallback_tag(image.digest))

    # Another repository's fallback index for the same digest, as a multi-repository layout
    # (full references as ref names) holds it.
    elsewhere = make_artifact(image.descriptor, "application/x.elsewhere", b"4")
    for blob in elsewhere.blobs:
        layout.push_blob(blob.data, blob.digest, len(blob.data))
    layout.push_manifest(elsewhere.manifest, OCI_MANIFEST)
    fallback["manifests"] = [
        {"mediaType": OCI_MANIFEST, "digest": elsewhere.digest, "size": len(elsewhere.manifest)}
    ]
    raw = json.dumps(fallback).encode()
    layout.push_manifest(raw, OCI_INDEX, f"r.io/other:{fallback_tag(image.digest)}")

    everything = OCILayout(layout.path).referrers(image.digest).descriptors
    assert {d.digest for d in everything} == {
        unlisted.digest,
        tagged.digest,
        untagged.digest,
        elsewhere.digest,
    }
    assert {d.artifact_type for d in everything} == {
        "application/x.cosign",
        "application/x.regclient",
        "application/x.oras",
        "application/x.elsewhere",  # completed from the manifest: the index entry had none
    }
    listed_only = OCILayout(layout.path, scan_blobs=False).referrers(image.digest).descriptors
    assert {d.digest for d in listed_only} == {tagged.digest, untagged.digest, elsewhere.digest}


def test_cosign_tags(layout: OCILayout, rng: random.Random) -> None:
    image = make_image(rng)
    push_image(layout, image, "app:v1")
    signature = make_image(rng)
    push_image(layout, signature, "app:" + cosign_tag(image.digest, "sig"))
    found = layout.cosign_attachments(image.digest)
    assert list(found) == ["sig"] and found["sig"].digest == signature.digest
    assert layout.cosign_attachments(signature.digest) == {}


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        (lambda p: None, "not an OCI image layout \\(no oci-layout file\\)"),
        (lambda p: (p / "oci-layout").write_text("{"), "is not valid JSON"),
        (
            lambda p: (p / "oci-layout").write_text('{"imageLayoutVersion": "2.0.0"}'),
            "unsupported imageLayoutVersion '2.0.0'",
        ),
        (
            lambda p: (p / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}'),
            "no index.json",
        ),
    ],
)
def test_not_a_layout(tmp_path: Path, setup: object, message: str) -> None:
    directory = tmp_path / "dir"
    directory.mkdir()
    setup(directory)  # type: ignore[operator]
    with pytest.raises(UsageError, match=message):
        OCILayout(directory)


def test_bad_index_entries(layout: OCILayout) -> None:
    (layout.path / "index.json").write_text(
        json.dumps({"schemaVersion": 2, "manifests": [{"mediaType": "x", "digest": "sha256:1"}]})
    )
    with pytest.raises(UsageError, match="descriptor digest 'sha256:1' is not sha256"):
        layout.resolve("v1")


# ------------------------------------------------------------------------- skopeo interop
def _skopeo() -> str:
    path = shutil.which("skopeo")
    if path is None:
        pytest.fail("skopeo is not installed: run bash .ci/setup")
    return path


def _skopeo_copy(*args: str) -> None:
    result = subprocess.run(
        [_skopeo(), "--insecure-policy", "copy", "--quiet", *args],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr


def _registry_args(server: RegistryServer, direction: str) -> list[str]:
    assert server.credentials is not None
    creds = f"{server.credentials.username}:{server.credentials.password}"
    return [f"--{direction}-cert-dir", str(server.cert_dir), f"--{direction}-creds", creds]


def _read_everything(source: ImageSource, digest: str) -> int:
    """Fetch every manifest and stream every blob under `digest`; the count of blobs."""
    blobs = 0
    for manifest in walk(source, digest):
        if manifest.is_index:
            continue
        for child in manifest.children():
            with source.open_blob(child.digest, child.size) as reader:
                for _ in reader.chunks():
                    pass
                assert reader.verified
            blobs += 1
    return blobs


@pytest.mark.slow
def test_skopeo_copies_registry_to_layout(
    docker_registry: RegistryServer, tmp_path: Path, rng: random.Random
) -> None:
    """skopeo copies what our client pushed into a layout; our reader reads it with the same
    digests (skopeo is the reference implementation of `oci:DIR:REF`)."""
    repository = docker_registry.client().repository("interop/skopeo-to-layout")
    image = make_image(rng, layers=3)
    index = make_index(rng)
    push_image(repository, image, "single")
    push_index(repository, index, "multi")
    target = tmp_path / "skopeo-layout"
    source = f"docker://{docker_registry.host}/interop/skopeo-to-layout"
    _skopeo_copy(*_registry_args(docker_registry, "src"), f"{source}:single", f"oci:{target}:one")
    _skopeo_copy(
        "--all",
        "--preserve-digests",
        *_registry_args(docker_registry, "src"),
        f"{source}:multi",
        f"oci:{target}:multi",
    )
    layout = OCILayout(target)
    assert layout.resolve("one").digest == image.digest
    assert layout.resolve("multi").digest == index.digest
    assert _read_everything(layout, image.digest) == 4
    assert _read_everything(layout, index.digest) == 6
    with Sources() as sources:
        resolved = sources.resolve(f"oci:{target}:multi")
        assert resolved.digest == index.digest
        assert resolved.descriptor.media_type == OCI_INDEX


@pytest.mark.slow
def test_skopeo_copies_layout_to_registry(
    docker_registry: RegistryServer, tmp_path: Path, rng: random.Random
) -> None:
    """The other way: skopeo reads a layout we wrote and pushes it unchanged."""
    layout = OCILayout.create(tmp_path / "ours")
    index = make_index(rng)
    push_index(layout, index, "multi")
    target = f"docker://{docker_registry.host}/interop/layout-to-registry:multi"
    _skopeo_copy(
        "--all",
        "--preserve-digests",
        *_registry_args(docker_registry, "dest"),
        f"oci:{layout.path}:multi",
        target,
    )
    repository = docker_registry.client().repository("interop/layout-to-registry")
    assert repository.resolve("multi") == Descriptor(OCI_INDEX, index.digest, len(index.manifest))
    assert _read_everything(repository, index.digest) == 6


# --------------------------------------------------------------------------- oras interop
def _oras() -> str:
    try:
        return str(go_tool("oras"))
    except ToolMissing as exc:
        pytest.fail(str(exc))


@pytest.mark.slow
def test_we_find_what_oras_attached_in_a_layout(tmp_path: Path, rng: random.Random) -> None:
    layout = OCILayout.create(tmp_path / "layout")
    image = make_image(rng)
    push_image(layout, image, "v1")
    (tmp_path / "report.txt").write_text("nothing found\n")
    result = subprocess.run(
        [
            _oras(),
            "attach",
            "--no-tty",
            "--oci-layout",
            "--artifact-type",
            "application/vnd.test.report",
            f"{layout.path}@{image.digest}",
            "report.txt:text/plain",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    found = OCILayout(layout.path).referrers(image.digest)
    assert [d.artifact_type for d in found.descriptors] == ["application/vnd.test.report"]


@pytest.mark.slow
def test_oras_finds_what_we_attached_in_a_layout(tmp_path: Path, rng: random.Random) -> None:
    layout = OCILayout.create(tmp_path / "layout")
    image = make_image(rng)
    push_image(layout, image, "v1")
    artifact = make_artifact(image.descriptor, SBOM, b"{}")
    push_artifact(layout, artifact)
    result = subprocess.run(
        [
            _oras(),
            "discover",
            "--no-tty",
            "--oci-layout",
            "--format",
            "json",
            f"{layout.path}@{image.digest}",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert artifact.digest in result.stdout and SBOM in result.stdout
