"""Keyless signers: Fulcio certificates checked against the trusted root at verified times.

Chain building is `cryptography`'s X.509 verifier, the SCT check is offline/trust/sct.py, and who
counts as an accepted signer is the caller's policy. Decided here: what must hold, in which order.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID
from cryptography.x509.verification import (
    Criticality,
    ExtensionPolicy,
    PolicyBuilder,
    Store,
)
from cryptography.x509.verification import VerificationError as X509VerificationError

from offline.errors import VerificationFailure
from offline.trust.root import CertificateAuthority, TrustedRoot
from offline.trust.sct import SctFailure, verify_embedded_sct


class CertificateFailure(VerificationFailure):
    pass


def verify_signing_certificate(
    cert: x509.Certificate,
    times: list[datetime],
    trusted_root: TrustedRoot,
    identity_problem: Callable[[x509.Certificate], str | None],
) -> None:
    """Raise CertificateFailure unless `cert` is a valid Fulcio leaf at every verified time,
    carries a valid SCT, is for code signing, and names an accepted signer."""
    if not times:
        raise CertificateFailure(
            "no verified time for the signature: the bundle needs a signed entry timestamp "
            "from the log or an RFC 3161 timestamp"
        )
    if not trusted_root.certificate_authorities:
        raise CertificateFailure("the trusted root has no certificate authority")

    # Fulcio leaves carry the code-signing EKU, not client-auth: allow any EKU, check it below.
    ca_policy = ExtensionPolicy.webpki_defaults_ca().may_be_present(
        x509.ExtendedKeyUsage, Criticality.NON_CRITICAL, None
    )
    ee_policy = ExtensionPolicy.webpki_defaults_ee().may_be_present(
        x509.ExtendedKeyUsage, Criticality.NON_CRITICAL, None
    )
    chain: list[x509.Certificate] = []
    for when in times:
        # A CA counts only inside its trusted-root window (sigstore-go's rule): a retired CA
        # stays for what it signed while valid, and signs nothing after.
        authorities = [ca for ca in trusted_root.certificate_authorities if ca.valid_at(when)]
        if not authorities:
            raise CertificateFailure(
                f"no certificate authority of the trusted root was valid at {when.isoformat()}"
            )
        chain = _chain_to_an_authority(cert, when, authorities, ca_policy, ee_policy)
        if not cert.not_valid_before_utc <= when <= cert.not_valid_after_utc:
            raise CertificateFailure(
                f"signing certificate was not valid at {when.isoformat()} (valid from "
                f"{cert.not_valid_before_utc.isoformat()} "
                f"to {cert.not_valid_after_utc.isoformat()})"
            )

    try:
        verify_embedded_sct(cert, chain, trusted_root.ctlogs)
    except SctFailure as exc:
        raise CertificateFailure(f"signing certificate's SCT does not verify: {exc}") from exc

    try:
        usage = cert.extensions.get_extension_for_class(x509.KeyUsage).value
        extended = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound as exc:
        raise CertificateFailure(f"signing certificate lacks {exc.oid._name}") from exc
    if not usage.digital_signature:
        raise CertificateFailure("signing certificate is not for digital signatures")
    if ExtendedKeyUsageOID.CODE_SIGNING not in extended:
        raise CertificateFailure("signing certificate is not for code signing")

    problem = identity_problem(cert)
    if problem is not None:
        raise CertificateFailure(f"signer identity does not match: {problem}")


def _chain_to_an_authority(
    cert: x509.Certificate,
    when: datetime,
    authorities: list[CertificateAuthority],
    ca_policy: ExtensionPolicy,
    ee_policy: ExtensionPolicy,
) -> list[x509.Certificate]:
    """The chain above `cert` (issuer first) to the first authority it verifies with at `when`;
    each authority's certificates are its own trust store, so chains never mix authorities."""
    failure: Exception | None = None
    for authority in authorities:
        verifier = (
            PolicyBuilder()
            .store(Store(list(authority.certificates)))
            .time(when)
            .extension_policies(ca_policy=ca_policy, ee_policy=ee_policy)
            .build_client_verifier()
        )
        try:
            return verifier.verify(cert, []).chain[1:]
        except (X509VerificationError, x509.UnsupportedGeneralNameType, ValueError) as exc:
            failure = failure or exc
    raise CertificateFailure(
        f"signing certificate does not chain to a certificate authority of the trusted root "
        f"valid at {when.isoformat()}: {failure}"
    )
