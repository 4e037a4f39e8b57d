"""The key material airgap makes once for a site, before anything is installed, in memory: the
Rekor signing key, the Fulcio CA (root, optional intermediate), the CT log key, the TSA chain
when the site has a TSA, and Trillian's database passwords.

Each private key keeps the exact bytes it is stored as (`pem`), so that rendering a key set read
back from the cluster gives the same Secrets byte for byte: a rerun compares, never re-encrypts.
Encodings are those the servers read:
- Rekor: PKCS#8 PEM, unencrypted (the chart has no password value; the Secret protects it);
- Fulcio and the TSA: PKCS#8 `ENCRYPTED PRIVATE KEY` (their file signers take a password);
- the CT log: SEC1 PEM with `Proc-Type: 4,ENCRYPTED` headers, the only encrypted form Trillian's
  PEMKeyFile (ct_server's key) reads.

`public_material` is what the trusted root, TUF and the tuf-system namespace get: PEMs only.
"""

from __future__ import annotations

import datetime as dt
import secrets
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from offline.errors import UsageError
from provisioner.stack import ca
from provisioner.stack.site import Site
from provisioner.stack.trusted_root import (
    CertificateAuthority,
    TransparencyLog,
    TrustedRootSpec,
)
from provisioner.trust.targets import Target, sigstore_targets

DATABASE_USER = "trillian"
DATABASE_NAME = "trillian"


def new_password() -> str:
    """192 random bits in URL-safe base64: safe in a MySQL DSN and a quoted prototext string."""
    return secrets.token_urlsafe(24)


@dataclass(frozen=True)
class SigningKey:
    """A private key as stored (`pem`), its password if it is encrypted, and when it was made
    (the start of its validity in the trusted root)."""

    pem: bytes
    password: str | None
    created: dt.datetime

    def private_key(self, where: str) -> ec.EllipticCurvePrivateKey:
        try:
            key = serialization.load_pem_private_key(
                self.pem, self.password.encode() if self.password is not None else None
            )
        except (ValueError, TypeError) as exc:
            raise UsageError(f"{where}: the private key does not load ({exc})") from exc
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            raise UsageError(f"{where}: the private key is not an ECDSA key")
        return key

    def public_pem(self, where: str) -> bytes:
        return _public_pem(self.private_key(where).public_key())


@dataclass(frozen=True)
class CertifiedKey(SigningKey):
    """A key with its certificate chain: the key's certificate first, the root last."""

    chain_pem: bytes = b""

    def chain(self, where: str) -> list[x509.Certificate]:
        try:
            chain = x509.load_pem_x509_certificates(self.chain_pem)
        except ValueError as exc:
            raise UsageError(f"{where}: the certificate chain is not PEM ({exc})") from exc
        if _public_pem(chain[0].public_key()) != self.public_pem(where):
            raise UsageError(f"{where}: the certificate is not for the private key")
        return chain

    def root_pem(self, where: str) -> bytes:
        return self.chain(where)[-1].public_bytes(serialization.Encoding.PEM)


@dataclass(frozen=True)
class DatabaseAuth:
    root_password: str
    password: str
    user: str = DATABASE_USER
    database: str = DATABASE_NAME


@dataclass(frozen=True)
class KeySet:
    rekor: SigningKey
    fulcio: CertifiedKey
    ctlog: SigningKey
    tsa: CertifiedKey | None
    database: DatabaseAuth | None  # None: the site's own database, its secret its own


@dataclass(frozen=True)
class PublicMaterial:
    """The public halves, PEM: what trusted_root.py, TUF and tuf-system get."""

    rekor: bytes
    ctlog: bytes
    fulcio_chain: bytes
    tsa_chain: bytes | None
    rekor_created: dt.datetime
    ctlog_created: dt.datetime

    @property
    def fulcio_root(self) -> bytes:
        certificates = x509.load_pem_x509_certificates(self.fulcio_chain)
        return certificates[-1].public_bytes(serialization.Encoding.PEM)

    def tuf_targets(self, trusted_root: bytes, signing_config: bytes | None = None) -> list[Target]:
        """What the site's TUF repository publishes (`airgap trust build`): the trusted root,
        the signing config, and these public files under the names clients (cosign,
        sigstore-go) and the scaffolding TUF server use."""
        return sigstore_targets(
            trusted_root,
            signing_config=signing_config,
            rekor_pub=self.rekor,
            ctfe_pub=self.ctlog,
            fulcio_chain=self.fulcio_chain,
            tsa_chain=self.tsa_chain,
        )

    def trusted_root_spec(self, site: Site) -> TrustedRootSpec:
        """For provisioner.stack.trusted_root: every log and authority at its URL for clients."""
        return TrustedRootSpec(
            tlogs=[
                TransparencyLog.from_pem(site.public_url("rekor"), self.rekor, self.rekor_created)
            ],
            certificate_authorities=[
                CertificateAuthority.from_pem(site.public_url("fulcio"), self.fulcio_chain)
            ],
            ctlogs=[
                TransparencyLog.from_pem(site.public_url("ctlog"), self.ctlog, self.ctlog_created)
            ],
            timestamp_authorities=[
                CertificateAuthority.from_pem(site.public_url("tsa"), self.tsa_chain)
            ]
            if self.tsa_chain is not None
            else [],
        )


def public_material(keys: KeySet) -> PublicMaterial:
    return PublicMaterial(
        rekor=keys.rekor.public_pem("rekor signing key"),
        ctlog=keys.ctlog.public_pem("CT log key"),
        fulcio_chain=_chain_pem(keys.fulcio.chain("Fulcio CA")),
        tsa_chain=_chain_pem(keys.tsa.chain("TSA")) if keys.tsa is not None else None,
        rekor_created=keys.rekor.created,
        ctlog_created=keys.ctlog.created,
    )


# -- making keys, once ----------------------------------------------------------------------------


def now() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(microsecond=0)


def generate_keyset(site: Site, when: dt.datetime | None = None) -> KeySet:
    when = when or now()
    return KeySet(
        rekor=new_rekor_key(when),
        fulcio=new_fulcio_ca(site, when),
        ctlog=new_ctlog_key(when),
        tsa=new_tsa_chain(site, when) if site.tsa else None,
        database=new_database_auth() if site.database is None else None,
    )


def new_rekor_key(when: dt.datetime) -> SigningKey:
    return SigningKey(_pkcs8(ca.new_key(), None), None, when)


def new_ctlog_key(when: dt.datetime) -> SigningKey:
    password = new_password()
    pem = ca.new_key().private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.BestAvailableEncryption(password.encode()),
    )
    return SigningKey(pem, password, when)


def new_fulcio_ca(site: Site, when: dt.datetime) -> CertifiedKey:
    """The root's key is dropped when an intermediate issues: nothing in the cluster needs it,
    and a key that is nowhere cannot leak (a new CA means a new trust root, by design)."""
    settings = site.fulcio_ca
    root, intermediate = ca.fulcio_chain(
        settings.organization,
        settings.common_name,
        settings.root_days,
        intermediate=settings.intermediate,
        now=when,
    )
    issuing = intermediate or root
    chain = [c.certificate for c in (intermediate, root) if c is not None]
    password = new_password()
    return CertifiedKey(_pkcs8(issuing.key, password), password, when, _chain_pem(chain))


def new_tsa_chain(site: Site, when: dt.datetime) -> CertifiedKey:
    root, leaf = ca.tsa_chain(site.fulcio_ca.organization, site.fulcio_ca.root_days, now=when)
    password = new_password()
    chain = _chain_pem([leaf.certificate, root.certificate])
    return CertifiedKey(_pkcs8(leaf.key, password), password, when, chain)


def new_database_auth() -> DatabaseAuth:
    return DatabaseAuth(root_password=new_password(), password=new_password())


# -- encodings ------------------------------------------------------------------------------------


def _pkcs8(key: ec.EllipticCurvePrivateKey, password: str | None) -> bytes:
    encryption: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(password.encode())
        if password is not None
        else serialization.NoEncryption()
    )
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption
    )


def _public_pem(key: object) -> bytes:
    if not isinstance(key, ec.EllipticCurvePublicKey):
        raise UsageError("expected an ECDSA public key")
    return key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _chain_pem(chain: list[x509.Certificate]) -> bytes:
    return b"".join(c.public_bytes(serialization.Encoding.PEM) for c in chain)
