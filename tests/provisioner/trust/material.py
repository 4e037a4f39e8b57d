"""What the trust tests publish: a private stack's trust material (a trusted root assembled by
provisioner.stack.trusted_root, a signing config, the logs' keys, a Fulcio chain with an
intermediate, a TSA chain), a static web server over a directory on 127.0.0.1, and a python-tuf
client pinned to a root."""

from __future__ import annotations

import datetime as dt
import functools
import json
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from tuf.ngclient import Updater

from provisioner.stack.trusted_root import (
    CertificateAuthority,
    TransparencyLog,
    TrustedRootSpec,
    trusted_root_json,
)
from provisioner.trust.targets import SIGNING_CONFIG_MEDIA_TYPE, Target, sigstore_targets
from tests.loopback_http import serving
from tests.stack import pki

START = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


def _spki(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def signing_config(url: str = "http://fulcio.internal") -> bytes:
    service = {
        "url": url,
        "majorApiVersion": 1,
        "validFor": {"start": "2026-01-01T00:00:00Z"},
        "operator": "airgap-tests",
    }
    document: dict[str, Any] = {
        "mediaType": SIGNING_CONFIG_MEDIA_TYPE,
        "caUrls": [service],
        "oidcUrls": [],
        "rekorTlogUrls": [],
        "tsaUrls": [],
        "rekorTlogConfig": {"selector": "ANY"},
        "tsaConfig": {"selector": "ANY"},
    }
    return json.dumps(document, indent=2).encode() + b"\n"


@functools.cache
def stack_targets() -> tuple[Target, ...]:
    """Every kind of target a private stack publishes."""
    rekor, ct = pki.ec_key(), pki.ec_key()
    root, intermediate, tsa_leaf = pki.ca_and_tsa_chain(START)
    der = [c.public_bytes(serialization.Encoding.DER) for c in (tsa_leaf, intermediate, root)]
    spec = TrustedRootSpec(
        tlogs=[TransparencyLog("http://rekor.internal", _spki(rekor), START)],
        certificate_authorities=[CertificateAuthority("http://fulcio.internal", der[1:])],
        ctlogs=[TransparencyLog("http://ctlog.internal/sigstore", _spki(ct), START)],
        timestamp_authorities=[CertificateAuthority("http://tsa.internal", der)],
    )
    pem = [pki.cert_pem(c) for c in (tsa_leaf, intermediate, root)]
    return tuple(
        sigstore_targets(
            trusted_root_json(spec).encode(),
            signing_config=signing_config(),
            rekor_pub=pki.public_pem(rekor),
            ctfe_pub=pki.public_pem(ct),
            fulcio_chain=pem[1] + pem[2],
            tsa_chain=b"".join(pem),
        )
    )


@contextmanager
def serve(directory: Path) -> Iterator[str]:
    """A static web server over `directory` (a path through REPO/current follows each flip)."""
    handler = functools.partial(_QuietHandler, directory=str(directory))
    with serving(ThreadingHTTPServer(("127.0.0.1", 0), handler)) as url:
        yield url


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


def client(url: str, state: Path, root: bytes | None = None) -> Updater:
    """python-tuf's client over HTTP, keeping its trusted metadata in `state` (bootstrapped
    with `root` the first time), refreshed."""
    (state / "metadata").mkdir(parents=True, exist_ok=True)
    (state / "targets").mkdir(exist_ok=True)
    updater = Updater(
        metadata_dir=str(state / "metadata"),
        metadata_base_url=url,
        target_dir=str(state / "targets"),
        target_base_url=f"{url}/targets/",
        bootstrap=root,
    )
    updater.refresh()
    return updater


def fetch(updater: Updater, name: str) -> bytes:
    info = updater.get_targetinfo(name)
    assert info is not None, f"the client finds no target {name}"
    return Path(updater.download_target(info)).read_bytes()
