"""A small HTTP proxy on loopback, in front of a real registry, that tests can make misbehave:
answer 5xx or 429, drop connections, cut a body short, flip a byte, or demand bearer tokens
that it issues itself. Clients talk plain HTTP to it; it talks to the registry over HTTP or
HTTPS (with the test CA)."""

from __future__ import annotations

import http.client
import socket
import ssl
import threading
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from urllib.parse import urlsplit

_HOP_BY_HOP = {
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "host",
    "content-length",
}


@dataclass
class Reply:
    """What the proxy is about to send back; a hook may change it."""

    status: int
    headers: list[tuple[str, str]]
    body: bytes
    # The Content-Length to announce, when not len(body): a HEAD's, or a body cut short.
    length: int | None = None
    cut: bool = False


# A request hook returns True when it answered (or dropped) the request itself.
RequestHook = Callable[["ProxyHandler", int], bool]
# A response hook may change the upstream's reply, or return None to drop the connection.
ResponseHook = Callable[["ProxyHandler", int, Reply], Reply | None]


class ProxyHandler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:
        self.server.proxy.log.append(f"{self.command} {self.path} " + (format % args))

    def do_GET(self) -> None:
        self._handle()

    do_HEAD = do_PUT = do_POST = do_PATCH = do_DELETE = do_GET

    def body(self) -> bytes:
        if not hasattr(self, "_body"):
            length = int(self.headers.get("Content-Length") or 0)
            self._body = self.rfile.read(length) if length else b""
        return self._body

    def reply(self, status: int, headers: dict[str, str] | None = None, body: bytes = b"") -> None:
        self.body()
        self.send_response(status)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def drop(self) -> None:
        """Close the connection without an answer."""
        self.body()
        self.close_connection = True
        self.connection.shutdown(socket.SHUT_RDWR)

    def _handle(self) -> None:
        # One handler serves every request of a keep-alive connection: forget the last body.
        self.__dict__.pop("_body", None)
        proxy = self.server.proxy
        with proxy.lock:
            proxy.count += 1
            number = proxy.count
        if proxy.on_request is not None and proxy.on_request(self, number):
            return
        reply = proxy.forward(self)
        if proxy.on_response is not None:
            changed = proxy.on_response(self, number, reply)
            if changed is None:
                self.drop()
                return
            reply = changed
        self.send_response(reply.status)
        for name, value in reply.headers:
            self.send_header(name, value)
        length = reply.length if reply.length is not None else len(reply.body)
        self.send_header("Content-Length", str(length))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(reply.body)
        if reply.cut:
            # The body ends early: close, as a broken connection would.
            self.wfile.flush()
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    proxy: Proxy


class Proxy:
    def __init__(
        self,
        upstream: str,
        *,
        ca: Path | None = None,
        on_request: RequestHook | None = None,
        on_response: ResponseHook | None = None,
    ) -> None:
        parts = urlsplit(upstream)
        self.upstream_scheme = parts.scheme
        self.upstream_host = parts.netloc
        self.ca = ca
        self.on_request = on_request
        self.on_response = on_response
        self.count = 0
        self.lock = threading.Lock()
        self.log: list[str] = []
        self._server = _Server(("127.0.0.1", 0), ProxyHandler)
        self._server.proxy = self
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self._server.server_address[1]}"

    @property
    def url(self) -> str:
        return f"http://{self.host}"

    def forward(self, handler: ProxyHandler) -> Reply:
        connection: http.client.HTTPConnection
        if self.upstream_scheme == "https":
            context = ssl.create_default_context(cafile=str(self.ca) if self.ca else None)
            connection = http.client.HTTPSConnection(self.upstream_host, context=context)
        else:
            connection = http.client.HTTPConnection(self.upstream_host)
        headers = {k: v for k, v in handler.headers.items() if k.lower() not in _HOP_BY_HOP}
        body = handler.body()
        if body or handler.command in ("PUT", "POST", "PATCH"):
            headers["Content-Length"] = str(len(body))
        try:
            connection.request(handler.command, handler.path, body=body or None, headers=headers)
            response = connection.getresponse()
            data = response.read()
            reply_headers = []
            for name, value in response.getheaders():
                if name.lower() in _HOP_BY_HOP:
                    continue
                if name.lower() == "location":
                    value = value.replace(
                        f"{self.upstream_scheme}://{self.upstream_host}", self.url
                    )
                reply_headers.append((name, value))
            length = response.getheader("Content-Length")
            head_length = int(length) if handler.command == "HEAD" and length else None
            return Reply(response.status, reply_headers, data, length=head_length)
        finally:
            connection.close()

    def start(self) -> Proxy:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> Proxy:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
