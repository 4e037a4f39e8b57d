"""Registry credentials, authentication challenges and the bearer-token cache.

Credentials belong to one registry host, as in a docker config: they are never sent to
another host. They come from, in this order: an explicit argument (given for one host), the
environment (AIRGAP_REGISTRY_USERNAME / AIRGAP_REGISTRY_PASSWORD, for the one host that
AIRGAP_REGISTRY_HOST names; without it they are refused, not sent everywhere), or a docker-style
config ($DOCKER_CONFIG/config.json, else ~/.docker/config.json, its `auths` entries, by host).
Credential helpers (`credsStore`, `credHelpers`) are not run: a CD host should not execute
programs named in a file.

A token service (a bearer challenge's realm) on the registry's own host gets the registry's
credentials; one on another host gets only the credentials bound to that host (its own docker
config entry, or the environment's when AIRGAP_REGISTRY_HOST names it), and only over HTTPS
(see `realm_credentials_host`). Docker Hub's token service, auth.docker.io, counts as Docker Hub.

Secrets never leave this module in a printable form: `Credentials` hides the password in its
repr, and tokens live only in the cache.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import re
import threading
import time
from collections.abc import Mapping
from pathlib import Path

from offline.errors import UsageError
from offline.inputs import read_input
from offline.record import Record

USERNAME_ENV = "AIRGAP_REGISTRY_USERNAME"
PASSWORD_ENV = "AIRGAP_REGISTRY_PASSWORD"
HOST_ENV = "AIRGAP_REGISTRY_HOST"
DOCKER_HUB_ALIASES = frozenset(
    {"docker.io", "index.docker.io", "registry-1.docker.io", "registry.hub.docker.com"}
)
MAX_DOCKER_CONFIG_SIZE = 16 * 1024 * 1024
# Docker Hub's token service: its realm is on this host, and docker sends Hub credentials there.
DOCKER_HUB_TOKEN_HOST = "auth.docker.io"
# The distribution token spec: a token without expires_in lasts 60 seconds.
DEFAULT_TOKEN_LIFETIME = 60.0
# Renew a little early, so a token does not expire between the check and the request.
TOKEN_MARGIN = 10.0


class Credentials(Record):
    __slots__ = ("password", "source", "username")
    _hidden = frozenset({"password"})

    def __init__(self, username: str, password: str, source: str = "argument") -> None:
        self.username = username
        self.password = password
        self.source = source

    def __str__(self) -> str:
        return f"user {self.username!r} (from {self.source})"


def find_credentials(
    registry: str, explicit: Credentials | None = None, environ: Mapping[str, str] | None = None
) -> Credentials | None:
    """The credentials to use for `registry` (host[:port]), or None for anonymous access.

    `explicit` credentials are the caller's for this registry. The environment's apply only
    to the host AIRGAP_REGISTRY_HOST names; other hosts fall through to the docker config."""
    if explicit is not None:
        return explicit
    env = os.environ if environ is None else environ
    from_env = environment_credentials(env)
    if from_env is not None and same_registry(from_env[0], registry):
        return from_env[1]
    return from_docker_config(registry, docker_config_path(env))


def environment_credentials(environ: Mapping[str, str]) -> tuple[str, Credentials] | None:
    """The host AIRGAP_REGISTRY_HOST names and the environment's credentials for it, or None.

    Credentials without a host are refused: sent to every registry (and every token service)
    they would reach hosts nobody meant them for."""
    username, password = environ.get(USERNAME_ENV), environ.get(PASSWORD_ENV)
    host = (environ.get(HOST_ENV) or "").strip()
    if not username and not password:
        return None
    if not username or password is None:
        raise UsageError(f"set both {USERNAME_ENV} and {PASSWORD_ENV}, or neither")
    if not host:
        raise UsageError(
            f"{USERNAME_ENV}/{PASSWORD_ENV} are for one registry: name its host[:port] in "
            f"{HOST_ENV} (they are never sent to other hosts)"
        )
    if not _HOST.fullmatch(host):
        raise UsageError(f"{HOST_ENV} must be one registry host[:port], not {host!r}")
    source = f"{USERNAME_ENV}/{PASSWORD_ENV} for {host}"
    return host, Credentials(username, password, source=source)


# A host name or IPv4 address, or a bracketed IPv6 address, with an optional port.
_HOST = re.compile(
    r"(?:[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?|\[[0-9A-Fa-f:.]+\])(?::[0-9]{1,5})?"
)


def same_registry(a: str, b: str) -> bool:
    """Whether two host[:port] names are one registry for credentials (as a docker config
    compares its keys: case-insensitive, Docker Hub's aliases are one, a port is part of it)."""
    return _config_key(a) == _config_key(b)


def realm_credentials_host(registry: str, realm_scheme: str, realm_netloc: str) -> str | None:
    """Whose credentials a token service at `realm_scheme://realm_netloc` may receive: the
    registry's own name when the realm is on the registry's host (Docker Hub's token service
    counts as Docker Hub), else the realm's own host[:port]; None for a scheme that is
    neither https nor http (nothing is sent there)."""
    if realm_scheme not in ("https", "http"):
        return None
    host = _strip_default_port(realm_netloc.lower(), realm_scheme)
    if _config_key(registry) == "docker.io" and host == DOCKER_HUB_TOKEN_HOST:
        return registry
    if same_registry(host, _strip_default_port(registry, realm_scheme)):
        return registry
    return host


def _strip_default_port(host: str, scheme: str) -> str:
    default = {"https": ":443", "http": ":80"}[scheme]
    return host[: -len(default)] if host.endswith(default) else host


def docker_config_path(environ: Mapping[str, str] | None = None) -> Path:
    env = os.environ if environ is None else environ
    directory = env.get("DOCKER_CONFIG")
    if directory:
        return Path(directory) / "config.json"
    return Path.home() / ".docker" / "config.json"


def from_docker_config(registry: str, path: Path) -> Credentials | None:
    if not os.path.lexists(path):
        return None
    text = read_input(path, "docker config", MAX_DOCKER_CONFIG_SIZE)
    try:
        config = json.loads(text)
    except (ValueError, RecursionError) as exc:
        reason = exc.msg if isinstance(exc, json.JSONDecodeError) else "not UTF-8 or too deep"
        raise UsageError(f"docker config {path} is not valid JSON ({reason})") from None
    auths = config.get("auths") if isinstance(config, dict) else None
    if not isinstance(auths, dict):
        return None
    wanted = _config_key(registry)
    for key, entry in auths.items():
        if _config_key(key) != wanted or not isinstance(entry, dict):
            continue
        return _entry_credentials(entry, path, key)
    return None


def _config_key(name: str) -> str:
    """Docker writes keys as hosts or URLs (`https://index.docker.io/v1/`): compare hosts."""
    host = re.sub(r"^[a-z]+://", "", name.strip()).split("/", 1)[0].lower()
    return "docker.io" if host in DOCKER_HUB_ALIASES else host


def _entry_credentials(entry: dict[str, object], path: Path, key: str) -> Credentials | None:
    where = f"{path} auths[{key!r}]"
    source = f"docker config {path}"
    auth = entry.get("auth")
    if isinstance(auth, str) and auth:
        try:
            decoded = base64.b64decode(auth, validate=True).decode()
        except (binascii.Error, UnicodeDecodeError) as exc:
            raise UsageError(f"docker config {where}: auth is not base64 of user:password") from exc
        username, sep, password = decoded.partition(":")
        if not sep or not username:
            raise UsageError(f"docker config {where}: auth is not base64 of user:password")
        return Credentials(username, password, source=source)
    user, secret = entry.get("username"), entry.get("password")
    if isinstance(user, str) and isinstance(secret, str) and user:
        return Credentials(user, secret, source=source)
    return None


class Challenge(Record):
    """One challenge of a WWW-Authenticate header: its scheme (lower case) and parameters."""

    __slots__ = ("params", "scheme")

    def __init__(self, scheme: str, params: dict[str, str]) -> None:
        self.scheme = scheme
        self.params = params


_PARAM = re.compile(r'\s*([A-Za-z0-9_.-]+)\s*=\s*("(?:[^"\\]|\\.)*"|[^\s,]*)\s*')
_SCHEME = re.compile(r"\s*([A-Za-z][A-Za-z0-9_.-]*)(?:\s+|$)")


def parse_www_authenticate(header: str) -> list[Challenge]:
    """RFC 7235 challenges, as registries send them (`Bearer realm="..",service="..",scope=".."`).

    Several challenges may share one header (requests joins repeated headers with ", ").
    """
    challenges: list[Challenge] = []
    position = 0
    while position < len(header):
        if header[position] in ", \t":
            position += 1
            continue
        param = _PARAM.match(header, position)
        if challenges and param is not None:
            value = param.group(2)
            if value.startswith('"'):
                value = re.sub(r"\\(.)", r"\1", value[1:-1])
            challenges[-1].params[param.group(1).lower()] = value
            position = param.end()
            continue
        scheme = _SCHEME.match(header, position)
        if scheme is None:
            # Something we do not understand (a token68 credential): skip to the next comma.
            comma = header.find(",", position)
            position = len(header) if comma < 0 else comma + 1
            continue
        challenges.append(Challenge(scheme.group(1).lower(), {}))
        position = scheme.end()
    return challenges


class _CachedToken(Record):
    __slots__ = ("expires_at", "token")
    _hidden = frozenset({"token"})

    def __init__(self, token: str, expires_at: float) -> None:
        self.token = token
        self.expires_at = expires_at


class TokenCache:
    """Bearer tokens by (realm, service, scopes), until shortly before they expire."""

    def __init__(self) -> None:
        self._tokens: dict[tuple[str, str, tuple[str, ...]], _CachedToken] = {}
        self._lock = threading.Lock()

    def get(self, realm: str, service: str, scopes: tuple[str, ...]) -> str | None:
        with self._lock:
            cached = self._tokens.get((realm, service, scopes))
            if cached is None or cached.expires_at <= time.monotonic():
                return None
            return cached.token

    def put(
        self, realm: str, service: str, scopes: tuple[str, ...], token: str, lifetime: float
    ) -> None:
        expires_at = time.monotonic() + max(lifetime - TOKEN_MARGIN, lifetime / 2)
        with self._lock:
            self._tokens[(realm, service, scopes)] = _CachedToken(token, expires_at)


def token_from_response(document: object) -> tuple[str, float]:
    """The token and its lifetime in seconds from a token service's JSON answer."""
    if not isinstance(document, dict):
        raise ValueError("the answer is not a JSON object")
    token = document.get("token") or document.get("access_token")
    if not isinstance(token, str) or not token:
        raise ValueError("the answer has no token")
    lifetime = document.get("expires_in", DEFAULT_TOKEN_LIFETIME)
    if not isinstance(lifetime, int | float) or isinstance(lifetime, bool) or lifetime <= 0:
        lifetime = DEFAULT_TOKEN_LIFETIME
    return token, float(lifetime)


def basic_header(credentials: Credentials) -> str:
    raw = f"{credentials.username}:{credentials.password}".encode()
    return "Basic " + base64.b64encode(raw).decode()
