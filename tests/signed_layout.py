"""An OCI image layout whose images are signed with a managed key, made inside the tests, and
`airgap verify` run on it in-process: no registry, no Sigstore stack, no Go tools.

A signature is what cosign v3 writes: a Sigstore bundle (a hashedrekord over the manifest's
digest, logged in a TestLog with an inclusion proof and checkpoint) stored as an OCI referrer
of the signed manifest.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed

from offline.cli.main import main
from offline.oci.digests import cosign_tag, sha256_digest
from offline.oci.layout import OCILayout
from offline.oci.manifest import OCI_INDEX, OCI_MANIFEST, Descriptor
from tests.bundle_factory import INTEGRATED_TIME, KeySigner
from tests.oci_images import CONFIG, Blob, TestImage, make_artifact, push_artifact
from tests.tlog_fixture import TestLog

BUNDLE = "application/vnd.dev.sigstore.bundle.v0.3+json"
IN_TOTO = "application/vnd.in-toto+json"
SIMPLESIGNING = "application/vnd.dev.cosign.simplesigning.v1+json"


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def dumps(document: object) -> bytes:
    return json.dumps(document, separators=(",", ":"), sort_keys=True).encode()


@dataclass
class Verified:
    code: int
    report: dict[str, Any]
    out: str
    err: str

    def image(self, reference: str) -> dict[str, Any]:
        return next(i for i in self.report["images"] if i["reference"] == reference)

    def failures(self, reference: str) -> dict[str, str]:
        return {c["check"]: c["reason"] for c in self.image(reference)["checks"] if not c["ok"]}

    def checks(self, reference: str) -> dict[str, str]:
        return {c["check"]: c["reason"] for c in self.image(reference)["checks"]}


class SignedLayout:
    """One layout, one signing key, one log that the trusted root trusts."""

    def __init__(self, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        self.tmp = tmp_path
        self.capsys = capsys
        self.log = TestLog("rekor.airgap.test")
        self.log.extend(2)
        self.signer = KeySigner()
        self.key = tmp_path / "release.pub"
        self.key.write_bytes(self.signer.public_pem)
        self.trusted_root = tmp_path / "trusted_root.json"
        self.trusted_root.write_text(self.log.trusted_root_json())
        self.path = tmp_path / "layout"
        self.layout = OCILayout.create(self.path)

    def ref(self, name: str) -> str:
        return f"oci:{self.path}:{name}"

    def push(self, manifest: bytes, media_type: str, tag: str | None = None) -> Descriptor:
        return self.layout.push_manifest(manifest, media_type, tag)

    def push_image(self, image: TestImage, tag: str | None = None) -> Descriptor:
        for blob in image.blobs:
            self.layout.push_blob(blob.data, blob.digest, len(blob.data))
        return self.push(image.manifest, image.media_type, tag)

    def push_blob(self, blob: Blob) -> None:
        self.layout.push_blob(blob.data, blob.digest, len(blob.data))

    def sign(self, manifest: bytes, media_type: str = OCI_MANIFEST) -> None:
        """A cosign v3 signature of the manifest: a bundle referrer naming it as subject."""
        logged = self.signer.log_artifact(self.log, manifest)
        bundle = dumps(logged.bundle(self.log))
        subject = Descriptor(media_type, sha256_digest(manifest), len(manifest))
        push_artifact(self.layout, make_artifact(subject, BUNDLE, bundle, layer_type=BUNDLE))

    def sign_without_log(self, manifest: bytes, media_type: str = OCI_MANIFEST) -> None:
        """What `cosign sign --key K --tlog-upload=false` writes with cosign v3: a bundle with
        no log entry, as a referrer."""
        digest = hashlib.sha256(manifest).digest()
        signature = self.signer.key.sign(digest, ec.ECDSA(Prehashed(hashes.SHA256())))
        bundle = {
            "mediaType": BUNDLE,
            "verificationMaterial": {"publicKey": {"hint": "release"}, "tlogEntries": []},
            "messageSignature": {
                "messageDigest": {"algorithm": "SHA2_256", "digest": b64(digest)},
                "signature": b64(signature),
            },
        }
        subject = Descriptor(media_type, sha256_digest(manifest), len(manifest))
        push_artifact(self.layout, make_artifact(subject, BUNDLE, dumps(bundle), layer_type=BUNDLE))

    def sign_legacy(self, image: TestImage, *, logged: bool) -> None:
        """What cosign v2 `sign --key K` writes: a `.sig` tag whose layer is the simple-signing
        payload, with the signature (and, when `logged`, the Rekor bundle) as annotations."""
        payload = Blob(
            SIMPLESIGNING,
            dumps(
                {
                    "critical": {
                        "identity": {"docker-reference": "registry.internal/app"},
                        "image": {"docker-manifest-digest": image.digest},
                        "type": "cosign container image signature",
                    },
                    "optional": None,
                }
            ),
        )
        self.push_blob(payload)
        entry = self.signer.log_artifact(self.log, payload.data)
        annotations = {"dev.cosignproject.cosign/signature": b64(entry.signature)}
        if logged:
            annotations["dev.sigstore.cosign/bundle"] = json.dumps(
                {
                    "SignedEntryTimestamp": b64(entry.signed_entry_timestamp(self.log)),
                    "Payload": {
                        "body": b64(entry.body),
                        "integratedTime": INTEGRATED_TIME,
                        "logIndex": entry.index,
                        "logID": self.log.log_id.hex(),
                    },
                }
            )
        layer = payload.descriptor.to_json()
        layer["annotations"] = annotations
        config = Blob(CONFIG, dumps({"rootfs": {"type": "layers", "diff_ids": [payload.digest]}}))
        self.push_blob(config)
        self.push_sig_manifest(
            image.digest,
            {
                "schemaVersion": 2,
                "mediaType": OCI_MANIFEST,
                "config": config.descriptor.to_json(),
                "layers": [layer],
            },
        )

    def push_sig_manifest(self, subject: str, manifest: dict[str, Any]) -> None:
        """Any document under cosign's legacy `.sig` tag of `subject`, written as given."""
        self.push(dumps(manifest), OCI_MANIFEST, cosign_tag(subject, "sig"))

    def verify(
        self, *references: str, extra: Sequence[str] = (), trusted_root: bool = True
    ) -> Verified:
        return self.run_verify(
            "--key",
            str(self.key),
            *(["--trusted-root", str(self.trusted_root)] if trusted_root else []),
            "--pinning",
            "off",
            *extra,
            *references,
        )

    def run_verify(self, *args: str) -> Verified:
        """`airgap verify --output json ARGS...` in-process."""
        self.capsys.readouterr()
        code = main(["verify", "--output", "json", *args])
        captured = self.capsys.readouterr()
        assert "Traceback" not in captured.err, captured.err
        report = json.loads(captured.out) if captured.out else {}
        return Verified(code, report, captured.out, captured.err)


def index_document(descriptors: Sequence[dict[str, Any]]) -> bytes:
    return dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": list(descriptors)})


def descriptor(
    manifest: bytes,
    media_type: str = OCI_MANIFEST,
    *,
    platform: dict[str, str] | None = None,
    annotations: dict[str, str] | None = None,
) -> dict[str, Any]:
    """An index entry as written by hand: platform and annotations exactly as given."""
    value: dict[str, Any] = {
        "mediaType": media_type,
        "digest": sha256_digest(manifest),
        "size": len(manifest),
    }
    if platform is not None:
        value["platform"] = platform
    if annotations is not None:
        value["annotations"] = annotations
    return value


def platform_of(image: TestImage) -> dict[str, str]:
    assert image.platform is not None
    return {"os": image.platform[0], "architecture": image.platform[1]}


def buildkit_attestation(subject: TestImage, nonce: int) -> tuple[TestImage, dict[str, Any]]:
    """An attestation manifest as BuildKit writes it into an index for `subject`, and its index
    entry: platform unknown/unknown, in-toto layers, annotations naming the subject."""
    statement = Blob(
        IN_TOTO,
        dumps(
            {
                "_type": "https://in-toto.io/Statement/v0.1",
                "predicateType": "https://slsa.dev/provenance/v0.2",
                "subject": [{"name": "app", "digest": {"sha256": subject.digest[7:]}}],
                "predicate": {"nonce": nonce},
            }
        ),
    )
    config = Blob(
        CONFIG,
        dumps(
            {
                "architecture": "unknown",
                "os": "unknown",
                "config": {},
                "rootfs": {"type": "layers", "diff_ids": [statement.digest]},
            }
        ),
    )
    layer = statement.descriptor.to_json()
    layer["annotations"] = {"in-toto.io/predicate-type": "https://slsa.dev/provenance/v0.2"}
    manifest = dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": config.descriptor.to_json(),
            "layers": [layer],
        }
    )
    image = TestImage(config, (statement,), manifest, platform=("unknown", "unknown"))
    entry = descriptor(
        manifest,
        platform={"architecture": "unknown", "os": "unknown"},
        annotations={
            "vnd.docker.reference.digest": subject.digest,
            "vnd.docker.reference.type": "attestation-manifest",
        },
    )
    return image, entry
