"""An entry counts as logged only when the log itself vouches for it: a signed entry timestamp
that verifies, or an inclusion proof to a checkpoint that verifies. Whatever the other fields of
the entry say (an integrated time of zero included), nothing else makes an entry "logged".

Issue 8, finding 1: a v0.1 bundle with a garbage SET, no inclusion proof and `integratedTime: 0`
verified, because the SET was only checked when the integrated time was non-zero.
"""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from cryptography.hazmat.primitives.serialization import load_pem_public_key

from offline.errors import VerificationFailure
from offline.oci.manifest import Descriptor
from offline.sigstore.cosign_legacy import (
    REKOR_BUNDLE_ANNOTATION,
    SIGNATURE_ANNOTATION,
    SIMPLE_SIGNING_MEDIA_TYPE,
    read_layer,
    to_sigstore_bundle,
)
from offline.sigstore.model import parse_bundle
from offline.sigstore.verify import Artifact, KeyPolicy, verify_bundle
from offline.trust.root import parse_trusted_root
from tests.bundle_factory import KeySigner, LoggedSignature, legacy_bundle
from tests.tlog_fixture import TestLog, trusted_root, trusted_root_document

ARTIFACT = b"an artifact that was never logged\n"
GARBAGE_SET = base64.b64encode(b"\x30\x06\x02\x01\x01\x02\x01\x01").decode()


@pytest.fixture
def log() -> TestLog:
    log = TestLog("rekor.airgap.test")
    log.extend(3)
    return log


@pytest.fixture
def signer() -> KeySigner:
    return KeySigner()


def _verify(bundle: dict[str, Any], signer: KeySigner, log: TestLog) -> None:
    key = load_pem_public_key(signer.public_pem)
    verify_bundle(
        parse_bundle(json.dumps(bundle).encode()),
        Artifact.from_bytes(ARTIFACT, "artifact"),
        trusted_root(log),
        KeyPolicy(key),  # type: ignore[arg-type]
    )


def _entry(bundle: dict[str, Any]) -> dict[str, Any]:
    entry: dict[str, Any] = bundle["verificationMaterial"]["tlogEntries"][0]
    return entry


def test_an_honest_set_only_entry_verifies(log: TestLog, signer: KeySigner) -> None:
    logged = signer.log_artifact(log, ARTIFACT)
    _verify(legacy_bundle(logged, log), signer, log)


def test_a_garbage_set_with_integrated_time_zero_and_no_proof_is_refused(
    log: TestLog, signer: KeySigner
) -> None:
    bundle = legacy_bundle(signer.log_artifact(log, ARTIFACT), log)
    entry = _entry(bundle)
    entry["integratedTime"] = "0"
    entry["inclusionPromise"]["signedEntryTimestamp"] = GARBAGE_SET
    with pytest.raises(VerificationFailure, match=r"signed entry timestamp .* does not verify"):
        _verify(bundle, signer, log)


def test_an_entry_never_appended_to_the_log_is_refused_whatever_its_time_says(
    log: TestLog, signer: KeySigner
) -> None:
    logged = signer.log_artifact(log, ARTIFACT)
    never = TestLog("rekor.airgap.test")  # the body exists nowhere in the trusted log
    bundle = legacy_bundle(logged, log)
    for time in ("0", "1760000000"):
        entry = _entry(bundle)
        entry["integratedTime"] = time
        entry["inclusionPromise"]["signedEntryTimestamp"] = base64.b64encode(
            LoggedSignature(logged.digest, logged.signature, logged.body, 0).signed_entry_timestamp(
                never
            )
        ).decode()
        with pytest.raises(VerificationFailure):
            _verify(bundle, signer, log)


def test_a_valid_set_whose_integrated_time_was_set_to_zero_is_refused(
    log: TestLog, signer: KeySigner
) -> None:
    bundle = legacy_bundle(signer.log_artifact(log, ARTIFACT), log)
    _entry(bundle)["integratedTime"] = "0"
    with pytest.raises(VerificationFailure, match="does not verify"):
        _verify(bundle, signer, log)


@pytest.mark.parametrize("media_type_version", ["0.1", "v0.3"])
def test_an_entry_with_neither_set_nor_inclusion_proof_is_refused(
    log: TestLog, signer: KeySigner, media_type_version: str
) -> None:
    logged = signer.log_artifact(log, ARTIFACT)
    bundle = logged.bundle(log)
    if media_type_version == "0.1":
        bundle["mediaType"] = "application/vnd.dev.sigstore.bundle+json;version=0.1"
    entry = _entry(bundle)
    del entry["inclusionProof"]
    del entry["inclusionPromise"]
    entry["integratedTime"] = "0"
    with pytest.raises(VerificationFailure):
        _verify(bundle, signer, log)


def test_a_garbage_set_beside_a_valid_inclusion_proof_is_refused(
    log: TestLog, signer: KeySigner
) -> None:
    """Every proof present must verify: a good inclusion proof does not excuse a forged SET."""
    logged = signer.log_artifact(log, ARTIFACT)
    bundle = logged.bundle(log)
    _entry(bundle)["inclusionPromise"]["signedEntryTimestamp"] = GARBAGE_SET
    with pytest.raises(VerificationFailure, match="signed entry timestamp"):
        _verify(bundle, signer, log)


def test_an_integrated_time_no_clock_can_hold_is_refused_not_a_crash(
    log: TestLog, signer: KeySigner
) -> None:
    bundle = legacy_bundle(signer.log_artifact(log, ARTIFACT), log)
    _entry(bundle)["integratedTime"] = str(2**62)
    with pytest.raises(VerificationFailure):
        _verify(bundle, signer, log)


def test_a_cosign_legacy_signature_whose_rekor_bundle_says_integrated_time_zero_is_refused(
    log: TestLog, signer: KeySigner
) -> None:
    logged = signer.log_artifact(log, ARTIFACT)
    rekor_bundle = {
        "SignedEntryTimestamp": GARBAGE_SET,
        "Payload": {
            "body": base64.b64encode(logged.body).decode(),
            "integratedTime": 0,
            "logIndex": logged.index,
            "logID": log.log_id.hex(),
        },
    }
    descriptor = {
        "mediaType": SIMPLE_SIGNING_MEDIA_TYPE,
        "digest": "sha256:" + "0" * 64,
        "annotations": {
            SIGNATURE_ANNOTATION: base64.b64encode(logged.signature).decode(),
            REKOR_BUNDLE_ANNOTATION: json.dumps(rekor_bundle),
        },
    }
    layer = Descriptor.from_json({**descriptor, "size": len(ARTIFACT)}, "test layer")
    bundle = to_sigstore_bundle(read_layer(layer, ARTIFACT))
    with pytest.raises(VerificationFailure, match="signed entry timestamp"):
        _verify(bundle, signer, log)


def _without_checkpoint(bundle: dict[str, Any]) -> dict[str, Any]:
    bundle["mediaType"] = "application/vnd.dev.sigstore.bundle+json;version=0.1"
    del _entry(bundle)["inclusionProof"]["checkpoint"]
    return bundle


def test_an_inclusion_proof_without_a_checkpoint_must_still_lead_to_its_root(
    log: TestLog, signer: KeySigner
) -> None:
    """A v0.1 entry may carry a proof without a signed checkpoint beside its SET. It proves
    nothing on its own, but what is present must hold: garbage beside a good SET is refused."""
    logged = signer.log_artifact(log, ARTIFACT)
    _verify(_without_checkpoint(logged.bundle(log)), signer, log)
    bundle = _without_checkpoint(logged.bundle(log))
    proof = _entry(bundle)["inclusionProof"]
    proof["rootHash"] = base64.b64encode(bytes(32)).decode()
    with pytest.raises(VerificationFailure, match="does not lead to the root it names"):
        _verify(bundle, signer, log)


def test_a_checkpoint_verified_once_does_not_vouch_for_another_key_under_its_log_id(
    log: TestLog, signer: KeySigner
) -> None:
    """A checkpoint's signature is checked once per process for its log key: a trusted root
    that names another key under the same log ID gets its own check, and fails it."""
    bundle = signer.log_artifact(log, ARTIFACT).bundle(log)
    _entry(bundle).pop("inclusionPromise", None)  # the checkpoint is all that vouches
    _verify(bundle, signer, log)
    forged = trusted_root_document(log)
    impostor = TestLog("rekor.airgap.test")
    forged["tlogs"][0]["publicKey"]["rawBytes"] = base64.b64encode(impostor.public_key_der).decode()
    with pytest.raises(VerificationFailure, match="no signature from a known key"):
        verify_bundle(
            parse_bundle(json.dumps(bundle).encode()),
            Artifact.from_bytes(ARTIFACT, "artifact"),
            parse_trusted_root(json.dumps(forged)),
            KeyPolicy(load_pem_public_key(signer.public_pem)),  # type: ignore[arg-type]
        )
