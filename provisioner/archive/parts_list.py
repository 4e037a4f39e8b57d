"""The signed parts list (`P.parts.json`, format `airgap-parts/v1`): what the stream is and which
parts make it up. Its model, its strict parser, and writing and loading it with its detached
signature: a parts list is parsed only after its signature verifies, and one on disk is always
signed."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

from offline.atomicfile import atomic_write
from offline.canonical_json import canonical_json
from offline.errors import UsageError, VerificationFailure
from offline.inputs import decode_strict_json
from offline.strict import StrictReader
from provisioner.archive.names import (
    COMPRESSIONS,
    Compression,
    signature_files,
    signature_path,
)
from provisioner.archive.reading import read_bounded
from provisioner.bundle.detached import (
    ManifestSigner,
    ManifestTrust,
    max_signature_size,
    sign_detached,
    verify_detached,
)

FORMAT = "airgap-parts/v1"
MAX_PARTS_LIST_SIZE = 16 * 1024 * 1024


@dataclass(frozen=True)
class PartEntry:
    name: str
    size: int
    sha256: str

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "size": self.size, "sha256": self.sha256}


@dataclass(frozen=True)
class PartsList:
    compression: Compression
    size: int
    sha256: str
    tar_size: int
    manifest_sha256: str
    parts: tuple[PartEntry, ...]

    def to_json(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "compression": self.compression,
            "size": self.size,
            "sha256": self.sha256,
            "tarSize": self.tar_size,
            "manifestSha256": self.manifest_sha256,
            "parts": [p.to_json() for p in self.parts],
        }

    def to_bytes(self) -> bytes:
        """The canonical bytes written to `P.parts.json` and signed."""
        return canonical_json(self.to_json(), ascii_only=False)

    @classmethod
    def from_bytes(cls, data: bytes, where: str) -> PartsList:
        """Strict: exact fields and types, unique plain part names, sizes that add up."""
        document = decode_strict_json(data, where)
        read = StrictReader(where)
        keys = ("format", "compression", "size", "sha256", "tarSize", "manifestSha256", "parts")
        top = read.mapping(document, "", keys)
        if top["format"] != FORMAT:
            raise UsageError(f"{where}: format is {top['format']!r}, expected {FORMAT!r}")
        compression = top["compression"]
        if compression not in COMPRESSIONS:
            raise UsageError(f"{where}: unknown compression {compression!r}")
        parts = read.items(top["parts"], "parts", lambda raw, path: _part(read, raw, path))
        names = [p.name for p in parts]
        if len(set(names)) != len(names):
            raise UsageError(f"{where}: a part is listed twice")
        parts_list = cls(
            compression=cast(Compression, compression),
            size=read.integer(top["size"], "size"),
            sha256=read.hex_bytes(top["sha256"], "sha256").hex(),
            tar_size=read.integer(top["tarSize"], "tarSize"),
            manifest_sha256=read.hex_bytes(top["manifestSha256"], "manifestSha256").hex(),
            parts=tuple(parts),
        )
        if sum(p.size for p in parts) != parts_list.size:
            raise UsageError(f"{where}: the part sizes do not add up to size {parts_list.size}")
        if compression == "none" and parts_list.tar_size != parts_list.size:
            raise UsageError(f"{where}: an uncompressed stream whose tarSize is not its size")
        return parts_list


def _part(read: StrictReader, value: object, path: str) -> PartEntry:
    entry = read.mapping(value, path, ("name", "size", "sha256"))
    return PartEntry(
        _part_file_name(entry["name"], f"{read.where}: {path}.name"),
        read.integer(entry["size"], f"{path}.size"),
        read.hex_bytes(entry["sha256"], f"{path}.sha256").hex(),
    )


def _part_file_name(value: object, where: str) -> str:
    """A plain file name next to the parts list: nothing that could lead elsewhere."""
    if (
        not isinstance(value, str)
        or not value
        or value.startswith(".")
        or any(c in value for c in "/\\\x00")
        or any(ord(c) < 0x20 or ord(c) == 0x7F for c in value)
    ):
        raise UsageError(f"{where} {value!r} is not a plain file name")
    return value


def write_parts_list(
    path: Path, parts_list: PartsList, signing_key: ManifestSigner, signature: bytes | None = None
) -> None:
    """The signature first, the parts list last: a parts list on disk is always signed.
    `signature`: already made over `parts_list.to_bytes()` (else it is made here)."""
    data = parts_list.to_bytes()
    if signature is None:
        signature = sign_detached(data, signing_key)
    atomic_write(signature_path(path, signing_key), signature)
    atomic_write(path, data)


def load_parts_list(path: str | Path, trust: ManifestTrust) -> PartsList:
    """The parts list, parsed only after its signature verifies with `trust`."""
    path = Path(path)
    data = read_bounded(path, MAX_PARTS_LIST_SIZE, "parts list")
    signature_file = signature_path(path, trust)
    if not os.path.lexists(signature_file):
        other = [p.name for p in signature_files(path)]
        hint = f" (there is {other[0]}: signed the other way)" if other else ""
        raise UsageError(f"the parts list signature {signature_file} is missing{hint}")
    signature = read_bounded(signature_file, max_signature_size(trust), "parts list signature")
    try:
        verify_detached(data, signature, trust, path.name)
    except VerificationFailure as exc:
        raise VerificationFailure(f"parts list {path}: {exc}") from None
    return PartsList.from_bytes(data, f"parts list {path}")
