"""Reading an HTTP answer's body with a limit, the one way every answer from the network is read
(a registry's manifests, listings, errors and token answers; Rekor's answers).

requests reads an unstreamed body whole, whatever its size: a hostile server's 300 MiB tag
listing took 931 MB. So requests are always streamed (the registry's answers through
offline.oci.http_client, Rekor's through requests), and the body is read here: at most
`limit` bytes after decompression (a compressed bomb is cut off at the limit too), refused
beyond it, or, for an error answer that only feeds a message, cut short.
"""

from __future__ import annotations

from typing import TYPE_CHECKING
from urllib.parse import urlsplit

if TYPE_CHECKING:
    import requests

    from offline.oci.http_client import Response

    Answer = Response | requests.Response

# An error answer is only read for its message: this much of it is plenty.
ERROR_BODY_LIMIT = 64 * 1024


class BodyTooLarge(ValueError):
    """The answer is larger than the limit; the message names the URL and the limit."""


def read_body(response: Answer, limit: int) -> bytes:
    """The whole body of a streamed `response`, or BodyTooLarge past `limit` bytes."""
    if response.request is not None and response.request.method == "HEAD":
        return b""  # its Content-Length is the size of what a GET would send
    declared = response.headers.get("Content-Length", "").strip()
    encoded = response.headers.get("Content-Encoding", "identity").strip().lower()
    if declared.isdigit() and int(declared) > limit and encoded in ("", "identity"):
        raise BodyTooLarge(_too_large(response, limit))
    data: bytes = response.raw.read(limit + 1, decode_content=True)
    if len(data) > limit:
        raise BodyTooLarge(_too_large(response, limit))
    return data


def load(response: Answer, limit: int, *, truncate: bool = False) -> None:
    """Read a streamed `response`'s body (at most `limit` bytes) into it, so that `.content`,
    `.text` and `.json()` work as for an unstreamed one. Past the limit: BodyTooLarge, or with
    `truncate` the first `limit` bytes (the rest is dropped with the connection)."""
    if is_loaded(response):
        return
    if truncate:
        data: bytes = response.raw.read(limit, decode_content=True)
        complete = response.raw.read(1, decode_content=True) == b""
    else:
        data, complete = read_body(response, limit), True
    # How requests itself stores a body it has read (Response.content).
    response._content = data
    response._content_consumed = True
    if not complete:
        response.close()


def is_loaded(response: Answer) -> bool:
    return bool(getattr(response, "_content_consumed", False))


def _too_large(response: Answer, limit: int) -> str:
    # Without the query: it can carry upload state or signed-URL secrets.
    parts = urlsplit(response.url)
    return f"{parts.scheme}://{parts.netloc}{parts.path} answered more than {limit} bytes"
