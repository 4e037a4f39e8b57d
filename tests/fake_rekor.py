"""A Rekor v1 read API over a TestLog, served on loopback: enough for `checkpoint fetch` and
`proofs fetch` tests that need a log we can fork, roll back or make lie. The real Rekor is
exercised by the stack tests."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from tests.loopback_http import serving
from tests.tlog_fixture import TestLog

Route = Callable[[dict[str, list[str]]], tuple[int, Any]]


class FakeRekor:
    def __init__(self, log: TestLog) -> None:
        self.log = log
        # Global log index -> a function making the entry as Rekor returns it, when asked.
        self.entries: dict[int, Callable[[], dict[str, Any]]] = {}
        self.overrides: dict[str, Route] = {}
        self.requests: list[str] = []

    def routes(self) -> dict[str, Route]:
        return {
            "/api/v1/log": lambda q: (200, self.log.log_info()),
            "/api/v1/log/proof": self._proof,
            "/api/v1/log/entries": self._entry,
            **self.overrides,
        }

    def _proof(self, query: dict[str, list[str]]) -> tuple[int, Any]:
        first, last = int(query["firstSize"][0]), int(query["lastSize"][0])
        if last > self.log.size or first > last:
            return 400, {"code": 400, "message": "invalid sizes"}
        return 200, self.log.proof_json(first, last)

    def _entry(self, query: dict[str, list[str]]) -> tuple[int, Any]:
        index = int(query["logIndex"][0])
        make = self.entries.get(index)
        if make is None:
            return 404, {"code": 404, "message": "entry not found"}
        return 200, make()


@contextmanager
def serve(rekor: FakeRekor) -> Iterator[str]:
    """Serve `rekor` on 127.0.0.1; yields its base URL."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            url = urlsplit(self.path)
            rekor.requests.append(self.path)
            route = rekor.routes().get(url.path)
            status, body = (
                (404, {"message": "no route"}) if route is None else route(parse_qs(url.query))
            )
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    with serving(ThreadingHTTPServer(("127.0.0.1", 0), Handler)) as url:
        yield url
