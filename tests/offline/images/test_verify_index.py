"""`airgap verify` on a multi-platform index: what was signed covers everything a runtime could
run from it.

An index signed as a whole covers its children by digest. An unsigned index passes only when
every manifest in it carries its own signature, because a runtime picks a child by its
`platform`, whatever its annotations say. The one exception is an attestation manifest as
BuildKit writes it, recognised by what it is (platform unknown/unknown, in-toto layers, naming
a platform manifest of the same index), never by its annotation alone.
"""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from offline.oci.digests import sha256_digest
from offline.oci.manifest import OCI_INDEX
from tests.oci_images import TestImage, make_image
from tests.signed_layout import (
    SignedLayout,
    buildkit_attestation,
    descriptor,
    index_document,
    platform_of,
)

ATTESTATION_ANNOTATIONS = {"vnd.docker.reference.type": "attestation-manifest"}


@pytest.fixture
def site(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> SignedLayout:
    return SignedLayout(tmp_path, capsys)


def signed_platforms(site: SignedLayout, seed: int) -> tuple[TestImage, TestImage]:
    """Two platform images, each pushed and signed on its own."""
    rng = random.Random(seed)
    images = (
        make_image(rng, platform=("linux", "amd64")),
        make_image(rng, platform=("linux", "arm64")),
    )
    for image in images:
        site.push_image(image)
        site.sign(image.manifest)
    return images


def push_index(site: SignedLayout, entries: list[dict[str, object]], tag: str) -> bytes:
    raw = index_document(entries)
    site.push(raw, OCI_INDEX, tag)
    return raw


def with_buildkit_attestations(
    site: SignedLayout, images: tuple[TestImage, ...]
) -> list[dict[str, object]]:
    entries: list[dict[str, object]] = [
        descriptor(i.manifest, platform=platform_of(i)) for i in images
    ]
    for n, image in enumerate(images):
        attestation, entry = buildkit_attestation(image, n)
        site.push_image(attestation)
        entries.append(entry)
    return entries


# -- what passes -------------------------------------------------------------------------------


def test_every_platform_signed_with_unsigned_buildkit_attestations_passes(
    site: SignedLayout,
) -> None:
    images = signed_platforms(site, 1)
    push_index(site, with_buildkit_attestations(site, images), "app")
    verified = site.verify(site.ref("app"))
    assert verified.code == 0, verified
    image = verified.image(site.ref("app"))
    assert image["signed"] == "every platform manifest"
    checks = verified.checks(site.ref("app"))
    assert "linux/amd64 signature" in checks and "linux/arm64 signature" in checks
    notes = [r for c, r in checks.items() if c.startswith("attestation manifest")]
    assert len(notes) == 2 and all("not runnable" in r for r in notes), checks


def test_an_index_signed_as_a_whole_covers_its_children(site: SignedLayout) -> None:
    rng = random.Random(2)
    images = (make_image(rng), make_image(rng, platform=("linux", "arm64")))
    for image in images:
        site.push_image(image)
    raw = push_index(site, with_buildkit_attestations(site, images), "app")
    site.sign(raw, OCI_INDEX)
    verified = site.verify(site.ref("app"))
    assert verified.code == 0, verified
    assert verified.image(site.ref("app"))["signed"] == "index"


def test_a_signed_nested_index_is_a_signed_child(site: SignedLayout) -> None:
    rng = random.Random(3)
    inner_image = make_image(rng, platform=("linux", "s390x"))
    site.push_image(inner_image)
    inner = index_document([descriptor(inner_image.manifest, platform=platform_of(inner_image))])
    site.push(inner, OCI_INDEX)
    site.sign(inner, OCI_INDEX)
    images = signed_platforms(site, 4)
    entries = [descriptor(i.manifest, platform=platform_of(i)) for i in images]
    push_index(site, [*entries, descriptor(inner, OCI_INDEX)], "app")
    verified = site.verify(site.ref("app"))
    assert verified.code == 0, verified


# -- what an attacker controlling the registry cannot add ------------------------------------


def test_an_unsigned_runnable_child_annotated_as_an_attestation_is_refused(
    site: SignedLayout,
) -> None:
    images = signed_platforms(site, 5)
    entries = with_buildkit_attestations(site, images)
    # The attacker's image, for a platform a runtime would pick, dressed as an attestation.
    evil = make_image(random.Random(50), platform=("linux", "riscv64"))
    site.push_image(evil)
    annotations = {**ATTESTATION_ANNOTATIONS, "vnd.docker.reference.digest": images[0].digest}
    entries.append(descriptor(evil.manifest, platform=platform_of(evil), annotations=annotations))
    push_index(site, entries, "app")
    verified = site.verify(site.ref("app"))
    assert verified.code == 1, verified
    reason = " ".join(verified.failures(site.ref("app")).values())
    assert evil.digest in reason and "linux/riscv64" in reason, reason


def test_an_unsigned_child_for_a_signed_platform_placed_first_is_refused(
    site: SignedLayout,
) -> None:
    """Runtimes take the first match: a second linux/amd64 first in the list wins."""
    images = signed_platforms(site, 6)
    evil = make_image(random.Random(60), platform=("linux", "amd64"))
    site.push_image(evil)
    annotations = {**ATTESTATION_ANNOTATIONS, "vnd.docker.reference.digest": images[0].digest}
    entries = [
        descriptor(evil.manifest, platform=platform_of(evil), annotations=annotations),
        *with_buildkit_attestations(site, images),
    ]
    push_index(site, entries, "app")
    verified = site.verify(site.ref("app"))
    assert verified.code == 1, verified
    assert evil.digest in " ".join(verified.failures(site.ref("app")).values())


def test_an_unsigned_child_with_no_platform_is_refused(site: SignedLayout) -> None:
    """containerd takes a child without a platform to match every platform."""
    images = signed_platforms(site, 7)
    evil = make_image(random.Random(70))
    site.push_image(evil)
    annotations = {**ATTESTATION_ANNOTATIONS, "vnd.docker.reference.digest": images[0].digest}
    entries = [descriptor(i.manifest, platform=platform_of(i)) for i in images]
    entries.append(descriptor(evil.manifest, annotations=annotations))
    push_index(site, entries, "app")
    verified = site.verify(site.ref("app"))
    assert verified.code == 1, verified
    reason = " ".join(verified.failures(site.ref("app")).values())
    assert evil.digest in reason and "no platform" in reason, reason


def test_an_unknown_platform_child_with_image_layers_is_refused(site: SignedLayout) -> None:
    """The platform and annotations of an attestation, the content of a runnable image."""
    images = signed_platforms(site, 8)
    evil = make_image(random.Random(80), platform=("unknown", "unknown"))
    site.push_image(evil)
    annotations = {**ATTESTATION_ANNOTATIONS, "vnd.docker.reference.digest": images[1].digest}
    entries = [descriptor(i.manifest, platform=platform_of(i)) for i in images]
    entries.append(descriptor(evil.manifest, platform=platform_of(evil), annotations=annotations))
    push_index(site, entries, "app")
    verified = site.verify(site.ref("app"))
    assert verified.code == 1, verified
    reason = " ".join(verified.failures(site.ref("app")).values())
    assert evil.digest in reason and "in-toto" in reason, reason


def test_an_attestation_manifest_naming_no_sibling_is_refused(site: SignedLayout) -> None:
    images = signed_platforms(site, 9)
    stray = make_image(random.Random(90))  # not in the index
    attestation, entry = buildkit_attestation(stray, 9)
    site.push_image(attestation)
    entries = [descriptor(i.manifest, platform=platform_of(i)) for i in images]
    push_index(site, [*entries, entry], "app")
    verified = site.verify(site.ref("app"))
    assert verified.code == 1, verified
    reason = " ".join(verified.failures(site.ref("app")).values())
    assert attestation.digest in reason and "vnd.docker.reference.digest" in reason, reason


def test_an_unsigned_nested_index_is_refused(site: SignedLayout) -> None:
    images = signed_platforms(site, 10)
    evil = make_image(random.Random(100), platform=("linux", "ppc64le"))
    site.push_image(evil)
    inner = index_document([descriptor(evil.manifest, platform=platform_of(evil))])
    site.push(inner, OCI_INDEX)
    entries = [descriptor(i.manifest, platform=platform_of(i)) for i in images]
    push_index(site, [*entries, descriptor(inner, OCI_INDEX)], "app")
    verified = site.verify(site.ref("app"))
    assert verified.code == 1, verified
    reason = " ".join(verified.failures(site.ref("app")).values())
    assert sha256_digest(inner) in reason and "nested index" in reason, reason


def test_an_unsigned_nested_index_annotated_as_an_attestation_is_refused(
    site: SignedLayout,
) -> None:
    images = signed_platforms(site, 11)
    evil = make_image(random.Random(110), platform=("linux", "amd64"))
    site.push_image(evil)
    inner = index_document([descriptor(evil.manifest, platform=platform_of(evil))])
    site.push(inner, OCI_INDEX)
    annotations = {**ATTESTATION_ANNOTATIONS, "vnd.docker.reference.digest": images[0].digest}
    entries = [descriptor(i.manifest, platform=platform_of(i)) for i in images]
    entries.append(
        descriptor(
            inner,
            OCI_INDEX,
            platform={"os": "unknown", "architecture": "unknown"},
            annotations=annotations,
        )
    )
    push_index(site, entries, "app")
    verified = site.verify(site.ref("app"))
    assert verified.code == 1, verified


def test_an_unsigned_child_of_an_unknown_media_type_is_refused(site: SignedLayout) -> None:
    images = signed_platforms(site, 12)
    evil = make_image(random.Random(120), platform=("linux", "amd64"))
    site.push_image(evil)
    entries = [descriptor(i.manifest, platform=platform_of(i)) for i in images]
    entries.append(
        descriptor(evil.manifest, "application/vnd.example.thing", platform=platform_of(evil))
    )
    push_index(site, entries, "app")
    verified = site.verify(site.ref("app"))
    assert verified.code == 1, verified
    assert evil.digest in " ".join(verified.failures(site.ref("app")).values())


def test_a_platform_left_unsigned_is_named(site: SignedLayout) -> None:
    rng = random.Random(13)
    signed, unsigned = make_image(rng), make_image(rng, platform=("linux", "arm64"))
    site.push_image(signed)
    site.push_image(unsigned)
    site.sign(signed.manifest)
    entries = [descriptor(i.manifest, platform=platform_of(i)) for i in (signed, unsigned)]
    push_index(site, entries, "app")
    verified = site.verify(site.ref("app"))
    assert verified.code == 1, verified
    failures = verified.failures(site.ref("app"))
    assert failures["linux/arm64 signature"].startswith(
        f"no signature found for {unsigned.digest}"
    ), failures


def test_a_platform_field_of_the_wrong_types_is_one_failure(site: SignedLayout) -> None:
    images = signed_platforms(site, 14)
    evil = make_image(random.Random(140))
    site.push_image(evil)
    entries = [descriptor(i.manifest, platform=platform_of(i)) for i in images]
    entries.append(
        descriptor(evil.manifest, platform={"os": 1, "architecture": ["x"]})  # type: ignore[dict-item]
    )
    push_index(site, entries, "app")
    verified = site.verify(site.ref("app"))
    assert verified.code == 1, verified
    assert evil.digest in " ".join(verified.failures(site.ref("app")).values())
