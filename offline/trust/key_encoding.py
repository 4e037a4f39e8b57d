"""Public keys from and to their encodings (SubjectPublicKeyInfo as DER or PEM, raw bytes),
without importing the package `cryptography.hazmat.primitives.serialization`.

That package's `__init__` imports its SSH key support, and with it the cipher modules and
`dataclasses` (which loads `inspect`): about 20 ms of a one-image check, for the two loaders
and two enums the verifier uses. The loaders the package exports ARE the functions of
cryptography's compiled bindings (its serialization/base.py binds them by name), and its
Encoding and PublicFormat are defined in cryptography.hazmat.primitives._serialization, which
cryptography.x509 imports anyway: they are taken from there, the same objects. A cryptography
release laid out otherwise makes this module use the package itself
(tests/offline/trust/test_key_encoding.py checks they are the same objects).
"""

from __future__ import annotations

from cryptography.hazmat.primitives.asymmetric.types import PublicKeyTypes

try:
    from cryptography.hazmat.bindings._rust import openssl as _bindings
    from cryptography.hazmat.primitives._serialization import Encoding, PublicFormat

    load_der_public_key = _bindings.keys.load_der_public_key
    load_pem_public_key = _bindings.keys.load_pem_public_key
except (ImportError, AttributeError):  # pragma: no cover - another layout of cryptography
    from cryptography.hazmat.primitives.serialization import (
        Encoding,
        PublicFormat,
        load_der_public_key,
        load_pem_public_key,
    )

__all__ = [
    "Encoding",
    "PublicFormat",
    "load_der_public_key",
    "load_pem_public_key",
    "raw_public_bytes",
    "spki_der",
]


def spki_der(key: PublicKeyTypes) -> bytes:
    """The key's SubjectPublicKeyInfo, DER-encoded."""
    return key.public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)


def raw_public_bytes(key: PublicKeyTypes) -> bytes:
    """The key's raw encoding (Ed25519: its 32 bytes)."""
    return key.public_bytes(Encoding.Raw, PublicFormat.Raw)
