"""Every answer from the network is read within a limit, like manifests always were: a huge or
endless tag listing, referrers listing, catalog page, token answer, error body or Rekor answer
is refused with one line naming the URL and the limit, after reading no more than the limit
(not the whole answer: a 300 MiB listing once took 931 MB). The servers are scripted loopback
servers (tests/loopback_http.py)."""

from __future__ import annotations

import gzip
import json
import time
import tracemalloc
from collections.abc import Callable

import pytest

from offline.http_body import ERROR_BODY_LIMIT
from offline.oci import registry_http
from offline.oci.manifest import MAX_MANIFEST_SIZE, OCI_MANIFEST
from offline.oci.registry import Registry
from offline.oci.registry_http import (
    MAX_ANSWER_SIZE,
    MAX_TOKEN_ANSWER_SIZE,
    RegistryAuthError,
    RegistryError,
    RetryPolicy,
)
from offline.tlog.rekor_client import MAX_ANSWER_SIZE as MAX_REKOR_ANSWER
from offline.tlog.rekor_client import RekorClient, RekorUnavailable
from provisioner.copy.catalog import list_repositories
from tests.loopback_http import Answer, LoopbackServer, Seen

FAST = RetryPolicy(attempts=2, base_delay=0.01, max_delay=0.05, total_time=5.0)
DIGEST = "sha256:" + "a" * 64
JSON = {"Content-Type": "application/json"}


def _huge_json(key: str, size: int) -> bytes:
    """A valid JSON listing of about `size` bytes."""
    count = size // 12 + 1
    return json.dumps({key: [f"t{i:09d}" for i in range(count)]}).encode()


def _registry(server: LoopbackServer) -> Registry:
    return Registry(server.host, insecure_http=True, retry=FAST, environ={})


def _serving(answer: Answer) -> Callable[[LoopbackServer, Seen], Answer]:
    return lambda server, seen: answer


def _refused_within(
    call: Callable[[], object], error: type[Exception], url_part: str, limit: int
) -> str:
    """`call` fails with `error`, naming the URL and the limit, without holding much more
    than the limit in memory."""
    tracemalloc.start()
    try:
        with pytest.raises(error) as caught:
            call()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    message = str(caught.value)
    assert "\n" not in message
    assert url_part in message and f"more than {limit} bytes" in message
    assert peak < 3 * limit + 8 * 1024 * 1024, f"peak {peak} for a limit of {limit}"
    return message


@pytest.mark.parametrize("length", [True, False], ids=["declared", "undeclared"])
def test_a_huge_tag_listing_is_refused(length: bool) -> None:
    body = _huge_json("tags", MAX_ANSWER_SIZE + 1024 * 1024)
    with LoopbackServer(_serving(Answer(200, JSON, body, length=length))) as server:
        repo = _registry(server).repository("team/app")
        _refused_within(repo.list_tags, RegistryError, "/v2/team/app/tags/list", MAX_ANSWER_SIZE)


def test_a_compressed_bomb_is_cut_off_after_decompression() -> None:
    body = gzip.compress(b'{"tags":["' + b"a" * (MAX_ANSWER_SIZE + 1) + b'"]}')
    answer = Answer(200, {**JSON, "Content-Encoding": "gzip"}, body)
    assert len(body) < 1024 * 1024
    with LoopbackServer(_serving(answer)) as server:
        repo = _registry(server).repository("team/app")
        _refused_within(repo.list_tags, RegistryError, "tags/list", MAX_ANSWER_SIZE)


def test_a_listing_of_many_pages_is_bounded_in_all(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(registry_http, "MAX_LISTING_SIZE", 1000)

    def pages(server: LoopbackServer, seen: Seen) -> Answer:
        page = len(server.seen)
        link = {"Link": f'</v2/team/app/tags/list?page={page}>; rel="next"'}
        return Answer(200, {**JSON, **link}, _huge_json("tags", 400).replace(b"t0", b"p%d" % page))

    with LoopbackServer(pages) as server:
        repo = _registry(server).repository("team/app")
        with pytest.raises(RegistryError, match="the listing is larger than 1000 bytes"):
            repo.list_tags()
    assert len(server.seen) == 3


def test_a_huge_referrers_listing_is_refused() -> None:
    manifests = [{"mediaType": OCI_MANIFEST, "digest": DIGEST, "size": 1}] * (MAX_ANSWER_SIZE // 80)
    body = json.dumps({"schemaVersion": 2, "manifests": manifests}).encode()
    assert len(body) > MAX_ANSWER_SIZE
    with LoopbackServer(_serving(Answer(200, JSON, body, length=False))) as server:
        repo = _registry(server).repository("team/app")
        _refused_within(
            lambda: repo.referrers(DIGEST), RegistryError, f"/referrers/{DIGEST}", MAX_ANSWER_SIZE
        )


def test_a_huge_catalog_page_is_refused() -> None:
    body = _huge_json("repositories", MAX_ANSWER_SIZE + 1)
    with LoopbackServer(_serving(Answer(200, JSON, body, length=False))) as server:
        registry = _registry(server)
        _refused_within(
            lambda: list_repositories(registry), RegistryError, "/v2/_catalog", MAX_ANSWER_SIZE
        )


def test_a_huge_manifest_without_a_length_is_refused() -> None:
    body = b'{"schemaVersion":2,"layers":[' + b" " * MAX_MANIFEST_SIZE + b"]}"
    answer = Answer(200, {"Content-Type": OCI_MANIFEST}, body, length=False)
    with LoopbackServer(_serving(answer)) as server:
        repo = _registry(server).repository("team/app")
        _refused_within(
            lambda: repo.resolve("v1"), RegistryError, "/manifests/v1", MAX_MANIFEST_SIZE
        )


def test_a_huge_token_answer_is_refused() -> None:
    token = json.dumps({"token": "t" * (MAX_TOKEN_ANSWER_SIZE + 1)}).encode()

    def script(server: LoopbackServer, seen: Seen) -> Answer:
        if seen.path.startswith("/token"):
            return Answer(200, JSON, token, length=False)
        return Answer(401, {"WWW-Authenticate": f'Bearer realm="{server.url}/token"'})

    with LoopbackServer(script) as server:
        repo = _registry(server).repository("team/app")
        _refused_within(repo.list_tags, RegistryAuthError, "/token", MAX_TOKEN_ANSWER_SIZE)


@pytest.mark.parametrize("length", [True, False], ids=["declared", "undeclared"])
def test_a_huge_error_answer_is_cut_short(length: bool) -> None:
    body = b'{"errors":[{"code":"DENIED","message":"' + b"x" * (64 * 1024 * 1024) + b'"}]}'
    answer = Answer(400, JSON, body, length=length)
    with LoopbackServer(_serving(answer)) as server:
        repo = _registry(server).repository("team/app")
        tracemalloc.start()
        try:
            started = time.monotonic()
            with pytest.raises(RegistryError) as caught:
                repo.list_tags()
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    assert "HTTP 400" in str(caught.value) and len(str(caught.value)) < 500
    assert peak < 4 * 1024 * 1024 + 8 * ERROR_BODY_LIMIT
    assert time.monotonic() - started < 10


def test_a_huge_answer_to_a_push_is_refused() -> None:
    body = b"x" * (MAX_ANSWER_SIZE + 1)
    answer = Answer(201, {"Docker-Content-Digest": DIGEST}, body, length=False)
    with LoopbackServer(_serving(answer)) as server:
        repo = _registry(server).repository("team/app")
        raw = json.dumps({"schemaVersion": 2, "mediaType": OCI_MANIFEST}).encode()
        _refused_within(
            lambda: repo.push_manifest(raw, OCI_MANIFEST, "v1"),
            RegistryError,
            "/manifests/v1",
            MAX_ANSWER_SIZE,
        )


@pytest.mark.parametrize("status", [200, 404])
def test_a_huge_rekor_answer_is_refused(status: int) -> None:
    body = json.dumps({"x": "y" * (MAX_REKOR_ANSWER + 1)}).encode()
    with LoopbackServer(_serving(Answer(status, JSON, body, length=False))) as server:
        client = RekorClient(server.url)
        if status == 200:
            _refused_within(client.log_info, RekorUnavailable, "/api/v1/log", MAX_REKOR_ANSWER)
        else:
            tracemalloc.start()
            try:
                with pytest.raises(RekorUnavailable, match="answered 404 to /api/v1/log") as caught:
                    client.log_info()
                _, peak = tracemalloc.get_traced_memory()
            finally:
                tracemalloc.stop()
            assert len(str(caught.value)) < 400
            assert peak < 4 * 1024 * 1024, "an error answer is read only for its message"


def test_a_head_announcing_a_large_blob_is_not_a_large_answer() -> None:
    """A HEAD's Content-Length is the blob's size; there is no body to refuse."""
    big = str(10 * MAX_ANSWER_SIZE)
    answer = Answer(200, {"Content-Length": big, "Docker-Content-Digest": DIGEST})
    with LoopbackServer(_serving(answer)) as server:
        repo = _registry(server).repository("team/app")
        assert repo.blob_exists(DIGEST)
        assert repo.manifest_exists(DIGEST)


def test_an_answer_that_breaks_off_is_asked_again() -> None:
    """Reading the body ourselves keeps what requests did: a broken answer is retried."""

    def script(server: LoopbackServer, seen: Seen) -> Answer:
        if len(server.seen) == 1:
            return Answer(200, {**JSON, "Content-Length": "1000", "Connection": "close"}, b"{")
        return Answer(200, JSON, b'{"tags":["v1"]}')

    with LoopbackServer(script) as server:
        assert _registry(server).repository("team/app").list_tags() == ["v1"]
    assert len(server.seen) == 2
