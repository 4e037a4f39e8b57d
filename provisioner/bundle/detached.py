"""The detached signature over a signed file (a bundle's manifest, an archive's parts list),
made with an operator key or keylessly, and checked with a public key or a keyless identity.

    name = signature_name("airgap-bundle.json", signer)  # ...json.sig or ...json.sigstore.json
    (directory / name).write_bytes(sign_detached(data, signer))
    who = verify_detached(data, (directory / name).read_bytes(), trust, "airgap-bundle.json")

The two kinds have their own file names, so a signature is never read as the other kind: a key
signature is `<file>.sig` (provisioner/bundle/signing.py), a keyless one `<file>.sigstore.json`
(a Sigstore bundle, provisioner/bundle/keyless.py).
"""

from __future__ import annotations

from pathlib import Path

from provisioner.bundle.keyless import KEYLESS_SUFFIX, KeylessSigner, KeylessTrust
from provisioner.bundle.signing import (
    PrivateKey,
    PublicKey,
    key_id,
    sign_manifest,
    verify_signature,
)

# Who signs: an operator's private key, or an OIDC identity through Sigstore.
ManifestSigner = PrivateKey | KeylessSigner
# Who must have signed: an operator's public key, or a keyless identity and its trusted root.
ManifestTrust = PublicKey | KeylessTrust

KEY_SUFFIX = ".sig"
# A key signature is ~200 bytes; a Sigstore bundle (certificate, log entry with its inclusion
# proof, maybe timestamps) a few KiB. Anything much larger is not a signature.
MAX_KEY_SIGNATURE_SIZE = 64 * 1024
MAX_KEYLESS_SIGNATURE_SIZE = 1024 * 1024


def is_keyless(signer_or_trust: ManifestSigner | ManifestTrust) -> bool:
    return isinstance(signer_or_trust, KeylessSigner | KeylessTrust)


def signature_name(file_name: str, signer_or_trust: ManifestSigner | ManifestTrust) -> str:
    """`x.sig` for a key, `x.sigstore.json` for keyless."""
    return file_name + (KEYLESS_SUFFIX if is_keyless(signer_or_trust) else KEY_SUFFIX)


def signature_names(file_name: str) -> tuple[str, str]:
    """Both names a signature over `file_name` may have (key, keyless)."""
    return file_name + KEY_SUFFIX, file_name + KEYLESS_SUFFIX


def max_signature_size(signer_or_trust: ManifestSigner | ManifestTrust) -> int:
    return MAX_KEYLESS_SIGNATURE_SIZE if is_keyless(signer_or_trust) else MAX_KEY_SIGNATURE_SIZE


def other_kind_hint(directory: Path, file_name: str, trust: ManifestTrust) -> str:
    """When the signature of the expected kind is missing but the other kind is there: a hint
    to add to the message ("" otherwise)."""
    if is_keyless(trust):
        if (directory / (file_name + KEY_SUFFIX)).exists():
            return f" ({file_name} is signed with a key: check it with the public key)"
    elif (directory / (file_name + KEYLESS_SUFFIX)).exists():
        return (
            f" ({file_name} is signed keylessly: check it with the signer's identity, issuer "
            "and trusted root)"
        )
    return ""


def preflight(signer: ManifestSigner) -> None:
    """Fail now, before hours of work, on what can be known without signing (an expired or
    malformed token, an unreadable trust config). Nothing to check for a key."""
    if isinstance(signer, KeylessSigner):
        signer.preflight()


def sign_detached(data: bytes, signer: ManifestSigner) -> bytes:
    """The content of the signature file named by `signature_name`."""
    if isinstance(signer, KeylessSigner):
        return signer.sign(data)
    return sign_manifest(data, signer)


def verify_detached(data: bytes, signature: bytes, trust: ManifestTrust, what: str) -> str:
    """Who signed (`key <key id>`, or `<identity> (<issuer>)`); a one-line VerificationFailure
    if `signature` is not a good signature over `data` by `trust`."""
    if isinstance(trust, KeylessTrust):
        return trust.verify(data, signature, what)
    verify_signature(data, signature, trust)
    return f"key {key_id(trust)}"
