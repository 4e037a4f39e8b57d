"""`airgap verify` of several images at once, where the registry serves one of them hostile
attachments: that image fails with one line, and every other image is still verified and
reported.

The attachments are whatever the registry says: cosign `.sig` manifests with fields of the
wrong type, layers that are not what cosign writes, referrer bundles that are not bundles.
"""

from __future__ import annotations

import base64
import json
import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from offline.oci.digests import cosign_tag, sha256_digest
from offline.oci.manifest import OCI_INDEX, OCI_MANIFEST, Descriptor
from tests.oci_images import CONFIG, Blob, TestImage, make_artifact, make_image, push_artifact
from tests.signed_layout import BUNDLE, SIMPLESIGNING, SignedLayout, dumps

SIGNATURE_ANNOTATION = "dev.cosignproject.cosign/signature"


@pytest.fixture
def site(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> SignedLayout:
    return SignedLayout(tmp_path, capsys)


def simple_signing(image: TestImage, kind: object = "cosign container image signature") -> Blob:
    payload = {
        "critical": {
            "identity": {"docker-reference": "app"},
            "image": {"docker-manifest-digest": image.digest},
            "type": kind,
        },
        "optional": None,
    }
    return Blob(SIMPLESIGNING, dumps(payload))


def sig_manifest(layers: object, **extra: object) -> dict[str, Any]:
    config = Blob(CONFIG, b"{}")
    return {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": config.descriptor.to_json(),
        "layers": layers,
        **extra,
    }


def layer(blob: Blob, **fields: object) -> dict[str, Any]:
    value = blob.descriptor.to_json()
    value["annotations"] = {SIGNATURE_ANNOTATION: base64.b64encode(b"not a signature").decode()}
    value.update(fields)
    return value


# Each makes the attachments of `image` hostile in one way, in the layout of `site`.
Hostile = Callable[[SignedLayout, TestImage], None]


def _sig(document: Callable[[Blob], dict[str, Any]]) -> Hostile:
    def attach(site: SignedLayout, image: TestImage) -> None:
        payload = simple_signing(image)
        site.push_blob(payload)
        site.push_sig_manifest(image.digest, document(payload))

    return attach


HOSTILE_SIG_MANIFESTS: dict[str, Hostile] = {
    "layers is a number": _sig(lambda p: sig_manifest(5)),
    "layers is a string": _sig(lambda p: sig_manifest("layers")),
    "layers is an object": _sig(lambda p: sig_manifest({"0": layer(p)})),
    "layers is null": _sig(lambda p: sig_manifest(None)),
    "a layer is a number": _sig(lambda p: sig_manifest([7])),
    "layer annotations are a list": _sig(lambda p: sig_manifest([layer(p, annotations=["x"])])),
    "layer annotation value is a number": _sig(
        lambda p: sig_manifest([layer(p, annotations={SIGNATURE_ANNOTATION: 5})])
    ),
    "layer mediaType is a number": _sig(lambda p: sig_manifest([layer(p, mediaType=1)])),
    "layer mediaType is a list": _sig(
        lambda p: sig_manifest([layer(p, mediaType=[SIMPLESIGNING])])
    ),
    "layer digest is malformed": _sig(lambda p: sig_manifest([layer(p, digest="sha256:zz")])),
    "layer digest is a number": _sig(lambda p: sig_manifest([layer(p, digest=12)])),
    "layer size is negative": _sig(lambda p: sig_manifest([layer(p, size=-1)])),
    "layer size is huge": _sig(lambda p: sig_manifest([layer(p, size=10**40)])),
    "layer size is a float": _sig(lambda p: sig_manifest([layer(p, size=1.5)])),
    "layer size is a bool": _sig(lambda p: sig_manifest([layer(p, size=True)])),
    "config is a string": _sig(lambda p: sig_manifest([layer(p)], config="x")),
    "deeply nested layers": _sig(lambda p: sig_manifest(json.loads("[" * 50 + "]" * 50))),
}


def _payload_type_is_a_list(site: SignedLayout, image: TestImage) -> None:
    payload = simple_signing(image, kind=["cosign container image signature"])
    site.push_blob(payload)
    site.push_sig_manifest(image.digest, sig_manifest([layer(payload)]))


def _rekor_bundle_annotation(value: str) -> Hostile:
    def attach(site: SignedLayout, image: TestImage) -> None:
        payload = simple_signing(image)
        site.push_blob(payload)
        annotations = {
            SIGNATURE_ANNOTATION: base64.b64encode(b"x").decode(),
            "dev.sigstore.cosign/bundle": value,
        }
        site.push_sig_manifest(
            image.digest, sig_manifest([layer(payload, annotations=annotations)])
        )

    return attach


def _referrer_bundle(content: bytes) -> Hostile:
    def attach(site: SignedLayout, image: TestImage) -> None:
        push_artifact(
            site.layout, make_artifact(image.descriptor, BUNDLE, content, layer_type=BUNDLE)
        )

    return attach


def _deep_json_blob(site: SignedLayout, image: TestImage) -> None:
    _referrer_bundle(b"[" * 100_000 + b"]" * 100_000)(site, image)


HOSTILE_CONTENT: dict[str, Hostile] = {
    "payload type is a list": _payload_type_is_a_list,
    "Rekor bundle is a list": _rekor_bundle_annotation("[]"),
    "Rekor bundle is a number": _rekor_bundle_annotation("5"),
    "Rekor bundle payload is a string": _rekor_bundle_annotation('{"Payload": "x"}'),
    "referrer bundle is a list": _referrer_bundle(b"[1, 2]"),
    "referrer bundle media type is a list": _referrer_bundle(b'{"mediaType": ["x"]}'),
    "referrer bundle is deeply nested": _deep_json_blob,
}

HOSTILE = {**HOSTILE_SIG_MANIFESTS, **HOSTILE_CONTENT}


def signed_image(site: SignedLayout, seed: int, tag: str) -> TestImage:
    image = make_image(random.Random(seed))
    site.push_image(image, tag)
    site.sign(image.manifest)
    return image


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_one_hostile_image_fails_alone_and_the_others_are_verified(
    site: SignedLayout, name: str
) -> None:
    signed_image(site, 1, "before")
    hostile = make_image(random.Random(2))
    site.push_image(hostile, "hostile")
    HOSTILE[name](site, hostile)
    signed_image(site, 3, "after")
    refs = [site.ref(t) for t in ("before", "hostile", "after")]
    verified = site.verify(*refs, extra=["--jobs", "1"])
    assert verified.code in (1, 2), verified
    assert verified.image(refs[0])["verified"] and verified.image(refs[2])["verified"]
    image = verified.image(refs[1])
    assert not image["verified"]
    failures = verified.failures(refs[1])
    assert failures and all("\n" not in reason for reason in failures.values()), failures
    assert not any("internal error" in check for check in failures), failures


def test_the_text_report_names_the_hostile_image_in_one_line(site: SignedLayout) -> None:
    signed_image(site, 1, "before")
    hostile = make_image(random.Random(2))
    site.push_image(hostile, "hostile")
    HOSTILE["layers is a number"](site, hostile)
    site.capsys.readouterr()
    from offline.cli.main import main

    args = ["verify", "--key", str(site.key), "--trusted-root", str(site.trusted_root)]
    code = main([*args, "--pinning", "off", site.ref("before"), site.ref("hostile")])
    out = site.capsys.readouterr().out.splitlines()
    assert code in (1, 2)
    assert out[0].startswith(f"OK   {site.ref('before')}")
    assert out[1].startswith(f"FAIL {site.ref('hostile')}: ")
    assert "layers is not a list" in out[1], out[1]
    assert len(out) == 2


def test_a_sig_manifest_nested_too_deeply_for_the_json_parser_fails_alone(
    site: SignedLayout,
) -> None:
    signed_image(site, 1, "before")
    hostile = make_image(random.Random(2))
    site.push_image(hostile, "hostile")
    # Written by hand: our own client refuses to push such a manifest.
    raw = b'{"mediaType":"%s","layers":%s}' % (
        OCI_MANIFEST.encode(),
        b"[" * 100_000 + b"]" * 100_000,
    )
    site.layout.push_blob(raw, sha256_digest(raw), len(raw))
    site.layout.add_to_index(
        Descriptor(OCI_MANIFEST, sha256_digest(raw), len(raw)), cosign_tag(hostile.digest, "sig")
    )
    refs = [site.ref("before"), site.ref("hostile")]
    verified = site.verify(*refs)
    assert verified.code in (1, 2), verified
    assert verified.image(refs[0])["verified"]
    assert "nested too deeply" in verified.failures(refs[1])["fetch"]


def test_an_unexpected_error_in_one_image_fails_that_image_only(
    site: SignedLayout, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The last resort: whatever a bug raises for one image is that image's failure."""
    import offline.images.attachments
    import offline.images.verify

    before = signed_image(site, 1, "before")
    hostile = signed_image(site, 2, "hostile")
    real = offline.images.attachments.discover

    def discover(source: Any, digest: str) -> Any:
        if digest == hostile.digest:
            raise RuntimeError("a bug\nover two lines")
        return real(source, digest)

    monkeypatch.setattr(offline.images.verify, "discover", discover)
    refs = [site.ref("before"), site.ref("hostile")]
    verified = site.verify(*refs)
    assert verified.code == 1, verified
    assert verified.image(refs[0])["verified"] and before.digest in verified.out
    assert verified.failures(refs[1]) == {"internal error": "RuntimeError: a bug over two lines"}


@pytest.mark.parametrize(
    "child",
    [
        {"mediaType": OCI_MANIFEST, "digest": "sha256:12", "size": 1},
        {"mediaType": OCI_MANIFEST, "digest": "sha256:" + "a" * 64, "size": -1},
        {"mediaType": 5, "digest": "sha256:" + "a" * 64, "size": 1},
        {"mediaType": OCI_MANIFEST, "digest": "sha256:" + "a" * 64, "size": 1, "platform": []},
        {"mediaType": OCI_MANIFEST, "digest": "sha256:" + "a" * 64, "size": 1, "annotations": 1},
        "not a descriptor",
    ],
)
def test_an_unsigned_index_with_a_malformed_child_fails_alone(
    site: SignedLayout, child: object
) -> None:
    signed_image(site, 1, "before")
    platform = make_image(random.Random(2))
    site.push_image(platform)
    site.sign(platform.manifest)
    index = {
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": [platform.descriptor.to_json(), child],
    }
    site.push(dumps(index), OCI_INDEX, "hostile")
    refs = [site.ref("before"), site.ref("hostile")]
    verified = site.verify(*refs)
    assert verified.code in (1, 2), verified
    assert verified.image(refs[0])["verified"]
    failures = verified.failures(refs[1])
    assert failures and all("\n" not in reason for reason in failures.values()), failures
