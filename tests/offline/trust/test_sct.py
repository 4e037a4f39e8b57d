"""Embedded SCTs of real Fulcio certificates (from the conformance bundles) against CT logs."""

from __future__ import annotations

import base64
import json

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from offline.trust.root import load_trusted_root
from offline.trust.sct import SctFailure, verify_embedded_sct
from tests.conftest import TESTDATA

CASE = TESTDATA / "conformance" / "happy-path-v0.3"
ROOT = TESTDATA / "conformance" / "trusted_root.production.json"


def _leaf_and_chain() -> tuple[x509.Certificate, list[x509.Certificate]]:
    bundle = json.loads((CASE / "bundle.sigstore.json").read_text())
    raw = bundle["verificationMaterial"]["certificate"]["rawBytes"]
    leaf = x509.load_der_x509_certificate(base64.b64decode(raw))
    root = load_trusted_root(ROOT)
    issuer = next(
        c
        for ca in root.certificate_authorities
        for c in ca.certificates
        if c.subject == leaf.issuer
    )
    return leaf, [issuer]


def test_a_fulcio_sct_verifies_with_the_production_ct_log() -> None:
    leaf, chain = _leaf_and_chain()
    verify_embedded_sct(leaf, chain, load_trusted_root(ROOT).ctlogs)


def test_an_sct_from_a_log_the_trusted_root_lacks_is_refused() -> None:
    leaf, chain = _leaf_and_chain()
    with pytest.raises(SctFailure, match="not in the trusted root"):
        verify_embedded_sct(leaf, chain, [])


def test_an_sct_checked_with_another_key_under_the_same_log_id_is_refused() -> None:
    leaf, chain = _leaf_and_chain()
    impostor = ec.generate_private_key(ec.SECP256R1()).public_key()
    ctlogs = [
        log.replace(
            public_key=impostor,
            public_key_der=impostor.public_bytes(
                serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
            ),
        )
        for log in load_trusted_root(ROOT).ctlogs
    ]
    with pytest.raises(SctFailure, match="does not verify"):
        verify_embedded_sct(leaf, chain, ctlogs)


def test_the_issuer_must_be_a_ca() -> None:
    leaf, _ = _leaf_and_chain()
    with pytest.raises(SctFailure, match="not a CA"):
        verify_embedded_sct(leaf, [leaf], load_trusted_root(ROOT).ctlogs)
