"""A scripted HTTP(S) server on a loopback address, for what a real registry will not do: a token
realm on another host, a redirect elsewhere, an endless or huge answer. It records every request
(method, path, headers) so tests can say what was sent where. 127.0.0.2 is "another host" on
loopback; nothing here ever listens beyond loopback."""

from __future__ import annotations

import ssl
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType

from tests.registries import TestCA

LOOPBACK = frozenset({"127.0.0.1", "127.0.0.2"})


@dataclass(frozen=True)
class Seen:
    method: str
    path: str
    headers: dict[str, str]


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes = b""
    # False: no Content-Length, the body ends when the connection closes.
    length: bool = True


@contextmanager
def serving(server: ThreadingHTTPServer) -> Iterator[str]:
    """Run `server` (bound on 127.0.0.1) in a thread; yields its base URL, shuts it down."""
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


# The script: what to answer to a request (the server passes itself, to name its own URL).
Script = Callable[["LoopbackServer", Seen], Answer]


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        seen = Seen(self.command, self.path, {k.lower(): v for k, v in self.headers.items()})
        owner = self.server.owner
        with owner.lock:
            owner.seen.append(seen)
        answer = owner.script(owner, seen)
        self.send_response(answer.status)
        if answer.length:
            headers = {"Content-Length": str(len(answer.body)), **answer.headers}
        else:
            headers = {"Connection": "close", **answer.headers}
            self.close_connection = True
        if headers.get("Connection") == "close":
            self.close_connection = True
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        try:
            if self.command != "HEAD":
                self.wfile.write(answer.body)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client stopped reading: what a bounded reader does

    do_HEAD = do_PUT = do_POST = do_PATCH = do_DELETE = do_GET


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    owner: LoopbackServer


class LoopbackServer:
    def __init__(self, script: Script, *, address: str = "127.0.0.1", tls: TestCA | None = None):
        assert address in LOOPBACK, "tests listen on loopback only"
        self.script = script
        self.address = address
        self.seen: list[Seen] = []
        self.lock = threading.Lock()
        self._server = _Server((address, 0), _Handler)
        self._server.owner = self
        self.tls = tls is not None
        if tls is not None:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(tls.server_cert, tls.server_key)
            self._server.socket = context.wrap_socket(self._server.socket, server_side=True)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def host(self) -> str:
        return f"{self.address}:{self._server.server_address[1]}"

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://{self.host}"

    def authorizations(self) -> list[str]:
        with self.lock:
            return [s.headers["authorization"] for s in self.seen if "authorization" in s.headers]

    def __enter__(self) -> LoopbackServer:
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._server.shutdown()
        self._server.server_close()
