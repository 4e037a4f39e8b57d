"""Where a bundle archive's files are, by name: for an output prefix `P`, the stream `P.tar.zst`
(or `P.tar`) or its parts `P.tar.zst.part0001`, ..., the parts list `P.parts.json` and its
signature of either kind. Nothing here reads or writes a file."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from provisioner.bundle.detached import (
    KEY_SUFFIX,
    ManifestSigner,
    ManifestTrust,
    signature_name,
    signature_names,
)

PARTS_SUFFIX = ".parts.json"
SIGNATURE_SUFFIX = KEY_SUFFIX  # a key signature; keyless ones end in `.sigstore.json`
PARTIAL_SUFFIX = ".partial"

Compression = Literal["zstd", "none"]
COMPRESSIONS: tuple[Compression, ...] = ("zstd", "none")


def parts_list_path(out_prefix: str | Path) -> Path:
    """`P.parts.json` for the output prefix `P`."""
    prefix = Path(out_prefix)
    return prefix.with_name(prefix.name + PARTS_SUFFIX)


def signature_path(
    parts_list: str | Path, signer_or_trust: ManifestSigner | ManifestTrust | None = None
) -> Path:
    """`P.parts.json.sig` (a key; also without `signer_or_trust`), `P.parts.json.sigstore.json`
    (keyless)."""
    path = Path(parts_list)
    if signer_or_trust is None:
        return path.with_name(path.name + SIGNATURE_SUFFIX)
    return path.with_name(signature_name(path.name, signer_or_trust))


def signature_files(parts_list: str | Path) -> list[Path]:
    """The parts list's signature files that exist, of either kind (what to carry with it)."""
    path = Path(parts_list)
    return [path.with_name(n) for n in signature_names(path.name) if (path.with_name(n)).exists()]


def stream_name(out_prefix: str | Path, compress: Compression) -> str:
    """`P.tar.zst` (or `P.tar`): the name of the stream, and of its one part when not split."""
    return Path(out_prefix).name + (".tar.zst" if compress == "zstd" else ".tar")


def part_name(stream: str, index: int | None) -> str:
    """`P.tar.zst.part0001` for part 1 of a split stream; the stream's name when not split."""
    return stream if index is None else f"{stream}.part{index:04d}"
