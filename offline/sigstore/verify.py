"""Verifying one Sigstore bundle against an artifact, a trusted root and a signer policy.

The order matters: everything that is cheap and does not need the signer's identity (log
entries, checkpoints, timestamps) is checked first, so the first failure named is the most
basic one.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ed25519

from offline.errors import UsageError, VerificationFailure
from offline.record import Record
from offline.sigstore.entry_body import Signer, check_entry_body, pae
from offline.sigstore.model import SigstoreBundle, sha256_file
from offline.tlog.entry import VerifiedEntry, verify_entry
from offline.tlog.pinning import Pinner, PinOutcome
from offline.tlog.witness import WitnessPolicy
from offline.trust.keys import verify_over_data, verify_over_sha256
from offline.trust.root import PublicKey, TrustedRoot

IN_TOTO_PAYLOAD_TYPE = "application/vnd.in-toto+json"
# Pure Ed25519 verifies the artifact itself, which is then read whole.
MAX_ARTIFACT_IN_MEMORY = 1024 * 1024 * 1024
_DIGEST_ARG = re.compile(r"sha256:([0-9a-fA-F]{64})")
KEY_SIGNED_NO_KEY = (
    "bundle is signed with a public key, not a certificate, and no key is accepted: verify it "
    "against the signer's public key"
)


class SignatureFailure(VerificationFailure):
    pass


class Artifact(Record):
    """What the bundle must be about: a file on disk, bytes in memory, or only a SHA-256."""

    __slots__ = ("data", "name", "path", "sha256")

    def __init__(
        self,
        sha256: bytes,
        path: Path | None = None,
        data: bytes | None = None,
        name: str | None = None,
    ) -> None:
        self.sha256 = sha256
        self.path = path
        self.data = data
        self.name = name

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

    @classmethod
    def from_bytes(cls, data: bytes, name: str) -> Artifact:
        return cls(hashlib.sha256(data).digest(), data=data, name=name)

    @classmethod
    def from_digest(cls, digest: str) -> Artifact:
        """An OCI digest (`sha256:<hex>`): what image signatures and attestations name."""
        match = _DIGEST_ARG.fullmatch(digest)
        if not match:
            raise UsageError(f"{digest!r} is not a sha256:<64 hex> digest")
        return cls(bytes.fromhex(match.group(1)), name=digest)

    def read(self) -> bytes | None:
        if self.data is not None:
            return self.data
        if self.path is None:
            return None
        from offline.inputs import read_input

        return read_input(self.path, "artifact", MAX_ARTIFACT_IN_MEMORY)

    def describe(self) -> str:
        return self.name or (str(self.path) if self.path else f"sha256:{self.sha256.hex()}")


class SignerPolicy(Protocol):
    """Who may have signed: a check for certificates and the keys accepted for key bundles."""

    def certificate_problem(self, cert: x509.Certificate) -> str | None:
        """None when `cert` names an accepted signer, else a one-line reason."""

    def accepted_keys(self) -> Sequence[PublicKey]: ...

    def describe_certificate(self, cert: x509.Certificate) -> str: ...


class IdentityPolicy(Record):
    """A keyless signer: the certificate's identity (SAN) and OIDC issuer, matched exactly."""

    __slots__ = ("identity", "issuer")

    def __init__(self, identity: str, issuer: str) -> None:
        self.identity = identity
        self.issuer = issuer

    def certificate_problem(self, cert: x509.Certificate) -> str | None:
        from offline.trust.signers import SignerRule

        return SignerRule(issuer=self.issuer, subject=self.identity).matches_certificate(cert)

    def accepted_keys(self) -> Sequence[PublicKey]:
        return ()

    def describe_certificate(self, cert: x509.Certificate) -> str:
        return f"{self.identity} ({self.issuer})"


class KeyPolicy(Record):
    __slots__ = ("key",)

    def __init__(self, key: PublicKey) -> None:
        self.key = key

    def certificate_problem(self, cert: x509.Certificate) -> str | None:
        return (
            "bundle is signed keylessly with a certificate, and only a key is accepted: "
            "verify it against the signer's identity and OIDC issuer"
        )

    def accepted_keys(self) -> Sequence[PublicKey]:
        return (self.key,)

    def describe_certificate(self, cert: x509.Certificate) -> str:
        return "a certificate"


class BundleResult(Record):
    """What was proven about a bundle; `warnings` are what an operator should still hear."""

    __slots__ = ("bundle", "entries", "pins", "signer", "statement", "times")

    def __init__(
        self,
        bundle: SigstoreBundle,
        signer: str,
        entries: list[VerifiedEntry],
        times: list[datetime],
        pins: list[PinOutcome],
        statement: dict[str, Any] | None,
    ) -> None:
        self.bundle = bundle
        self.signer = signer
        self.entries = entries
        self.times = times
        self.pins = pins
        self.statement = statement

    @property
    def warnings(self) -> list[str]:
        return [p.message for p in self.pins if p.status == "unpinned"]


def verify_bundle(
    bundle: SigstoreBundle,
    artifact: Artifact,
    trusted_root: TrustedRoot | None,
    policy: SignerPolicy,
    pinner: Pinner | None = None,
    witness_policy: WitnessPolicy | None = None,
    *,
    require_tlog: bool = True,
) -> BundleResult:
    """What the bundle proves. With no trusted root only a key signature with the log ignored
    can be checked (as `cosign verify --key K --insecure-ignore-tlog`): the signature alone,
    with whatever log entries and timestamps the bundle carries left unread."""
    if trusted_root is None:
        return _verify_key_signature_only(bundle, artifact, policy, require_tlog)
    cert = bundle.leaf_certificate
    if cert is not None:
        signer = Signer(cert.public_key(), cert)  # type: ignore[arg-type]
    else:
        keys = policy.accepted_keys()
        if not keys:
            raise SignatureFailure(KEY_SIGNED_NO_KEY)
        signer = _key_signer(bundle, artifact, keys)

    if not bundle.tlog_entries and require_tlog:
        raise VerificationFailure(
            "bundle has no transparency log entry, and one is required (unless the log is ignored)"
        )
    entries = [
        verify_entry(
            e, trusted_root, require_proof=bundle.version >= (0, 2), witness_policy=witness_policy
        )
        for e in bundle.tlog_entries
    ]

    material = bundle.model.verification_material
    raw_timestamps = [
        t.signed_timestamp
        for t in (
            material.timestamp_verification_data.rfc3161_timestamps
            if material.timestamp_verification_data
            else []
        )
    ]
    tsa_times: list[datetime] = []
    if raw_timestamps:  # the timestamp library is imported only for a bundle that needs it
        from offline.trust.timestamps import verify_timestamps

        tsa_times = verify_timestamps(raw_timestamps, bundle.signature, trusted_root)
    for entry in entries:
        # Rekor v2 entries carry no integrated time: the log key must cover a signed timestamp,
        # or, with no trusted time at all, be valid now (a retired log key proves nothing).
        if entry.integrated_time is None:
            when = tsa_times or [datetime.now(UTC)]
            if not any(entry.log.valid_at(t) for t in when):
                what = "the signed timestamp" if tsa_times else "the present time"
                raise VerificationFailure(f"log {entry.log.base_url} key was not valid at {what}")
    times = tsa_times + [e.integrated_time for e in entries if e.integrated_time is not None]
    if not times and not require_tlog:
        # With the log ignored there is no trusted time: like cosign, use the present.
        times = [datetime.now(UTC)]

    statement = _verify_signature(bundle, artifact, signer)
    for raw in bundle.tlog_entries:
        check_entry_body(raw, bundle, signer, artifact.sha256)

    if cert is not None:
        from offline.trust.certs import verify_signing_certificate

        verify_signing_certificate(cert, times, trusted_root, policy.certificate_problem)
        signer_name = policy.describe_certificate(cert)
    else:
        signer_name = "an accepted public key"

    pins = [pinner(entry) for entry in entries] if pinner is not None else []
    return BundleResult(bundle, signer_name, entries, times, pins, statement)


def _verify_key_signature_only(
    bundle: SigstoreBundle, artifact: Artifact, policy: SignerPolicy, require_tlog: bool
) -> BundleResult:
    if require_tlog:
        # A caller bug, not a user's: every mode that checks the log loads a trusted root.
        raise UsageError("checking a transparency log entry needs a trusted root")
    cert = bundle.leaf_certificate
    if cert is not None:
        problem = policy.certificate_problem(cert)
        raise SignatureFailure(
            problem
            or "bundle is signed with a certificate, which needs a trusted root to verify "
            "(none given)"
        )
    keys = policy.accepted_keys()
    if not keys:
        raise SignatureFailure(KEY_SIGNED_NO_KEY)
    signer = _key_signer(bundle, artifact, keys)
    statement = _verify_signature(bundle, artifact, signer)
    return BundleResult(bundle, "an accepted public key", [], [], [], statement)


def _key_signer(bundle: SigstoreBundle, artifact: Artifact, keys: Sequence[PublicKey]) -> Signer:
    """The accepted key whose signature this is (a bundle names its key only by a hint)."""
    failures = []
    for key in keys:
        try:
            _verify_signature(bundle, artifact, Signer(key))
        except SignatureFailure as exc:
            failures.append(exc)
            continue
        return Signer(key)
    if len(failures) == 1:
        raise failures[0]
    raise SignatureFailure(
        f"signature does not verify for {artifact.describe()} with any of {len(keys)} accepted keys"
    )


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
        if isinstance(signer.public_key, ed25519.Ed25519PublicKey):
            # Pure Ed25519 signs the message itself, not a digest.
            data = artifact.read()
            if data is None:
                raise UsageError(
                    "an Ed25519 signature over an artifact needs the artifact, not its digest"
                )
            ok = verify_over_data(signer.public_key, message.signature, data)
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
    except (ValueError, KeyError, TypeError, AttributeError, RecursionError) as exc:
        raise SignatureFailure(f"DSSE payload is not a valid in-toto statement ({exc})") from exc
    if artifact.sha256.hex() not in digests:
        raise SignatureFailure(
            f"in-toto statement has no subject with the digest of {artifact.describe()}"
        )
    return dict(statement)
