"""Image references: docker's defaults, the registry/repository split, tags and digests,
`oci:DIR[:REF]`, canonical printing, and one-line errors for what is not a reference."""

from __future__ import annotations

from pathlib import Path

import pytest

from offline.errors import UsageError
from offline.oci.digests import cosign_tag, fallback_tag, sha256_digest, validate_digest
from offline.oci.imageref import (
    ImageRef,
    LayoutRef,
    parse_image_ref,
    parse_layout_ref,
    parse_reference,
)

DIGEST = "sha256:" + "ab" * 32


@pytest.mark.parametrize(
    ("text", "registry", "repository", "tag", "digest"),
    [
        ("nginx", "docker.io", "library/nginx", "latest", None),
        ("nginx:1.25", "docker.io", "library/nginx", "1.25", None),
        ("library/nginx", "docker.io", "library/nginx", "latest", None),
        ("user/app:v1", "docker.io", "user/app", "v1", None),
        ("docker.io/nginx", "docker.io", "library/nginx", "latest", None),
        ("index.docker.io/nginx", "docker.io", "library/nginx", "latest", None),
        ("docker://nginx", "docker.io", "library/nginx", "latest", None),
        ("localhost:5000/x", "localhost:5000", "x", "latest", None),
        ("localhost/x", "localhost", "x", "latest", None),
        ("127.0.0.1:5000/a/b/c:t", "127.0.0.1:5000", "a/b/c", "t", None),
        ("[::1]:5000/app", "[::1]:5000", "app", "latest", None),
        ("Registry.Example.com/team/app", "Registry.Example.com", "team/app", "latest", None),
        ("ghcr.io/o/r@" + DIGEST, "ghcr.io", "o/r", None, DIGEST),
        ("ghcr.io/o/r:v1@" + DIGEST, "ghcr.io", "o/r", "v1", DIGEST),
        ("nginx@" + DIGEST, "docker.io", "library/nginx", None, DIGEST),
        ("reg.io/a__b/c-d/e.f--g", "reg.io", "a__b/c-d/e.f--g", "latest", None),
        ("reg.io/app:_under.score-1", "reg.io", "app", "_under.score-1", None),
    ],
)
def test_parse(
    text: str, registry: str, repository: str, tag: str | None, digest: str | None
) -> None:
    ref = parse_image_ref(text)
    assert (ref.registry, ref.repository, ref.tag, ref.digest) == (
        registry,
        repository,
        tag,
        digest,
    )
    assert parse_reference(text) == ref
    # Canonical form: printing and parsing again gives the same reference.
    assert parse_image_ref(str(ref)) == ref


def test_canonical_form() -> None:
    assert str(parse_image_ref("nginx")) == "docker.io/library/nginx:latest"
    assert str(parse_image_ref("localhost:5000/x@" + DIGEST)) == f"localhost:5000/x@{DIGEST}"
    assert str(parse_image_ref("r.io/a:v1@" + DIGEST)) == f"r.io/a:v1@{DIGEST}"


def test_digest_wins_over_tag() -> None:
    ref = parse_image_ref("r.io/a:v1@" + DIGEST)
    assert ref.reference == DIGEST
    assert parse_image_ref("r.io/a:v1").reference == "v1"
    pinned = parse_image_ref("r.io/a:v1").with_digest(DIGEST)
    assert pinned.tag == "v1" and pinned.reference == DIGEST
    assert pinned.with_tag("v2") == ImageRef("r.io", "a", "v2", None)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "empty image reference"),
        ("nginx ", "white space"),
        ("ngi nx", "white space"),
        ("nginx:", "invalid tag"),
        ("nginx:-x", "invalid tag"),
        ("nginx:" + "t" * 129, "invalid tag"),
        ("nginx@sha256:abc", "64 lowercase hex"),
        ("nginx@sha256:" + "AB" * 32, "64 lowercase hex"),
        ("nginx@md5:" + "ab" * 16, "unsupported algorithm 'md5'"),
        ("r.io/App", "must be lower case"),
        ("r.io/a___b", "invalid repository name"),
        ("r.io/a/", "invalid repository name"),
        ("r.io//a", "invalid repository name"),
        ("-a", "invalid repository name"),
        (":tag", "has no repository name"),
        ("r.io/", "has no repository name"),
        ("bad_host.io:5000/a", "invalid registry"),
        ("r.io:99999999/a", "invalid registry"),
        ("r.io/" + "a" * 260, "longer than 255"),
    ],
)
def test_bad_references(text: str, message: str) -> None:
    with pytest.raises(UsageError, match=message) as caught:
        parse_image_ref(text)
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize(
    ("text", "path", "ref"),
    [
        ("oci:/tmp/layout", "/tmp/layout", None),
        ("oci:relative/dir", "relative/dir", None),
        ("oci:/tmp/layout:v1", "/tmp/layout", "v1"),
        (
            "oci:/tmp/layout:docker.io/library/nginx:1.25",
            "/tmp/layout",
            "docker.io/library/nginx:1.25",
        ),
        ("oci:/tmp/layout@" + DIGEST, "/tmp/layout", DIGEST),
        ("oci:/tmp/layout:@" + DIGEST, "/tmp/layout", DIGEST),
        ("oci:/tmp/layout:" + DIGEST, "/tmp/layout", DIGEST),
        ("oci:/tmp/my@dir:v1", "/tmp/my@dir", "v1"),
    ],
)
def test_layout_references(text: str, path: str, ref: str | None) -> None:
    parsed = parse_reference(text)
    assert parsed == LayoutRef(Path(path), ref)
    assert isinstance(parsed, LayoutRef)
    assert parse_layout_ref(str(parsed)) == parsed
    assert parsed.digest == (ref if ref == DIGEST else None)


def test_layout_canonical_form() -> None:
    assert str(parse_layout_ref("oci:/d:@" + DIGEST)) == f"oci:/d@{DIGEST}"
    assert str(parse_layout_ref("oci:/d")) == "oci:/d"
    assert str(parse_layout_ref("oci:/d:v1")) == "oci:/d:v1"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("oci:", "names no directory"),
        ("oci::v1", "names no directory"),
        ("oci:/d:bad name", "not a valid ref name"),
        ("oci:/d:-v1", "not a valid ref name"),
        ("oci:/d@sha256:zz", "64 lowercase hex"),
        ("oci:/d:sha256:12", "64 lowercase hex"),
        ("/d", "must start with oci:"),
    ],
)
def test_bad_layout_references(text: str, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        parse_layout_ref(text)


def test_digest_helpers() -> None:
    assert validate_digest(DIGEST) == DIGEST
    assert sha256_digest(b"{}") == (
        "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"
    )
    assert fallback_tag(DIGEST) == "sha256-" + "ab" * 32
    assert cosign_tag(DIGEST, "sig") == "sha256-" + "ab" * 32 + ".sig"
    with pytest.raises(UsageError, match="unknown cosign attachment"):
        cosign_tag(DIGEST, "sgn")
    with pytest.raises(UsageError):
        fallback_tag("sha512:" + "ab" * 64)
