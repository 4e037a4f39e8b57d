"""Who may sign: a Fulcio identity (OIDC issuer and subject) or a public key.

A Fulcio certificate names its signer in two places:
- the Subject Alternative Name: a URI (workloads, Kubernetes service accounts), an email, or
  Sigstore's otherName 1.3.6.1.4.1.57264.1.7 (a DER UTF8String, for usernames);
- the OIDC issuer: extension 1.3.6.1.4.1.57264.1.8 (a DER UTF8String), or in certificates from
  older Fulcio releases only the legacy 1.3.6.1.4.1.57264.1.1 (the raw bytes of the URL).

Matching is exact, or a regular expression that must match the whole value (`re.fullmatch`),
the way cosign's `--certificate-identity-regexp` behaves when anchored. That the certificate
chains to the trusted root is checked elsewhere (offline.trust.certs); this module only says
whose it is.
"""

from __future__ import annotations

import re
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric.types import PublicKeyTypes

from offline.record import Record
from offline.trust.key_encoding import spki_der
from offline.trust.root import PublicKey

SAN_OTHERNAME_OID = x509.ObjectIdentifier("1.3.6.1.4.1.57264.1.7")
OIDC_ISSUER_OID = x509.ObjectIdentifier("1.3.6.1.4.1.57264.1.8")
OIDC_ISSUER_LEGACY_OID = x509.ObjectIdentifier("1.3.6.1.4.1.57264.1.1")
_UTF8_STRING_TAG = 0x0C


class SignerRule(Record):
    """One accepted signer: a key, or an issuer and a subject (each exact or a regexp)."""

    __slots__ = (
        "issuer",
        "issuer_regexp",
        "key_path",
        "key_spki",
        "public_key",
        "subject",
        "subject_regexp",
    )
    _hidden = frozenset({"key_spki", "public_key"})
    # The key itself, for the pipeline to verify signatures with; equality goes by key_spki.
    _uncompared = frozenset({"public_key"})

    def __init__(
        self,
        issuer: str | None = None,
        issuer_regexp: re.Pattern[str] | None = None,
        subject: str | None = None,
        subject_regexp: re.Pattern[str] | None = None,
        key_path: Path | None = None,
        key_spki: bytes | None = None,
        public_key: PublicKey | None = None,
    ) -> None:
        has_issuer = issuer is not None or issuer_regexp is not None
        has_subject = subject is not None or subject_regexp is not None
        if public_key is not None:
            if has_issuer or has_subject:
                raise ValueError("a signer is a key or an identity, not both")
            if key_spki is None:
                key_spki = spki_der(public_key)
        else:
            if not (has_issuer and has_subject):
                raise ValueError("a keyless signer needs an issuer and a subject")
            if issuer is not None and issuer_regexp is not None:
                raise ValueError("give the issuer exactly or as a regular expression, not both")
            if subject is not None and subject_regexp is not None:
                raise ValueError("give the subject exactly or as a regular expression, not both")
        self.issuer = issuer
        self.issuer_regexp = issuer_regexp
        self.subject = subject
        self.subject_regexp = subject_regexp
        self.key_path = key_path
        self.key_spki = key_spki
        self.public_key = public_key

    @classmethod
    def for_key(cls, public_key: PublicKey, path: Path | None = None) -> SignerRule:
        return cls(key_path=path, public_key=public_key)

    @property
    def keyless(self) -> bool:
        return self.public_key is None

    def __str__(self) -> str:
        if not self.keyless:
            return f"key {self.key_path}" if self.key_path is not None else "a public key"
        subject = self.subject or f"matching {_pattern(self.subject_regexp)}"
        issuer = self.issuer or f"matching {_pattern(self.issuer_regexp)}"
        return f"subject {subject} from issuer {issuer}"

    def matches_certificate(self, cert: x509.Certificate) -> str | None:
        """None when `cert` names this signer, else a one-line reason saying what it names."""
        if not self.keyless:
            return f"signed with a certificate, but the policy accepts only {self}"
        try:
            identities = certificate_identities(cert)
            issuer = certificate_issuer(cert)
        except ValueError as exc:
            return f"signing certificate's identity could not be read: {exc}"
        issuer_ok = issuer is not None and _matches(issuer, self.issuer, self.issuer_regexp)
        subject_ok = any(_matches(name, self.subject, self.subject_regexp) for name in identities)
        if issuer_ok and subject_ok:
            return None
        seen = ", ".join(identities) if identities else "(no SAN)"
        return f"certificate identity {seen} from issuer {issuer or '(none)'} does not match {self}"

    def matches_key(self, public_key: PublicKeyTypes) -> bool:
        """Whether `public_key` is this signer's key (same SubjectPublicKeyInfo)."""
        if self.key_spki is None:
            return False
        try:
            return spki_der(public_key) == self.key_spki
        except (ValueError, TypeError):
            return False


class AcceptedSigners(Record):
    """Any one of several signer rules, shaped as bundle verification's SignerPolicy."""

    __slots__ = ("rules",)

    def __init__(self, rules: tuple[SignerRule, ...]) -> None:
        self.rules = rules

    def certificate_problem(self, cert: x509.Certificate) -> str | None:
        """None when some keyless rule accepts `cert`, else one line naming what it saw."""
        keyless = [rule for rule in self.rules if rule.keyless]
        if not keyless:
            accepted = ", ".join(str(rule) for rule in self.rules)
            return f"signed with a certificate, but the policy accepts only {accepted}"
        reasons = [rule.matches_certificate(cert) for rule in keyless]
        if None in reasons:
            return None
        if len(keyless) == 1:
            return reasons[0]
        accepted = "; ".join(str(rule) for rule in keyless)
        return f"{self.describe_certificate(cert)} is none of the accepted signers ({accepted})"

    def accepted_keys(self) -> tuple[PublicKey, ...]:
        return tuple(rule.public_key for rule in self.rules if rule.public_key is not None)

    def describe_certificate(self, cert: x509.Certificate) -> str:
        try:
            identities = ", ".join(certificate_identities(cert)) or "(no SAN)"
            issuer = certificate_issuer(cert) or "(none)"
        except ValueError as exc:
            return f"a certificate whose identity could not be read ({exc})"
        return f"certificate identity {identities} from issuer {issuer}"


def certificate_identities(cert: x509.Certificate) -> tuple[str, ...]:
    """The SAN values a Fulcio certificate names its signer by; ValueError if unreadable."""
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return ()
    except (x509.DuplicateExtension, x509.UnsupportedGeneralNameType) as exc:
        raise ValueError(str(exc)) from exc
    names: list[str] = []
    names += san.get_values_for_type(x509.UniformResourceIdentifier)
    names += san.get_values_for_type(x509.RFC822Name)
    for other in san.get_values_for_type(x509.OtherName):
        if other.type_id == SAN_OTHERNAME_OID:
            names.append(_der_utf8_string(other.value, "the otherName SAN"))
    return tuple(names)


def certificate_issuer(cert: x509.Certificate) -> str | None:
    """The OIDC issuer from Fulcio's extension (the current one, else the legacy one)."""
    try:
        value = cert.extensions.get_extension_for_oid(OIDC_ISSUER_OID).value
    except x509.ExtensionNotFound:
        pass
    except x509.DuplicateExtension as exc:
        raise ValueError(str(exc)) from exc
    else:
        return _der_utf8_string(_extension_bytes(value), "the OIDC issuer extension")
    try:
        value = cert.extensions.get_extension_for_oid(OIDC_ISSUER_LEGACY_OID).value
    except x509.ExtensionNotFound:
        return None
    except x509.DuplicateExtension as exc:
        raise ValueError(str(exc)) from exc
    try:
        return _extension_bytes(value).decode()
    except UnicodeDecodeError as exc:
        raise ValueError("the legacy OIDC issuer extension is not UTF-8") from exc


def _extension_bytes(value: x509.ExtensionType) -> bytes:
    if not isinstance(value, x509.UnrecognizedExtension):
        raise ValueError(f"unexpected extension {value.oid.dotted_string}")
    return value.value


def _der_utf8_string(data: bytes, what: str) -> str:
    """Decode one DER UTF8String (tag, length, bytes) that fills `data` exactly."""
    if len(data) < 2 or data[0] != _UTF8_STRING_TAG:
        raise ValueError(f"{what} is not a DER UTF8String")
    length, offset = data[1], 2
    if length & 0x80:
        count = length & 0x7F
        if count == 0 or count > 4 or len(data) < 2 + count:
            raise ValueError(f"{what} has an invalid DER length")
        length, offset = int.from_bytes(data[2 : 2 + count], "big"), 2 + count
    if offset + length != len(data):
        raise ValueError(f"{what} has a DER length that does not match its size")
    try:
        return data[offset:].decode()
    except UnicodeDecodeError as exc:
        raise ValueError(f"{what} is not valid UTF-8") from exc


def _matches(value: str, exact: str | None, pattern: re.Pattern[str] | None) -> bool:
    if exact is not None:
        return value == exact
    return pattern is not None and pattern.fullmatch(value) is not None


def _pattern(pattern: re.Pattern[str] | None) -> str:
    return repr(pattern.pattern) if pattern is not None else "(anything)"
