"""What a Sigstore TUF repository publishes: target files, checked before they are signed.

Names follow what Sigstore clients fetch: `trusted_root.json` (required: cosign v3,
sigstore-go and sigstore-python read trust from it), `signing_config.v0.2.json`, and the
legacy single files `rekor.pub`, `ctfe.pub`, `fulcio_v1.crt.pem`,
`fulcio_intermediate_v1.crt.pem`, `tsa_leaf.crt.pem`, `tsa_intermediate_N.crt.pem`,
`tsa_root.crt.pem`. A legacy file carries custom metadata
`{"sigstore": {"usage": "Rekor"|"CTFE"|"Fulcio"|"TSA", "status": "Active"}}`, which cosign
reads when it falls back from the trusted root (scaffolding's TUF server writes the same).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from offline.errors import UsageError
from offline.inputs import decode_strict_json, read_input
from offline.trust.root import parse_trusted_root

TRUSTED_ROOT = "trusted_root.json"
SIGNING_CONFIG = "signing_config.v0.2.json"
SIGNING_CONFIG_MEDIA_TYPE = "application/vnd.dev.sigstore.signingconfig.v0.2+json"
MAX_TARGET_SIZE = 1024 * 1024  # trust material is kilobytes; the whole repository must fit a Secret
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
_USAGES = (("fulcio", "Fulcio"), ("rekor", "Rekor"), ("ctfe", "CTFE"), ("tsa", "TSA"))


@dataclass(frozen=True)
class Target:
    name: str
    data: bytes

    @property
    def custom(self) -> dict[str, Any] | None:
        return sigstore_custom(self.name)


def sigstore_custom(name: str) -> dict[str, Any] | None:
    if name in (TRUSTED_ROOT, SIGNING_CONFIG):
        return None
    for word, usage in _USAGES:
        if word in name.lower():
            return {"sigstore": {"usage": usage, "status": "Active"}}
    return None


def check_targets(targets: Sequence[Target]) -> list[Target]:
    """`targets` sorted by name, once each is known to be what its name says."""
    seen: set[str] = set()
    for target in targets:
        if not _NAME.fullmatch(target.name):
            raise UsageError(
                f"target name {target.name!r}: use letters, digits, '.', '_' and '-' "
                f"(at most 128, not starting with '.')"
            )
        if target.name in seen:
            raise UsageError(f"target {target.name} is given twice")
        seen.add(target.name)
        check_content(target)
    if TRUSTED_ROOT not in seen:
        raise UsageError(
            f"no {TRUSTED_ROOT} among the targets: Sigstore clients read their trust from it"
        )
    return sorted(targets, key=lambda t: t.name)


def check_content(target: Target) -> None:
    name, data = target.name, target.data
    where = f"target {name}"
    if len(data) > MAX_TARGET_SIZE:
        raise UsageError(f"{where} is larger than {MAX_TARGET_SIZE} bytes")
    if name == TRUSTED_ROOT:
        parse_trusted_root(data, Path(where))
        _sigstore_reads(data, where, "TrustedRoot")
    elif name.startswith("signing_config"):
        if name != SIGNING_CONFIG:
            raise UsageError(
                f"{where}: Sigstore clients fetch the signing config as {SIGNING_CONFIG}"
            )
        document = decode_strict_json(data, where)
        if not isinstance(document, dict) or document.get("mediaType") != SIGNING_CONFIG_MEDIA_TYPE:
            raise UsageError(f"{where}: mediaType must be {SIGNING_CONFIG_MEDIA_TYPE}")
        _sigstore_reads(data, where, "SigningConfig")
    elif name.endswith(".pub"):
        try:
            serialization.load_pem_public_key(data)
        except ValueError:
            raise UsageError(f"{where} is not a PEM public key") from None
    elif name.endswith(".pem"):
        try:
            x509.load_pem_x509_certificates(data)
        except ValueError:
            raise UsageError(f"{where} is not PEM certificates") from None


def _sigstore_reads(data: bytes, where: str, model: str) -> None:
    """sigstore-python's model of the document loads it: what a client will read, we publish."""
    from sigstore_models.trustroot import v1

    try:
        getattr(v1, model).from_json(data)
    except ValueError as exc:  # pydantic's ValidationError is a ValueError
        lines = str(exc).splitlines()
        detail = "; ".join(line.strip() for line in lines[1:3]) or str(exc)
        raise UsageError(
            f"{where}: sigstore-python does not read it as a {model} ({detail})"
        ) from None


def parse_target_args(given: Iterable[str]) -> list[Target]:
    """`NAME=FILE` arguments."""
    targets = []
    for text in given:
        name, sep, file = text.partition("=")
        if not sep or not name or not file:
            raise UsageError(f"--target {text!r}: expected NAME=FILE")
        targets.append(Target(name, read_input(Path(file), f"target {name}", MAX_TARGET_SIZE)))
    return targets


def targets_from_dir(directory: Path) -> list[Target]:
    """Every regular file in `directory`, named as it is (dotfiles left out)."""
    if not directory.is_dir():
        raise UsageError(f"--from {directory}: not a directory")
    targets = []
    for path in sorted(directory.iterdir()):
        if path.name.startswith("."):
            continue
        if path.is_symlink() or not path.is_file():
            raise UsageError(f"--from {directory}: {path.name} is not a regular file")
        targets.append(Target(path.name, read_input(path, f"target {path.name}", MAX_TARGET_SIZE)))
    return targets


def sigstore_targets(
    trusted_root: bytes,
    *,
    signing_config: bytes | None = None,
    rekor_pub: bytes | None = None,
    ctfe_pub: bytes | None = None,
    fulcio_chain: bytes | None = None,
    tsa_chain: bytes | None = None,
) -> list[Target]:
    """The targets for a stack's trust material. Chains are PEM, issuing certificate first and
    root last (as provisioner.stack.trusted_root takes them); they are split into the legacy
    files the way scaffolding names them."""
    targets = [Target(TRUSTED_ROOT, trusted_root)]
    if signing_config is not None:
        targets.append(Target(SIGNING_CONFIG, signing_config))
    if rekor_pub is not None:
        targets.append(Target("rekor.pub", rekor_pub))
    if ctfe_pub is not None:
        targets.append(Target("ctfe.pub", ctfe_pub))
    if fulcio_chain is not None:
        *intermediates, root = _pem_chain(fulcio_chain, "Fulcio chain")
        targets.append(Target("fulcio_v1.crt.pem", root))
        if intermediates:
            targets.append(Target("fulcio_intermediate_v1.crt.pem", b"".join(intermediates)))
    if tsa_chain is not None:
        leaf, *middle, root = _pem_chain(tsa_chain, "TSA chain", at_least=2)
        targets.append(Target("tsa_leaf.crt.pem", leaf))
        targets += [Target(f"tsa_intermediate_{i}.crt.pem", c) for i, c in enumerate(middle)]
        targets.append(Target("tsa_root.crt.pem", root))
    return check_targets(targets)


def _pem_chain(data: bytes, where: str, at_least: int = 1) -> list[bytes]:
    try:
        certs = x509.load_pem_x509_certificates(data)
    except ValueError:
        raise UsageError(f"{where} is not PEM certificates") from None
    if len(certs) < at_least:
        raise UsageError(f"{where} has {len(certs)} certificates, at least {at_least} needed")
    return [c.public_bytes(serialization.Encoding.PEM) for c in certs]
