"""Registry credentials, authentication challenges and the bearer-token cache.

Credentials come from, in this order: an explicit argument, the environment
(AIRGAP_REGISTRY_USERNAME / AIRGAP_REGISTRY_PASSWORD), or a docker-style config
($DOCKER_CONFIG/config.json, else ~/.docker/config.json, its `auths` entries). Credential helpers
(`credsStore`, `credHelpers`) are not run: a CD host should not execute programs named in a file.

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
from dataclasses import dataclass, field
from pathlib import Path

from offline.errors import UsageError

USERNAME_ENV = "AIRGAP_REGISTRY_USERNAME"
PASSWORD_ENV = "AIRGAP_REGISTRY_PASSWORD"
DOCKER_HUB_ALIASES = frozenset(
    {"docker.io", "index.docker.io", "registry-1.docker.io", "registry.hub.docker.com"}
)
# The distribution token spec: a token without expires_in lasts 60 seconds.
DEFAULT_TOKEN_LIFETIME = 60.0
# Renew a little early, so a token does not expire between the check and the request.
TOKEN_MARGIN = 10.0


@dataclass(frozen=True)
class Credentials:
    username: str
    password: str = field(repr=False)
    source: str = "argument"

    def __str__(self) -> str:
        return f"user {self.username!r} (from {self.source})"


def find_credentials(
    registry: str, explicit: Credentials | None = None, environ: Mapping[str, str] | None = None
) -> Credentials | None:
    """The credentials to use for `registry` (host[:port]), or None for anonymous access."""
    if explicit is not None:
        return explicit
    env = os.environ if environ is None else environ
    username, password = env.get(USERNAME_ENV), env.get(PASSWORD_ENV)
    if username and password is not None:
        return Credentials(username, password, source=f"{USERNAME_ENV}/{PASSWORD_ENV}")
    if username or password:
        raise UsageError(f"set both {USERNAME_ENV} and {PASSWORD_ENV}, or neither")
    return from_docker_config(registry, docker_config_path(env))


def docker_config_path(environ: Mapping[str, str] | None = None) -> Path:
    env = os.environ if environ is None else environ
    directory = env.get("DOCKER_CONFIG")
    if directory:
        return Path(directory) / "config.json"
    return Path.home() / ".docker" / "config.json"


def from_docker_config(registry: str, path: Path) -> Credentials | None:
    try:
        text = path.read_text()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise UsageError(f"docker config {path} is not readable ({exc.strerror})") from exc
    try:
        config = json.loads(text)
    except json.JSONDecodeError as exc:
        raise UsageError(f"docker config {path} is not valid JSON ({exc.msg})") from exc
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


@dataclass(frozen=True)
class Challenge:
    """One challenge of a WWW-Authenticate header: its scheme (lower case) and parameters."""

    scheme: str
    params: dict[str, str]


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


@dataclass
class _CachedToken:
    token: str = field(repr=False)
    expires_at: float


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
