"""Real registries for the tests, one of each per session:

- `docker_registry`: the Debian `docker-registry` (Distribution 2.8, no referrers API) on
  127.0.0.1, TLS from a test CA made here, htpasswd (bcrypt) auth, filesystem storage in a
  temporary directory, delete enabled.
- `referrers_registry`: go-containerregistry's registry, the one `crane registry serve` runs, with
  its OCI 1.1 referrers API switched on (crane's command leaves it off, so a three-line Go main
  in tests/tools/referrers-registry serves it; built once into the tools cache), on 127.0.0.1,
  plain HTTP, no auth.

Both wait for `/v2/` to answer, are stopped at the end of the session, and their logs are
attached to the report of any test that fails while they run. This module is a pytest plugin
(tests/conftest.py lists it in `pytest_plugins`).
"""

from __future__ import annotations

import datetime
import ipaddress
import json
import secrets
import shutil
import socket
import subprocess
import time
from collections.abc import Generator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from offline.oci.registry import Registry
from offline.oci.registry_auth import Credentials
from offline.oci.registry_http import RetryPolicy
from tests.stack.procs import tail, terminate
from tests.tools import ToolMissing, go_program_from_source

DOCKER_REGISTRY = "/usr/bin/docker-registry"
USERNAME = "airgap"
STARTUP_TIMEOUT = 30.0
# Fast retries: the tests that exercise retries set their own policy.
TEST_RETRY = RetryPolicy(attempts=4, base_delay=0.05, max_delay=0.5, total_time=20.0)

_running: list[RegistryServer] = []


@dataclass
class TestCA:
    """A CA and a server certificate for 127.0.0.1 and localhost, as PEM files."""

    __test__ = False  # not a test class, whatever its name

    directory: Path
    ca_cert: Path
    server_cert: Path
    server_key: Path


def make_test_ca(
    directory: Path, name: str = "airgap test CA", addresses: tuple[str, ...] = ("127.0.0.1",)
) -> TestCA:
    directory.mkdir(parents=True, exist_ok=True)
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=7))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_cert_sign=True,
                crl_sign=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), False)
        .sign(ca_key, hashes.SHA256())
    )
    server_key = ec.generate_private_key(ec.SECP256R1())
    server_cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
        .issuer_name(ca_name)
        .public_key(server_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=7))
        .add_extension(
            x509.SubjectAlternativeName(
                [
                    x509.DNSName("localhost"),
                    *(x509.IPAddress(ipaddress.ip_address(a)) for a in addresses),
                ]
            ),
            critical=False,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), False
        )
        .sign(ca_key, hashes.SHA256())
    )
    # The CA alone in its own directory: skopeo's --cert-dir takes every *.key there for a
    # client key.
    (directory / "ca").mkdir(exist_ok=True)
    ca = TestCA(
        directory=directory / "ca",
        ca_cert=directory / "ca" / "ca.crt",
        server_cert=directory / "server.crt",
        server_key=directory / "server.key",
    )
    ca.ca_cert.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    ca.server_cert.write_bytes(server_cert.public_bytes(serialization.Encoding.PEM))
    ca.server_key.write_bytes(
        server_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    ca.server_key.chmod(0o600)
    return ca


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class RegistryServer:
    name: str
    host: str
    process: subprocess.Popen[bytes]
    log_path: Path
    tls: bool
    ca: TestCA | None = None
    credentials: Credentials | None = None
    extra: dict[str, Path] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://{self.host}"

    @property
    def cert_dir(self) -> Path:
        """A directory with only `ca.crt`, as skopeo's --cert-dir wants it."""
        assert self.ca is not None
        return self.ca.directory

    def client(self, **kwargs: object) -> Registry:
        """Our client, configured for this server (override anything with kwargs)."""
        options: dict[str, object] = {
            "credentials": self.credentials,
            "ca_bundle": self.ca.ca_cert if self.ca else None,
            "insecure_http": not self.tls,
            "retry": TEST_RETRY,
            "environ": {},
        }
        options.update(kwargs)
        return Registry(self.host, **options)  # type: ignore[arg-type]

    def log_tail(self, lines: int = 60) -> str:
        return tail(self.log_path, lines)

    def stop(self) -> None:
        terminate(self.process)


def _wait_ready(server: RegistryServer, verify: bool | str) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT
    last = ""
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(
                f"{server.name} exited with {server.process.returncode}:\n{server.log_tail()}"
            )
        try:
            response = requests.get(f"{server.url}/v2/", verify=verify, timeout=2)
            if response.status_code in (200, 401):
                return
            last = f"HTTP {response.status_code}"
        except requests.RequestException as exc:
            last = type(exc).__name__
        time.sleep(0.1)
    server.stop()
    raise RuntimeError(
        f"{server.name} not ready after {STARTUP_TIMEOUT}s ({last}):\n{server.log_tail()}"
    )


def _start(
    name: str, argv: list[str], log_path: Path, env: dict[str, str] | None = None
) -> subprocess.Popen[bytes]:
    log = log_path.open("wb")
    try:
        return subprocess.Popen(
            argv,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            start_new_session=True,
        )
    finally:
        log.close()


def write_htpasswd(path: Path, user: str, password: str) -> Path:
    """An htpasswd file (bcrypt) for one user; the password goes through stdin, never argv."""
    hashed = subprocess.run(
        ["htpasswd", "-nBi", user], input=password, capture_output=True, text=True, check=True
    ).stdout
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(hashed)
    return path


def start_docker_registry(directory: Path) -> RegistryServer:
    if not Path(DOCKER_REGISTRY).exists():
        pytest.fail("the Debian docker-registry package is not installed")
    if shutil.which("htpasswd") is None:
        pytest.fail("htpasswd (apache2-utils) is not installed")
    ca = make_test_ca(directory / "tls")
    password = secrets.token_urlsafe(16)
    write_htpasswd(directory / "htpasswd", USERNAME, password)
    port = free_port()
    config = {
        "version": 0.1,
        "log": {"level": "info", "accesslog": {"disabled": False}},
        "storage": {
            "filesystem": {"rootdirectory": str(directory / "storage")},
            "delete": {"enabled": True},
            "maintenance": {"uploadpurging": {"enabled": False}},
        },
        "http": {
            "addr": f"127.0.0.1:{port}",
            "secret": secrets.token_hex(16),
            "tls": {"certificate": str(ca.server_cert), "key": str(ca.server_key)},
        },
        "auth": {"htpasswd": {"realm": "airgap-test", "path": str(directory / "htpasswd")}},
    }
    # JSON is YAML: no need to write YAML by hand.
    config_path = directory / "config.yml"
    config_path.write_text(json.dumps(config, indent=2))
    log_path = directory / "docker-registry.log"
    process = _start("docker-registry", [DOCKER_REGISTRY, "serve", str(config_path)], log_path)
    server = RegistryServer(
        name="docker-registry",
        host=f"127.0.0.1:{port}",
        process=process,
        log_path=log_path,
        tls=True,
        ca=ca,
        credentials=Credentials(USERNAME, password, source="test fixture"),
        extra={"config": config_path},
    )
    _wait_ready(server, str(ca.ca_cert))
    return server


def referrers_registry_binary() -> Path:
    """tests/tools/referrers-registry built once per source version into the tools cache."""
    source = Path(__file__).parent / "tools" / "referrers-registry"
    try:
        return go_program_from_source(source, "referrers-registry")
    except ToolMissing as exc:
        pytest.fail(str(exc))


def start_referrers_registry(directory: Path) -> RegistryServer:
    """go-containerregistry's registry (what `crane registry serve` runs) with its referrers
    API on: `crane registry serve` itself leaves the API off."""
    port = free_port()
    log_path = directory / "referrers-registry.log"
    process = _start(
        "referrers registry",
        [str(referrers_registry_binary()), "-address", f"127.0.0.1:{port}"],
        log_path,
    )
    server = RegistryServer(
        name="referrers registry (ggcr)",
        host=f"127.0.0.1:{port}",
        process=process,
        log_path=log_path,
        tls=False,
    )
    _wait_ready(server, True)
    return server


@pytest.fixture(scope="session")
def docker_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RegistryServer]:
    server = start_docker_registry(tmp_path_factory.mktemp("docker-registry"))
    _running.append(server)
    try:
        yield server
    finally:
        _running.remove(server)
        server.stop()


@pytest.fixture(scope="session")
def referrers_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RegistryServer]:
    server = start_referrers_registry(tmp_path_factory.mktemp("referrers-registry"))
    _running.append(server)
    try:
        yield server
    finally:
        _running.remove(server)
        server.stop()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, Any, None]:
    """On a failed test, add the tail of every running registry's log to its report."""
    outcome = yield
    report: pytest.TestReport = outcome.get_result()
    if report.failed and report.when in ("setup", "call"):
        for server in _running:
            report.sections.append((f"{server.name} log (tail)", server.log_tail()))
