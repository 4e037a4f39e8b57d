"""Readiness that proves a service is the one airgap configured, not merely running: each probe
GETs the service (through the API server's service proxy, `Kube.service_get`) and checks what it
serves against the key material airgap made.

- Rekor: `/api/v1/log` on the recorded tree, its signed tree head verified with the site's
  trusted root, and `/api/v1/log/publicKey` the site's Rekor key;
- Fulcio: `/api/v1/rootCert` the site's chain, `/api/v2/configuration` every site issuer;
- CT log: `get-sth` signed by the site's CT key (RFC 6962 §3.5), `get-roots` the Fulcio root;
- TSA: `/api/v1/timestamp/certchain` the site's chain, and an RFC 3161 timestamp of a fresh
  random digest (POSTed: `Kube.service_post`) that verifies with that chain and names that digest;
- TUF: python-tuf's client, pinned to the repository's root, fetches every target and gets the
  bytes airgap published.

Each returns a short description for the progress line, or raises ProbeFailed in one line.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import struct
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from offline.errors import AirgapError
from offline.trust.root import TrustedRoot
from provisioner.stack.kube import ProbeFailed

if TYPE_CHECKING:
    from rfc3161_client import TimeStampResponse

Get = Callable[[str], bytes]
Post = Callable[[str, bytes, str], bytes]  # path, body, content type -> answer


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


def check_tsa(get: Get, post: Post, chain_pem: bytes, *, message: bytes | None = None) -> str:
    """`message` is what to timestamp: by default fresh random bytes, so no answer made
    earlier (or for anyone else) can carry its digest."""
    from rfc3161_client import HashAlgorithm, TimestampRequestBuilder, decode_timestamp_response

    ours = _certificates(chain_pem, "the site's TSA chain")
    served = _certificates(get("/api/v1/timestamp/certchain"), "the TSA's certificate chain")
    if served != ours:
        raise ProbeFailed("the TSA serves another certificate chain than the site's")
    message = os.urandom(32) if message is None else message
    request = (
        TimestampRequestBuilder()
        .data(message)
        .hash_algorithm(HashAlgorithm.SHA256)
        .nonce(nonce=False)  # the random digest is the freshness
        .cert_request(cert_request=True)
        .build()
    )
    answer = post("/api/v1/timestamp", request.as_bytes(), "application/timestamp-query")
    try:
        response = decode_timestamp_response(answer)
        when = response.tst_info.gen_time  # parsed lazily: a malformed one raises here
    except ValueError as exc:
        raise ProbeFailed(f"the TSA's answer is not an RFC 3161 timestamp ({exc})") from exc
    _verify_timestamp(response, message, [x509.load_der_x509_certificate(c) for c in ours])
    return f"the site's chain; a timestamp of {when:%Y-%m-%dT%H:%M:%SZ} verified with it"


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


def _verify_timestamp(
    response: TimeStampResponse, message: bytes, chain: list[x509.Certificate]
) -> None:
    """The response is granted, signed by the chain's leaf (which chains to its root) and its
    message imprint is `message`'s digest."""
    from rfc3161_client import VerificationError, VerifierBuilder

    builder = VerifierBuilder().tsa_certificate(chain[0]).add_root_certificate(chain[-1])
    for intermediate in chain[1:-1]:
        builder = builder.add_intermediate_certificate(intermediate)
    try:
        if not builder.build().verify_message(response, message):
            raise VerificationError("the verifier did not accept it")
    except (VerificationError, ValueError) as exc:
        raise ProbeFailed(
            f"the TSA's timestamp does not verify with the site's chain: {exc}"
        ) from exc
    except BaseException as exc:
        # rfc3161-client's Rust code panics (a BaseException) on a certificate it cannot read.
        if type(exc).__name__ == "PanicException":
            raise ProbeFailed("the TSA's timestamp holds an unreadable certificate") from exc
        raise


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
