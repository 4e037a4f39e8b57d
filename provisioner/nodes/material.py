"""The material `airgap nodes apply` puts on every node, read from where the install left it:
the client files in the site's trust directory (`<site dir>/trust/`, `client_files.py`), the
TUF repository's published root (`root.json`, the root a TUF client pins), a checkpoint store
seed when the trust directory has one (`checkpoints.json`, an `airgap checkpoint export`), and
the internal registry's CA (`registry.caFile`).

Everything is public by construction, and checked to be: a file holding a private key, or one
that does not parse as what its name says, is refused by name before anything is applied.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives.serialization import load_pem_public_key

from offline.errors import AirgapError, UsageError
from offline.inputs import read_input
from offline.tlog.checkpoint_files import read_export
from offline.trust.root import parse_trusted_root
from provisioner.stack import client_files
from provisioner.stack.site import Site

TUF_ROOT = "root.json"
CHECKPOINT_SEED = "checkpoints.json"
# Everything a node's trust directory may receive, so a file an earlier version wrote and this
# one does not (a TSA chain since removed) is taken away.
TRUST_NAMES = (*client_files.NAMES, TUF_ROOT, CHECKPOINT_SEED)
# A ConfigMap holds at most 1 MiB; trust material is a few KiB.
MAX_BYTES = 512 * 1024


@dataclass(frozen=True)
class NodeMaterial:
    trust: dict[str, bytes]  # file name in the node's trust directory -> content
    registry_ca: bytes | None  # the internal registry's CA (registry.caFile), if the site has one


def read_material(site: Site, trust_dir: Path | None, tuf_repo: Path | None) -> NodeMaterial:
    """The node material of `site`: `trust_dir` defaults to `trust/` beside the site file;
    `tuf_repo` (an `airgap trust init` directory) gives root.json."""
    trust_dir = trust_dir or site.path.parent / "trust"
    trusted_root = trust_dir / client_files.TRUSTED_ROOT
    if not trusted_root.is_file():
        raise UsageError(
            f"{trusted_root} does not exist: run airgap install --site {site.path} first "
            "(it writes the trust directory), or name it with --trust-dir"
        )
    trust: dict[str, bytes] = {}
    for name in (*client_files.NAMES, CHECKPOINT_SEED):
        path = trust_dir / name
        if path.exists():
            trust[name] = read_input(path, "trust file")
            if name == CHECKPOINT_SEED:  # strictly parsed; `checkpoint import` verifies it
                read_export(path)
    if tuf_repo is not None:
        trust[TUF_ROOT] = published_root(tuf_repo)
    registry_ca = None
    if site.registry.ca_file is not None:
        registry_ca = read_input(site.registry.ca_file, f"site {site.path}: registry.caFile")
    material = NodeMaterial(trust, registry_ca)
    check_material(material, trust_dir, site)
    return material


def published_root(repo: Path) -> bytes:
    """The root.json of the repository's published generation: the one its served metadata
    chains to (a root signed by `rotate-root` but not yet built is not served yet)."""
    from provisioner.trust.layout import RepoLayout, pinned_root

    generation = RepoLayout(repo).current_generation()
    if generation is None:
        raise UsageError(
            f"TUF repository {repo} has published nothing yet: run airgap install --trust {repo} "
            "or airgap trust build first"
        )
    return read_input(pinned_root(generation), "TUF root")


def check_material(material: NodeMaterial, trust_dir: Path, site: Site) -> None:
    files = {str(trust_dir / name): (name, data) for name, data in material.trust.items()}
    if material.registry_ca is not None:
        files[f"site {site.path}: registry.caFile {site.registry.ca_file}"] = (
            "ca.crt",
            material.registry_ca,
        )
    total = 0
    for where, (name, data) in files.items():
        total += len(data)
        if b"PRIVATE KEY" in data:
            raise UsageError(f"{where} holds a private key: only public material goes to nodes")
        try:
            _CHECKS[_kind(name)](data)
        except (AirgapError, ValueError, TypeError, UnsupportedAlgorithm) as exc:
            raise UsageError(f"{where} is not a valid {name}: {_first_line(exc)}") from exc
    if total > MAX_BYTES:
        raise UsageError(
            f"the node material is {total} bytes, more than the {MAX_BYTES} a ConfigMap carries"
        )


def _kind(name: str) -> str:
    if name.endswith(".pub"):
        return "public key"
    if name.endswith((".pem", ".crt")):
        return "certificates"
    return name


def _public_key(data: bytes) -> None:
    load_pem_public_key(data)


def _certificates(data: bytes) -> None:
    x509.load_pem_x509_certificates(data)


def _trusted_root(data: bytes) -> None:
    parse_trusted_root(data)


def _json_object(data: bytes) -> None:
    if not isinstance(json.loads(data), dict):
        raise ValueError("not a JSON object")


def _tuf_root(data: bytes) -> None:
    from tuf.api.exceptions import RepositoryError
    from tuf.api.metadata import Metadata, Root

    try:
        metadata = Metadata.from_bytes(data)
    except RepositoryError as exc:  # what python-tuf raises on bad metadata (DeserializationError)
        raise ValueError(str(exc)) from exc
    if not isinstance(metadata.signed, Root):
        raise ValueError(f"TUF {metadata.signed.type} metadata, not root")


_CHECKS: dict[str, Callable[[bytes], None]] = {
    "public key": _public_key,
    "certificates": _certificates,
    client_files.TRUSTED_ROOT: _trusted_root,
    client_files.SIGNING_CONFIG: _json_object,
    TUF_ROOT: _tuf_root,
    CHECKPOINT_SEED: _json_object,  # read_material parsed it as an export
}


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]
