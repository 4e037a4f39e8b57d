"""Content digests as OCI writes them (`sha256:<64 hex>`), and the tag names derived from them.

Only sha256 is accepted: it is what every registry and signer in the chain produces, and a
verifier that accepted weaker or unknown algorithms would have to trust them too.
"""

from __future__ import annotations

import hashlib
import re

from offline.errors import UsageError, VerificationFailure

# A SHA-256 as the project writes it everywhere: 64 lowercase hex digits.
SHA256_HEX = re.compile(r"[0-9a-f]{64}")
_DIGEST = re.compile(rf"sha256:{SHA256_HEX.pattern}")

# cosign's legacy attachment tags: `sha256-<hex>.sig` and friends, in the image's repository.
COSIGN_SUFFIXES = ("sig", "att", "sbom")


class DigestMismatch(VerificationFailure):
    """Content does not hash to (or is not the size of) the digest it was fetched by."""


def is_digest(text: str) -> bool:
    return _DIGEST.fullmatch(text) is not None


def validate_digest(text: str, what: str = "digest") -> str:
    """`text` if it is `sha256:` and 64 lowercase hex digits; a one-line UsageError otherwise."""
    if is_digest(text):
        return text
    if ":" in text and not text.startswith("sha256:"):
        algorithm = text.split(":", 1)[0]
        raise UsageError(f"{what} {text!r}: unsupported algorithm {algorithm!r}, expected sha256")
    raise UsageError(f"{what} {text!r} is not sha256: followed by 64 lowercase hex digits")


def sha256_digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def fallback_tag(digest: str) -> str:
    """The OCI 1.1 referrers fallback tag of `digest` (`sha256-<hex>`)."""
    return validate_digest(digest).replace(":", "-", 1)


def cosign_tag(digest: str, suffix: str) -> str:
    """cosign's legacy tag for `digest`: `sha256-<hex>.sig`, `.att` or `.sbom`."""
    if suffix not in COSIGN_SUFFIXES:
        raise UsageError(f"unknown cosign attachment {suffix!r}: expected one of sig, att, sbom")
    return f"{fallback_tag(digest)}.{suffix}"
