"""The detached signature over a bundle's manifest, made with an operator key.

    public_path = generate_key(Path("bundle.key"), "ed25519")      # bundle.key (0600), bundle.pub
    signature = sign_manifest(manifest_bytes, load_private_key("bundle.key"))
    verify_signature(manifest_bytes, signature, load_public_key("bundle.pub"))

Keys are ECDSA P-256 (signing SHA-256) or Ed25519, as PEM: private keys PKCS#8 (optionally
encrypted with a password), public keys SubjectPublicKeyInfo. The signature file
`airgap-bundle.json.sig` is a JSON object with exactly three fields:

    {"algorithm": "ecdsa-p256-sha256" | "ed25519",
     "keyid": "<sha256 hex of the public key's DER SubjectPublicKeyInfo>",
     "signature": "<standard base64 of the signature (DER for ECDSA)>"}

`verify_signature` raises `VerificationFailure` with a one-line reason: a malformed signature
file, an unknown algorithm, a signature made by another key, or a manifest that changed.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
from pathlib import Path
from typing import Any, Literal

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from offline.atomicfile import atomic_write, fsync_dir
from offline.canonical_json import canonical_json
from offline.errors import UsageError, VerificationFailure
from offline.inputs import MAX_KEY_SIZE, read_input

SIGNATURE_FILE = "airgap-bundle.json.sig"
ECDSA_P256 = "ecdsa-p256-sha256"
ED25519 = "ed25519"
ALGORITHMS = (ECDSA_P256, ED25519)

KeyKind = Literal["ecdsa-p256", "ed25519"]
KEY_KINDS: tuple[KeyKind, ...] = ("ecdsa-p256", "ed25519")

PrivateKey = ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey
PublicKey = ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey

_SIGNATURE_FIELDS = ("algorithm", "keyid", "signature")


# ----------------------------------------------------------------------------------- keys
def public_key_path(private_path: Path) -> Path:
    """Where `generate_key` puts the public key: `x.key` -> `x.pub`, otherwise `x` -> `x.pub`."""
    if private_path.suffix in (".key", ".pem"):
        return private_path.with_suffix(".pub")
    return private_path.with_name(private_path.name + ".pub")


def generate_key(path: str | Path, kind: KeyKind, password: bytes | None = None) -> Path:
    """A new key pair: the private key at `path` (mode 0600, created exclusively: an existing
    file is never overwritten), the public key next to it; returns the public key's path."""
    path = Path(path)
    private: PrivateKey
    if kind == "ecdsa-p256":
        private = ec.generate_private_key(ec.SECP256R1())
    elif kind == "ed25519":
        private = ed25519.Ed25519PrivateKey.generate()
    else:
        raise UsageError(f"unknown key kind {kind!r}: expected one of {', '.join(KEY_KINDS)}")
    encryption: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(password)
        if password
        else serialization.NoEncryption()
    )
    private_pem = private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption
    )
    public_path = public_key_path(path)
    if public_path.exists():
        raise UsageError(f"{public_path} already exists; not overwriting a key")
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise UsageError(f"{path} already exists; not overwriting a key") from None
    try:
        with os.fdopen(fd, "wb") as f:
            os.fchmod(f.fileno(), 0o600)  # whatever the umask
            f.write(private_pem)
            f.flush()
            os.fsync(f.fileno())
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)
    atomic_write(public_path, public_key_pem(private.public_key()), mode=0o644)
    return public_path


def public_key_pem(key: PublicKey) -> bytes:
    return key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def key_id(key: PublicKey) -> str:
    """SHA-256 (hex) of the public key's DER SubjectPublicKeyInfo."""
    der = key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return hashlib.sha256(der).hexdigest()


def _check_public(key: object, where: str) -> PublicKey:
    if isinstance(key, ed25519.Ed25519PublicKey):
        return key
    if isinstance(key, ec.EllipticCurvePublicKey):
        if not isinstance(key.curve, ec.SECP256R1):
            raise UsageError(f"{where}: ECDSA key on {key.curve.name}; bundle keys use P-256")
        return key
    raise UsageError(f"{where}: {type(key).__name__} keys cannot sign bundles (P-256, Ed25519)")


def parse_public_key(data: bytes, where: str = "public key") -> PublicKey:
    try:
        key = serialization.load_pem_public_key(data)
    except ValueError:
        raise UsageError(f"{where} is not a PEM public key") from None
    return _check_public(key, where)


def load_public_key(path: str | Path) -> PublicKey:
    data = read_input(path, "public key", MAX_KEY_SIZE)
    return parse_public_key(data, f"public key {path}")


def load_private_key(path: str | Path, password: bytes | None = None) -> PrivateKey:
    where = f"private key {path}"
    data = read_input(path, "private key", MAX_KEY_SIZE)
    try:
        key = serialization.load_pem_private_key(data, password=password or None)
    except TypeError:
        if password:
            raise UsageError(f"{where} is not encrypted; give no password") from None
        raise UsageError(f"{where} is encrypted; a password is needed") from None
    except ValueError:
        raise UsageError(f"{where} is not a PEM private key, or the password is wrong") from None
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return key
    if isinstance(key, ec.EllipticCurvePrivateKey):
        _check_public(key.public_key(), where)
        return key
    raise UsageError(f"{where}: {type(key).__name__} keys cannot sign bundles (P-256, Ed25519)")


def algorithm_of(key: PublicKey) -> str:
    return ED25519 if isinstance(key, ed25519.Ed25519PublicKey) else ECDSA_P256


# ------------------------------------------------------------------------------ signature
def sign_manifest(manifest_bytes: bytes, key: PrivateKey) -> bytes:
    """The content of `airgap-bundle.json.sig` for `manifest_bytes`."""
    if isinstance(key, ed25519.Ed25519PrivateKey):
        signature = key.sign(manifest_bytes)
    else:
        signature = key.sign(manifest_bytes, ec.ECDSA(hashes.SHA256()))
    public = key.public_key()
    document = {
        "algorithm": algorithm_of(public),
        "keyid": key_id(public),
        "signature": base64.b64encode(signature).decode("ascii"),
    }
    return canonical_json(document, ascii_only=True)


def _parse_signature_file(data: bytes) -> dict[str, Any]:
    try:
        document = json.loads(data.decode("utf-8"))
    except (ValueError, RecursionError):  # UnicodeDecodeError, JSONDecodeError, too deep
        raise VerificationFailure("malformed signature file: not valid JSON") from None
    if not isinstance(document, dict):
        raise VerificationFailure("malformed signature file: not a JSON object")
    for name in document:
        if name not in _SIGNATURE_FIELDS:
            raise VerificationFailure(f"malformed signature file: unknown field {name!r}")
    for name in _SIGNATURE_FIELDS:
        if not isinstance(document.get(name), str):
            raise VerificationFailure(f"malformed signature file: no string field {name!r}")
    return document


def verify_signature(manifest_bytes: bytes, signature_bytes: bytes, public_key: PublicKey) -> None:
    """Check `airgap-bundle.json.sig` over the manifest's exact bytes; a one-line
    VerificationFailure if it does not verify with `public_key`."""
    document = _parse_signature_file(signature_bytes)
    algorithm = document["algorithm"]
    if algorithm not in ALGORITHMS:
        raise VerificationFailure(
            f"unknown signature algorithm {algorithm!r}: expected one of {', '.join(ALGORITHMS)}"
        )
    expected_id = key_id(public_key)
    if document["keyid"] != expected_id:
        raise VerificationFailure(
            f"the manifest was signed by key {document['keyid'][:16]!r}, not by the given key "
            f"{expected_id[:16]} (wrong public key?)"
        )
    if algorithm != algorithm_of(public_key):
        raise VerificationFailure(
            f"signature algorithm {algorithm} does not match the given "
            f"{algorithm_of(public_key)} key"
        )
    encoded = document["signature"]
    try:
        signature = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        raise VerificationFailure("malformed signature file: signature is not base64") from None
    # Only the canonical encoding: unused low bits in the last character must not vary.
    if not signature or base64.b64encode(signature).decode("ascii") != encoded:
        raise VerificationFailure("malformed signature file: signature is not canonical base64")
    try:
        if isinstance(public_key, ed25519.Ed25519PublicKey):
            public_key.verify(signature, manifest_bytes)
        else:
            public_key.verify(signature, manifest_bytes, ec.ECDSA(hashes.SHA256()))
    except (InvalidSignature, ValueError):
        raise VerificationFailure(
            "the signature does not match the manifest (changed after signing, or the "
            "signature is corrupted)"
        ) from None
