"""Verifying one Sigstore bundle against an artifact, a trusted root and a signer policy.

The order matters: everything that is cheap and does not need the signer's identity (log
entries, checkpoints, timestamps) is checked first, so the first failure named is the most
basic one.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from offline.entries import Signer, check_entry_body, pae
from offline.errors import UsageError, VerificationFailure
from offline.keys import verify_over_data, verify_over_sha256
from offline.pinning import Pinner, PinOutcome
from offline.sigbundle import SigstoreBundle, sha256_file
from offline.tlog import VerifiedEntry, verify_entry
from offline.trust import PublicKey, TrustedRoot
from offline.witness import WitnessPolicy

IN_TOTO_PAYLOAD_TYPE = "application/vnd.in-toto+json"
_DIGEST_ARG = re.compile(r"sha256:([0-9a-fA-F]{64})")


class SignatureFailure(VerificationFailure):
    pass


@dataclass(frozen=True)
class Artifact:
    """What the bundle must be about: a file on disk, or only its SHA-256 digest."""

    sha256: bytes
    path: Path | None = None

    @classmethod
    def from_argument(cls, value: str) -> Artifact:
        path = Path(value)
        if path.is_file():
            return cls(sha256_file(path), path)
        if path.is_dir():
            raise UsageError(f"artifact {value} is a directory, expected a file")
        match = _DIGEST_ARG.fullmatch(value)
        if match:
            return cls(bytes.fromhex(match.group(1)))
        raise UsageError(f"artifact {value!r}: no such file, and not a sha256:<64 hex> digest")

    def describe(self) -> str:
        return str(self.path) if self.path else f"sha256:{self.sha256.hex()}"


@dataclass(frozen=True)
class IdentityPolicy:
    """A keyless signer: the certificate's identity (SAN) and OIDC issuer, matched exactly."""

    identity: str
    issuer: str


@dataclass(frozen=True)
class KeyPolicy:
    key: PublicKey


SignerPolicy = IdentityPolicy | KeyPolicy


@dataclass
class BundleResult:
    """What was proven about a bundle; `warnings` are what an operator should still hear."""

    bundle: SigstoreBundle
    signer: str
    entries: list[VerifiedEntry]
    times: list[datetime]
    pins: list[PinOutcome] = field(default_factory=list)
    statement: dict[str, Any] | None = None

    @property
    def warnings(self) -> list[str]:
        return [p.message for p in self.pins if p.status == "unpinned"]


def verify_bundle(
    bundle: SigstoreBundle,
    artifact: Artifact,
    trusted_root: TrustedRoot,
    policy: SignerPolicy,
    pinner: Pinner | None = None,
    witness_policy: WitnessPolicy | None = None,
) -> BundleResult:
    cert = bundle.leaf_certificate
    if cert is None and isinstance(policy, IdentityPolicy):
        raise SignatureFailure(
            "bundle is signed with a public key, not a certificate: verify it with --key"
        )
    if cert is not None and isinstance(policy, KeyPolicy):
        raise SignatureFailure(
            "bundle is signed keylessly with a certificate: verify it with "
            "--certificate-identity and --certificate-oidc-issuer"
        )
    signer = Signer(cert.public_key(), cert) if cert is not None else Signer(policy.key)  # type: ignore[arg-type,union-attr]

    if not bundle.tlog_entries:
        raise VerificationFailure("bundle has no transparency log entry")
    entries = [
        verify_entry(
            e, trusted_root, require_proof=bundle.version >= (0, 2), witness_policy=witness_policy
        )
        for e in bundle.tlog_entries
    ]

    sigstore_root = _sigstore_trusted_root(trusted_root)
    from offline.timestamps import verify_timestamps

    material = bundle.model.verification_material
    raw_timestamps = [
        t.signed_timestamp
        for t in (
            material.timestamp_verification_data.rfc3161_timestamps
            if material.timestamp_verification_data
            else []
        )
    ]
    tsa_times = verify_timestamps(raw_timestamps, bundle.signature, sigstore_root)
    for entry in entries:
        # Rekor v2 entries carry no integrated time: the log key must cover a signed timestamp.
        if (
            entry.integrated_time is None
            and tsa_times
            and not any(entry.log.valid_at(t) for t in tsa_times)
        ):
            raise VerificationFailure(
                f"log {entry.log.base_url} key was not valid at the signed timestamp"
            )
    times = tsa_times + [e.integrated_time for e in entries if e.integrated_time is not None]

    statement = _verify_signature(bundle, artifact, signer)
    for raw in bundle.tlog_entries:
        check_entry_body(raw, bundle, signer, artifact.sha256)

    if cert is not None:
        from sigstore.verify.policy import Identity

        from offline.certs import verify_signing_certificate

        assert isinstance(policy, IdentityPolicy)
        verify_signing_certificate(
            cert, times, sigstore_root, Identity(identity=policy.identity, issuer=policy.issuer)
        )
        signer_name = f"{policy.identity} ({policy.issuer})"
    else:
        signer_name = "the given public key"

    result = BundleResult(bundle, signer_name, entries, times, statement=statement)
    if pinner is not None:
        result.pins = [pinner(entry) for entry in entries]
    return result


def _verify_signature(
    bundle: SigstoreBundle, artifact: Artifact, signer: Signer
) -> dict[str, Any] | None:
    envelope = bundle.envelope
    if envelope is None:
        message = bundle.model.message_signature
        assert message is not None
        if message.message_digest is not None and message.message_digest.digest != artifact.sha256:
            raise SignatureFailure(
                f"bundle is for another artifact: its digest differs from {artifact.describe()}"
            )
        if artifact.path is not None and not _is_prehash_key(signer.public_key):
            ok = verify_over_data(signer.public_key, message.signature, artifact.path.read_bytes())
        else:
            ok = verify_over_sha256(signer.public_key, message.signature, artifact.sha256)
        if not ok:
            raise SignatureFailure(f"signature does not verify for {artifact.describe()}")
        return None

    if not verify_over_data(
        signer.public_key, envelope.signatures[0].sig, pae(envelope.payload_type, envelope.payload)
    ):
        raise SignatureFailure("DSSE envelope signature does not verify")
    if envelope.payload_type != IN_TOTO_PAYLOAD_TYPE:
        raise SignatureFailure(
            f"DSSE payload type {envelope.payload_type!r} is not an in-toto statement, "
            f"so it cannot name the artifact"
        )
    try:
        statement = json.loads(envelope.payload)
        subjects = statement["subject"]
        digests = {
            s["digest"]["sha256"].lower() for s in subjects if "sha256" in s.get("digest", {})
        }
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise SignatureFailure(f"DSSE payload is not a valid in-toto statement ({exc})") from exc
    if artifact.sha256.hex() not in digests:
        raise SignatureFailure(
            f"in-toto statement has no subject with the digest of {artifact.describe()}"
        )
    return dict(statement)


def _is_prehash_key(key: PublicKey) -> bool:
    """Keys whose signatures can be checked from a SHA-256 digest (all but pure Ed25519)."""
    from cryptography.hazmat.primitives.asymmetric import ed25519

    return not isinstance(key, ed25519.Ed25519PublicKey)


def _sigstore_trusted_root(trusted_root: TrustedRoot) -> Any:
    from sigstore.models import TrustedRoot as SigstoreTrustedRoot
    from sigstore_models.trustroot.v1 import TrustedRoot as TrustedRootModel

    try:
        return SigstoreTrustedRoot(TrustedRootModel.from_json(json.dumps(trusted_root.document)))
    except Exception as exc:  # sigstore raises several unrelated types for a bad document
        raise UsageError(f"trusted root is not usable: {exc}") from exc
