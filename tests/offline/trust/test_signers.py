"""Signer rules: whose Fulcio certificate or which public key a policy accepts.

The certificates are made here with `cryptography`, shaped like Fulcio's: the identity in the
SAN (URI, email, or Sigstore's otherName) and the OIDC issuer in extension 1.3.6.1.4.1.57264.1.8
(a DER UTF8String) or, as older Fulcio releases wrote it, 1.3.6.1.4.1.57264.1.1 (raw bytes).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from offline.sigstore.verify import SignerPolicy
from offline.trust.signers import (
    OIDC_ISSUER_LEGACY_OID,
    OIDC_ISSUER_OID,
    SAN_OTHERNAME_OID,
    AcceptedSigners,
    SignerRule,
    certificate_identities,
    certificate_issuer,
)

K8S_ISSUER = "https://kubernetes.default.svc"
BUILDER = "https://kubernetes.io/namespaces/ci/serviceaccounts/builder"


def der_utf8(text: str) -> bytes:
    data = text.encode()
    if len(data) < 0x80:
        return bytes([0x0C, len(data)]) + data
    return bytes([0x0C, 0x82]) + len(data).to_bytes(2, "big") + data


def fulcio_cert(
    *,
    uris: tuple[str, ...] = (BUILDER,),
    emails: tuple[str, ...] = (),
    other_names: tuple[str, ...] = (),
    issuer: str | None = K8S_ISSUER,
    issuer_encoding: str = "v2",
) -> x509.Certificate:
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.now(UTC)
    names: list[x509.GeneralName] = [x509.UniformResourceIdentifier(uri) for uri in uris]
    names += [x509.RFC822Name(email) for email in emails]
    names += [x509.OtherName(SAN_OTHERNAME_OID, der_utf8(name)) for name in other_names]
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([]))
        .issuer_name(x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, "test fulcio")]))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + timedelta(minutes=10))
    )
    if names:
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=True)
    if issuer is not None and issuer_encoding in ("v2", "both"):
        builder = builder.add_extension(
            x509.UnrecognizedExtension(OIDC_ISSUER_OID, der_utf8(issuer)), critical=False
        )
    if issuer is not None and issuer_encoding in ("legacy", "both"):
        builder = builder.add_extension(
            x509.UnrecognizedExtension(OIDC_ISSUER_LEGACY_OID, issuer.encode()), critical=False
        )
    return builder.sign(key, hashes.SHA256())


def keyless(subject: str = BUILDER, issuer: str = K8S_ISSUER) -> SignerRule:
    return SignerRule(issuer=issuer, subject=subject)


class TestReadingTheCertificate:
    def test_the_issuer_from_the_current_extension_is_a_der_utf8_string(self) -> None:
        assert certificate_issuer(fulcio_cert(issuer_encoding="v2")) == K8S_ISSUER

    def test_the_issuer_from_the_legacy_extension_is_raw_bytes(self) -> None:
        assert certificate_issuer(fulcio_cert(issuer_encoding="legacy")) == K8S_ISSUER

    def test_the_current_extension_wins_when_both_are_present(self) -> None:
        cert = fulcio_cert(issuer="https://current.example", issuer_encoding="both")
        assert certificate_issuer(cert) == "https://current.example"

    def test_a_certificate_without_either_extension_has_no_issuer(self) -> None:
        assert certificate_issuer(fulcio_cert(issuer=None)) is None

    def test_a_long_issuer_uses_the_long_der_length_form(self) -> None:
        long_issuer = "https://issuer.example/" + "x" * 200
        assert certificate_issuer(fulcio_cert(issuer=long_issuer)) == long_issuer

    def test_identities_are_uris_emails_and_sigstore_othernames(self) -> None:
        cert = fulcio_cert(uris=(BUILDER,), emails=("dev@example.com",), other_names=("alice",))
        assert certificate_identities(cert) == (BUILDER, "dev@example.com", "alice")


class TestKeylessRules:
    def test_exact_subject_and_issuer_match(self) -> None:
        assert keyless().matches_certificate(fulcio_cert()) is None

    @pytest.mark.parametrize("encoding", ["v2", "legacy"])
    def test_the_issuer_matches_in_either_encoding(self, encoding: str) -> None:
        assert keyless().matches_certificate(fulcio_cert(issuer_encoding=encoding)) is None

    def test_a_different_subject_is_refused_with_what_the_certificate_says(self) -> None:
        rule = keyless(subject="https://kubernetes.io/namespaces/ci/serviceaccounts/other")
        message = rule.matches_certificate(fulcio_cert())
        assert message is not None
        assert BUILDER in message and K8S_ISSUER in message
        assert "serviceaccounts/other" in message
        assert "\n" not in message

    def test_a_different_issuer_is_refused(self) -> None:
        rule = keyless(issuer="https://accounts.example")
        message = rule.matches_certificate(fulcio_cert())
        assert message is not None and f"from issuer {K8S_ISSUER}" in message

    def test_a_certificate_without_an_issuer_is_refused(self) -> None:
        message = keyless().matches_certificate(fulcio_cert(issuer=None))
        assert message is not None and "issuer (none)" in message

    def test_the_subject_matches_any_san(self) -> None:
        cert = fulcio_cert(uris=("https://other.example",), emails=("dev@example.com",))
        assert keyless(subject="dev@example.com").matches_certificate(cert) is None

    def test_the_sigstore_othername_is_a_subject_too(self) -> None:
        cert = fulcio_cert(uris=(), other_names=("alice",))
        assert keyless(subject="alice").matches_certificate(cert) is None

    def test_regular_expressions_must_match_the_whole_value(self) -> None:
        anchored = SignerRule(
            issuer_regexp=re.compile(r"https://kubernetes\.default\.svc"),
            subject_regexp=re.compile(r"https://kubernetes\.io/namespaces/ci/.*"),
        )
        assert anchored.matches_certificate(fulcio_cert()) is None
        partial = SignerRule(issuer=K8S_ISSUER, subject_regexp=re.compile("serviceaccounts"))
        assert partial.matches_certificate(fulcio_cert()) is not None

    def test_a_keyless_rule_needs_both_an_issuer_and_a_subject(self) -> None:
        with pytest.raises(ValueError, match="issuer and a subject"):
            SignerRule(subject=BUILDER)

    def test_exact_and_regexp_together_are_refused(self) -> None:
        with pytest.raises(ValueError, match="not both"):
            SignerRule(issuer=K8S_ISSUER, subject=BUILDER, subject_regexp=re.compile(".*"))

    def test_a_keyless_rule_accepts_no_key(self) -> None:
        assert not keyless().matches_key(ec.generate_private_key(ec.SECP256R1()).public_key())


class TestKeyRules:
    def test_the_same_key_matches_by_its_subject_public_key_info(self) -> None:
        public = ec.generate_private_key(ec.SECP256R1()).public_key()
        rule = SignerRule.for_key(public)
        assert rule.matches_key(public)
        pem = public.public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)
        assert rule.matches_key(serialization.load_pem_public_key(pem))

    def test_another_key_does_not_match(self) -> None:
        rule = SignerRule.for_key(ec.generate_private_key(ec.SECP256R1()).public_key())
        assert not rule.matches_key(ec.generate_private_key(ec.SECP256R1()).public_key())
        assert not rule.matches_key(ed25519.Ed25519PrivateKey.generate().public_key())

    def test_a_key_rule_refuses_a_certificate(self) -> None:
        rule = SignerRule.for_key(ec.generate_private_key(ec.SECP256R1()).public_key())
        message = rule.matches_certificate(fulcio_cert())
        assert message is not None and "accepts only a public key" in message


class TestAcceptedSigners:
    def test_it_is_what_bundle_verification_takes(self) -> None:
        policy: SignerPolicy = AcceptedSigners((keyless(),))
        assert policy.certificate_problem(fulcio_cert()) is None

    def test_any_one_rule_is_enough(self) -> None:
        signers = AcceptedSigners((keyless(subject="someone-else"), keyless()))
        assert signers.certificate_problem(fulcio_cert()) is None

    def test_no_matching_rule_names_the_certificate_and_every_rule(self) -> None:
        signers = AcceptedSigners((keyless(subject="a"), keyless(subject="b")))
        message = signers.certificate_problem(fulcio_cert())
        assert message is not None
        assert BUILDER in message and "subject a" in message and "subject b" in message

    def test_accepted_keys_are_the_key_rules_keys(self) -> None:
        public = ec.generate_private_key(ec.SECP256R1()).public_key()
        signers = AcceptedSigners((keyless(), SignerRule.for_key(public)))
        assert signers.accepted_keys() == (public,)

    def test_only_keys_means_a_certificate_is_refused(self) -> None:
        public = ec.generate_private_key(ec.SECP256R1()).public_key()
        message = AcceptedSigners((SignerRule.for_key(public),)).certificate_problem(fulcio_cert())
        assert message is not None and "accepts only" in message

    def test_describe_certificate_names_identity_and_issuer(self) -> None:
        described = AcceptedSigners(()).describe_certificate(fulcio_cert())
        assert described == f"certificate identity {BUILDER} from issuer {K8S_ISSUER}"
