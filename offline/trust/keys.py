"""Managed (non-keyless) signing keys: loading them and checking signatures made with them."""

from __future__ import annotations

from pathlib import Path

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed

from offline.errors import UsageError
from offline.inputs import MAX_KEY_SIZE, read_input
from offline.trust.key_encoding import load_der_public_key, load_pem_public_key
from offline.trust.root import PublicKey


def load_public_key_file(path: str | Path) -> PublicKey:
    data = read_input(path, "key", MAX_KEY_SIZE)
    # UnsupportedAlgorithm: a well-formed key of a kind cryptography does not know.
    try:
        key = load_pem_public_key(data)
    except (ValueError, UnsupportedAlgorithm):
        try:
            key = load_der_public_key(data)
        except (ValueError, UnsupportedAlgorithm) as exc:
            raise UsageError(f"key {path}: not a PEM or DER public key") from exc
    if isinstance(key, ec.EllipticCurvePublicKey):
        if not isinstance(key.curve, ec.SECP256R1 | ec.SECP384R1 | ec.SECP521R1):
            raise UsageError(f"key {path}: unsupported curve {key.curve.name}")
        return key
    if isinstance(key, ed25519.Ed25519PublicKey):
        return key
    if isinstance(key, rsa.RSAPublicKey):
        if key.key_size < 2048:
            raise UsageError(f"key {path}: RSA keys need at least 2048 bits")
        return key
    raise UsageError(f"key {path}: unsupported key type {type(key).__name__}")


def _ecdsa_hash(key: ec.EllipticCurvePublicKey) -> hashes.HashAlgorithm:
    if isinstance(key.curve, ec.SECP384R1):
        return hashes.SHA384()
    if isinstance(key.curve, ec.SECP521R1):
        return hashes.SHA512()
    return hashes.SHA256()


def verify_over_data(key: PublicKey, signature: bytes, data: bytes) -> bool:
    """Check a signature over a whole message (DSSE PAE, signed payloads)."""
    try:
        if isinstance(key, ed25519.Ed25519PublicKey):
            key.verify(signature, data)
        elif isinstance(key, ec.EllipticCurvePublicKey):
            key.verify(signature, data, ec.ECDSA(_ecdsa_hash(key)))
        else:
            key.verify(signature, data, padding.PKCS1v15(), hashes.SHA256())
    except InvalidSignature:
        return False
    return True


def verify_over_sha256(key: PublicKey, signature: bytes, digest: bytes) -> bool:
    """Check a signature over a message known only by its SHA-256 digest (hashedrekord)."""
    if isinstance(key, ed25519.Ed25519PublicKey):
        # Pure Ed25519 signs the message, not a digest: the artifact itself is needed.
        raise UsageError("an Ed25519 signature over an artifact cannot be checked from its digest")
    prehashed = Prehashed(hashes.SHA256())
    try:
        if isinstance(key, ec.EllipticCurvePublicKey):
            key.verify(signature, digest, ec.ECDSA(prehashed))
        else:
            key.verify(signature, digest, padding.PKCS1v15(), prehashed)
    except InvalidSignature:
        return False
    return True
