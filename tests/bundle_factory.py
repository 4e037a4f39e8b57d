"""Sigstore bundles signed with a managed key and logged in a TestLog, made inside the tests.

log = TestLog()
signer = KeySigner()
entry = signer.log_artifact(log, b"hello")      # appends a hashedrekord 0.0.1 entry
log.extend(5)
bundle = entry.bundle(log)                       # inclusion proof + checkpoint at log.size
"""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import dataclass
from typing import Any

import rfc8785
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed

from tests.tlog_fixture import TestLog

BUNDLE_V03 = "application/vnd.dev.sigstore.bundle.v0.3+json"
INTEGRATED_TIME = 1_760_000_000  # 2025-10-09, after the TestLog keys' validFor.start


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


class KeySigner:
    """A managed ECDSA P-256 signing key, as `cosign generate-key-pair` makes."""

    def __init__(self) -> None:
        self.key = ec.generate_private_key(ec.SECP256R1())

    @property
    def public_pem(self) -> bytes:
        return self.key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )

    def log_artifact(self, log: TestLog, artifact: bytes) -> LoggedSignature:
        digest = hashlib.sha256(artifact).digest()
        signature = self.key.sign(digest, ec.ECDSA(Prehashed(hashes.SHA256())))
        body = rfc8785.dumps(
            {
                "apiVersion": "0.0.1",
                "kind": "hashedrekord",
                "spec": {
                    "data": {"hash": {"algorithm": "sha256", "value": digest.hex()}},
                    "signature": {
                        "content": _b64(signature),
                        "publicKey": {"content": _b64(self.public_pem)},
                    },
                },
            }
        )
        index = log.append(body)
        return LoggedSignature(digest, signature, body, index)


@dataclass(frozen=True)
class LoggedSignature:
    digest: bytes
    signature: bytes
    body: bytes
    index: int

    def signed_entry_timestamp(self, log: TestLog) -> bytes:
        payload = rfc8785.dumps(
            {
                "body": _b64(self.body),
                "integratedTime": INTEGRATED_TIME,
                "logID": log.log_id.hex(),
                "logIndex": self.index,
            }
        )
        assert isinstance(log.key, ec.EllipticCurvePrivateKey)
        return log.key.sign(payload, ec.ECDSA(hashes.SHA256()))

    def bundle(
        self, log: TestLog, size: int | None = None, checkpoint: str | None = None
    ) -> dict[str, Any]:
        """The bundle with an inclusion proof and signed checkpoint at `size` (default: now)."""
        size = log.size if size is None else size
        return {
            "mediaType": BUNDLE_V03,
            "verificationMaterial": {
                "publicKey": {"hint": "airgap-test-key"},
                "tlogEntries": [
                    {
                        "logIndex": str(self.index),
                        "logId": {"keyId": _b64(log.log_id)},
                        "kindVersion": {"kind": "hashedrekord", "version": "0.0.1"},
                        "integratedTime": str(INTEGRATED_TIME),
                        "inclusionPromise": {
                            "signedEntryTimestamp": _b64(self.signed_entry_timestamp(log))
                        },
                        "inclusionProof": {
                            "logIndex": str(self.index),
                            "rootHash": _b64(log.root(size)),
                            "treeSize": str(size),
                            "hashes": [_b64(h) for h in log.inclusion_proof(self.index, size)],
                            "checkpoint": {"envelope": checkpoint or log.checkpoint(size)},
                        },
                        "canonicalizedBody": _b64(self.body),
                    }
                ],
            },
            "messageSignature": {
                "messageDigest": {"algorithm": "SHA2_256", "digest": _b64(self.digest)},
                "signature": _b64(self.signature),
            },
        }

    def bundle_json(self, log: TestLog, size: int | None = None, **kwargs: Any) -> str:
        return json.dumps(self.bundle(log, size, **kwargs))


def legacy_bundle(logged: LoggedSignature, log: TestLog) -> dict[str, Any]:
    """The bundle cosign's legacy format amounts to: v0.1, a SET, no inclusion proof."""
    bundle = logged.bundle(log)
    bundle["mediaType"] = "application/vnd.dev.sigstore.bundle+json;version=0.1"
    del bundle["verificationMaterial"]["tlogEntries"][0]["inclusionProof"]
    return bundle


def rekor_entry(logged: LoggedSignature, log: TestLog) -> dict[str, Any]:
    """GET /api/v1/log/entries?logIndex=N as Rekor answers it, with a proof at the log's size."""
    size = log.size
    return {
        hashlib.sha256(logged.body).hexdigest(): {
            "body": _b64(logged.body),
            "integratedTime": INTEGRATED_TIME,
            "logID": log.log_id.hex(),
            "logIndex": logged.index,
            "verification": {
                "inclusionProof": {
                    "checkpoint": log.checkpoint(size),
                    "hashes": [h.hex() for h in log.inclusion_proof(logged.index, size)],
                    "logIndex": logged.index,
                    "rootHash": log.root(size).hex(),
                    "treeSize": size,
                },
                "signedEntryTimestamp": _b64(logged.signed_entry_timestamp(log)),
            },
        }
    }
