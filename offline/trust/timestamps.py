"""RFC 3161 signed timestamps: a time source that does not depend on the log.

The cryptography is `rfc3161_client`'s; what is here decides which timestamp authority of the
trusted root vouches for a timestamp and whether its validity window covers it.
"""

from __future__ import annotations

from datetime import datetime

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.x509 import InvalidVersion
from rfc3161_client import (
    TimeStampResponse,
    VerificationError,
    VerifierBuilder,
    decode_timestamp_response,
)

from offline.errors import VerificationFailure
from offline.trust.root import CertificateAuthority, TrustedRoot

MAX_TIMESTAMPS = 32


class TimestampFailure(VerificationFailure):
    pass


def verify_timestamps(
    raw_timestamps: list[bytes], signature: bytes, trusted_root: TrustedRoot
) -> list[datetime]:
    """The times vouched for by trusted TSAs; any timestamp that does not verify is an error."""
    if len(raw_timestamps) > MAX_TIMESTAMPS:
        raise TimestampFailure(f"{len(raw_timestamps)} signed timestamps, at most {MAX_TIMESTAMPS}")
    if len(set(raw_timestamps)) != len(raw_timestamps):
        raise TimestampFailure("the bundle carries the same signed timestamp twice")
    if not raw_timestamps:
        return []
    authorities = list(trusted_root.timestamp_authorities)
    if not authorities:
        raise TimestampFailure("the bundle has signed timestamps but the trusted root has no TSA")
    times = []
    for i, raw in enumerate(raw_timestamps):
        try:
            response = decode_timestamp_response(raw)
            gen_time = response.tst_info.gen_time  # parsed lazily: read it here
        except ValueError as exc:
            raise TimestampFailure(f"signed timestamp {i} is malformed ({exc})") from exc
        when = _verify_one(response, gen_time, signature, authorities)
        if when is None:
            raise TimestampFailure(
                f"signed timestamp {i} is not vouched for by any TSA of the trusted root "
                f"within its validity window"
            )
        times.append(when)
    return times


def _verify_with(
    authority: CertificateAuthority, response: TimeStampResponse, signature: bytes
) -> None:
    chain = authority.certificates
    builder = VerifierBuilder().tsa_certificate(chain[0]).add_root_certificate(chain[-1])
    for intermediate in chain[1:-1]:
        builder = builder.add_intermediate_certificate(intermediate)
    try:
        builder.build().verify_message(response, signature)
    except BaseException as exc:
        # rfc3161-client's Rust code panics (PanicException, a BaseException) on a certificate
        # that cryptography reads but OpenSSL does not: that is a failure to verify, not a crash.
        if type(exc).__name__ == "PanicException":
            raise VerificationError("the timestamp verifier could not read a certificate") from exc
        raise


def _verify_one(
    response: TimeStampResponse,
    gen_time: datetime,
    signature: bytes,
    authorities: list[CertificateAuthority],
) -> datetime | None:
    for authority in authorities:
        chain = authority.certificates
        if len(chain) < 2:
            continue
        try:
            _verify_with(authority, response, signature)
        # ValueError: a chain it cannot build, or a malformed token; InvalidVersion and
        # UnsupportedAlgorithm: a certificate inside the token it cannot read.
        except (VerificationError, ValueError, InvalidVersion, UnsupportedAlgorithm):
            continue
        if authority.valid_at(gen_time):
            return gen_time
    return None
