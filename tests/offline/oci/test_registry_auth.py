"""Unit tests of the auth pieces: challenges, where credentials come from, token answers,
Retry-After and backoff. (Against real registries and a token service: test_registry*.py.)"""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from offline.errors import UsageError
from offline.oci.registry_auth import (
    HOST_ENV,
    PASSWORD_ENV,
    USERNAME_ENV,
    Challenge,
    Credentials,
    TokenCache,
    find_credentials,
    parse_www_authenticate,
    realm_credentials_host,
    token_from_response,
)
from offline.oci.registry_http import RetryPolicy, _retry_after, _tls_reason


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (
            'Bearer realm="https://auth.example/token",service="reg",'
            'scope="repository:team/app:pull,push"',
            [
                Challenge(
                    "bearer",
                    {
                        "realm": "https://auth.example/token",
                        "service": "reg",
                        "scope": "repository:team/app:pull,push",
                    },
                )
            ],
        ),
        ('Basic realm="airgap-test"', [Challenge("basic", {"realm": "airgap-test"})]),
        (
            'Bearer realm="a", Basic realm="b"',
            [Challenge("bearer", {"realm": "a"}), Challenge("basic", {"realm": "b"})],
        ),
        (
            'BEARER Realm=r, error="invalid_token"',
            [Challenge("bearer", {"realm": "r", "error": "invalid_token"})],
        ),
        ('Bearer realm="with \\"quote\\""', [Challenge("bearer", {"realm": 'with "quote"'})]),
        ("", []),
    ],
)
def test_challenges(header: str, expected: list[Challenge]) -> None:
    assert parse_www_authenticate(header) == expected


def _config(tmp_path: Path, auths: dict[str, object]) -> dict[str, str]:
    (tmp_path / "config.json").write_text(json.dumps({"auths": auths}))
    return {"DOCKER_CONFIG": str(tmp_path)}


def _auth(user: str, password: str) -> dict[str, str]:
    return {"auth": base64.b64encode(f"{user}:{password}".encode()).decode()}


def test_credentials_precedence(tmp_path: Path) -> None:
    environ = _config(tmp_path, {"r.example:5000": _auth("fromconfig", "c")})
    assert find_credentials("r.example:5000", None, environ) == Credentials(
        "fromconfig", "c", f"docker config {tmp_path / 'config.json'}"
    )
    environ |= {USERNAME_ENV: "fromenv", PASSWORD_ENV: "e", HOST_ENV: "r.example:5000"}
    found = find_credentials("r.example:5000", None, environ)
    assert found is not None and found.username == "fromenv"
    explicit = Credentials("explicit", "x")
    assert find_credentials("r.example:5000", explicit, environ) is explicit
    assert find_credentials("other:5000", None, {"DOCKER_CONFIG": str(tmp_path)}) is None
    assert find_credentials("r.example:5000", None, {"DOCKER_CONFIG": str(tmp_path / "no")}) is None


@pytest.mark.parametrize(
    ("key", "registry"),
    [
        ("https://index.docker.io/v1/", "docker.io"),
        ("index.docker.io", "docker.io"),
        ("registry-1.docker.io", "docker.io"),
        ("https://r.example:5000", "r.example:5000"),
        ("http://R.Example:5000/v2/", "r.example:5000"),
    ],
)
def test_docker_config_keys(tmp_path: Path, key: str, registry: str) -> None:
    environ = _config(tmp_path, {key: _auth("u", "p:with:colons")})
    found = find_credentials(registry, None, environ)
    assert found is not None and (found.username, found.password) == ("u", "p:with:colons")


def test_docker_config_username_password_fields(tmp_path: Path) -> None:
    environ = _config(tmp_path, {"r.example": {"username": "u", "password": "p"}})
    found = find_credentials("r.example", None, environ)
    assert found is not None and found.password == "p"


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{", "is not valid JSON"),
        (json.dumps({"auths": {"r.example": {"auth": "!!"}}}), "auth is not base64"),
        (
            json.dumps({"auths": {"r.example": {"auth": base64.b64encode(b"nocolon").decode()}}}),
            "auth is not base64 of user:password",
        ),
    ],
)
def test_bad_docker_config(tmp_path: Path, content: str, message: str) -> None:
    (tmp_path / "config.json").write_text(content)
    with pytest.raises(UsageError, match=message):
        find_credentials("r.example", None, {"DOCKER_CONFIG": str(tmp_path)})


def test_half_set_environment() -> None:
    with pytest.raises(UsageError, match="set both"):
        find_credentials("r", None, {PASSWORD_ENV: "p"})


def test_environment_credentials_without_a_host_are_refused() -> None:
    """Not sent to every registry: the one they are for must be named."""
    with pytest.raises(UsageError, match=f"name its host\\[:port\\] in {HOST_ENV}"):
        find_credentials("r.example", None, {USERNAME_ENV: "u", PASSWORD_ENV: "p"})


def test_environment_credentials_bind_to_the_named_host(tmp_path: Path) -> None:
    environ = _config(tmp_path, {"other.example": _auth("fromconfig", "c")})
    environ |= {USERNAME_ENV: "u", PASSWORD_ENV: "p", HOST_ENV: "R.example:5000"}
    found = find_credentials("r.example:5000", None, environ)
    assert found is not None and found.username == "u" and "r.example:5000" in found.source.lower()
    assert find_credentials("r.example", None, environ) is None  # another port: another host
    assert find_credentials("r.example:5001", None, environ) is None
    other = find_credentials("other.example", None, environ)
    assert other is not None and other.username == "fromconfig"
    hub = {USERNAME_ENV: "u", PASSWORD_ENV: "p", HOST_ENV: "index.docker.io"}
    assert find_credentials("docker.io", None, hub) is not None


@pytest.mark.parametrize("host", ["https://r.example/v2/", "r.example/team", "a b", "r:port"])
def test_a_malformed_registry_host_is_refused(host: str) -> None:
    with pytest.raises(UsageError, match=f"{HOST_ENV} must be one registry host"):
        find_credentials("r.example", None, {USERNAME_ENV: "u", PASSWORD_ENV: "p", HOST_ENV: host})


@pytest.mark.parametrize(
    ("registry", "scheme", "netloc", "owner"),
    [
        ("r.example", "https", "r.example", "r.example"),
        ("r.example", "https", "R.EXAMPLE:443", "r.example"),
        ("r.example:5000", "https", "r.example:5000", "r.example:5000"),
        ("r.example:5000", "https", "r.example", "r.example"),
        ("r.example", "https", "auth.r.example", "auth.r.example"),
        ("docker.io", "https", "auth.docker.io", "docker.io"),
        ("docker.io", "https", "registry-1.docker.io", "docker.io"),
        ("quay.io", "https", "auth.docker.io", "auth.docker.io"),
        ("r.example", "ftp", "r.example", None),
    ],
)
def test_whose_credentials_a_token_service_may_get(
    registry: str, scheme: str, netloc: str, owner: str | None
) -> None:
    assert realm_credentials_host(registry, scheme, netloc) == owner


def test_credentials_never_print_the_password() -> None:
    creds = Credentials("robot", "s3cret-value", source="test")
    assert "s3cret-value" not in repr(creds) and "s3cret-value" not in str(creds)


def test_token_answers() -> None:
    assert token_from_response({"token": "t", "expires_in": 300}) == ("t", 300.0)
    assert token_from_response({"access_token": "a"}) == ("a", 60.0)
    assert token_from_response({"token": "t", "expires_in": "soon"}) == ("t", 60.0)
    bad: object
    for bad in ([], {}, {"token": ""}, {"token": 5}):
        with pytest.raises(ValueError):
            token_from_response(bad)


def test_token_cache_is_per_scope_and_expires() -> None:
    cache = TokenCache()
    cache.put("realm", "svc", ("repository:a:pull",), "tok", 300)
    assert cache.get("realm", "svc", ("repository:a:pull",)) == "tok"
    assert cache.get("realm", "svc", ("repository:a:pull,push",)) is None
    assert cache.get("realm", "other", ("repository:a:pull",)) is None
    cache.put("realm", "svc", ("repository:b:pull",), "short", 0)
    assert cache.get("realm", "svc", ("repository:b:pull",)) is None


def test_retry_after_and_backoff() -> None:
    assert _retry_after("3") == 3.0
    assert _retry_after(None) is None
    assert _retry_after("garbage") is None
    assert _retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0  # in the past
    policy = RetryPolicy(base_delay=0.5, max_delay=4.0)
    for attempt in range(10):
        assert 0 <= policy.delay(attempt) <= min(4.0, 0.5 * 2**attempt)


def test_tls_reasons() -> None:
    verify = Exception(
        "HTTPSConnectionPool: Max retries exceeded (Caused by SSLError(SSLCertVerificationError("
        "1, '[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed: self-signed "
        "certificate (_ssl.c:1006)')))"
    )
    assert _tls_reason(verify).startswith(
        "TLS verification failed (certificate verify failed: self-signed certificate); pass"
    )
    plain = Exception("[SSL: WRONG_VERSION_NUMBER] wrong version number (_ssl.c:1006)")
    assert "does not speak TLS" in _tls_reason(plain)
