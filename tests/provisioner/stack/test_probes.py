"""provisioner.stack.probes: a service counts as ready only when what it serves is what airgap
set up. Each probe is fed answers of a well-behaved server and of the wrong ones (another key,
another tree, another CA, an issuer missing, a repository that does not verify, a timestamp of
another digest or by another TSA, a forged one)."""

from __future__ import annotations

import base64
import hashlib
import json
import struct
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from rfc3161_client import decode_timestamp_response

from offline.trust.root import parse_trusted_root
from provisioner.stack.keys import PublicMaterial, generate_keyset, public_material
from provisioner.stack.kube import ProbeFailed
from provisioner.stack.probes import check_ctlog, check_fulcio, check_rekor, check_tsa
from provisioner.stack.trusted_root import trusted_root_json
from tests.provisioner.stack.sites import lab_site

SITE = lab_site()


Keys = tuple[PublicMaterial, ec.EllipticCurvePrivateKey, ec.EllipticCurvePrivateKey]


@pytest.fixture(scope="module")
def keys() -> Keys:
    keyset = generate_keyset(SITE)
    rekor = serialization.load_pem_private_key(keyset.rekor.pem, None)
    ctlog = serialization.load_pem_private_key(
        keyset.ctlog.pem, (keyset.ctlog.password or "").encode()
    )
    assert isinstance(rekor, ec.EllipticCurvePrivateKey)
    assert isinstance(ctlog, ec.EllipticCurvePrivateKey)
    return public_material(keyset), rekor, ctlog


def server(answers: dict[str, bytes]) -> Callable[[str], bytes]:
    def get(path: str) -> bytes:
        if path not in answers:
            raise ProbeFailed(f"GET {path}: 404 Not Found")
        return answers[path]

    return get


# -- Rekor ----------------------------------------------------------------------------------------


def rekor_checkpoint(key: ec.EllipticCurvePrivateKey, tree: str, size: int = 0) -> str:
    """A Rekor v1 signed tree head: a signed note whose key hint is the log ID's first bytes."""
    der = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    origin = f"rekor.lab - {tree}"
    empty_root = base64.b64encode(bytes(32)).decode()
    body = f"{origin}\n{size}\n{empty_root}\n"
    signature = key.sign(body.encode(), ec.ECDSA(hashes.SHA256()))
    hint = hashlib.sha256(der).digest()[:4]
    line = base64.b64encode(hint + signature).decode()
    return f"{body}\n\u2014 rekor.lab {line}\n"


def rekor_answers(
    public: PublicMaterial, signer: ec.EllipticCurvePrivateKey, tree: str, served_key: bytes
) -> dict[str, bytes]:
    info = {"treeID": tree, "treeSize": 0, "signedTreeHead": rekor_checkpoint(signer, tree)}
    return {"/api/v1/log": json.dumps(info).encode(), "/api/v1/log/publicKey": served_key}


def test_rekor_is_ready_when_it_serves_the_recorded_tree_signed_with_the_sites_key(
    keys: Keys,
) -> None:
    public, rekor, _ = keys
    trusted = parse_trusted_root(trusted_root_json(public.trusted_root_spec(SITE)))
    answers = rekor_answers(public, rekor, "123456", public.rekor)
    assert "tree 123456" in check_rekor(server(answers), public.rekor, trusted, "123456")


def test_rekor_on_another_tree_or_signing_with_another_key_is_refused(keys: Keys) -> None:
    public, rekor, _ = keys
    trusted = parse_trusted_root(trusted_root_json(public.trusted_root_spec(SITE)))
    other = ec.generate_private_key(ec.SECP256R1())
    other_pem = other.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    wrong_tree = rekor_answers(public, rekor, "999", public.rekor)
    with pytest.raises(ProbeFailed, match="tree 999, not the recorded 123456"):
        check_rekor(server(wrong_tree), public.rekor, trusted, "123456")
    wrong_signer = rekor_answers(public, other, "123456", other_pem)
    with pytest.raises(ProbeFailed, match="signed tree head does not verify"):
        check_rekor(server(wrong_signer), public.rekor, trusted, "123456")
    wrong_key_served = rekor_answers(public, rekor, "123456", other_pem)
    with pytest.raises(ProbeFailed, match="another key"):
        check_rekor(server(wrong_key_served), public.rekor, trusted, "123456")


# -- CT log ---------------------------------------------------------------------------------------


def sth(key: ec.EllipticCurvePrivateKey, size: int = 3, root: bytes = b"\x07" * 32) -> bytes:
    timestamp = 1_760_000_000_000
    signed = struct.pack(">BBQQ", 0, 1, timestamp, size) + root
    signature = key.sign(signed, ec.ECDSA(hashes.SHA256()))
    digitally_signed = b"\x04\x03" + struct.pack(">H", len(signature)) + signature
    return json.dumps(
        {
            "tree_size": size,
            "timestamp": timestamp,
            "sha256_root_hash": base64.b64encode(root).decode(),
            "tree_head_signature": base64.b64encode(digitally_signed).decode(),
        }
    ).encode()


def roots(pem: bytes) -> bytes:
    der = x509.load_pem_x509_certificate(pem).public_bytes(serialization.Encoding.DER)
    return json.dumps({"certificates": [base64.b64encode(der).decode()]}).encode()


def test_the_ct_log_is_ready_with_a_tree_head_signed_by_the_sites_key(keys: Keys) -> None:
    public, _, ctlog = keys
    answers = {
        "/sigstore/ct/v1/get-sth": sth(ctlog),
        "/sigstore/ct/v1/get-roots": roots(public.fulcio_root),
    }
    detail = check_ctlog(server(answers), "sigstore", public.ctlog, public.fulcio_root)
    assert detail == "tree head of 3 entries signed with the site's key"


def test_a_ct_log_with_another_key_a_forged_head_or_another_root_is_refused(keys: Keys) -> None:
    public, _, ctlog = keys
    other = ec.generate_private_key(ec.SECP256R1())
    good_roots = roots(public.fulcio_root)
    cases = {
        "another key": sth(other),
        "a head whose size was changed after signing": sth(ctlog).replace(
            b'"tree_size": 3', b'"tree_size": 4'
        ),
    }
    for head in cases.values():
        answers = {"/sigstore/ct/v1/get-sth": head, "/sigstore/ct/v1/get-roots": good_roots}
        with pytest.raises(ProbeFailed, match="not signed with the site's CT key"):
            check_ctlog(server(answers), "sigstore", public.ctlog, public.fulcio_root)
    stranger = generate_keyset(SITE)
    answers = {
        "/sigstore/ct/v1/get-sth": sth(ctlog),
        "/sigstore/ct/v1/get-roots": roots(public_material(stranger).fulcio_root),
    }
    with pytest.raises(ProbeFailed, match="does not accept the site's Fulcio root"):
        check_ctlog(server(answers), "sigstore", public.ctlog, public.fulcio_root)


# -- Fulcio ---------------------------------------------------------------------------------------


def fulcio_answers(chain: bytes, issuers: list[str]) -> dict[str, bytes]:
    configuration = {"issuers": [{"issuerUrl": url, "audience": "sigstore"} for url in issuers]}
    return {
        "/api/v1/rootCert": chain,
        "/api/v2/configuration": json.dumps(configuration).encode(),
    }


def test_fulcio_is_ready_with_the_sites_chain_and_every_site_issuer(keys: Keys) -> None:
    public, _, _ = keys
    issuers = ["https://kubernetes.default.svc.cluster.local"]
    answers = fulcio_answers(public.fulcio_chain, [*issuers, "https://kubernetes.default.svc"])
    assert check_fulcio(server(answers), public.fulcio_chain, issuers) == "the site's CA, 1 issuer"


def test_fulcio_with_another_ca_or_without_a_site_issuer_is_refused(keys: Keys) -> None:
    public, _, _ = keys
    issuers = ["https://kubernetes.default.svc.cluster.local"]
    stranger = public_material(generate_keyset(SITE)).fulcio_chain
    with pytest.raises(ProbeFailed, match="another CA chain"):
        check_fulcio(server(fulcio_answers(stranger, issuers)), public.fulcio_chain, issuers)
    missing = fulcio_answers(public.fulcio_chain, ["https://issuer.elsewhere"])
    with pytest.raises(ProbeFailed, match="does not accept the site's issuer"):
        check_fulcio(server(missing), public.fulcio_chain, issuers)


# -- TSA ------------------------------------------------------------------------------------------
# Real answers of the pinned timestamp-server, serving chains airgap made, to one message
# (recorded by make_tsa_answers.py): no Python code here can sign an RFC 3161 timestamp.

ANSWERS = Path(__file__).parent / "tsa_answers"
CHAIN_PATH = "/api/v1/timestamp/certchain"


@dataclass(frozen=True)
class Recorded:
    message: bytes
    site_chain: bytes
    site_answer: bytes
    other_chain: bytes
    other_answer: bytes


@pytest.fixture(scope="module")
def recorded() -> Recorded:
    def read(name: str) -> bytes:
        return (ANSWERS / name).read_bytes()

    return Recorded(
        read("message"),
        read("site-chain.pem"),
        read("site-answer.der"),
        read("other-chain.pem"),
        read("other-answer.der"),
    )


class TimestampPost:
    """A TSA's timestamp endpoint that answers every request with `answer`; keeps the requests."""

    def __init__(self, answer: bytes) -> None:
        self.answer = answer
        self.requests: list[tuple[str, bytes, str]] = []

    def __call__(self, path: str, body: bytes, content_type: str) -> bytes:
        self.requests.append((path, body, content_type))
        return self.answer


def test_the_tsa_is_ready_when_it_serves_the_sites_chain_and_timestamps_with_it(
    recorded: Recorded,
) -> None:
    post = TimestampPost(recorded.site_answer)
    detail = check_tsa(
        server({CHAIN_PATH: recorded.site_chain}),
        post,
        recorded.site_chain,
        message=recorded.message,
    )
    assert detail.startswith("the site's chain; a timestamp of ")
    assert detail.endswith("verified with it")
    ((path, body, content_type),) = post.requests
    assert (path, content_type) == ("/api/v1/timestamp", "application/timestamp-query")
    assert hashlib.sha256(recorded.message).digest() in body  # the message imprint asked for


def test_a_tsa_that_serves_another_chain_is_refused(recorded: Recorded) -> None:
    with pytest.raises(ProbeFailed, match="another certificate chain"):
        check_tsa(
            server({CHAIN_PATH: recorded.other_chain}),
            TimestampPost(recorded.other_answer),
            recorded.site_chain,
            message=recorded.message,
        )


def test_a_timestamp_of_another_digest_is_refused(recorded: Recorded) -> None:
    """By default the probe asks for a random digest: no answer made before can carry it."""
    get = server({CHAIN_PATH: recorded.site_chain})
    for message in (None, recorded.message + b"."):
        with pytest.raises(ProbeFailed, match="does not verify with the site's chain"):
            check_tsa(
                get, TimestampPost(recorded.site_answer), recorded.site_chain, message=message
            )


def test_a_timestamp_signed_by_another_tsa_is_refused(recorded: Recorded) -> None:
    with pytest.raises(ProbeFailed, match="does not verify with the site's chain"):
        check_tsa(
            server({CHAIN_PATH: recorded.site_chain}),
            TimestampPost(recorded.other_answer),
            recorded.site_chain,
            message=recorded.message,
        )


def test_a_forged_timestamp_is_refused(recorded: Recorded) -> None:
    answer = recorded.site_answer
    when = decode_timestamp_response(answer).tst_info.gen_time.strftime("%Y%m%d%H%M%S").encode()
    assert answer.count(when) == 1  # the TSTInfo's genTime, under the signature
    later = when[:-1] + str((int(when[-1:]) + 1) % 10).encode()  # another second
    forgeries = {
        "the signature changed": answer[:-1] + bytes([answer[-1] ^ 1]),  # its last bytes
        "the time changed after signing": answer.replace(when, later),
    }
    for forged in forgeries.values():
        with pytest.raises(ProbeFailed, match="does not verify with the site's chain"):
            check_tsa(
                server({CHAIN_PATH: recorded.site_chain}),
                TimestampPost(forged),
                recorded.site_chain,
                message=recorded.message,
            )


def test_an_answer_that_is_no_timestamp_is_refused(recorded: Recorded) -> None:
    with pytest.raises(ProbeFailed, match="not an RFC 3161 timestamp"):
        check_tsa(
            server({CHAIN_PATH: recorded.site_chain}),
            TimestampPost(b"<html>503 Service Unavailable</html>"),
            recorded.site_chain,
        )
