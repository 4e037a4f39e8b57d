"""Unit tests of the shared OCI pieces: descriptors, manifests checked against their digests,
streams checked as they are read, and the referrers fallback index."""

from __future__ import annotations

import io
import json
import random

import pytest

from offline.errors import UsageError
from offline.oci.blobstream import BlobReader
from offline.oci.digests import DigestMismatch, sha256_digest
from offline.oci.manifest import (
    DOCKER_MANIFEST,
    DOCKER_MANIFEST_LIST,
    OCI_EMPTY,
    OCI_INDEX,
    OCI_MANIFEST,
    Descriptor,
    check_manifest,
    referrer_descriptor,
)
from offline.oci.referrers import (
    fallback_descriptors,
    filter_artifact_type,
    with_referrer,
    with_referrers,
)

D1 = "sha256:" + "1" * 64
D2 = "sha256:" + "2" * 64


def _manifest(document: dict[str, object]) -> bytes:
    return json.dumps(document).encode()


def test_descriptor_round_trip() -> None:
    value = {
        "mediaType": OCI_MANIFEST,
        "digest": D1,
        "size": 10,
        "artifactType": "application/x",
        "platform": {"os": "linux", "architecture": "arm64"},
        "annotations": {"a": "b"},
    }
    descriptor = Descriptor.from_json(value, "test")
    assert descriptor.to_json() == value
    assert hash(descriptor) == hash(Descriptor.from_json(dict(value), "test"))


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ([], "not a JSON object"),
        ({"digest": D1, "size": 1}, "no mediaType"),
        ({"mediaType": "x", "digest": "sha256:1", "size": 1}, "is not sha256"),
        ({"mediaType": "x", "digest": D1, "size": -1}, "non-negative integer"),
        ({"mediaType": "x", "digest": D1, "size": True}, "non-negative integer"),
        ({"mediaType": "x", "digest": D1, "size": 1, "annotations": {"a": 1}}, "string map"),
    ],
)
def test_bad_descriptors(value: object, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        Descriptor.from_json(value, "test")


def test_manifest_media_types() -> None:
    for media_type in (OCI_MANIFEST, OCI_INDEX, DOCKER_MANIFEST, DOCKER_MANIFEST_LIST):
        raw = _manifest({"schemaVersion": 2, "mediaType": media_type})
        assert check_manifest(raw, sha256_digest(raw), "here").media_type == media_type
    # Without mediaType: what the store declared, else the shape decides.
    bare_index = _manifest({"schemaVersion": 2, "manifests": []})
    assert check_manifest(bare_index, sha256_digest(bare_index), "here").is_index
    bare = _manifest({"schemaVersion": 2, "config": {}, "layers": []})
    assert check_manifest(bare, sha256_digest(bare), "here").media_type == OCI_MANIFEST
    schema1 = _manifest({"schemaVersion": 1, "mediaType": "application/json"})
    with pytest.raises(UsageError, match="Docker schema 1"):
        check_manifest(schema1, sha256_digest(schema1), "here")
    with pytest.raises(UsageError, match="not valid JSON"):
        check_manifest(b"{", sha256_digest(b"{"), "here")
    with pytest.raises(DigestMismatch, match="here: manifest sha256:1111"):
        check_manifest(bare, D1, "here")


def test_referrer_descriptor_falls_back_to_the_config_type() -> None:
    with_type = _manifest(
        {
            "mediaType": OCI_MANIFEST,
            "artifactType": "application/x",
            "config": {"mediaType": OCI_EMPTY},
            "annotations": {"k": "v"},
        }
    )
    manifest = check_manifest(with_type, sha256_digest(with_type), "here")
    listed = referrer_descriptor(manifest)
    assert (listed.artifact_type, dict(listed.annotations)) == ("application/x", {"k": "v"})
    old_style = _manifest({"mediaType": OCI_MANIFEST, "config": {"mediaType": "application/y"}})
    manifest = check_manifest(old_style, sha256_digest(old_style), "here")
    assert referrer_descriptor(manifest).artifact_type == "application/y"


def test_blob_reader_checks_as_it_reads() -> None:
    data = b"x" * 10_000
    digest = sha256_digest(data)
    reader = BlobReader(io.BytesIO(data), digest, len(data), "here")
    assert b"".join(reader.chunks(999)) == data and reader.verified
    assert reader.read() == b""

    with pytest.raises(DigestMismatch, match="longer than its size 10"):
        BlobReader(io.BytesIO(data), digest, 10, "here").read(100)
    with pytest.raises(DigestMismatch, match="ended after 10000 bytes, expected 10001"):
        BlobReader(io.BytesIO(data), digest, 10_001, "here").read()
    with pytest.raises(DigestMismatch, match="corrupted or replaced"):
        BlobReader(io.BytesIO(data[:-1] + b"y"), digest, len(data), "here").read()
    # Unknown size: only the digest is checked.
    assert BlobReader(io.BytesIO(data), digest, None, "here").read() == data
    out = io.BytesIO()
    assert BlobReader(io.BytesIO(data), digest, None, "here").copy_to(out) == len(data)
    assert out.getvalue() == data


def test_a_blob_reader_over_a_file_reads_again_from_any_point_and_still_checks_it_all() -> None:
    data = random.Random(5).randbytes(10_000)
    digest = sha256_digest(data)
    reader = BlobReader(io.BytesIO(data), digest, len(data), "here")
    assert reader.seekable()
    buffer = bytearray(4000)
    assert reader.readinto(buffer) == 4000 and bytes(buffer) == data[:4000]
    # Back (as an upload resumed halfway does): what follows is hashed on from there.
    assert reader.seek(1500) == 1500 and reader.tell() == 1500
    assert reader.read() == data[1500:] and reader.verified
    # Forward skips what it passes over, hashed all the same.
    reader = BlobReader(io.BytesIO(data), digest, len(data), "here")
    assert reader.seek(7000) == 7000 and reader.read() == data[7000:] and reader.verified
    # Changed between the two reads: the check at the end is of the bytes read last.
    source = io.BytesIO(data)
    reader = BlobReader(source, digest, len(data), "here")
    reader.read(5000)
    source.getbuffer()[100] ^= 1
    reader.seek(0)
    with pytest.raises(DigestMismatch, match="corrupted or replaced"):
        reader.read()


def test_a_blob_reader_over_a_stream_cannot_go_back() -> None:
    class Stream:
        def __init__(self, data: bytes) -> None:
            self.data = io.BytesIO(data)

        def read(self, n: int = -1) -> bytes:
            return self.data.read(n)

        def close(self) -> None:
            pass

    data = b"y" * 100
    reader = BlobReader(Stream(data), sha256_digest(data), len(data), "here")
    assert not reader.seekable()
    assert reader.read(10) == data[:10]
    with pytest.raises(OSError, match="cannot be read again"):
        reader.seek(0)
    buffer = bytearray(200)
    assert reader.readinto(buffer) == 90 and reader.readinto(buffer) == 0 and reader.verified


def _index(*digests: str) -> bytes:
    return _manifest(
        {
            "schemaVersion": 2,
            "mediaType": OCI_INDEX,
            "manifests": [{"mediaType": OCI_MANIFEST, "digest": d, "size": 1} for d in digests],
        }
    )


def test_fallback_index() -> None:
    referrer = Descriptor(OCI_MANIFEST, D2, 5, artifact_type="application/x")
    first = with_referrer(None, referrer)
    assert first is not None
    index = check_manifest(first, sha256_digest(first), "here")
    assert fallback_descriptors(index, D1) == [referrer]
    assert with_referrer(index, referrer) is None  # already listed
    third = Descriptor(OCI_MANIFEST, "sha256:" + "3" * 64, 7)
    grown = with_referrer(index, third)
    assert grown is not None
    grown_index = check_manifest(grown, sha256_digest(grown), "here")
    assert [d.digest for d in fallback_descriptors(grown_index, D1)] == [D2, third.digest]
    assert filter_artifact_type(fallback_descriptors(grown_index, D1), "application/x") == (
        referrer,
    )


def test_fallback_index_with_several_referrers_at_once() -> None:
    first, second = (
        Descriptor(OCI_MANIFEST, D2, 5),
        Descriptor(OCI_MANIFEST, "sha256:" + "3" * 64, 7),
    )
    raw = with_referrers(None, [first, second, first])
    assert raw is not None
    index = check_manifest(raw, sha256_digest(raw), "here")
    assert fallback_descriptors(index, D1) == [first, second]  # in order, each once
    assert with_referrers(index, [second, first]) is None  # every one listed already
    third = Descriptor(OCI_MANIFEST, "sha256:" + "4" * 64, 9)
    grown = with_referrers(index, [first, third])
    assert grown is not None
    grown_index = check_manifest(grown, sha256_digest(grown), "here")
    assert fallback_descriptors(grown_index, D1) == [first, second, third]


def test_fallback_tag_naming_something_else() -> None:
    not_index = _manifest({"mediaType": OCI_MANIFEST, "config": {}, "layers": []})
    manifest = check_manifest(not_index, sha256_digest(not_index), "here")
    assert fallback_descriptors(manifest, D1) == []
    with pytest.raises(UsageError, match="refusing to overwrite"):
        with_referrer(manifest, Descriptor(OCI_MANIFEST, D2, 1))
    # oras #2148: a registry that answers the tag sha256-<hex> with the manifest sha256:<hex>.
    raw = _index(D2)
    subject = check_manifest(raw, sha256_digest(raw), "here")
    assert fallback_descriptors(subject, subject.digest) == []
    assert fallback_descriptors(None, D1) == []
