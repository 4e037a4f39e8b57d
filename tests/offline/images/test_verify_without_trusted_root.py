"""`airgap verify --key K --insecure-ignore-tlog` needs no trusted root, as cosign needs none:
a key signature with the log ignored checks nothing a trusted root holds. Every mode that does
need one (a log entry required, a certificate to chain) still refuses to run without it.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import random
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed
from cryptography.x509.oid import NameOID

from offline.cli.main import main
from offline.oci.manifest import OCI_INDEX
from tests.bundle_factory import KeySigner
from tests.oci_images import TestImage, make_artifact, make_image, push_artifact
from tests.signed_layout import (
    BUNDLE,
    SignedLayout,
    b64,
    descriptor,
    dumps,
    index_document,
    platform_of,
)

IGNORE_TLOG = "--insecure-ignore-tlog"


@pytest.fixture
def site(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> SignedLayout:
    return SignedLayout(tmp_path, capsys)


def image(site: SignedLayout, seed: int, tag: str) -> TestImage:
    made = make_image(random.Random(seed))
    site.push_image(made, tag)
    return made


def test_a_key_signature_with_no_log_entry_verifies_without_a_trusted_root(
    site: SignedLayout,
) -> None:
    site.sign_without_log(image(site, 1, "v3").manifest)
    site.sign_legacy(image(site, 2, "v2"), logged=False)
    refs = [site.ref("v3"), site.ref("v2")]
    verified = site.verify(*refs, extra=[IGNORE_TLOG], trusted_root=False)
    assert verified.code == 0, verified
    for ref in refs:
        assert verified.checks(ref)["signature"].startswith("1 valid, signed by"), verified


def test_a_log_entry_is_ignored_without_a_trusted_root_as_cosign_ignores_it(
    site: SignedLayout,
) -> None:
    site.sign(image(site, 1, "v3").manifest)
    site.sign_legacy(image(site, 2, "v2"), logged=True)
    refs = [site.ref("v3"), site.ref("v2")]
    verified = site.verify(*refs, extra=[IGNORE_TLOG], trusted_root=False)
    assert verified.code == 0, verified


def test_a_multi_platform_image_verifies_without_a_trusted_root(site: SignedLayout) -> None:
    rng = random.Random(3)
    images = (make_image(rng), make_image(rng, platform=("linux", "arm64")))
    for made in images:
        site.push_image(made)
        site.sign_without_log(made.manifest)
    raw = index_document([descriptor(i.manifest, platform=platform_of(i)) for i in images])
    site.push(raw, OCI_INDEX, "app")
    verified = site.verify(site.ref("app"), extra=[IGNORE_TLOG], trusted_root=False)
    assert verified.code == 0, verified
    assert verified.image(site.ref("app"))["signed"] == "every platform manifest"


def test_the_wrong_key_still_fails_without_a_trusted_root(site: SignedLayout) -> None:
    site.sign_without_log(image(site, 1, "app").manifest)
    other = site.tmp / "other.pub"
    other.write_bytes(KeySigner().public_pem)
    verified = site.run_verify("--key", str(other), IGNORE_TLOG, site.ref("app"))
    assert verified.code == 1, verified
    assert "signature does not verify" in verified.failures(site.ref("app"))["signature"]


def test_an_unsigned_image_still_fails_without_a_trusted_root(site: SignedLayout) -> None:
    image(site, 1, "app")
    verified = site.verify(site.ref("app"), extra=[IGNORE_TLOG], trusted_root=False)
    assert verified.code == 1, verified


def _self_signed_certificate(key: ec.EllipticCurvePrivateKey) -> x509.Certificate:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "someone")])
    now = datetime.datetime.now(datetime.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )


def test_a_certificate_signature_fails_under_key_only_checks(site: SignedLayout) -> None:
    """With the same key in a certificate: nothing can chain it without a trusted root."""
    made = image(site, 1, "app")
    digest = hashlib.sha256(made.manifest).digest()
    key = site.signer.key
    cert = _self_signed_certificate(key)
    bundle = {
        "mediaType": BUNDLE,
        "verificationMaterial": {
            "certificate": {"rawBytes": b64(cert.public_bytes(serialization.Encoding.DER))},
            "tlogEntries": [],
        },
        "messageSignature": {
            "messageDigest": {"algorithm": "SHA2_256", "digest": b64(digest)},
            "signature": b64(key.sign(digest, ec.ECDSA(Prehashed(hashes.SHA256())))),
        },
    }
    artifact = make_artifact(made.descriptor, BUNDLE, dumps(bundle), layer_type=BUNDLE)
    push_artifact(site.layout, artifact)
    verified = site.verify(site.ref("app"), extra=[IGNORE_TLOG], trusted_root=False)
    assert verified.code == 1, verified
    assert "certificate" in verified.failures(site.ref("app"))["signature"], verified


# -- modes that need a trusted root still refuse without one -----------------------------------


def test_a_required_log_entry_needs_a_trusted_root(site: SignedLayout) -> None:
    site.sign(image(site, 1, "app").manifest)
    verified = site.verify(site.ref("app"), trusted_root=False)
    assert verified.code == 2, verified
    assert "no trusted root" in verified.err and "\n" not in verified.err.strip()


def test_keyless_signers_need_a_trusted_root_even_with_the_log_ignored(
    site: SignedLayout,
) -> None:
    image(site, 1, "app")
    verified = site.run_verify(
        "--certificate-identity",
        "someone@example.com",
        "--certificate-oidc-issuer",
        "https://issuer.example.com",
        IGNORE_TLOG,
        site.ref("app"),
    )
    assert verified.code == 2, verified
    assert "no trusted root" in verified.err


def _policy(site: SignedLayout, signers: list[dict[str, str]], tlog: str) -> Path:
    path = site.tmp / "policy.yaml"
    document = {
        "apiVersion": "airgap.dev/v1",
        "kind": "ImagePolicy",
        "policies": [{"name": "all", "images": ["**"], "signers": signers, "tlog": tlog}],
    }
    path.write_text(json.dumps(document))
    return path


def test_a_policy_of_keys_with_the_log_ignored_needs_no_trusted_root(site: SignedLayout) -> None:
    site.sign_without_log(image(site, 1, "app").manifest)
    policy = _policy(site, [{"key": str(site.key)}], "ignore")
    verified = site.run_verify("--policy", str(policy), site.ref("app"))
    assert verified.code == 0, verified


@pytest.mark.parametrize(
    ("signers", "tlog"),
    [
        ([{"key": "KEY"}], "required"),
        ([{"key": "KEY"}, {"issuer": "https://issuer.example.com", "subject": "a"}], "ignore"),
    ],
)
def test_a_policy_that_needs_a_trusted_root_refuses_without_one(
    site: SignedLayout, signers: list[dict[str, str]], tlog: str
) -> None:
    site.sign_without_log(image(site, 1, "app").manifest)
    signers = [{k: str(site.key) if v == "KEY" else v for k, v in s.items()} for s in signers]
    verified = site.run_verify("--policy", str(_policy(site, signers, tlog)), site.ref("app"))
    assert verified.code == 2, verified
    assert "no trusted root" in verified.err


def test_verify_bundle_with_a_key_needs_a_trusted_root(
    site: SignedLayout, capsys: pytest.CaptureFixture[str]
) -> None:
    """verify-bundle has no way to ignore the log: its entry is always checked."""
    artifact = site.tmp / "artifact.bin"
    artifact.write_bytes(b"an artifact\n")
    logged = site.signer.log_artifact(site.log, artifact.read_bytes())
    bundle = site.tmp / "artifact.sigstore.json"
    bundle.write_text(logged.bundle_json(site.log))
    capsys.readouterr()
    args = ["verify-bundle", "--bundle", str(bundle), "--key", str(site.key), str(artifact)]
    assert main(args) == 2
    assert "no trusted root" in capsys.readouterr().err
    assert main([*args[:-1], "--trusted-root", str(site.trusted_root), str(artifact)]) == 0
