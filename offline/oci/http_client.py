"""HTTP/1.1 for the registry client, on the standard library's `http.client`.

What the registry transport (offline.oci.registry_http) needs and no more: kept-alive
connections pooled per origin and shared by threads, TLS against a CA bundle, proxies from the
environment, redirects for GET and HEAD, separate connect and read timeouts, and bodies that
are always streamed (offline.http_body reads them within a limit), decoded when the server
compressed them anyway. `requests` did this before; its import alone cost a CD host's one-image
check more than the check itself.

A connection goes back to the pool only once its answer has been read to the end; one that was
kept alive but has meanwhile been closed by the server is noticed before reuse and replaced
by a new one (a GET or HEAD that fails on a reused connection is sent once more on a new one;
anything else may have been carried out, and is left to the caller's retries).
"""

from __future__ import annotations

import base64
import http.client
import os
import re
import select
import socket
import ssl
import threading
import zlib
from collections.abc import Iterable, Iterator, Mapping
from typing import Any
from urllib.parse import unquote, urljoin, urlsplit

REDIRECTS = frozenset({301, 302, 303, 307, 308})
MAX_REDIRECTS = 30
MAX_IDLE_PER_ORIGIN = 32
# Left-over body read to keep a connection (an error answer's is a few hundred bytes).
MAX_DRAIN = 64 * 1024
DRAIN_TIMEOUT = 2.0
_READ_CHUNK = 64 * 1024
# A request body: bytes, or pieces sent as they come (with a Content-Length header; one sent
# again, after a 401, is iterated again).
Body = bytes | Iterable[bytes | memoryview] | None


class HttpError(Exception):
    """No answer: the request could not be sent or its answer could not be read."""


class ConnectFailed(HttpError):
    """A connection could not be opened or broke before an answer: refused, reset, closed,
    a host name that does not resolve."""


class TimedOut(HttpError):
    """Connecting or waiting for the answer took longer than its timeout."""


class TlsFailed(ConnectFailed):
    """The TLS handshake failed (the text is OpenSSL's: `[SSL: CODE] detail (_ssl...)`)."""


class BodyBroken(OSError):
    """The answer's body broke off or does not decode (an OSError, as a socket's errors are)."""


class Headers:
    """An answer's headers, looked up without regard to case; a header sent several times reads
    as its values joined with ", " (as HTTP allows)."""

    def __init__(self, items: list[tuple[str, str]]) -> None:
        self._values: dict[str, tuple[str, str]] = {}
        for name, value in items:
            key = name.lower()
            if key in self._values:
                value = f"{self._values[key][1]}, {value}"
            self._values[key] = (name, value)

    def get(self, name: str, default: Any = None) -> Any:
        found = self._values.get(name.lower())
        return found[1] if found is not None else default

    def __getitem__(self, name: str) -> str:
        return self._values[name.lower()][1]

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.lower() in self._values

    def __iter__(self) -> Iterator[str]:
        return (name for name, _ in self._values.values())

    def items(self) -> list[tuple[str, str]]:
        return list(self._values.values())


class _Method:
    """What offline.http_body asks of an answer's request (`response.request.method`)."""

    def __init__(self, method: str) -> None:
        self.method = method


class RawBody:
    """The body as it arrives: `read` and `read1`, decoded (gzip, deflate) when asked."""

    def __init__(self, response: Response, answer: http.client.HTTPResponse) -> None:
        self._response = response
        self._answer = answer
        encoding = (answer.getheader("Content-Encoding") or "").strip().lower()
        self._decoder: Any = None
        if encoding in ("gzip", "x-gzip"):
            self._decoder = zlib.decompressobj(16 + zlib.MAX_WBITS)
        elif encoding == "deflate":
            self._decoder = zlib.decompressobj()
        self._first_deflate = encoding == "deflate"

    def read(self, n: int | None = None, decode_content: bool = True) -> bytes:
        return self._read(n, decode_content, whole=True)

    def read1(self, n: int | None = -1, decode_content: bool = True) -> bytes:
        return self._read(None if n is None or n < 0 else n, decode_content, whole=False)

    def _read(self, n: int | None, decode: bool, *, whole: bool) -> bytes:
        try:
            if self._decoder is None or not decode:
                if n is None:
                    data = self._answer.read() if whole else self._answer.read1(-1)
                else:
                    data = self._answer.read(n) if whole else self._answer.read1(n)
                if self._answer.length and (
                    not data or (whole and n is not None and len(data) < n)
                ):
                    raise http.client.IncompleteRead(data, self._answer.length)
            else:
                data = self._decoded(n, whole)
        except (http.client.HTTPException, zlib.error, ValueError) as exc:
            self._response.close()
            raise BodyBroken(f"the answer broke off or does not decode ({exc!r})") from exc
        except OSError:
            self._response.close()
            raise
        if self._answer.isclosed():
            self._response.release()
        return data

    def _decoded(self, n: int | None, whole: bool) -> bytes:
        parts: list[bytes] = []
        size = 0
        while n is None or size < n:
            pending = self._decoder.unconsumed_tail
            chunk = pending or self._answer.read1(_READ_CHUNK)
            if not chunk and self._answer.length:
                raise http.client.IncompleteRead(b"", self._answer.length)
            if not chunk:
                parts.append(self._decoder.flush())
                break
            if self._first_deflate:
                self._first_deflate = False
                try:
                    zlib.decompressobj().decompress(chunk, 1)
                except zlib.error:  # deflate without the zlib wrapper, as some servers send
                    self._decoder = zlib.decompressobj(-zlib.MAX_WBITS)
            data = self._decoder.decompress(chunk, 0 if n is None else n - size)
            parts.append(data)
            size += len(data)
            if data and not whole:
                break
        return b"".join(parts)


class Response:
    """One answer, its body not yet read (`raw`); `close` (or reading it to the end) gives the
    connection back."""

    def __init__(
        self,
        pool: _Pool,
        key: tuple[str, ...],
        connection: http.client.HTTPConnection,
        answer: http.client.HTTPResponse,
        method: str,
        url: str,
    ) -> None:
        self._pool, self._key, self._connection, self._answer = pool, key, connection, answer
        self.status_code = answer.status
        self.headers = Headers(answer.getheaders())
        self.url = url
        self.request = _Method(method)
        self.raw = RawBody(self, answer)
        # Filled by offline.http_body.load, as requests filled its own.
        self._content: bytes | None = None
        self._content_consumed = False
        self._done = False

    @property
    def content(self) -> bytes:
        if self._content is None:
            self._content = self.raw.read()
            self._content_consumed = True
        return self._content

    @property
    def text(self) -> str:
        return self.content.decode("utf-8", errors="replace")

    def json(self) -> Any:
        import json

        return json.loads(self.content)

    @property
    def links(self) -> dict[str, dict[str, str]]:
        """The Link header's targets by relation: `{"next": {"url": ..., "rel": "next"}}`."""
        found: dict[str, dict[str, str]] = {}
        for target, params in re.findall(
            r"<([^>]*)>((?:\s*;[^,;]*)*)", self.headers.get("Link", "")
        ):
            link = {"url": target}
            for name, value in re.findall(r';\s*([^=;\s]+)\s*=\s*"?([^";]*)"?', params):
                link[name.lower()] = value
            found[link.get("rel", target)] = link
        return found

    def release(self) -> None:
        """The answer was read to the end: its connection may serve the next request."""
        if not self._done:
            self._done = True
            self._pool.put(self._key, self._connection, reusable=not self._answer.will_close)

    def close(self) -> None:
        if self._done:
            return
        if not self._answer.isclosed():
            self._drain()
        if self._answer.isclosed():
            self.release()
            return
        self._done = True  # a body left unread: the connection cannot carry another request
        self._answer.close()
        self._connection.close()

    def _drain(self) -> None:
        """Read what is left of a short body (an error answer, a 401, a body of none), so the
        connection serves the next request instead of a new one being opened."""
        remaining = self._answer.length
        sock = self._connection.sock
        if sock is None or (remaining is not None and remaining > MAX_DRAIN):
            return
        # A server that announces a body and sends none costs at most DRAIN_TIMEOUT here.
        timeout = sock.gettimeout()
        try:
            sock.settimeout(DRAIN_TIMEOUT)
            self._answer.read(MAX_DRAIN + 1 if remaining is None else remaining)
            sock.settimeout(timeout)
        except (OSError, http.client.HTTPException):
            return

    def __enter__(self) -> Response:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class _Pool:
    """Idle kept-alive connections per origin (and proxy)."""

    def __init__(self) -> None:
        self._idle: dict[tuple[str, ...], list[http.client.HTTPConnection]] = {}
        self._lock = threading.Lock()

    def take(self, key: tuple[str, ...]) -> http.client.HTTPConnection | None:
        while True:
            with self._lock:
                idle = self._idle.get(key)
                connection = idle.pop() if idle else None
            if connection is None or not _dropped(connection):
                return connection
            connection.close()

    def put(
        self, key: tuple[str, ...], connection: http.client.HTTPConnection, *, reusable: bool
    ) -> None:
        with self._lock:
            idle = self._idle.setdefault(key, [])
            if reusable and connection.sock is not None and len(idle) < MAX_IDLE_PER_ORIGIN:
                idle.append(connection)
                return
        connection.close()

    def close(self) -> None:
        with self._lock:
            connections = [c for idle in self._idle.values() for c in idle]
            self._idle.clear()
        for connection in connections:
            connection.close()


def _dropped(connection: http.client.HTTPConnection) -> bool:
    """Whether an idle connection was closed by the server (it is readable: end of stream)."""
    sock = connection.sock
    if sock is None:
        return True
    try:
        readable, _, _ = select.select([sock], [], [], 0)
    except (OSError, ValueError):
        return True
    return bool(readable)


class Session:
    """Requests to any number of hosts over pooled connections; safe to share between threads."""

    def __init__(self, *, ca_bundle: str | None, user_agent: str) -> None:
        self._ca_bundle = ca_bundle
        self._user_agent = user_agent
        self._context: ssl.SSLContext | None = None
        self._context_lock = threading.Lock()
        self._pool = _Pool()
        self._proxies: dict[tuple[str, str], str | None] = {}  # the environment, read once

    def _tls(self) -> ssl.SSLContext:
        with self._context_lock:
            if self._context is None:
                cafile = self._ca_bundle
                if cafile is None:  # the bundle requests used: certifi's, not the system's
                    import certifi

                    cafile = certifi.where()
                self._context = ssl.create_default_context(cafile=cafile)
            return self._context

    def request(
        self,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str] | None = None,
        body: Body = None,
        timeout: tuple[float, float],
        allow_redirects: bool = False,
    ) -> Response:
        """Send one request (following redirects when allowed); the answer with its body unread.
        An Authorization header goes only to the origin it was given for."""
        first = origin(url)
        sent = dict(headers or {})
        for _ in range(MAX_REDIRECTS + 1):
            response = self._send(method, url, sent, body, timeout)
            location = response.headers.get("Location")
            if not (allow_redirects and response.status_code in REDIRECTS and location):
                return response
            response.close()
            url = urljoin(url, location)
            if origin(url) != first:
                sent = {k: v for k, v in sent.items() if k.lower() != "authorization"}
        raise ConnectFailed(f"more than {MAX_REDIRECTS} redirects, the last to {safe_url(url)}")

    def _send(
        self,
        method: str,
        url: str,
        headers: dict[str, str],
        body: Body,
        timeout: tuple[float, float],
    ) -> Response:
        parts = urlsplit(url)
        scheme = parts.scheme.lower()
        if scheme not in ("http", "https") or not parts.hostname:
            raise ConnectFailed(f"not an http(s) URL: {safe_url(url)}")
        host = parts.hostname
        port = parts.port or (443 if scheme == "https" else 80)
        proxy = self._proxies.get((scheme, host), "")
        if proxy == "":
            proxy = self._proxies[scheme, host] = _proxy_for(scheme, host)
        key = (scheme, host, str(port), proxy or "")
        target = (
            url
            if proxy and scheme == "http"
            else (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        )
        all_headers = {"User-Agent": self._user_agent, **headers}
        if proxy and scheme == "http":
            all_headers.update(_proxy_authorization(proxy))
        for fresh_only in (False, True):
            connection = None if fresh_only else self._pool.take(key)
            reused = connection is not None
            if connection is None:
                connection = self._connect(scheme, host, port, proxy, timeout)
            try:
                connection.request(method, target, body=body, headers=all_headers)
                answer = connection.getresponse()
            except (ConnectionError, http.client.HTTPException, ssl.SSLError, OSError) as exc:
                connection.close()
                if reused and method in ("GET", "HEAD") and not isinstance(exc, TimeoutError):
                    continue  # a kept-alive connection the server had closed: once more, anew
                raise _failure(exc, host) from None
            except BaseException:
                connection.close()  # a streamed body's source failed: the request is half sent
                raise
            return Response(self._pool, key, connection, answer, method, url)
        raise AssertionError("unreachable")

    def _connect(
        self, scheme: str, host: str, port: int, proxy: str | None, timeout: tuple[float, float]
    ) -> http.client.HTTPConnection:
        connect_timeout, read_timeout = timeout
        connection: http.client.HTTPConnection
        if proxy:
            proxied = urlsplit(proxy)
            proxy_host, proxy_port = proxied.hostname or "", proxied.port or 80
        if scheme == "https":
            connection = http.client.HTTPSConnection(
                proxy_host if proxy else host,
                proxy_port if proxy else port,
                timeout=connect_timeout,
                context=self._tls(),
            )
            if proxy:
                connection.set_tunnel(host, port, headers=_proxy_authorization(proxy))
        else:
            connection = http.client.HTTPConnection(
                proxy_host if proxy else host,
                proxy_port if proxy else port,
                timeout=connect_timeout,
            )
        try:
            connection.connect()
        except (OSError, http.client.HTTPException) as exc:
            connection.close()
            raise _failure(exc, host) from None
        assert connection.sock is not None
        connection.sock.settimeout(read_timeout)
        return connection

    def close(self) -> None:
        self._pool.close()


def _failure(exc: BaseException, host: str) -> HttpError:
    """Our error for what went wrong below, worded as offline.oci.registry_http reads it."""
    if isinstance(exc, ssl.SSLError) and not isinstance(
        exc, ssl.SSLEOFError | ssl.SSLZeroReturnError
    ):
        return TlsFailed(str(exc))
    if isinstance(exc, TimeoutError | socket.timeout):
        return TimedOut("timed out")
    if isinstance(exc, socket.gaierror):
        return ConnectFailed(f"NameResolutionError: Failed to resolve '{host}' ({exc})")
    if isinstance(exc, ConnectionRefusedError):
        return ConnectFailed("Connection refused")
    if isinstance(
        exc, http.client.RemoteDisconnected | ConnectionResetError | BrokenPipeError | ssl.SSLError
    ):
        return ConnectFailed(f"Connection aborted (RemoteDisconnected: {exc})")
    return ConnectFailed(f"{type(exc).__name__}: {exc}")


_PROXY_VARIABLES = ("http_proxy", "https_proxy", "all_proxy")


def _proxy_for(scheme: str, host: str) -> str | None:
    """The proxy the environment names for `scheme`, unless NO_PROXY exempts `host`."""
    if not any(os.environ.get(v) or os.environ.get(v.upper()) for v in _PROXY_VARIABLES):
        return None  # the common case: no proxy, and urllib.request is not imported
    import urllib.request

    proxies = urllib.request.getproxies_environment()
    proxy = proxies.get(scheme) or proxies.get("all")
    if not proxy or urllib.request.proxy_bypass(host):
        return None
    return proxy if "://" in proxy else f"http://{proxy}"


def _proxy_authorization(proxy: str) -> dict[str, str]:
    parts = urlsplit(proxy)
    if parts.username is None:
        return {}
    pair = f"{unquote(parts.username)}:{unquote(parts.password or '')}".encode()
    return {"Proxy-Authorization": "Basic " + base64.b64encode(pair).decode()}


def origin(url: str) -> tuple[str, str]:
    """Scheme and host[:port]: where an Authorization header may go."""
    parts = urlsplit(url)
    return parts.scheme.lower(), parts.netloc.lower()


def safe_url(url: str) -> str:
    """A URL without its query, for messages (queries can carry upload state or scopes)."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}{parts.path}"
