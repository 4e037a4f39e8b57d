"""A minimal Rekor v1 API client: what an operator inside the gap needs while the internal
Rekor is reachable (tree heads, consistency proofs, entries with inclusion proofs).

Nothing it returns is trusted: callers verify every signature and proof themselves.
"""

from __future__ import annotations

import json
import os
from typing import Any

import requests
import urllib3.exceptions
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from offline.errors import EnvironmentFailure
from offline.http_body import ERROR_BODY_LIMIT, BodyTooLarge, load, read_body

DEFAULT_TIMEOUT = 30.0
# Retries with exponential backoff for refused connections, 429 and 5xx; AIRGAP_RETRIES overrides.
DEFAULT_RETRIES = 4
# The most one answer may hold: a log entry (its body carries the signed artifact's entry,
# an attestation at most) or a proof; anything larger is not Rekor speaking.
MAX_ANSWER_SIZE = 32 * 1024 * 1024


class RekorUnavailable(EnvironmentFailure):
    """The log could not be asked: network, TLS, or an unexpected answer."""


class RekorClient:
    def __init__(
        self, base_url: str, *, ca_bundle: str | None = None, timeout: float = DEFAULT_TIMEOUT
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.session = requests.Session()
        self.session.verify = ca_bundle if ca_bundle else True
        retries = int(os.environ.get("AIRGAP_RETRIES", DEFAULT_RETRIES))
        retry = Retry(
            total=retries,
            backoff_factor=0.5,
            status_forcelist=(429, 500, 502, 503, 504),
            allowed_methods=frozenset({"GET", "POST"}),
            respect_retry_after_header=True,
        )
        adapter = HTTPAdapter(max_retries=retry)
        self.session.mount("http://", adapter)
        self.session.mount("https://", adapter)

    def _request(self, method: str, path: str, **kwargs: Any) -> Any:
        url = f"{self.base_url}{path}"
        try:
            # Streamed, and read here within a limit: requests would read any size whole.
            with self.session.request(
                method, url, timeout=self.timeout, stream=True, **kwargs
            ) as response:
                if response.status_code >= 400:
                    load(response, ERROR_BODY_LIMIT, truncate=True)
                    detail = response.text.strip().replace("\n", " ")[:200]
                    raise RekorUnavailable(
                        f"Rekor at {self.base_url} answered {response.status_code} to {path}: "
                        + detail
                    )
                body = read_body(response, MAX_ANSWER_SIZE)
        except BodyTooLarge as exc:
            raise RekorUnavailable(f"Rekor at {self.base_url}: {exc}") from None
        except (requests.RequestException, urllib3.exceptions.HTTPError, OSError) as exc:
            reason = _reason(exc) if isinstance(exc, requests.RequestException) else str(exc)
            raise RekorUnavailable(
                f"Rekor at {self.base_url} did not answer {path}: {reason}"
            ) from None
        try:
            return json.loads(body)
        except (ValueError, RecursionError):
            raise RekorUnavailable(f"Rekor at {self.base_url} sent non-JSON for {path}") from None

    def log_info(self) -> dict[str, Any]:
        """GET /api/v1/log: the signed tree head of the active shard and the inactive ones."""
        info = self._request("GET", "/api/v1/log")
        if not isinstance(info, dict):
            raise RekorUnavailable(f"Rekor at {self.base_url}: /api/v1/log is not an object")
        return info

    def consistency_proof(self, first_size: int, last_size: int, tree_id: str) -> dict[str, Any]:
        """GET /api/v1/log/proof between two sizes of one tree."""
        proof = self._request(
            "GET",
            "/api/v1/log/proof",
            params={"firstSize": first_size, "lastSize": last_size, "treeID": tree_id},
        )
        if not isinstance(proof, dict):
            raise RekorUnavailable(f"Rekor at {self.base_url}: /api/v1/log/proof is not an object")
        return proof

    def entry_by_index(self, log_index: int) -> dict[str, Any]:
        """GET /api/v1/log/entries?logIndex=N (the global index): the entry with a fresh
        inclusion proof against the current tree."""
        entries = self._request("GET", "/api/v1/log/entries", params={"logIndex": log_index})
        if not isinstance(entries, dict) or len(entries) != 1:
            raise RekorUnavailable(
                f"Rekor at {self.base_url}: expected one entry for log index {log_index}"
            )
        uuid, entry = next(iter(entries.items()))
        if not isinstance(entry, dict):
            raise RekorUnavailable(f"Rekor at {self.base_url}: entry {uuid} is not an object")
        return {"uuid": uuid, **entry}


def _reason(exc: requests.RequestException) -> str:
    if isinstance(exc, requests.ConnectionError):
        return "could not connect (refused, unreachable, or TLS failed)"
    if isinstance(exc, requests.Timeout):
        return "timed out"
    return str(exc)[:200]
