"""Where registry credentials may go: only to the registry they belong to (docker config
semantics), to a token service on another host only that host's own credentials and only over
HTTPS, never over plain HTTP unless the host was allowed plain HTTP, and never along a redirect
or to an upload location elsewhere. The registries and token services here are scripted
loopback servers (tests/loopback_http.py); 127.0.0.2 plays "another host"."""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from offline.oci.registry import Registry
from offline.oci.registry_auth import (
    HOST_ENV,
    PASSWORD_ENV,
    USERNAME_ENV,
    Credentials,
    basic_header,
)
from offline.oci.registry_http import PlainHttpRefused, RegistryAuthError, RetryPolicy
from provisioner.cli.main import main as airgap
from tests.loopback_http import Answer, LoopbackServer, Script, Seen
from tests.registries import TestCA, make_test_ca

FAST = RetryPolicy(attempts=2, base_delay=0.01, max_delay=0.05, total_time=5.0)
REGISTRY_CREDENTIALS = Credentials("registry-user", "registry-secret")
TOKEN = "issued-token"
BLOB = b"the blob's bytes"
BLOB_DIGEST = "sha256:" + hashlib.sha256(BLOB).hexdigest()


@pytest.fixture(scope="module")
def ca(tmp_path_factory: pytest.TempPathFactory) -> TestCA:
    return make_test_ca(tmp_path_factory.mktemp("ca"), addresses=("127.0.0.1", "127.0.0.2"))


def token_service(server: LoopbackServer, seen: Seen) -> Answer:
    body = json.dumps({"token": TOKEN, "expires_in": 300}).encode()
    return Answer(200, {"Content-Type": "application/json"}, body)


def bearer_registry(realm: str) -> Any:
    """A registry that wants a bearer token from `realm` and lists one tag with it."""

    def script(server: LoopbackServer, seen: Seen) -> Answer:
        if seen.headers.get("authorization") == f"Bearer {TOKEN}":
            return Answer(200, {"Content-Type": "application/json"}, b'{"tags":["v1"]}')
        challenge = f'Bearer realm="{realm}",service="test"'
        return Answer(401, {"WWW-Authenticate": challenge})

    return script


def basic_registry(redirect_to: str | None = None) -> Script:
    """A registry with Basic auth; its blobs are served elsewhere (`redirect_to`) when given."""
    expected = basic_header(REGISTRY_CREDENTIALS)

    def script(server: LoopbackServer, seen: Seen) -> Answer:
        if seen.headers.get("authorization") != expected:
            return Answer(401, {"WWW-Authenticate": 'Basic realm="test"'})
        if "/blobs/" in seen.path and redirect_to is not None:
            return Answer(307, {"Location": redirect_to})
        if "/blobs/" in seen.path:
            return Answer(200, {}, BLOB)
        return Answer(200, {"Content-Type": "application/json"}, b'{"tags":["v1"]}')

    return script


def blob_store(server: LoopbackServer, seen: Seen) -> Answer:
    return Answer(200, {}, BLOB)


def _registry(server: LoopbackServer, ca: TestCA, **kwargs: Any) -> Registry:
    options: dict[str, Any] = {
        "ca_bundle": ca.ca_cert,
        "insecure_http": not server.tls,
        "retry": FAST,
        "environ": {},
    }
    options.update(kwargs)
    return Registry(server.host, **options)


@pytest.fixture
def realm_elsewhere(ca: TestCA) -> Iterator[LoopbackServer]:
    with LoopbackServer(token_service, address="127.0.0.2", tls=ca) as realm:
        yield realm


# --------------------------------------------------------------------- token services
def test_a_token_service_on_another_host_does_not_get_the_registrys_credentials(
    ca: TestCA, realm_elsewhere: LoopbackServer
) -> None:
    script = bearer_registry(f"{realm_elsewhere.url}/token")
    with LoopbackServer(script, tls=ca) as server:
        registry = _registry(server, ca, credentials=REGISTRY_CREDENTIALS)
        assert registry.repository("team/app").list_tags() == ["v1"]
    assert len(realm_elsewhere.seen) == 1
    assert realm_elsewhere.authorizations() == []


def test_a_token_service_on_another_host_gets_its_own_docker_config_entry(
    ca: TestCA, realm_elsewhere: LoopbackServer, tmp_path: Path
) -> None:
    own = base64.b64encode(b"realm-user:realm-secret").decode()
    (tmp_path / "config.json").write_text(
        json.dumps({"auths": {realm_elsewhere.host: {"auth": own}}})
    )
    script = bearer_registry(f"{realm_elsewhere.url}/token")
    with LoopbackServer(script, tls=ca) as server:
        registry = _registry(
            server, ca, credentials=REGISTRY_CREDENTIALS, environ={"DOCKER_CONFIG": str(tmp_path)}
        )
        registry.repository("team/app").list_tags()
    assert realm_elsewhere.authorizations() == [f"Basic {own}"]


def test_a_refusing_token_service_on_another_host_says_why_no_credentials_went(
    ca: TestCA,
) -> None:
    def refuse(server: LoopbackServer, seen: Seen) -> Answer:
        return Answer(401, {})

    with (
        LoopbackServer(refuse, address="127.0.0.2", tls=ca) as realm,
        LoopbackServer(bearer_registry(f"{realm.url}/token"), tls=ca) as server,
    ):
        registry = _registry(server, ca, credentials=REGISTRY_CREDENTIALS)
        with pytest.raises(RegistryAuthError) as caught:
            registry.repository("team/app").list_tags()
    message = str(caught.value)
    assert "\n" not in message
    assert "refused anonymous access" in message
    assert f"the credentials for {server.host} are not sent to another host" in message


def test_a_plain_http_token_service_is_refused_for_an_https_registry(ca: TestCA) -> None:
    with (
        LoopbackServer(token_service, address="127.0.0.2") as realm,
        LoopbackServer(bearer_registry(f"{realm.url}/token"), tls=ca) as server,
    ):
        registry = _registry(server, ca, credentials=REGISTRY_CREDENTIALS)
        with pytest.raises(PlainHttpRefused, match="is not allowed plain HTTP") as caught:
            registry.repository("team/app").list_tags()
    assert realm.seen == []
    assert caught.value.host == realm.host
    assert "--" not in str(caught.value)  # the library names what to allow, not a flag


def test_the_registrys_own_token_service_over_plain_http_is_refused_for_an_https_registry(
    ca: TestCA,
) -> None:
    """Same address, another port: a plain-HTTP realm the user did not allow."""
    with (
        LoopbackServer(token_service) as realm,
        LoopbackServer(bearer_registry(f"{realm.url}/token"), tls=ca) as server,
    ):
        registry = _registry(server, ca, credentials=REGISTRY_CREDENTIALS)
        with pytest.raises(RegistryAuthError, match="plain HTTP"):
            registry.repository("team/app").list_tags()
    assert realm.seen == []


def test_a_plain_http_token_service_needs_its_host_allowed(ca: TestCA) -> None:
    with (
        LoopbackServer(token_service, address="127.0.0.2") as realm,
        LoopbackServer(bearer_registry(f"{realm.url}/token")) as server,
    ):
        refused = _registry(server, ca, credentials=REGISTRY_CREDENTIALS)
        with pytest.raises(PlainHttpRefused, match=f"{realm.host} is not allowed plain HTTP"):
            refused.repository("team/app").list_tags()
        assert realm.seen == []
        allowed = _registry(
            server, ca, credentials=REGISTRY_CREDENTIALS, http_hosts=frozenset({realm.host})
        )
        assert allowed.repository("team/app").list_tags() == ["v1"]
    # Allowed plain HTTP, but still another host: not the registry's credentials.
    assert realm.authorizations() == []


def test_the_command_line_names_the_flag_that_allows_a_plain_http_token_service(
    ca: TestCA, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The library says what is refused; the command line adds its flag, on both paths an
    error takes: up to the command (inventory), and into an image's result (verify)."""
    key = tmp_path / "cosign.pub"
    key.write_bytes(
        ec.generate_private_key(ec.SECP256R1())
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    ca_flags = ["--registry-ca", str(ca.ca_cert)]
    with (
        LoopbackServer(token_service, address="127.0.0.2") as realm,
        LoopbackServer(bearer_registry(f"{realm.url}/token"), tls=ca) as server,
    ):
        allowed = "allow it only if that is really meant"
        flag = f"is not allowed plain HTTP: {allowed} (--allow-http-registry {realm.host})\n"
        inventory = ["bundle", "inventory", "--registry", server.host, "--repository", "team/app"]
        assert airgap([*inventory, "-o", str(tmp_path / "inventory.json"), *ca_flags]) == 2
        err = capsys.readouterr().err
        assert err.startswith("airgap: ") and err.endswith(flag), err
        assert err.count("\n") == 1

        verify = ["verify", "--key", str(key), "--insecure-ignore-tlog", *ca_flags]
        assert airgap([*verify, f"{server.host}/team/app:v1"]) == 2
        out, err = capsys.readouterr()
        assert out.startswith("FAIL ") and out.endswith(flag), (out, err)
    assert realm.seen == []


@pytest.mark.parametrize("realm", ["ftp://127.0.0.2/token", "https://user@127.0.0.2/token", "/t"])
def test_a_token_service_that_is_not_an_https_url_is_refused(ca: TestCA, realm: str) -> None:
    with LoopbackServer(bearer_registry(realm), tls=ca) as server:
        registry = _registry(server, ca, credentials=REGISTRY_CREDENTIALS)
        with pytest.raises(RegistryAuthError, match="is not an https URL"):
            registry.repository("team/app").list_tags()


# ------------------------------------------------------------------------ environment
def test_environment_credentials_for_another_registry_are_not_sent(ca: TestCA) -> None:
    environ = {
        USERNAME_ENV: REGISTRY_CREDENTIALS.username,
        PASSWORD_ENV: REGISTRY_CREDENTIALS.password,
        HOST_ENV: "registry.example:5000",
    }
    with LoopbackServer(basic_registry(), tls=ca) as server:
        registry = _registry(server, ca, environ=environ)
        with pytest.raises(RegistryAuthError, match="authentication required"):
            registry.repository("team/app").list_tags()
        assert server.authorizations() == []
        named = _registry(server, ca, environ={**environ, HOST_ENV: server.host})
        assert named.repository("team/app").list_tags() == ["v1"]


# -------------------------------------------------------------------------- redirects
@pytest.mark.parametrize("tls", [True, False], ids=["https", "http"])
def test_a_redirected_blob_download_carries_no_authorization(ca: TestCA, tls: bool) -> None:
    with LoopbackServer(blob_store, address="127.0.0.2", tls=ca if tls else None) as store:
        script = basic_registry(redirect_to=f"{store.url}/bucket/blob?signature=x")
        with LoopbackServer(script, tls=ca) as server:
            registry = _registry(server, ca, credentials=REGISTRY_CREDENTIALS)
            with registry.repository("team/app").open_blob(BLOB_DIGEST, len(BLOB)) as blob:
                assert blob.read() == BLOB
    assert len(store.seen) == 1
    assert store.authorizations() == []


def test_a_redirected_token_request_carries_no_authorization(ca: TestCA) -> None:
    """The registry's own token service gets its credentials, and redirects elsewhere."""
    with LoopbackServer(token_service, address="127.0.0.2", tls=ca) as elsewhere:
        wants_token = basic_registry()

        def script(server: LoopbackServer, seen: Seen) -> Answer:
            if seen.path.startswith("/token"):
                assert seen.headers.get("authorization") == basic_header(REGISTRY_CREDENTIALS)
                return Answer(302, {"Location": f"{elsewhere.url}/token"})
            if seen.headers.get("authorization") == f"Bearer {TOKEN}":
                return wants_token(
                    server,
                    Seen(
                        seen.method,
                        seen.path,
                        {"authorization": basic_header(REGISTRY_CREDENTIALS)},
                    ),
                )
            return Answer(401, {"WWW-Authenticate": f'Bearer realm="{server.url}/token"'})

        with LoopbackServer(script, tls=ca) as server:
            registry = _registry(server, ca, credentials=REGISTRY_CREDENTIALS)
            assert registry.repository("team/app").list_tags() == ["v1"]
    assert len(elsewhere.seen) == 1
    assert elsewhere.authorizations() == []


def test_an_upload_location_over_plain_http_gets_no_authorization() -> None:
    """The registry's own host and port, but http: the header would cross the network in
    clear text."""
    registry = Registry("registry.example", credentials=REGISTRY_CREDENTIALS, environ={})
    transport = registry.transport
    sent: list[dict[str, str]] = []

    class Capture:
        def request(self, method: str, url: str, **kwargs: Any) -> None:
            sent.append(dict(kwargs["headers"]))

    transport._session = Capture()  # type: ignore[assignment]
    header = basic_header(REGISTRY_CREDENTIALS)
    transport._send("PUT", "http://registry.example/v2/upload", None, b"", False, header)
    transport._send("PUT", "https://registry.example/v2/upload", None, b"", False, header)
    transport._send("PUT", "https://registry.example:8443/v2/upload", None, b"", False, header)
    assert ["authorization" in {k.lower() for k in h} for h in sent] == [False, True, False]
