"""TUF key files: Ed25519 PKCS#8 PEM, private keys 0600 and never overwritten, optionally
encrypted with a password (the command line takes it from the environment, never from a flag).
The key files and the bundle keys are written by one function
(provisioner.bundle.signing.generate_key)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from securesystemslib.signer import CryptoSigner, SSlibKey

from offline.errors import UsageError
from provisioner.bundle.signing import generate_key, load_private_key


def make_key(path: Path, key_password: bytes | None) -> SSlibKey:
    """A new key pair at `path` (0600) and `path` with .pub; its TUF public key."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    generate_key(path, "ed25519", key_password)
    return load_signer(path, key_password).public_key


def load_signer(path: Path, key_password: bytes | None) -> CryptoSigner:
    return CryptoSigner(load_private_key(path, key_password))


@dataclass(frozen=True)
class KeySet:
    """The signers found for one role, and how many it needs."""

    role: str
    signers: tuple[CryptoSigner, ...]
    threshold: int

    def require_threshold(self, where: str) -> None:
        if len(self.signers) < self.threshold:
            raise UsageError(
                f"{where}: {len(self.signers)} of the {self.role} role's keys found, "
                f"{self.threshold} needed (threshold); give the directory holding them"
            )


def signers_for(
    directory: Path, role: str, keyids: list[str], threshold: int, key_password: bytes | None
) -> KeySet:
    """The private keys in `directory` that belong to `keyids`; others there are ignored."""
    if not directory.is_dir():
        raise UsageError(f"no key directory {directory}")
    found: dict[str, CryptoSigner] = {}
    for path in sorted(directory.glob("*.key")):
        signer = load_signer(path, key_password)
        if signer.public_key.keyid in keyids:
            found[signer.public_key.keyid] = signer
    return KeySet(role, tuple(found[k] for k in keyids if k in found), threshold)
