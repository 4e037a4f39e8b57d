"""The registry client when things go wrong, through a proxy on loopback in front of a real
registry (go-containerregistry's): 5xx, 429 with Retry-After, dropped connections and bodies
cut short are survived within a bounded number of attempts and time, and a permanent fault is
one clear line; a flipped byte is a verification failure; and the bearer-token flow against a
token service written here, with tokens cached per scope and secrets kept out of errors and logs.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import logging
import random
import secrets
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import IO, Any, cast
from urllib.parse import parse_qs, urlsplit

import pytest

from offline.errors import VerificationFailure
from offline.oci import registry_upload
from offline.oci.blobstream import BlobReader
from offline.oci.digests import DigestMismatch
from offline.oci.manifest import walk
from offline.oci.registry import Registry, Repository
from offline.oci.registry_auth import Credentials
from offline.oci.registry_http import (
    RegistryAuthError,
    RegistryError,
    RegistryUnavailable,
    RetryPolicy,
)
from tests.httpproxy import Proxy, ProxyHandler, Reply
from tests.oci_images import TestImage, make_image, push_image
from tests.registries import RegistryServer

pytestmark = pytest.mark.slow

FAST = RetryPolicy(attempts=4, base_delay=0.05, max_delay=0.2, total_time=10.0)


@pytest.fixture
def image(referrers_registry: RegistryServer, request: pytest.FixtureRequest) -> TestImage:
    """An image in a repository of its own on the real registry."""
    image = make_image(random.Random(request.node.name), layers=2, layer_size=64 * 1024)
    push_image(referrers_registry.client().repository(_name(request)), image, "v1")
    return image


def _name(request: pytest.FixtureRequest) -> str:
    name = "".join(c if c.isalnum() else "-" for c in request.node.name.lower())
    return "faults/" + "-".join(part for part in name.split("-") if part)


def _through(proxy: Proxy, request: pytest.FixtureRequest, **kwargs: object) -> Repository:
    options: dict[str, object] = {"insecure_http": True, "retry": FAST, "environ": {}}
    options.update(kwargs)
    return Registry(proxy.host, **options).repository(_name(request))  # type: ignore[arg-type]


def _read_all(repo: Repository, image: TestImage) -> None:
    assert repo.resolve("v1").digest == image.digest
    for child in repo.fetch_manifest(image.digest).children():
        with repo.open_blob(child.digest, child.size) as reader:
            reader.read()
            assert reader.verified


class FirstN:
    """A request hook that misbehaves on the first `n` requests (all of them if n is None)."""

    def __init__(self, n: int | None, action: str, status: int = 503, retry_after: str = ""):
        self.n, self.action, self.status, self.retry_after = n, action, status, retry_after
        self.faults = 0

    def __call__(self, handler: ProxyHandler, number: int) -> bool:
        if self.n is not None and number > self.n:
            return False
        self.faults += 1
        if self.action == "drop":
            handler.drop()
        else:
            headers = {"Retry-After": self.retry_after} if self.retry_after else {}
            handler.reply(self.status, headers, b'{"errors":[{"code":"UNAVAILABLE"}]}')
        return True


@pytest.mark.parametrize(
    ("action", "status"), [("status", 503), ("status", 500), ("status", 502), ("drop", 0)]
)
def test_transient_faults_are_survived(
    referrers_registry: RegistryServer,
    image: TestImage,
    request: pytest.FixtureRequest,
    action: str,
    status: int,
) -> None:
    fault = FirstN(3, action, status)
    with Proxy(referrers_registry.url, on_request=fault) as proxy:
        _read_all(_through(proxy, request), image)
    assert fault.faults == 3


def test_faults_during_a_push_are_survived(
    referrers_registry: RegistryServer, request: pytest.FixtureRequest
) -> None:
    """Every third request fails: uploads, manifest PUTs and reads still complete."""

    def every_third(handler: ProxyHandler, number: int) -> bool:
        if number % 3 == 0:
            handler.reply(503)
            return True
        return False

    pushed = make_image(random.Random(5))
    with Proxy(referrers_registry.url, on_request=every_third) as proxy:
        repo = _through(proxy, request)
        push_image(repo, pushed, "v1")
        _read_all(repo, pushed)


@pytest.mark.parametrize(("action", "reason"), [("status", "HTTP 503"), ("drop", "closed")])
def test_a_permanent_fault_fails_in_bounded_time(
    referrers_registry: RegistryServer, request: pytest.FixtureRequest, action: str, reason: str
) -> None:
    fault = FirstN(None, action)
    with Proxy(referrers_registry.url, on_request=fault) as proxy:
        repo = _through(proxy, request)
        started = time.monotonic()
        with pytest.raises(RegistryUnavailable) as caught:
            repo.resolve("v1")
        elapsed = time.monotonic() - started
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith(f"registry {proxy.host}, repository {repo.name}: resolving")
    assert reason in message and "after 4 attempts" in message
    assert fault.faults == 4
    assert elapsed < 3  # four attempts, backoff capped at 0.2 s


def test_retry_after_is_honoured(
    referrers_registry: RegistryServer, image: TestImage, request: pytest.FixtureRequest
) -> None:
    fault = FirstN(1, "status", 429, retry_after="1")
    with Proxy(referrers_registry.url, on_request=fault) as proxy:
        started = time.monotonic()
        assert _through(proxy, request).resolve("v1").digest == image.digest
        assert time.monotonic() - started >= 1.0


def test_retry_after_beyond_the_budget_fails_now(
    referrers_registry: RegistryServer, request: pytest.FixtureRequest
) -> None:
    fault = FirstN(None, "status", 503, retry_after="3600")
    with Proxy(referrers_registry.url, on_request=fault) as proxy:
        started = time.monotonic()
        with pytest.raises(RegistryUnavailable, match="HTTP 503 \\(after 1 attempts\\)"):
            _through(proxy, request).resolve("v1")
        assert time.monotonic() - started < 1


def test_not_implemented_is_not_retried(
    referrers_registry: RegistryServer, request: pytest.FixtureRequest
) -> None:
    fault = FirstN(None, "status", 501)
    with (
        Proxy(referrers_registry.url, on_request=fault) as proxy,
        pytest.raises(RegistryError, match="HTTP 501"),
    ):
        _through(proxy, request).resolve("v1")
    assert fault.faults == 1


@pytest.mark.parametrize("ranges_supported", [True, False])
def test_a_blob_download_resumes_where_it_broke(
    referrers_registry: RegistryServer,
    image: TestImage,
    request: pytest.FixtureRequest,
    ranges_supported: bool,
) -> None:
    """The connection breaks halfway through a layer, twice: the client asks for the rest
    (Range) and the digest still checks out; a registry that ignores Range sends it all again
    and the client skips what it has."""
    layer = image.layers[1]
    ranges: list[str | None] = []
    cuts = 0

    def strip_range(handler: ProxyHandler, number: int) -> bool:
        if not ranges_supported and handler.path.endswith(layer.digest):
            ranges.append(handler.headers.get("Range"))
            del handler.headers["Range"]
        return False

    def cut(handler: ProxyHandler, number: int, reply: Reply) -> Reply:
        nonlocal cuts
        if handler.path.endswith(layer.digest) and handler.command == "GET":
            if ranges_supported:
                ranges.append(handler.headers.get("Range"))
            if cuts < 2 and reply.status in (200, 206):
                cuts += 1
                half = reply.body[: len(reply.body) // 2]
                return Reply(reply.status, reply.headers, half, length=len(reply.body), cut=True)
        return reply

    with Proxy(referrers_registry.url, on_request=strip_range, on_response=cut) as proxy:
        repo = _through(proxy, request)
        with repo.open_blob(layer.digest, len(layer.data)) as reader:
            assert reader.read() == layer.data
            assert reader.verified
    assert ranges[0] is None and len(ranges) == 3, ranges
    assert all(r is not None and r.startswith("bytes=") for r in ranges[1:]), ranges


class _Recorded(io.RawIOBase):
    """A file-like source that records the largest read it was asked for; seekable or not."""

    def __init__(self, data: bytes, seekable: bool) -> None:
        super().__init__()
        self._data = io.BytesIO(data)
        self._seekable = seekable
        self.largest = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return self._seekable

    def tell(self) -> int:
        return self._data.tell()

    def seek(self, offset: int, whence: int = 0) -> int:
        assert self._seekable
        return self._data.seek(offset, whence)

    def readinto(self, buffer: Any) -> int:
        self.largest = max(self.largest, len(buffer))
        return self._data.readinto(buffer)


class _SecondPatchFails:
    """Proxy hooks: the upload's second PATCH fails, before the registry saw it (503) or, with
    `registry_got_it`, after (the registry took the chunk; its answer never arrives). Counts
    the PATCHes and the questions how far an upload got."""

    def __init__(self, registry_got_it: bool) -> None:
        self.registry_got_it = registry_got_it
        self.patches = 0
        self.status_checks = 0

    def before(self, handler: ProxyHandler, number: int) -> bool:
        if handler.command == "GET" and "/blobs/uploads/" in handler.path:
            self.status_checks += 1
        if handler.command == "PATCH":
            self.patches += 1
            if self.patches == 2 and not self.registry_got_it:
                handler.reply(503)
                return True
        return False

    def after(self, handler: ProxyHandler, number: int, reply: Reply) -> Reply | None:
        if handler.command == "PATCH" and self.patches == 2 and self.registry_got_it:
            return None
        return reply


@pytest.mark.parametrize("source", ["bytes in memory", "seekable file", "stream"])
@pytest.mark.parametrize("registry_got_it", [False, True])
def test_a_failed_chunk_is_resumed(
    docker_registry: RegistryServer,
    request: pytest.FixtureRequest,
    registry_got_it: bool,
    source: str,
) -> None:
    """The second chunk of an upload fails. Before the registry saw it (503): the client asks
    the upload how far it got and carries on from there. After (the answer is lost):
    Distribution keeps the upload state in the location, so the old location is no longer
    valid and the client starts again from its (rewindable) source. A seekable source larger
    than a piece is streamed: read a piece at a time, whatever the chunk size, and read again
    where a chunk is resumed; a stream is read a chunk at a time (a resumed chunk is sent
    again from memory)."""
    chunk = 512 * 1024
    data = random.Random(11).randbytes(3 * chunk + 100)
    digest = f"sha256:{hashlib.sha256(data).hexdigest()}"
    fault = _SecondPatchFails(registry_got_it)
    assert docker_registry.ca is not None
    with Proxy(
        docker_registry.url,
        ca=docker_registry.ca.ca_cert,
        on_request=fault.before,
        on_response=fault.after,
    ) as proxy:
        repo = _through(proxy, request, credentials=docker_registry.credentials)
        recorded = _Recorded(data, seekable=source == "seekable file")
        stream = cast(IO[bytes], recorded)
        if source == "bytes in memory":
            repo.push_blob(io.BytesIO(data), digest, len(data), chunk_size=chunk)
        elif source == "seekable file" or not registry_got_it:
            repo.push_blob(stream, digest, len(data), chunk_size=chunk)
        else:
            with pytest.raises(RegistryError, match="no longer knows the upload"):
                repo.push_blob(stream, digest, len(data), chunk_size=chunk)
            return
        with repo.open_blob(digest, len(data)) as reader:
            assert reader.read() == data
    assert fault.status_checks == 1
    assert fault.patches == (2 + 4 if registry_got_it else 5)
    if source == "seekable file":
        assert recorded.largest == registry_upload.PIECE_SIZE
    elif source == "stream":
        assert recorded.largest >= chunk


class _NoHashing:
    """Stands in for hashlib in registry_upload: an upload that hashes fails the test."""

    @staticmethod
    def sha256(*args: object) -> Any:
        raise AssertionError("the upload hashed a stream that checks itself")


@pytest.mark.parametrize("registry_got_it", [False, True])
def test_a_self_checking_stream_is_hashed_once_even_when_a_chunk_is_resumed(
    docker_registry: RegistryServer,
    request: pytest.FixtureRequest,
    registry_got_it: bool,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A BlobReader over a file checks its own digest as it is read: the upload does not hash
    it again, and a resumed chunk (the reader moved back, hashing from the start anew) still
    ends in a verified reader and the right blob."""
    chunk = 512 * 1024
    data = random.Random(12).randbytes(3 * chunk + 100)
    digest = f"sha256:{hashlib.sha256(data).hexdigest()}"
    fault = _SecondPatchFails(registry_got_it)
    monkeypatch.setattr(registry_upload, "CHUNK_SIZE", chunk)
    monkeypatch.setattr(registry_upload, "hashlib", _NoHashing)
    assert docker_registry.ca is not None
    with Proxy(
        docker_registry.url,
        ca=docker_registry.ca.ca_cert,
        on_request=fault.before,
        on_response=fault.after,
    ) as proxy:
        repo = _through(proxy, request, credentials=docker_registry.credentials)
        reader = BlobReader(io.BytesIO(data), digest, len(data), "the bundle")
        repo.push_checked_blob(reader, digest, len(data))
        assert reader.verified
        monkeypatch.undo()
        with repo.open_blob(digest, len(data)) as stored:
            assert stored.read() == data
    assert fault.patches > 4  # a chunk was sent again


def test_a_self_checking_stream_that_fails_its_check_commits_nothing(
    docker_registry: RegistryServer, request: pytest.FixtureRequest
) -> None:
    data = random.Random(13).randbytes(2 * 1024 * 1024 + 7)
    digest = f"sha256:{hashlib.sha256(data).hexdigest()}"
    corrupt = bytearray(data)
    corrupt[len(corrupt) // 2] ^= 1
    repo = docker_registry.client().repository(_name(request))
    reader = BlobReader(io.BytesIO(bytes(corrupt)), digest, len(data), "the bundle")
    with pytest.raises(DigestMismatch, match="corrupted or replaced"):
        repo.push_checked_blob(reader, digest, len(data))
    assert not repo.blob_exists(digest)
    # A stream checking another blob is no proof for this one: hashed, and refused.
    other = BlobReader(io.BytesIO(bytes(corrupt)), digest, None, "the bundle")
    with pytest.raises(DigestMismatch):
        repo.push_checked_blob(other, digest, len(data))
    assert not repo.blob_exists(digest)


def _flip(handler: ProxyHandler, number: int, reply: Reply) -> Reply:
    if handler.command == "GET" and reply.status == 200 and "/sha256:" in handler.path:
        body = bytearray(reply.body)
        body[len(body) // 2] ^= 0x20
        return Reply(reply.status, reply.headers, bytes(body))
    return reply


def test_a_flipped_byte_is_caught(
    referrers_registry: RegistryServer, image: TestImage, request: pytest.FixtureRequest
) -> None:
    with Proxy(referrers_registry.url, on_response=_flip) as proxy:
        repo = _through(proxy, request)
        layer = image.layers[0]
        with (
            repo.open_blob(layer.digest, len(layer.data)) as reader,
            pytest.raises(DigestMismatch, match="corrupted or replaced") as caught,
        ):
            reader.read()
        assert isinstance(caught.value, VerificationFailure) and caught.value.exit_code == 1
        with pytest.raises(DigestMismatch, match=f"manifest {image.digest} has content"):
            repo.fetch_manifest(image.digest)
        with pytest.raises(DigestMismatch):
            list(walk(repo, image.digest))


# ------------------------------------------------------------------------------ bearer tokens
@dataclass
class TokenService:
    """A registry front that wants bearer tokens (distribution token auth), and the token
    service that issues them for a username and password."""

    username: str
    password: str
    lifetime: int = 300
    issued: list[tuple[str, ...]] = field(default_factory=list)
    tokens: dict[str, tuple[set[tuple[str, str]], float]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)
    url: str = ""

    def __call__(self, handler: ProxyHandler, number: int) -> bool:
        path = urlsplit(handler.path)
        if path.path == "/token":
            self._issue(handler, parse_qs(path.query))
            return True
        needed = _needed_scope(handler.command, path.path)
        header = handler.headers.get("Authorization", "")
        if header.startswith("Bearer "):
            with self.lock:
                granted, expires = self.tokens.get(header[7:], (set(), 0.0))
            if expires > time.monotonic() and (needed is None or needed in granted):
                return False  # forward to the registry
        scope = f',scope="repository:{needed[0]}:{needed[1]}"' if needed else ""
        challenge = f'Bearer realm="{self.url}/token",service="test-registry"{scope}'
        handler.reply(401, {"WWW-Authenticate": challenge}, b'{"errors":[{"code":"UNAUTHORIZED"}]}')
        return True

    def _issue(self, handler: ProxyHandler, query: dict[str, list[str]]) -> None:
        expected = base64.b64encode(f"{self.username}:{self.password}".encode()).decode()
        if handler.headers.get("Authorization") != f"Basic {expected}":
            handler.reply(401, {}, b'{"details":"incorrect username or password"}')
            return
        scopes = tuple(sorted(query.get("scope", [])))
        granted = set()
        for scope in scopes:
            _, name, actions = scope.split(":")
            granted |= {(name, action) for action in actions.split(",")}
        token = secrets.token_urlsafe(24)
        with self.lock:
            self.issued.append(scopes)
            self.tokens[token] = (granted, time.monotonic() + self.lifetime)
        body = json.dumps({"token": token, "expires_in": self.lifetime})
        handler.reply(200, {"Content-Type": "application/json"}, body.encode())


def _needed_scope(method: str, path: str) -> tuple[str, str] | None:
    for marker in ("/manifests/", "/blobs/", "/tags/", "/referrers/"):
        if marker in path:
            name = path[len("/v2/") : path.index(marker)]
            return (name, "pull" if method in ("GET", "HEAD") else "push")
    return None


@pytest.fixture
def token_registry(referrers_registry: RegistryServer) -> Iterator[tuple[Proxy, TokenService]]:
    service = TokenService("robot", secrets.token_urlsafe(12))
    with Proxy(referrers_registry.url, on_request=service) as proxy:
        service.url = proxy.url
        yield proxy, service


def test_bearer_tokens(
    token_registry: tuple[Proxy, TokenService],
    request: pytest.FixtureRequest,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    proxy, service = token_registry
    repo = _through(proxy, request, credentials=Credentials(service.username, service.password))
    pushed = make_image(random.Random(9))
    push_image(repo, pushed, "v1")
    _read_all(repo, pushed)
    _read_all(repo, pushed)
    # One token per scope, reused for every request that needs it.
    pull, push = f"repository:{repo.name}:pull", f"repository:{repo.name}:pull,push"
    assert sorted(service.issued) == [(pull,), (push,)]
    for token in service.tokens:
        assert token not in caplog.text
    assert service.password not in caplog.text


def test_an_expired_token_is_renewed(
    referrers_registry: RegistryServer, request: pytest.FixtureRequest
) -> None:
    service = TokenService("robot", "secret", lifetime=1)
    with Proxy(referrers_registry.url, on_request=service) as proxy:
        service.url = proxy.url
        repo = _through(proxy, request, credentials=Credentials("robot", "secret"))
        pushed = make_image(random.Random(10))
        push_image(repo, pushed, "v1")
        before = len(service.issued)
        time.sleep(1.1)
        _read_all(repo, pushed)
    assert len(service.issued) > before


def test_refused_credentials_for_a_token(
    token_registry: tuple[Proxy, TokenService],
    request: pytest.FixtureRequest,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    proxy, service = token_registry
    wrong = "wrong-" + secrets.token_urlsafe(8)
    repo = _through(proxy, request, credentials=Credentials(service.username, wrong))
    with pytest.raises(RegistryAuthError) as caught:
        repo.resolve("v1")
    message = str(caught.value)
    assert "\n" not in message
    assert f"token service {proxy.url}/token refused user 'robot'" in message
    assert wrong not in message and wrong not in caplog.text
    anonymous = _through(proxy, request)
    with pytest.raises(RegistryAuthError, match="refused anonymous access"):
        anonymous.resolve("v1")


def test_a_host_that_does_not_resolve_is_named_in_plain_words() -> None:
    import requests

    from offline.oci.registry_http import _reason

    exc = requests.ConnectionError(
        "HTTPSConnectionPool(host='gcr.io', port=443): Max retries exceeded (Caused by "
        'NameResolutionError("<urllib3.connection.HTTPSConnection object>: Failed to resolve '
        "'gcr.io' ([Errno -2] Name or service not known)\"))"
    )
    assert _reason(exc) == "cannot resolve gcr.io (no DNS, or no route to it)"
