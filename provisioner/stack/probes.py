"""Readiness that proves a service is the one airgap configured, not merely running: each probe
GETs the service (through the API server's service proxy, `Kube.service_get`) and checks what it
serves against the key material airgap made.

- Rekor: `/api/v1/log` on the recorded tree, its signed tree head verified with the site's
  trusted root, and `/api/v1/log/publicKey` the site's Rekor key;
- Fulcio: `/api/v1/rootCert` the site's chain, `/api/v2/configuration` every site issuer;
- CT log: `get-sth` signed by the site's CT key (RFC 6962 §3.5), `get-roots` the Fulcio root;
- TUF: python-tuf's client, pinned to the repository's root, fetches every target and gets the
  bytes airgap published.

Each returns a short description for the progress line, or raises ProbeFailed in one line.
"""

from __future__ import annotations

import base64
import binascii
import json
import struct
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from offline.errors import AirgapError
from offline.trust.root import TrustedRoot
from provisioner.stack.kube import ProbeFailed

Get = Callable[[str], bytes]


def check_rekor(get: Get, public_pem: bytes, trusted_root: TrustedRoot, tree_id: str) -> str:
    from offline.tlog.checkpoint import find_log_for_checkpoint

    info = _json(get("/api/v1/log"), "rekor /api/v1/log")
    if str(info.get("treeID")) != tree_id:
        raise ProbeFailed(f"rekor serves tree {info.get('treeID')}, not the recorded {tree_id}")
    try:
        checkpoint, _log = find_log_for_checkpoint(str(info["signedTreeHead"]), trusted_root)
    except (KeyError, AirgapError) as exc:
        raise ProbeFailed(f"rekor's signed tree head does not verify: {exc}") from exc
    served = get("/api/v1/log/publicKey")
    if _der_key(served, "rekor's public key") != _der_key(public_pem, "the site's rekor key"):
        raise ProbeFailed("rekor signs with another key than the site's rekor-signer")
    return f"tree {tree_id}, {checkpoint.size} entries, signed with the site's key"


def check_fulcio(get: Get, chain_pem: bytes, issuers: Sequence[str]) -> str:
    served = _certificates(get("/api/v1/rootCert"), "fulcio's root certificate")
    if set(served) != set(_certificates(chain_pem, "the site's Fulcio chain")):
        raise ProbeFailed("fulcio serves another CA chain than the site's fulcio-server-secret")
    configuration = _json(get("/api/v2/configuration"), "fulcio /api/v2/configuration")
    accepted = {str(i.get("issuerUrl")) for i in configuration.get("issuers") or []}
    missing = [url for url in issuers if url not in accepted]
    if missing:
        raise ProbeFailed(f"fulcio does not accept the site's issuer {missing[0]}")
    return f"the site's CA, {len(issuers)} issuer{'s' if len(issuers) != 1 else ''}"


def check_ctlog(get: Get, prefix: str, public_pem: bytes, fulcio_root_pem: bytes) -> str:
    sth = _json(get(f"/{prefix}/ct/v1/get-sth"), "the CT log's get-sth")
    try:
        size, timestamp = int(sth["tree_size"]), int(sth["timestamp"])
        root_hash = base64.b64decode(sth["sha256_root_hash"], validate=True)
        signature = base64.b64decode(sth["tree_head_signature"], validate=True)
    except (KeyError, ValueError, TypeError, binascii.Error) as exc:
        raise ProbeFailed(f"the CT log's get-sth is malformed ({exc})") from exc
    _verify_sth(size, timestamp, root_hash, signature, public_pem)
    roots = _json(get(f"/{prefix}/ct/v1/get-roots"), "the CT log's get-roots")
    ours = x509.load_pem_x509_certificate(fulcio_root_pem).public_bytes(serialization.Encoding.DER)
    served = [base64.b64decode(c) for c in roots.get("certificates") or []]
    if ours not in served:
        raise ProbeFailed("the CT log does not accept the site's Fulcio root")
    return f"tree head of {size} entries signed with the site's key"


def check_tuf(get: Get, pinned_root: bytes, published: Mapping[str, bytes]) -> str:
    from provisioner.trust.client import fetch_all_targets_with

    def fetch(path: str) -> bytes:
        return get(f"/{path}")

    try:
        served = fetch_all_targets_with(fetch, pinned_root)
    except AirgapError as exc:
        raise ProbeFailed(f"the TUF server's repository does not verify: {exc}") from exc
    if served != dict(published):
        raise ProbeFailed("the TUF server serves other targets than the repository published")
    return f"{len(served)} targets verified by python-tuf"


# -- helpers --------------------------------------------------------------------------------------


def _verify_sth(size: int, timestamp: int, root_hash: bytes, signature: bytes, pem: bytes) -> None:
    """RFC 6962 §3.5: TLS DigitallySigned over (v1, tree_hash, timestamp, size, root hash)."""
    if len(signature) < 4 or signature[:2] != b"\x04\x03":  # SHA-256, ECDSA
        raise ProbeFailed("the CT log's tree head is not an ECDSA SHA-256 signature")
    (length,) = struct.unpack(">H", signature[2:4])
    if len(signature) != 4 + length or len(root_hash) != 32:
        raise ProbeFailed("the CT log's tree head signature is malformed")
    signed = struct.pack(">BBQQ", 0, 1, timestamp, size) + root_hash
    key = serialization.load_pem_public_key(pem)
    if not isinstance(key, ec.EllipticCurvePublicKey):
        raise ProbeFailed("the site's CT log key is not an ECDSA key")
    try:
        key.verify(signature[4:], signed, ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        raise ProbeFailed("the CT log's tree head is not signed with the site's CT key") from None


def _json(data: bytes, what: str) -> dict[str, Any]:
    try:
        document = json.loads(data)
    except ValueError:
        raise ProbeFailed(f"{what} is not JSON: {data[:80]!r}") from None
    if not isinstance(document, dict):
        raise ProbeFailed(f"{what} is not a JSON object")
    return document


def _der_key(pem: bytes, what: str) -> bytes:
    try:
        key = serialization.load_pem_public_key(pem)
    except ValueError:
        raise ProbeFailed(f"{what} is not a PEM public key") from None
    return key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _certificates(pem: bytes, what: str) -> list[bytes]:
    try:
        certificates = x509.load_pem_x509_certificates(pem)
    except ValueError:
        raise ProbeFailed(f"{what} is not PEM certificates") from None
    return [c.public_bytes(serialization.Encoding.DER) for c in certificates]
