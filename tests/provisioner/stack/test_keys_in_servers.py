"""The Secrets airgap renders, read by the real servers the charts run (pinned builds of
ct_server, Fulcio and the timestamp-server on loopback), from the files the charts mount them as:
the CT log serves the Fulcio root its config names, with its encrypted key; Fulcio serves the CA
chain, intermediate included, from its encrypted key and password; the TSA signs timestamps that
the install's probe verifies with the site's chain."""

from __future__ import annotations

import base64
import json
import socket
import threading
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from provisioner.stack.keys import KeySet, generate_keyset, public_material
from provisioner.stack.probes import check_tsa
from provisioner.stack.secrets import (
    CTFE_KEYS,
    TRILLIAN_LOG_SERVER,
    TRILLIAN_RPC_PORT,
    ctlog_config_secret,
    render_secrets,
    secret_data,
)
from provisioner.stack.site import Site
from tests.provisioner.stack.sites import lab_site
from tests.stack import pki
from tests.stack.netns import NamespaceThread, isolated
from tests.stack.procs import LOOPBACK, ProcessManager, StackError, free_port, http_ok
from tests.tools import go_tool

pytestmark = pytest.mark.slow

# An HTTP/2 SETTINGS frame with no settings: enough for a gRPC client to count the connection
# ready. ct_server dials its Trillian backend before it serves, and answers get-roots without it.
HTTP2_SETTINGS = b"\x00\x00\x00\x04\x00\x00\x00\x00\x00"


@pytest.fixture(scope="module")
def site() -> Site:
    return lab_site(keys={"fulcio": {"intermediate": True}})


@pytest.fixture(scope="module")
def keys(site: Site) -> KeySet:
    return generate_keyset(site)


@pytest.fixture
def procs(tmp_path: Path) -> Iterator[ProcessManager]:
    manager = ProcessManager(tmp_path / "logs", base_env={"HOME": str(tmp_path)})
    yield manager
    manager.stop_all()


@pytest.fixture
def silent_backend() -> Iterator[int]:
    """A loopback port that answers a gRPC client's connection and nothing else."""
    server = socket.create_server((LOOPBACK, 0))
    stop = threading.Event()

    def serve() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                connection, _ = server.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            connection.sendall(HTTP2_SETTINGS)
            threading.Thread(target=_drain, args=(connection,), daemon=True).start()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield int(server.getsockname()[1])
    stop.set()
    thread.join()
    server.close()


def _drain(connection: socket.socket) -> None:
    with connection:
        try:
            while connection.recv(65536):
                pass
        except OSError:
            pass


def der(pem: bytes) -> bytes:
    return x509.load_pem_x509_certificate(pem).public_bytes(serialization.Encoding.DER)


def mount(data: dict[str, bytes], directory: Path) -> Path:
    """The Secret's keys as files, mode 0600, as a Secret volume shows them to the server."""
    for key, value in data.items():
        pki.write_private(directory / key, value)
    return directory


def start_ct_server(procs: ProcessManager, config: Path, port: int) -> None:
    procs.start(
        "ct_server",
        [
            go_tool("ct_server"),
            f"--log_config={config}",
            f"--http_endpoint={LOOPBACK}:{port}",
            f"--metrics_endpoint={LOOPBACK}:{free_port()}",
            "--alsologtostderr",
        ],
        ready=http_ok(f"http://{LOOPBACK}:{port}/sigstore/ct/v1/get-roots"),
        timeout=30,
    )


def ctfe_keys(site: Site, keys: KeySet, directory: Path, backend: int) -> Path:
    """`ctlog-secret` mounted at `directory` instead of /ctfe-keys, Trillian on loopback."""
    data = secret_data(ctlog_config_secret(site, keys, 8127364), "ctlog-secret")
    data["config"] = (
        data["config"]
        .replace(CTFE_KEYS.encode(), str(directory).encode())
        .replace(
            f"{TRILLIAN_LOG_SERVER}.{site.namespace('trillian')}:{TRILLIAN_RPC_PORT}".encode(),
            f"{LOOPBACK}:{backend}".encode(),
        )
    )
    return mount(data, directory)


def test_ct_server_reads_its_config_key_and_fulcio_root(
    site: Site, keys: KeySet, procs: ProcessManager, silent_backend: int, tmp_path: Path
) -> None:
    directory = ctfe_keys(site, keys, tmp_path / "ctfe-keys", silent_backend)
    port = free_port()
    start_ct_server(procs, directory / "config", port)
    with urllib.request.urlopen(f"http://{LOOPBACK}:{port}/sigstore/ct/v1/get-roots") as answer:
        roots = json.load(answer)["certificates"]
    assert [base64.b64decode(r) for r in roots] == [der(public_material(keys).fulcio_root)]


def test_ct_server_refuses_the_key_with_another_password(
    site: Site, keys: KeySet, procs: ProcessManager, silent_backend: int, tmp_path: Path
) -> None:
    """What the passing test above relies on: ct_server does decrypt the key at start."""
    directory = ctfe_keys(site, keys, tmp_path / "ctfe-keys", silent_backend)
    assert keys.ctlog.password is not None
    config = (directory / "config").read_bytes()
    (directory / "config").write_bytes(
        config.replace(keys.ctlog.password.encode(), b"not-the-password")
    )
    with pytest.raises(StackError, match="exited"):
        start_ct_server(procs, directory / "config", free_port())


def test_fulcio_serves_the_ca_chain_from_its_secret(
    site: Site, keys: KeySet, procs: ProcessManager, tmp_path: Path
) -> None:
    secret = next(
        s for s in render_secrets(site, keys) if s["metadata"]["name"] == "fulcio-server-secret"
    )
    data = secret_data(secret, "fulcio-server-secret")
    # The chart mounts `private` as key.pem and `cert` as cert.pem, and passes `password`.
    files = mount({"key.pem": data["private"], "cert.pem": data["cert"]}, tmp_path / "fulcio")
    serve_config = pki.write_private(
        tmp_path / "serve.yaml",
        f"fileca-key-passwd: {json.dumps(data['password'].decode())}\n".encode(),
    )
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"OIDCIssuers": {}, "MetaIssuers": {}}))
    port = free_port()
    procs.start(
        "fulcio",
        [
            go_tool("fulcio"),
            "serve",
            f"--config={serve_config}",
            f"--config-path={config}",
            f"--host={LOOPBACK}",
            f"--port={port}",
            f"--grpc-host={LOOPBACK}",
            f"--grpc-port={free_port()}",
            f"--metrics-port={free_port()}",
            f"--legacy-unix-domain-socket=@airgap-fulcio-{port}",
            "--ca=fileca",
            f"--fileca-cert={files / 'cert.pem'}",
            f"--fileca-key={files / 'key.pem'}",
            "--fileca-watch=false",
            f"--ct-log-url=http://{LOOPBACK}:{free_port()}/sigstore",
        ],
        ready=http_ok(f"http://{LOOPBACK}:{port}/api/v1/rootCert"),
        timeout=30,
    )
    with urllib.request.urlopen(f"http://{LOOPBACK}:{port}/api/v1/rootCert") as answer:
        served = answer.read()
    chain = [
        c.public_bytes(serialization.Encoding.DER) for c in x509.load_pem_x509_certificates(served)
    ]
    ours = x509.load_pem_x509_certificates(keys.fulcio.chain_pem)
    assert chain == [c.public_bytes(serialization.Encoding.DER) for c in ours]
    assert len(chain) == 2  # the intermediate, then the root


# -- the timestamp authority ----------------------------------------------------------------------

TSA_PORT = 5555  # the chart's


@dataclass(frozen=True)
class TimestampServer:
    """The pinned timestamp-server run as the tsa chart runs it, alone in a network namespace
    (its metrics port :2112 is hard-coded), reached from a thread inside that namespace."""

    inside: NamespaceThread

    def get(self, path: str) -> bytes:
        return self.inside.call(partial(_fetch, path, None, ""))

    def post(self, path: str, body: bytes, content_type: str) -> bytes:
        return self.inside.call(partial(_fetch, path, body, content_type))


def _fetch(path: str, body: bytes | None, content_type: str) -> bytes:
    url = f"http://{LOOPBACK}:{TSA_PORT}{path}"
    headers = {"Content-Type": content_type} if body is not None else {}
    request = urllib.request.Request(url, data=body, headers=headers)
    with urllib.request.urlopen(request, timeout=10) as answer:
        data: bytes = answer.read()
    return data


@contextmanager
def timestamp_server(
    procs: ProcessManager, keys: KeySet, site: Site, directory: Path
) -> Iterator[TimestampServer]:
    """Serving with the key of `tsa-server-secret` (the chart mounts `private` as key.pem and
    passes `password`) and the chain of the chart's ConfigMap (the site's public chain)."""
    secret = next(
        s for s in render_secrets(site, keys) if s["metadata"]["name"] == "tsa-server-secret"
    )
    data = secret_data(secret, "tsa-server-secret")
    files = mount({"key.pem": data["private"]}, directory / "tsa-secrets")
    chain = public_material(keys).tsa_chain
    assert chain is not None
    (directory / "chain.pem").write_bytes(chain)
    password = data["password"].decode()
    process = procs.start(
        "timestamp-server",
        isolated(
            [
                go_tool("timestamp-server"),
                "serve",
                "--host=0.0.0.0",
                f"--port={TSA_PORT}",
                "--timestamp-signer=file",
                f"--file-signer-key-path={files / 'key.pem'}",
                f"--file-signer-passwd={password}",
                f"--certificate-chain-path={directory / 'chain.pem'}",
            ]
        ),
        env={"DISABLE-NTP-MONITORING": "true"},  # as charts-values/tsa.yaml sets it
        secrets=[password],
    )
    try:
        with NamespaceThread(process.pid) as inside:
            ping = partial(_fetch, "/ping", None, "")
            procs.wait_ready(process, lambda: _answers(inside, ping), timeout=30)
            yield TimestampServer(inside)
    finally:
        procs.stop("timestamp-server")


def _answers(inside: NamespaceThread, call: Callable[[], bytes]) -> bool:
    try:
        inside.call(call)
    except OSError:
        return False
    return True


@pytest.fixture(scope="module")
def tsa_site() -> Site:
    return lab_site(tsa={"enabled": True})


@pytest.fixture(scope="module")
def tsa_keys(tsa_site: Site) -> KeySet:
    return generate_keyset(tsa_site)


def test_the_timestamp_server_signs_with_the_key_and_chain_airgap_made(
    tsa_site: Site, tsa_keys: KeySet, procs: ProcessManager, tmp_path: Path
) -> None:
    chain = public_material(tsa_keys).tsa_chain
    assert chain is not None
    with timestamp_server(procs, tsa_keys, tsa_site, tmp_path) as server:
        proven = check_tsa(server.get, server.post, chain)
    assert "verified with it" in proven
    log = procs.logs["timestamp-server"].read_text()
    assert "ntp monitoring disabled" in log  # nothing asks public NTP pools from inside the gap
    assert tsa_keys.tsa is not None and tsa_keys.tsa.password is not None
    assert tsa_keys.tsa.password not in log
