"""The tests' own OIDC issuer: a discovery document, a JWKS, and ID tokens shaped like Kubernetes
service-account tokens, served on loopback from a thread.

Fulcio (issuer type `kubernetes`) fetches `/.well-known/openid-configuration`, then `jwks_uri`, and
checks iss, aud (its client id), exp and the signature; the certificate's SAN becomes
`https://kubernetes.io/namespaces/<ns>/serviceaccounts/<sa>` from the `kubernetes.io` claim.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

from tests.stack.procs import LOOPBACK

SERVICE_ACCOUNT_PREFIX = "system:serviceaccount:"


def kubernetes_identity(subject: str) -> str:
    """The SAN Fulcio puts in a certificate for a service-account token with this `sub`."""
    namespace, service_account = _split_subject(subject)
    return f"https://kubernetes.io/namespaces/{namespace}/serviceaccounts/{service_account}"


def _split_subject(subject: str) -> tuple[str, str]:
    if not subject.startswith(SERVICE_ACCOUNT_PREFIX) or subject.count(":") != 3:
        raise ValueError(f"not a service-account subject (system:serviceaccount:NS:SA): {subject}")
    _, _, namespace, service_account = subject.split(":")
    return namespace, service_account


class OIDCIssuer:
    """Start with `start(port)`; `url` is the issuer (`iss`) and must equal Fulcio's config."""

    def __init__(self) -> None:
        self.rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.ec_key = ec.generate_private_key(ec.SECP256R1())
        self.kids = {"RS256": f"rsa-{uuid.uuid4().hex[:8]}", "ES256": f"ec-{uuid.uuid4().hex[:8]}"}
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.port: int | None = None
        self.requests: list[str] = []

    @property
    def url(self) -> str:
        if self.port is None:
            raise RuntimeError("the OIDC issuer has no port yet: call start()")
        return f"http://{LOOPBACK}:{self.port}"

    def discovery(self) -> dict[str, Any]:
        return {
            "issuer": self.url,
            "jwks_uri": f"{self.url}/openid/v1/jwks",
            "response_types_supported": ["id_token"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256", "ES256"],
        }

    def jwks(self) -> dict[str, Any]:
        keys = [
            json.loads(RSAAlgorithm.to_jwk(self.rsa_key.public_key())) | self._jwk_fields("RS256"),
            json.loads(ECAlgorithm.to_jwk(self.ec_key.public_key())) | self._jwk_fields("ES256"),
        ]
        return {"keys": keys}

    def _jwk_fields(self, alg: str) -> dict[str, str]:
        return {"kid": self.kids[alg], "alg": alg, "use": "sig"}

    def token(
        self,
        subject: str = "system:serviceaccount:default:builder",
        *,
        audience: str | list[str] = "sigstore",
        algorithm: str = "RS256",
        lifetime: int = 600,
        issuer: str | None = None,
        **claims: Any,
    ) -> str:
        """A signed ID token for `subject` (`system:serviceaccount:<ns>:<sa>`); extra claims
        override the defaults (e.g. `exp=...` for an expired token)."""
        namespace, service_account = _split_subject(subject)
        now = int(time.time())
        payload: dict[str, Any] = {
            "iss": issuer or self.url,
            "sub": subject,
            "aud": audience if isinstance(audience, list) else [audience],
            "iat": now,
            "nbf": now,
            "exp": now + lifetime,
            "kubernetes.io": {
                "namespace": namespace,
                "pod": {"name": f"{service_account}-pod", "uid": str(uuid.uuid4())},
                "serviceaccount": {"name": service_account, "uid": str(uuid.uuid4())},
            },
        }
        payload.update(claims)
        key = self.rsa_key if algorithm == "RS256" else self.ec_key
        return jwt.encode(payload, key, algorithm=algorithm, headers={"kid": self.kids[algorithm]})

    def start(self, port: int = 0) -> None:
        if self._server is not None:
            return
        issuer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                issuer.requests.append(self.path)
                if self.path == "/.well-known/openid-configuration":
                    self._json(issuer.discovery())
                elif self.path == "/openid/v1/jwks":
                    self._json(issuer.jwks())
                else:
                    self.send_error(404)

            def _json(self, body: dict[str, Any]) -> None:
                data = json.dumps(body).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        server = ThreadingHTTPServer((LOOPBACK, port), Handler)
        server.daemon_threads = True
        self.port = int(server.server_address[1])
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, name="oidc-issuer", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        if self._server is None:
            return
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(5)
        self._server = None
        self._thread = None

    @property
    def running(self) -> bool:
        return self._server is not None
