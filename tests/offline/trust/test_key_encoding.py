"""offline.trust.key_encoding hands out cryptography's own key loaders and encodings, taken
where importing them costs nothing extra: the very objects the public
`cryptography.hazmat.primitives.serialization` exports, so they behave as those do."""

from __future__ import annotations

import subprocess
import sys

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.asymmetric.types import PublicKeyTypes

from offline.trust import key_encoding

KEYS: dict[str, PublicKeyTypes] = {
    "p256": ec.generate_private_key(ec.SECP256R1()).public_key(),
    "ed25519": ed25519.Ed25519PrivateKey.generate().public_key(),
    "rsa": rsa.generate_private_key(public_exponent=65537, key_size=2048).public_key(),
}


def test_the_loaders_and_encodings_are_the_public_ones() -> None:
    assert key_encoding.load_der_public_key is serialization.load_der_public_key
    assert key_encoding.load_pem_public_key is serialization.load_pem_public_key
    assert key_encoding.Encoding is serialization.Encoding
    assert key_encoding.PublicFormat is serialization.PublicFormat


@pytest.mark.parametrize("name", sorted(KEYS))
def test_keys_round_trip_through_spki(name: str) -> None:
    key = KEYS[name]
    der = key_encoding.spki_der(key)
    assert der == key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    assert key_encoding.load_der_public_key(der) == key
    pem = key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    assert key_encoding.load_pem_public_key(pem) == key


def test_garbage_is_refused_as_the_public_loaders_refuse_it() -> None:
    with pytest.raises(ValueError):
        key_encoding.load_der_public_key(b"\x30\x03\x02\x01\x01")
    with pytest.raises(ValueError):
        key_encoding.load_pem_public_key(
            b"-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n"
        )


def test_importing_it_leaves_the_serialization_package_unloaded() -> None:
    code = (
        "import sys, offline.trust.key_encoding; "
        "print('cryptography.hazmat.primitives.serialization' in sys.modules)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.stdout.strip() == "False", result.stderr
