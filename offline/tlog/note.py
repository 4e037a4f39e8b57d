"""C2SP signed notes (c2sp.org/signed-note): parsing, key IDs, verifiers and the rules for
verifying a note against a set of known keys.

Three kinds of signer appear on Sigstore checkpoints:
- Rekor v1: key ID = SHA-256(SPKI DER)[:4] for every key type. ECDSA signs SHA-256(text) on
  every curve (rekor `pkg/util/signed_note.go` hashes with SHA-256 whatever the curve, and its
  verifier always checks a SHA-256 digest); Ed25519 signs the text itself.
- Rekor v2 / C2SP logs (rekor-tiles `pkg/note`): Ed25519 key ID = SHA-256(name || "\\n" || 0x01
  || raw key)[:4]; ECDSA key ID = SHA-256(SPKI DER)[:4], signature over the text with the hash the
  key is configured for (sigstore-go loads it from the trusted root's keyDetails; P-256 → SHA-256).
- C2SP tlog-cosignature witnesses: Ed25519 type 0x04, signature = u64 timestamp || Ed25519 over
  "cosignature/v1\\ntime <ts>\\n" + the note text.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Callable, Iterable
from typing import Protocol

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, utils

from offline.errors import UsageError, VerificationFailure
from offline.record import Record
from offline.trust.key_encoding import raw_public_bytes
from offline.trust.root import PublicKey

EM_DASH = "\u2014"
SIGNATURE_PREFIX = EM_DASH + " "
# C2SP asks verifiers to accept at least 16 signatures and to cap the number.
MAX_SIGNATURES = 100
# Generous for 100 post-quantum signatures (~5 kB each), small enough to bound work.
MAX_NOTE_BYTES = 1 << 20
KEY_ID_SIZE = 4

SIG_TYPE_ED25519 = 0x01
SIG_TYPE_ECDSA = 0x02
SIG_TYPE_COSIGNATURE = 0x04
COSIGNATURE_TIMESTAMP_SIZE = 8


class NoteError(VerificationFailure):
    """A signed note is malformed, or its signatures do not verify."""


class NoteFormatError(NoteError):
    """A signed note that cannot be read at all: bad input, not a failed verification."""

    exit_code = 2


class NoteSignature(Record):
    __slots__ = ("key_id", "name", "signature")

    def __init__(self, name: str, key_id: bytes, signature: bytes) -> None:
        self.name = name
        self.key_id = key_id
        self.signature = signature

    def line(self) -> str:
        encoded = base64.b64encode(self.key_id + self.signature).decode()
        return f"{SIGNATURE_PREFIX}{self.name} {encoded}\n"

    def describe(self) -> str:
        return f"{self.name} (key ID {self.key_id.hex()})"


class SignedNote(Record):
    """`text` includes its final newline; it is exactly the signed message."""

    __slots__ = ("signatures", "text")

    def __init__(self, text: str, signatures: tuple[NoteSignature, ...]) -> None:
        self.text = text
        self.signatures = signatures

    @property
    def message(self) -> bytes:
        return self.text.encode()

    def serialize(self) -> str:
        return self.text + "\n" + "".join(s.line() for s in self.signatures)


def is_valid_key_name(name: str) -> bool:
    """C2SP key names: non-empty, no Unicode space, no '+', encodable as UTF-8."""
    if not name or "+" in name or any(c.isspace() for c in name):
        return False
    try:
        name.encode()
    except UnicodeEncodeError:
        return False
    return True


def _check_characters(text: str) -> None:
    for i, char in enumerate(text):
        if char < " " and char != "\n":
            raise NoteFormatError(
                f"signed note contains control character U+{ord(char):04X} at offset {i}"
            )


def _parse_signature_line(line: str, number: int) -> NoteSignature:
    if not line.startswith(SIGNATURE_PREFIX):
        raise NoteFormatError(f"signed note: signature line {number} does not start with '— '")
    name, sep, encoded = line[len(SIGNATURE_PREFIX) :].partition(" ")
    if not sep or not is_valid_key_name(name):
        raise NoteFormatError(f"signed note: signature line {number} has no valid key name")
    try:
        raw = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise NoteFormatError(f"signed note: signature line {number} is not valid base64") from exc
    if len(raw) <= KEY_ID_SIZE:
        raise NoteFormatError(
            f"signed note: signature line {number} is too short to hold a signature"
        )
    return NoteSignature(name=name, key_id=raw[:KEY_ID_SIZE], signature=raw[KEY_ID_SIZE:])


def parse_note(data: bytes | str) -> SignedNote:
    """Parse a signed note; the last blank line separates the text from the signatures."""
    if isinstance(data, bytes):
        if len(data) > MAX_NOTE_BYTES:
            raise NoteFormatError(f"signed note is {len(data)} bytes, more than {MAX_NOTE_BYTES}")
        try:
            data = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise NoteFormatError(f"signed note is not valid UTF-8 ({exc.reason})") from exc
    else:
        try:
            size = len(data.encode())
        except UnicodeEncodeError as exc:  # a lone surrogate, e.g. from a JSON "\\ud800" escape
            raise NoteFormatError(f"signed note is not valid Unicode ({exc.reason})") from exc
        if size > MAX_NOTE_BYTES:
            raise NoteFormatError(f"signed note is more than {MAX_NOTE_BYTES} bytes")
    _check_characters(data)
    split = data.rfind("\n\n")
    if split < 0:
        raise NoteFormatError("signed note has no blank line between its text and its signatures")
    text, block = data[: split + 1], data[split + 2 :]
    if not block:
        raise NoteFormatError("signed note has no signature lines")
    if not block.endswith("\n"):
        raise NoteFormatError("signed note does not end with a newline")
    lines = block[:-1].split("\n")
    if len(lines) > MAX_SIGNATURES:
        raise NoteFormatError(
            f"signed note has {len(lines)} signature lines, more than {MAX_SIGNATURES}"
        )
    signatures = tuple(_parse_signature_line(line, i + 1) for i, line in enumerate(lines))
    return SignedNote(text=text, signatures=signatures)


def as_note(data: bytes | str | SignedNote) -> SignedNote:
    return data if isinstance(data, SignedNote) else parse_note(data)


class NoteVerifier(Protocol):
    """A known key: (name, key ID) says which signature lines it is responsible for."""

    @property
    def name(self) -> str: ...

    @property
    def key_id(self) -> bytes: ...

    def verify(self, message: bytes, signature: bytes) -> bool: ...


class KeyVerifier(Record):
    """A NoteVerifier around one public key; `kind` says which signing rules it follows."""

    __slots__ = ("checker", "key_id", "kind", "name", "public_key")
    _hidden = frozenset({"public_key", "checker"})
    _uncompared = frozenset({"checker"})

    def __init__(
        self,
        name: str,
        key_id: bytes,
        kind: str,
        public_key: PublicKey,
        checker: Callable[[bytes, bytes], None],
    ) -> None:
        self.name = name
        self.key_id = key_id
        self.kind = kind
        self.public_key = public_key
        self.checker = checker

    def verify(self, message: bytes, signature: bytes) -> bool:
        try:
            self.checker(message, signature)
        except (InvalidSignature, ValueError):
            return False
        return True

    def describe(self) -> str:
        return f"{self.name} (key ID {self.key_id.hex()})"


class CosignatureVerifier(Record):
    """A C2SP tlog-cosignature/v1 witness key (Ed25519, signature type 0x04)."""

    __slots__ = ("key_id", "name", "public_key", "raw_key")
    _hidden = frozenset({"public_key"})
    _uncompared = frozenset({"public_key"})

    def __init__(
        self, name: str, key_id: bytes, public_key: ed25519.Ed25519PublicKey, raw_key: bytes
    ) -> None:
        self.name = name
        self.key_id = key_id
        self.public_key = public_key
        self.raw_key = raw_key

    def verify(self, message: bytes, signature: bytes) -> bool:
        if len(signature) != COSIGNATURE_TIMESTAMP_SIZE + 64:
            return False
        signed = cosignature_message(message, cosignature_timestamp(signature))
        try:
            self.public_key.verify(signature[COSIGNATURE_TIMESTAMP_SIZE:], signed)
        except InvalidSignature:
            return False
        return True

    def describe(self) -> str:
        return f"{self.name} (key ID {self.key_id.hex()})"


def cosignature_timestamp(signature: bytes) -> int:
    """The UNIX time (seconds) a witness put in front of its cosignature."""
    return int.from_bytes(signature[:COSIGNATURE_TIMESTAMP_SIZE], "big")


def cosignature_message(note_text: bytes, timestamp: int) -> bytes:
    return b"cosignature/v1\ntime %d\n" % timestamp + note_text


def c2sp_key_id(name: str, sig_type: int, key: bytes) -> bytes:
    return hashlib.sha256(name.encode() + b"\n" + bytes([sig_type]) + key).digest()[:KEY_ID_SIZE]


def der_key_id(public_key_der: bytes) -> bytes:
    return hashlib.sha256(public_key_der).digest()[:KEY_ID_SIZE]


def _raw_ed25519(key: ed25519.Ed25519PublicKey) -> bytes:
    return raw_public_bytes(key)


def _check_name(name: str) -> None:
    if not is_valid_key_name(name):
        raise UsageError(f"{name!r} is not a valid signed-note key name (no spaces, no '+')")


def _ed25519_check(key: ed25519.Ed25519PublicKey) -> Callable[[bytes, bytes], None]:
    def check(message: bytes, signature: bytes) -> None:
        key.verify(signature, message)

    return check


def _ecdsa_check(
    key: ec.EllipticCurvePublicKey, algorithm: hashes.HashAlgorithm
) -> Callable[[bytes, bytes], None]:
    def check(message: bytes, signature: bytes) -> None:
        digest = hashes.Hash(algorithm)
        digest.update(message)
        key.verify(signature, digest.finalize(), ec.ECDSA(utils.Prehashed(algorithm)))

    return check


def _unsupported(public_key: PublicKey, what: str) -> UsageError:
    return UsageError(f"{what}: {type(public_key).__name__} keys cannot sign checkpoints here")


def rekor_v1_verifier(name: str, public_key: PublicKey, public_key_der: bytes) -> KeyVerifier:
    """Rekor v1's checkpoint signer: name = the server's hostname, key ID from the DER key."""
    _check_name(name)
    key_id = der_key_id(public_key_der)
    if isinstance(public_key, ec.EllipticCurvePublicKey):
        check = _ecdsa_check(public_key, hashes.SHA256())
    elif isinstance(public_key, ed25519.Ed25519PublicKey):
        check = _ed25519_check(public_key)
    else:
        raise _unsupported(public_key, f"Rekor v1 log {name}")
    return KeyVerifier(name, key_id, "rekor-v1", public_key, check)


def _ecdsa_hash(key: ec.EllipticCurvePublicKey, key_details: str) -> hashes.HashAlgorithm:
    # keyDetails names the hash (PKIX_ECDSA_P384_SHA_384); without it, the curve's usual one.
    details = key_details.upper()
    if details.endswith("SHA_512"):
        return hashes.SHA512()
    if details.endswith("SHA_384"):
        return hashes.SHA384()
    if details.endswith("SHA_256"):
        return hashes.SHA256()
    return {384: hashes.SHA384(), 521: hashes.SHA512()}.get(key.curve.key_size, hashes.SHA256())


def c2sp_log_verifier(
    origin: str, public_key: PublicKey, public_key_der: bytes, key_details: str = ""
) -> KeyVerifier:
    """A C2SP tlog-checkpoint log (Rekor v2): the key name is the origin."""
    _check_name(origin)
    if isinstance(public_key, ed25519.Ed25519PublicKey):
        key_id = c2sp_key_id(origin, SIG_TYPE_ED25519, _raw_ed25519(public_key))
        return KeyVerifier(origin, key_id, "ed25519", public_key, _ed25519_check(public_key))
    if isinstance(public_key, ec.EllipticCurvePublicKey):
        check = _ecdsa_check(public_key, _ecdsa_hash(public_key, key_details))
        return KeyVerifier(origin, der_key_id(public_key_der), "ecdsa", public_key, check)
    raise _unsupported(public_key, f"log {origin}")


def cosignature_verifier(name: str, public_key: ed25519.Ed25519PublicKey) -> CosignatureVerifier:
    _check_name(name)
    raw = _raw_ed25519(public_key)
    key_id = c2sp_key_id(name, SIG_TYPE_COSIGNATURE, raw)
    return CosignatureVerifier(name=name, key_id=key_id, public_key=public_key, raw_key=raw)


def parse_vkey(vkey: str) -> KeyVerifier | CosignatureVerifier:
    """A C2SP verifier key `<name>+<hex key ID>+<base64(type || key)>`, Ed25519 or cosignature."""
    name, sep1, rest = vkey.strip().partition("+")
    key_id_hex, sep2, encoded = rest.partition("+")
    shown = vkey.strip()[:60]
    if not (sep1 and sep2) or not is_valid_key_name(name):
        raise UsageError(f"vkey {shown!r}: expected <name>+<key ID>+<base64 key>")
    if len(key_id_hex) != 2 * KEY_ID_SIZE:
        raise UsageError(f"vkey {shown!r}: key ID must be 8 hex digits")
    try:
        key_id = bytes.fromhex(key_id_hex)
        raw = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise UsageError(f"vkey {shown!r}: bad hex key ID or base64 key") from exc
    if len(raw) != 33 or raw[0] not in (SIG_TYPE_ED25519, SIG_TYPE_COSIGNATURE):
        kind = f"0x{raw[0]:02x}" if raw else "empty"
        raise UsageError(
            f"vkey {shown!r}: key type {kind} is not supported (Ed25519 0x01 or cosignature 0x04)"
        )
    if c2sp_key_id(name, raw[0], raw[1:]) != key_id:
        raise UsageError(f"vkey {shown!r}: key ID {key_id_hex} does not match the key")
    public_key = ed25519.Ed25519PublicKey.from_public_bytes(raw[1:])
    if raw[0] == SIG_TYPE_COSIGNATURE:
        return cosignature_verifier(name, public_key)
    return KeyVerifier(name, key_id, "ed25519", public_key, _ed25519_check(public_key))


class VerifiedSignature(Record):
    __slots__ = ("signature", "verifier")

    def __init__(self, verifier: NoteVerifier, signature: NoteSignature) -> None:
        self.verifier = verifier
        self.signature = signature


def verify_note(
    note: bytes | str | SignedNote, verifiers: Iterable[NoteVerifier]
) -> tuple[VerifiedSignature, ...]:
    """C2SP rules: ignore signatures from unknown (name, key ID); reject the note if a known key's
    signature fails or if no known key verified. Returns the signatures that verified."""
    note = as_note(note)
    known: dict[tuple[str, bytes], list[NoteVerifier]] = {}
    for verifier in verifiers:
        known.setdefault((verifier.name, verifier.key_id), []).append(verifier)
    verified: list[VerifiedSignature] = []
    for sig in note.signatures:
        candidates = known.get((sig.name, sig.key_id), [])
        if not candidates:
            continue
        match = next((v for v in candidates if v.verify(note.message, sig.signature)), None)
        if match is None:
            raise NoteError(f"signature by {sig.describe()} does not verify")
        verified.append(VerifiedSignature(verifier=match, signature=sig))
    if not verified:
        raise NoteError(f"no signature from a known key ({_describe_keys(known)}); {_found(note)}")
    return tuple(verified)


def _describe_keys(known: dict[tuple[str, bytes], list[NoteVerifier]]) -> str:
    return ", ".join(f"{name} with key ID {key_id.hex()}" for name, key_id in known) or "none"


def _found(note: SignedNote) -> str:
    return "the note is signed by " + ", ".join(s.describe() for s in note.signatures)
