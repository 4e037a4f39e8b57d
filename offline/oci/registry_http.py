"""HTTP to one registry: TLS, authentication, retries and timeouts, and one-line errors.

Retries cover what a flaky network or a busy registry does: connection failures, timeouts, 429
and 5xx (not 501). They back off exponentially with full jitter, honour Retry-After, and stop
after a bounded number of attempts and a bounded total time, so a dead registry fails in known
time with a message that says so. TLS failures are never retried: a wrong CA does not heal.

Auth follows the distribution token flow: a request goes out (with a cached token when one
fits), a 401 names the scheme; for Bearer we get a token from the realm for the scopes this
request needs (cached per scope until shortly before it expires); for Basic we send credentials.

Credentials and tokens go only where they belong (offline.oci.registry_auth): an Authorization
header only to the registry's own origin (scheme, host and port: never to a redirect target or
an upload location elsewhere); the registry's credentials to a token service on its own host,
another host's realm only that host's own credentials and only over HTTPS; a plain-HTTP realm is
refused unless its host was allowed plain HTTP (RegistryOptions.insecure_http_hosts).

Why one module of some 600 lines: the retry loop and the token flow are one request's life. A
401 inside the retry loop starts the token flow, which fetches through the same session with
the same TLS, proxy, timeout and retry settings, under the same lock, and fails with the same
one-line messages; the credentials it chooses also word the 401 and 403 errors. Taken apart,
the token flow would have to reach back into the transport for nearly all of its state. What
has no such state is already elsewhere: credentials, challenges and the token cache in
registry_auth, bounded body reads in offline.http_body.
"""

from __future__ import annotations

import email.utils
import json
import os
import random
import re
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import urlencode, urljoin, urlsplit

from offline.debuglog import debug
from offline.errors import AirgapError, EnvironmentFailure, UsageError
from offline.http_body import ERROR_BODY_LIMIT, BodyTooLarge, load, read_body
from offline.oci.http_client import (
    Body,
    ConnectFailed,
    HttpError,
    Response,
    Session,
    TimedOut,
    TlsFailed,
)
from offline.oci.http_client import origin as _origin
from offline.oci.http_client import safe_url as _safe
from offline.oci.registry_auth import (
    Credentials,
    TokenCache,
    basic_header,
    find_credentials,
    parse_www_authenticate,
    realm_credentials_host,
    token_from_response,
)
from offline.record import Record

CA_ENV = "AIRGAP_REGISTRY_CA"
USER_AGENT = "airgap-oci/0.1"
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
# The most a registry answer other than a blob may hold (a manifest, a page of a listing): the
# size of the largest manifest accepted (offline.oci.manifest.MAX_MANIFEST_SIZE, which is not
# imported here to keep this module below offline.oci.manifest).
MAX_ANSWER_SIZE = 16 * 1024 * 1024
# A token service's answer: a token (a JWT of a few kilobytes) and its lifetime.
MAX_TOKEN_ANSWER_SIZE = 1024 * 1024
# One paginated listing (tags, referrers, the catalog), all its pages together.
MAX_LISTING_SIZE = 64 * 1024 * 1024
MAX_PAGES = 10_000
_MAX_ERROR_TEXT = 200


class RegistryError(AirgapError):
    """The registry could not do what was asked (one line: registry, repository, what)."""


class RegistryAuthError(RegistryError):
    """Missing or refused credentials, or access denied."""


class PlainHttpRefused(RegistryAuthError):
    """A plain-HTTP token service on a host the caller did not allow plain HTTP; `host` is
    what to allow (a command line names its own flag for that)."""

    def __init__(self, message: str, host: str = "") -> None:  # "": a wrapper's copy
        super().__init__(message)
        self.host = host


class RegistryUnavailable(RegistryError, EnvironmentFailure):
    """No usable answer after the retries: connection, TLS, timeouts, 429/5xx."""


class RetryPolicy(Record):
    __slots__ = ("attempts", "base_delay", "max_delay", "total_time")

    def __init__(
        self,
        attempts: int = 6,
        base_delay: float = 0.5,
        max_delay: float = 15.0,
        total_time: float = 120.0,
    ) -> None:
        self.attempts = attempts
        self.base_delay = base_delay
        self.max_delay = max_delay
        self.total_time = total_time

    def delay(self, attempt: int) -> float:
        """Full jitter (a random wait up to the exponential bound), so that many clients that
        failed together do not come back together."""
        return random.uniform(0, min(self.max_delay, self.base_delay * (2**attempt)))


class Timeouts(Record):
    __slots__ = ("connect", "read")

    def __init__(self, connect: float = 10.0, read: float = 60.0) -> None:
        self.connect = connect
        self.read = read


class Transport:
    """Requests to one registry host, shared by all its repositories (and threads)."""

    def __init__(
        self,
        host: str,
        *,
        credentials: Credentials | None = None,
        ca_bundle: str | Path | None = None,
        insecure_http: bool = False,
        http_hosts: frozenset[str] = frozenset(),
        retry: RetryPolicy | None = None,
        timeouts: Timeouts | None = None,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        self.host = host
        # Docker Hub's name and its API endpoint differ.
        endpoint = "registry-1.docker.io" if host == "docker.io" else host
        self.base_url = f"{'http' if insecure_http else 'https'}://{endpoint}"
        env = dict(environ) if environ is not None else None
        self._environ = env
        self._credentials = find_credentials(host, credentials, env)
        # Hosts a plain-HTTP token service may be on: those the user allowed plain HTTP.
        self._http_hosts = {h.lower() for h in http_hosts} | (
            {host.lower()} if insecure_http else set()
        )
        self._realm_credentials: dict[str, Credentials | None] = {}
        ca = (
            ca_bundle
            if ca_bundle is not None
            else (env if env is not None else os.environ).get(CA_ENV)
        )
        if ca and not Path(ca).is_file():
            raise UsageError(f"registry CA bundle {ca} does not exist or is not a file")
        self.retry = retry or RetryPolicy()
        self.timeouts = timeouts or Timeouts()
        # One pool of kept-alive connections per origin, shared by every thread of the run; no
        # ~/.netrc, and no CA override from the environment but CA_ENV; proxies from it.
        self._session = Session(ca_bundle=str(ca) if ca else None, user_agent=USER_AGENT)
        self._tokens = TokenCache()
        self._lock = threading.Lock()
        self._scheme: str | None = None  # "basic" or "bearer", once the registry told us
        self._bearer: dict[str, str] = {}

    # ----------------------------------------------------------------------------------------
    def url(self, path: str, params: Mapping[str, str] | None = None) -> str:
        """`path` under the registry (absolute URLs, e.g. upload locations, are kept)."""
        url = urljoin(self.base_url + "/", path)
        if params:
            url += ("&" if urlsplit(url).query else "?") + urlencode(params)
        return url

    def request(
        self,
        method: str,
        url: str,
        *,
        what: str,
        repository: str,
        scopes: tuple[str, ...],
        headers: Mapping[str, str] | None = None,
        body: Body = None,
        stream: bool = False,
        retry: bool = True,
    ) -> Response:
        """One logical request: auth, retries; the response whatever its status (the caller
        decides what a 404 means). Raises RegistryUnavailable when no answer came."""
        started = time.monotonic()
        attempt = 0
        auth_tried = False
        override: str | None = None  # the Authorization a 401 told us to use
        while True:
            try:
                response = self._send(
                    method,
                    url,
                    headers,
                    body,
                    stream,
                    override or self._authorization(scopes, repository, what),
                )
            except TlsFailed as exc:
                raise RegistryUnavailable(
                    self._message(repository, what, _tls_reason(exc))
                ) from None
            except (ConnectFailed, TimedOut) as exc:
                reason = _reason(exc)
                if not retry or not self._wait(attempt, started, None):
                    raise RegistryUnavailable(
                        self._message(repository, what, f"{reason} (after {attempt + 1} attempts)")
                    ) from None
                debug(__name__, "%s %s: %s; retrying", method, _safe(url), reason)
                attempt += 1
                continue
            if response.status_code == 401 and not auth_tried:
                auth_tried = True
                challenge = response.headers.get("WWW-Authenticate", "")
                response.close()
                override = self._authenticate(challenge, scopes, repository, what)
                continue
            if response.status_code in RETRY_STATUSES and retry:
                delay_hint = _retry_after(response.headers.get("Retry-After"))
                status = response.status_code
                response.close()
                if not self._wait(attempt, started, delay_hint):
                    raise RegistryUnavailable(
                        self._message(
                            repository, what, f"HTTP {status} (after {attempt + 1} attempts)"
                        )
                    )
                debug(__name__, "%s %s: HTTP %s; retrying", method, _safe(url), status)
                attempt += 1
                continue
            if response.status_code == 401:
                response.close()
                raise RegistryAuthError(self._auth_refused(repository, what))
            broken = None if stream else self._load(response, repository, what)
            if broken is not None:
                # As a failed connection: the answer broke off (requests retried this too when
                # it read bodies itself).
                if not retry or not self._wait(attempt, started, None):
                    raise RegistryUnavailable(
                        self._message(repository, what, f"{broken} (after {attempt + 1} attempts)")
                    )
                attempt += 1
                continue
            return response

    def _load(self, response: Response, repository: str, what: str) -> str | None:
        """Read an answer the caller did not stream, within MAX_ANSWER_SIZE (an error answer is
        cut short instead: it only feeds a message); why reading broke off, if it did."""
        try:
            if response.status_code >= 300:
                load(response, ERROR_BODY_LIMIT, truncate=True)
            else:
                load(response, MAX_ANSWER_SIZE)
        except BodyTooLarge as exc:
            response.close()
            raise RegistryError(self._message(repository, what, str(exc))) from None
        except (HttpError, OSError) as exc:
            response.close()
            return f"reading the answer broke off ({type(exc).__name__})"
        return None

    def _send(
        self,
        method: str,
        url: str,
        headers: Mapping[str, str] | None,
        body: Body,
        stream: bool,
        authorization: str | None,
    ) -> Response:
        all_headers = dict(headers or {})
        # Only to the registry's own origin: never to an upload location on another host or
        # over plain HTTP (the session drops it on a redirect to another origin).
        if authorization and _origin(url) == _origin(self.base_url):
            all_headers["Authorization"] = authorization
        # Always streamed: `request` reads the body within a limit (offline.http_body).
        return self._session.request(
            method,
            url,
            headers=all_headers,
            body=body,
            timeout=(self.timeouts.connect, self.timeouts.read),
            allow_redirects=method in ("GET", "HEAD"),
        )

    def _wait(self, attempt: int, started: float, hint: float | None) -> bool:
        """Sleep before the next attempt; False when the attempts or the time are used up."""
        if attempt + 1 >= self.retry.attempts:
            return False
        delay = hint if hint is not None else self.retry.delay(attempt)
        if time.monotonic() - started + delay > self.retry.total_time:
            return False
        time.sleep(delay)
        return True

    # ---------------------------------------------------------------------------- auth
    def _authorization(self, scopes: tuple[str, ...], repository: str, what: str) -> str | None:
        with self._lock:
            scheme, bearer = self._scheme, dict(self._bearer)
        if scheme == "basic" and self._credentials is not None:
            return basic_header(self._credentials)
        if scheme == "bearer":
            key = tuple(sorted(set(scopes)))
            token = self._tokens.get(bearer["realm"], bearer.get("service", ""), key)
            if token is None:
                token = self._fetch_token(bearer, key, repository, what)
            return f"Bearer {token}"
        return None

    def _authenticate(
        self, header: str, scopes: tuple[str, ...], repository: str, what: str
    ) -> str | None:
        """Learn the scheme from a 401's challenge; the Authorization to retry with."""
        challenges = {c.scheme: c for c in parse_www_authenticate(header)}
        if "bearer" in challenges and "realm" in challenges["bearer"].params:
            params = dict(challenges["bearer"].params)
            # A challenge's scope is for the request that failed; ours are added per request.
            scope = params.pop("scope", None)
            with self._lock:
                self._scheme, self._bearer = "bearer", params
            key = tuple(sorted(set(scopes) | _split_scope(scope)))
            return f"Bearer {self._fetch_token(params, key, repository, what)}"
        if "basic" in challenges:
            if self._credentials is None:
                raise RegistryAuthError(self._auth_refused(repository, what))
            with self._lock:
                self._scheme = "basic"
            return basic_header(self._credentials)
        raise RegistryAuthError(
            self._message(repository, what, f"HTTP 401 with an unsupported challenge {header!r}")
        )

    def _fetch_token(
        self, bearer: Mapping[str, str], scopes: tuple[str, ...], repository: str, what: str
    ) -> str:
        realm, service = bearer["realm"], bearer.get("service", "")
        credentials = self._credentials_for_realm(realm, repository, what)
        params = [("service", service)] if service else []
        params += [("scope", scope) for scope in scopes]
        url = realm + ("&" if urlsplit(realm).query else "?") + urlencode(params)
        headers = {}
        if credentials is not None:
            headers["Authorization"] = basic_header(credentials)
        started, attempt = time.monotonic(), 0
        while True:
            try:
                response = self._session.request(
                    "GET",
                    url,
                    headers=headers,
                    timeout=(self.timeouts.connect, self.timeouts.read),
                    allow_redirects=True,
                )
            except TlsFailed as exc:
                raise RegistryUnavailable(
                    self._message(
                        repository, what, f"token service {_safe(realm)}: " + _tls_reason(exc)
                    )
                ) from None
            except (ConnectFailed, TimedOut) as exc:
                if not self._wait(attempt, started, None):
                    raise RegistryUnavailable(
                        self._message(
                            repository, what, f"token service {_safe(realm)}: {_reason(exc)}"
                        )
                    ) from None
                attempt += 1
                continue
            if response.status_code in RETRY_STATUSES and self._wait(
                attempt, started, _retry_after(response.headers.get("Retry-After"))
            ):
                response.close()
                attempt += 1
                continue
            break
        with response:
            return self._token_answer(
                response, realm, service, scopes, credentials, repository, what
            )

    def _token_answer(
        self,
        response: Response,
        realm: str,
        service: str,
        scopes: tuple[str, ...],
        credentials: Credentials | None,
        repository: str,
        what: str,
    ) -> str:
        if response.status_code in (401, 403):
            raise RegistryAuthError(
                self._message(
                    repository,
                    what,
                    f"token service {_safe(realm)} refused "
                    + (str(credentials) if credentials else "anonymous access")
                    + f" (HTTP {response.status_code})"
                    + self._not_sent_hint(realm, credentials),
                )
            )
        if response.status_code != 200:
            raise RegistryAuthError(
                self._message(
                    repository, what, f"token service {_safe(realm)}: HTTP {response.status_code}"
                )
            )
        try:
            token, lifetime = token_from_response(
                json.loads(read_body(response, MAX_TOKEN_ANSWER_SIZE))
            )
        except (HttpError, OSError) as exc:
            raise RegistryUnavailable(
                self._message(repository, what, f"token service {_safe(realm)}: {_reason(exc)}")
            ) from None
        except RecursionError:
            raise RegistryAuthError(
                self._message(repository, what, f"token service {_safe(realm)}: nested too deep")
            ) from None
        except ValueError as exc:  # BodyTooLarge, not JSON, no token
            raise RegistryAuthError(
                self._message(repository, what, f"token service {_safe(realm)}: {exc}")
            ) from None
        self._tokens.put(realm, service, scopes, token, lifetime)
        return token

    def _credentials_for_realm(self, realm: str, repository: str, what: str) -> Credentials | None:
        """What the token service at `realm` may be sent. Refuses a realm that is not an
        http(s) URL, and a plain-HTTP one on a host the user did not allow plain HTTP."""
        parts = urlsplit(realm)
        scheme, netloc = parts.scheme.lower(), parts.netloc.lower()
        if scheme not in ("https", "http") or not parts.hostname or "@" in netloc:
            raise RegistryAuthError(
                self._message(repository, what, f"the token service {realm!r} is not an https URL")
            )
        if scheme == "http" and netloc not in self._http_hosts:
            raise PlainHttpRefused(
                self._message(
                    repository,
                    what,
                    f"the token service {_safe(realm)} is plain HTTP, and {netloc} is not "
                    "allowed plain HTTP: allow it only if that is really meant",
                ),
                netloc,
            )
        owner = realm_credentials_host(self.host, scheme, netloc)
        if owner == self.host:
            return self._credentials
        with self._lock:
            if netloc not in self._realm_credentials:
                self._realm_credentials[netloc] = find_credentials(
                    owner or netloc, None, self._environ
                )
            return self._realm_credentials[netloc]

    def _not_sent_hint(self, realm: str, sent: Credentials | None) -> str:
        if sent is not None or self._credentials is None:
            return ""
        host = urlsplit(realm).netloc
        return (
            f"; the credentials for {self.host} are not sent to another host: give {host} "
            "its own docker config entry if it should have them"
        )

    def _auth_refused(self, repository: str, what: str) -> str:
        if self._credentials is None:
            return self._message(
                repository,
                what,
                "authentication required: give credentials for this host (AIRGAP_REGISTRY_USERNAME "
                f"and AIRGAP_REGISTRY_PASSWORD with AIRGAP_REGISTRY_HOST={self.host}, or a "
                "docker config.json entry)",
            )
        return self._message(repository, what, f"the registry refused {self._credentials}")

    # ---------------------------------------------------------------------------- errors
    def _message(self, repository: str, what: str, reason: str) -> str:
        where = f"registry {self.host}" + (f", repository {repository}" if repository else "")
        return f"{where}: {what} failed: {reason}"

    def error(
        self,
        response: Response,
        repository: str,
        what: str,
        cls: type[RegistryError] = RegistryError,
    ) -> RegistryError:
        """The one-line error for an unexpected answer, with the registry's error codes."""
        status = response.status_code
        detail = _error_detail(response)
        if status == 403 and cls is RegistryError:
            cls = RegistryAuthError
        reason = f"HTTP {status}" + (f" {detail}" if detail else "")
        if status == 403:
            reason += f" (access denied for {self._credentials or 'anonymous access'})"
        return cls(self._message(repository, what, reason))

    def message(self, repository: str, what: str, reason: str) -> str:
        return self._message(repository, what, reason)

    def close(self) -> None:
        self._session.close()


class Pages:
    """The pages of one paginated listing: none asked for twice, and no more than MAX_PAGES
    pages or MAX_LISTING_SIZE bytes in all (each page is within MAX_ANSWER_SIZE already)."""

    def __init__(self, transport: Transport, repository: str, what: str) -> None:
        self._transport, self._repository, self._what = transport, repository, what
        self._seen: set[str] = set()
        self._bytes = 0

    def visit(self, url: str) -> None:
        if url in self._seen or len(self._seen) >= MAX_PAGES:
            raise self._error("pagination does not end")
        self._seen.add(url)

    def count(self, response: Response) -> None:
        self._bytes += len(response.content)
        if self._bytes > MAX_LISTING_SIZE:
            raise self._error(
                f"the listing is larger than {MAX_LISTING_SIZE} bytes (at {_safe(response.url)})"
            )

    def _error(self, reason: str) -> RegistryError:
        return RegistryError(self._transport.message(self._repository, self._what, reason))


def _split_scope(scope: str | None) -> set[str]:
    return set(scope.split(" ")) if scope else set()


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _error_detail(response: Response) -> str:
    """The registry's error codes and messages, else the start of its text, on one line."""
    try:
        load(response, ERROR_BODY_LIMIT, truncate=True)
    except (HttpError, OSError):
        return ""
    try:
        document = response.json()
    except (ValueError, RecursionError):
        document = None
    if isinstance(document, dict) and isinstance(document.get("errors"), list):
        parts = []
        for item in document["errors"]:
            if isinstance(item, dict):
                code, message = item.get("code", ""), item.get("message", "")
                parts.append(f"{code}: {message}" if message else str(code))
        text = "; ".join(parts)
    else:
        text = response.text
    text = " ".join(text.split())
    return text[:_MAX_ERROR_TEXT] + ("..." if len(text) > _MAX_ERROR_TEXT else "")


def _tls_reason(exc: Exception) -> str:
    """What went wrong in a TLS handshake, and what to do about it, on one line."""
    found = re.search(r"\[SSL: ([A-Z_]+)\] (.+?) \(_ssl", str(exc))
    code, detail = found.groups() if found else ("", _reason(exc))
    if code == "WRONG_VERSION_NUMBER":
        return "the server does not speak TLS (a plain-HTTP registry must be allowed explicitly)"
    if code == "CERTIFICATE_VERIFY_FAILED":
        return (
            f"TLS verification failed ({detail}); pass the registry's CA bundle (or set {CA_ENV})"
        )
    return f"TLS handshake failed ({detail})"


def _reason(exc: Exception) -> str:
    """A short, one-line reason from a failed request, without its repr noise."""
    text = str(exc)
    for marker in ("Caused by ", "(Caused by "):
        if marker in text:
            text = text.split(marker, 1)[1]
    text = " ".join(text.split()).strip("()'\"")
    kind = type(exc).__name__
    if isinstance(exc, TimedOut):
        return "timed out"
    if "Connection refused" in text:
        return "connection refused"
    if "RemoteDisconnected" in text or "Connection aborted" in text:
        return "connection closed by the server"
    if "NameResolutionError" in text or "Name or service not known" in text:
        named = re.search(r"host='([^']+)'|resolve '([^']+)'", str(exc))
        host = (named.group(1) or named.group(2)) if named else "the host name"
        return f"cannot resolve {host} (no DNS, or no route to it)"
    return f"{kind}: {text[:_MAX_ERROR_TEXT]}"
