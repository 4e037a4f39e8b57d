"""Keyless signatures over a bundle's signed files (the manifest, the parts list).

On the connected side, an OIDC identity token gets a short-lived Fulcio certificate and the
signature is logged in Rekor (sigstore-python's signer), giving a Sigstore bundle written next
to the file as `<file>.sigstore.json`. By default that is the public-good instance; a private
one is named by a client trust config (`ClientTrustConfig` JSON, media type
`application/vnd.dev.sigstore.clienttrustconfig.v0.1+json`: its `trustedRoot` and its
`signingConfig`, a SigningConfig v0.2 naming Fulcio, Rekor v1 or v2, and any TSAs).

On the disconnected side nothing is contacted: the Sigstore bundle is verified by our own
verifier (offline/sigstore/verify.py) against a trusted root carried in advance, the signer's
identity and issuer must match exactly, and the log entry must carry its inclusion proof.

    signer = KeylessSigner(token, trust_config=Path("private-trust-config.json"))
    signer.preflight()                   # before a long create: the token and the config
    (bundle_dir / "airgap-bundle.json.sigstore.json").write_bytes(signer.sign(manifest))
    KeylessTrust(trusted_root, identity, issuer).verify(manifest, sigstore_json, "manifest")

The token may be given as a Path: it is then read again for each signature, so a token file
that is kept fresh (a Kubernetes projected service-account token) outlives a long create.
"""

from __future__ import annotations

import hashlib
import os
import re
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from offline.errors import EnvironmentFailure, UsageError, VerificationFailure

if TYPE_CHECKING:
    from sigstore.models import ClientTrustConfig
    from sigstore.oidc import IdentityToken

KEYLESS_SUFFIX = ".sigstore.json"
# sigstore-python gives Fulcio and Rekor requests no timeout: a server that accepts and never
# answers would hold a create at its very end forever.
SIGN_TIMEOUT = 120.0


class KeylessSigningError(EnvironmentFailure):
    """Fulcio or Rekor could not be reached, or refused: nothing was signed."""


@dataclass(frozen=True)
class KeylessSigner:
    """Signs with a Fulcio certificate for `token`'s identity, logged in Rekor."""

    # The raw JWT, or a file holding it (read at each signature); never in a repr or a log.
    token: str | Path = field(repr=False)
    trust_config: Path | None = None  # None: the public-good Sigstore instance
    timeout: float = SIGN_TIMEOUT  # seconds for the whole signature (certificate, log entry)
    # The loaded trust config, kept: for the public-good instance each load is a TUF refresh.
    _config: list[ClientTrustConfig] = field(
        default_factory=list, init=False, repr=False, compare=False
    )

    def preflight(self) -> None:
        """What can fail before signing: the trust config, and a token that is malformed, not
        for Sigstore, or expired. Contacts nothing for a private instance."""
        self._load_config()
        self._identity_token()

    def sign(self, data: bytes) -> bytes:
        """The Sigstore bundle (JSON) for a signature over `data`; a one-line error otherwise."""
        from sigstore.sign import SigningContext

        config = self._load_config()
        identity = self._identity_token()
        outcome: list[bytes | BaseException] = []

        def sign() -> None:
            try:
                context = SigningContext.from_trust_config(config)
                # cache=True (the default) is required, not an optimisation: with cache=False,
                # sigstore-python 4.x makes a new ephemeral key on every access, so the CSR and
                # the signature use different keys and Rekor refuses the entry ("invalid
                # signature"). A new context per call still means one certificate per signature.
                with context.signer(identity) as signer:
                    outcome.append(signer.sign_artifact(data).to_json().encode("utf-8"))
            except BaseException as exc:  # network and service errors: Fulcio, CT log, Rekor
                outcome.append(exc)

        # A daemon thread, so that a request that never returns cannot keep the process alive.
        worker = threading.Thread(target=sign, name="keyless-sign", daemon=True)
        worker.start()
        worker.join(self.timeout)
        if not outcome:
            raise KeylessSigningError(
                f"keyless signing failed: no answer from Sigstore within {self.timeout:g} s; "
                "nothing was signed"
            )
        result = outcome[0]
        if isinstance(result, BaseException):
            raise KeylessSigningError(
                f"keyless signing failed: {_signing_problem(result)}; nothing was signed"
            ) from None
        return result

    def _load_config(self) -> ClientTrustConfig:
        if self._config:
            return self._config[0]
        from sigstore.models import ClientTrustConfig

        from offline.inputs import read_input

        text = None
        if self.trust_config is not None:
            if not os.path.lexists(self.trust_config):
                raise UsageError(f"no such Sigstore trust config {self.trust_config}")
            text = read_input(self.trust_config, "Sigstore trust config")
        try:
            if text is not None:
                config = ClientTrustConfig.from_json(text.decode())
            else:
                config = ClientTrustConfig.production()
        except Exception as exc:  # sigstore raises many kinds here (TUF, JSON, pydantic)
            where = self.trust_config or "of the public-good instance"
            raise UsageError(
                f"cannot load the Sigstore trust config {where}: {_config_problem(exc)}"
            ) from None
        self._config.append(config)
        return config

    def _identity_token(self) -> IdentityToken:
        from sigstore.oidc import IdentityError, IdentityToken

        raw = self.token
        if isinstance(raw, Path):
            from offline.inputs import MAX_KEY_SIZE, read_input

            data = read_input(raw, "identity token", MAX_KEY_SIZE)
            raw = data.decode("utf-8", errors="replace")
        try:
            return IdentityToken(raw.strip())
        except IdentityError as exc:
            # sigstore-python hides why ("malformed or missing claims"); the cause says it.
            reason = _describe(exc.__cause__ if exc.__cause__ is not None else exc)
            raise UsageError(f"the identity token is not usable: {reason}") from None


@dataclass(frozen=True)
class KeylessTrust:
    """Who must have signed keylessly, checked offline against `trusted_root`."""

    trusted_root: Path
    identity: str
    issuer: str

    def verify(self, data: bytes, sigstore_json: bytes, what: str) -> str:
        """The signer, `<identity> (<issuer>)`; a one-line VerificationFailure otherwise."""
        from offline.sigstore.model import parse_bundle
        from offline.sigstore.verify import Artifact, IdentityPolicy, verify_bundle
        from offline.trust.root import load_trusted_root

        root = load_trusted_root(self.trusted_root)
        try:
            bundle = parse_bundle(sigstore_json, f"{what} keyless signature")
            if bundle.leaf_certificate is None:
                # A Sigstore bundle signed with a plain key names no identity to check.
                raise VerificationFailure(
                    f"the keyless signature over {what} has no certificate (signed with a key)"
                )
            result = verify_bundle(
                bundle,
                Artifact.from_bytes(data, what),
                root,
                IdentityPolicy(self.identity, self.issuer),
            )
        except UsageError as exc:
            raise VerificationFailure(f"malformed keyless signature: {exc}") from None
        return result.signer


def keyless_signer(data: bytes, sigstore_json: bytes, what: str) -> str:
    """Who a Sigstore bundle over `data` names, `<identity> (<issuer>)`, checking only that it
    parses, holds a certificate and is about `data` (nothing is verified: the signing side has
    no identity to expect; the other side verifies it all)."""
    from offline.sigstore.model import parse_bundle
    from offline.trust.signers import certificate_identities, certificate_issuer

    try:
        bundle = parse_bundle(sigstore_json, f"{what} keyless signature")
    except UsageError as exc:
        raise VerificationFailure(f"malformed keyless signature: {exc}") from None
    message = bundle.model.message_signature
    cert = bundle.leaf_certificate
    if message is None or message.message_digest is None or cert is None:
        raise VerificationFailure(f"the keyless signature over {what} is not a signed digest")
    if message.message_digest.digest != hashlib.sha256(data).digest():
        raise VerificationFailure(f"the keyless signature is over another file, not {what}")
    try:
        identities, issuer = certificate_identities(cert), certificate_issuer(cert)
    except ValueError as exc:
        raise VerificationFailure(f"the keyless signature's certificate: {exc}") from None
    return f"{', '.join(identities) or '(no identity)'} ({issuer or 'no issuer'})"


def _signing_problem(exc: BaseException) -> str:
    """What went wrong talking to Sigstore, in one line: which URL could not be reached or
    what it answered (sigstore-python drops Fulcio's error message; the response has it)."""
    import requests

    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, requests.HTTPError) and current.response is not None:
            response = current.response
            return (
                f"{response.url} answered {response.status_code} {response.reason}"
                f"{_body_message(response.text)}"
            )
        if isinstance(current, requests.Timeout | requests.ConnectionError):
            raw = current.request.url if current.request is not None else None
            url = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw or "Sigstore"
            match = re.search(r"\[Errno -?\d+\] ([^'\")]+)", str(current))
            reason = match.group(1) if match else type(current).__name__
            return f"cannot connect to {url} ({reason})"
        current = current.__cause__ or current.__context__
    if str(exc).strip():
        return f"{type(exc).__name__}: {_describe(exc)}"
    return _describe(exc)


def _body_message(text: str) -> str:
    """`: <message>` from a JSON error body (Fulcio's and Rekor's carry one), or nothing."""
    import json

    try:
        document = json.loads(text)
    except ValueError:
        return ""
    message = document.get("message") if isinstance(document, dict) else None
    if not isinstance(message, str) or not message.strip():
        return ""
    return f": {message.strip().splitlines()[0][:300]}"


def _config_problem(exc: BaseException) -> str:
    errors = getattr(exc, "errors", None)  # a pydantic ValidationError says where
    if callable(errors):
        try:
            first = errors()[0]
            where = ".".join(str(p) for p in first.get("loc", ())) or "document"
            return f"{where}: {first.get('msg', 'invalid')}"
        except (IndexError, TypeError, AttributeError):
            pass
    return _describe(exc)


def _describe(exc: BaseException) -> str:
    """One line: the first line of the message, the type's name when there is none."""
    text = str(exc).strip()
    if not text:
        return type(exc).__name__
    return text.splitlines()[0]
