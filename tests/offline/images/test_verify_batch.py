"""Many images of one repository in one `airgap verify` run: the repository's tags are listed
once instead of probing cosign's three tags image by image, and every image is still judged by
its own signatures: each signed image finds its `.sig` tag, an unsigned one beside them fails."""

from __future__ import annotations

import base64
import json
import random
from pathlib import Path

import pytest

from offline.cli.main import main
from offline.oci.digests import cosign_tag
from offline.oci.manifest import OCI_MANIFEST
from offline.oci.registry import Repository
from tests.bundle_factory import INTEGRATED_TIME, KeySigner
from tests.oci_images import CONFIG, Blob, make_image, push_image
from tests.registries import RegistryServer
from tests.signed_layout import SIMPLESIGNING, dumps
from tests.tlog_fixture import TestLog


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _sign_legacy(repo: Repository, digest: str, signer: KeySigner, log: TestLog) -> None:
    """What cosign v2 `sign --key K` writes: a `.sig` tag whose layer is the simple-signing
    payload, the signature and the Rekor bundle in its annotations."""
    payload = Blob(
        SIMPLESIGNING,
        dumps(
            {
                "critical": {
                    "identity": {"docker-reference": repo.location},
                    "image": {"docker-manifest-digest": digest},
                    "type": "cosign container image signature",
                },
                "optional": None,
            }
        ),
    )
    entry = signer.log_artifact(log, payload.data)
    layer = payload.descriptor.to_json()
    layer["annotations"] = {
        "dev.cosignproject.cosign/signature": _b64(entry.signature),
        "dev.sigstore.cosign/bundle": json.dumps(
            {
                "SignedEntryTimestamp": _b64(entry.signed_entry_timestamp(log)),
                "Payload": {
                    "body": _b64(entry.body),
                    "integratedTime": INTEGRATED_TIME,
                    "logIndex": entry.index,
                    "logID": log.log_id.hex(),
                },
            }
        ),
    }
    config = Blob(CONFIG, dumps({"rootfs": {"type": "layers", "diff_ids": [payload.digest]}}))
    for blob in (payload, config):
        repo.push_blob(blob.data, blob.digest, len(blob.data))
    manifest = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": config.descriptor.to_json(),
        "layers": [layer],
    }
    repo.push_manifest(dumps(manifest), OCI_MANIFEST, cosign_tag(digest, "sig"))


def test_a_batch_finds_each_images_own_legacy_signature(
    referrers_registry: RegistryServer,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    request: pytest.FixtureRequest,
) -> None:
    repo = referrers_registry.client().repository(f"batch/{request.node.name.lower()}")
    log = TestLog("rekor.airgap.test")
    signer = KeySigner()
    key, root = tmp_path / "release.pub", tmp_path / "trusted_root.json"
    key.write_bytes(signer.public_pem)
    root.write_text(log.trusted_root_json())
    digests = [
        push_image(repo, make_image(random.Random(40 + i), layers=1), f"v{i}").digest
        for i in range(3)
    ]
    for digest in digests[:2]:
        _sign_legacy(repo, digest, signer, log)
    references = [f"{repo.location}@{digest}" for digest in digests]

    capsys.readouterr()
    code = main(
        [
            "verify",
            "--output",
            "json",
            "--key",
            str(key),
            "--trusted-root",
            str(root),
            "--pinning",
            "off",
            "--allow-http-registry",
            referrers_registry.host,
            *references,
        ]
    )
    report = json.loads(capsys.readouterr().out)
    assert code == 1
    results = {image["reference"]: image for image in report["images"]}
    for signed in references[:2]:
        checks = {c["check"]: c for c in results[signed]["checks"]}
        assert results[signed]["verified"], results[signed]
        assert "cosign .sig tag" in checks["signature"]["reason"]
    assert not results[references[2]]["verified"]
