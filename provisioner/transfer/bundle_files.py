"""What a push carries for a bundle: the files of a parts list (its parts, its signature, the
list itself) or of a bundle directory, each with its size and SHA-256, in push order."""

from __future__ import annotations

import hashlib
from pathlib import Path

from offline.inputs import read_input
from provisioner.archive.names import signature_files
from provisioner.archive.parts_list import MAX_PARTS_LIST_SIZE, PartsList
from provisioner.bundle.detached import MAX_KEYLESS_SIGNATURE_SIZE
from provisioner.transfer.push_ssh import TransferItem, push_order


def bundle_files(bundle: Path) -> list[TransferItem]:
    """The files of a parts list (parts, signature, list) or of a bundle directory, each with
    its size and SHA-256 (from the signed list for parts; computed for a directory)."""
    if bundle.is_dir():
        items: list[TransferItem] = []
        for path in sorted(p for p in bundle.rglob("*") if p.is_file()):
            relative = path.relative_to(bundle).as_posix()
            if relative.startswith((".import-", "import-mapping-")):
                continue  # this side's import journal and mapping stay here
            digest = hashlib.sha256()
            with open(path, "rb") as f:
                while chunk := f.read(1 << 20):
                    digest.update(chunk)
            items.append(
                TransferItem(
                    path, f"{bundle.name}/{relative}", path.stat().st_size, digest.hexdigest()
                )
            )
        return push_order(items)
    where = str(bundle)
    parts = PartsList.from_bytes(read_input(bundle, "parts list", MAX_PARTS_LIST_SIZE), where)
    items = [TransferItem(bundle.parent / p.name, p.name, p.size, p.sha256) for p in parts.parts]
    for path in (*signature_files(bundle), bundle):
        limit = MAX_PARTS_LIST_SIZE if path == bundle else MAX_KEYLESS_SIGNATURE_SIZE
        data = read_input(path, "bundle file", limit)
        items.append(TransferItem(path, path.name, len(data), hashlib.sha256(data).hexdigest()))
    return push_order(items)
