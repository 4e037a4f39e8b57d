"""What the playbooks install, gathered on the operator's side before any host is touched:
the site's trust (the `trust/` directory `airgap install` writes beside the site file), the
TUF root, a checkpoint store seed, the internal registry and its CA, and for CD hosts the
verifier's wheelhouse. Everything is public material; everything is checked here first, so a
run never starts with a file missing or a store that pins nothing.
"""

from __future__ import annotations

import json
import shutil
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from offline.atomicfile import atomic_write
from offline.errors import UsageError
from offline.tlog.checkpoint_files import export_document
from offline.tlog.checkpoint_store import CheckpointStore
from offline.trust.root import TrustedRoot, load_trusted_root
from provisioner.nodes.material import NodeMaterial, check_material
from provisioner.stack import client_files
from provisioner.stack.site import Site

TUF_ROOT = "root.json"
SEED = "checkpoints.json"


@dataclass(frozen=True)
class Wheelhouse:
    directory: Path
    version: str  # of the airgap wheel in it

    def archive(self, path: Path) -> Path:
        """The wheels in one uncompressed tar (wheels are compressed already) whose bytes
        depend on the wheels alone: names sorted, times, owners and modes fixed. One file to
        copy instead of one per wheel, and the same wheels never look changed to a host."""
        with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as tar:
            for wheel in sorted(self.directory.glob("*.whl")):
                info = tarfile.TarInfo(wheel.name)
                info.size = wheel.stat().st_size
                info.mode = 0o644
                info.mtime = 0
                with wheel.open("rb") as data:
                    tar.addfile(info, data)
        return path


@dataclass(frozen=True)
class Material:
    trust_files: tuple[Path, ...]
    checkpoint_seed: Path
    logs_seeded: int
    registry_host: str
    registry_ca: Path | None
    wheelhouse: Wheelhouse | None = None
    wheel_archive: Path | None = None

    def extravars(self) -> dict[str, Any]:
        variables: dict[str, Any] = {
            "airgap_trust_files": [str(p) for p in self.trust_files],
            "airgap_checkpoint_seed": str(self.checkpoint_seed),
            "airgap_registry_host": self.registry_host,
            "airgap_registry_ca": str(self.registry_ca) if self.registry_ca else "",
        }
        if self.wheelhouse is not None and self.wheel_archive is not None:
            variables["airgap_wheel_archive"] = str(self.wheel_archive)
            variables["airgap_version"] = self.wheelhouse.version
        return variables


def gather(
    site: Site,
    trust_dir: Path,
    tuf_root: Path | None,
    checkpoints: Path | None,
    work: Path,
    wheelhouse: Wheelhouse | None = None,
) -> Material:
    """The material for `site`; files made here (the seed, the TUF root's copy) go to `work`."""
    trusted_root_path = trust_dir / client_files.TRUSTED_ROOT
    if not trusted_root_path.is_file():
        raise UsageError(
            f"no {client_files.TRUSTED_ROOT} in {trust_dir}: `airgap install` writes it to "
            "trust/ beside the site file (or give --trust-dir)"
        )
    trusted_root = load_trusted_root(trusted_root_path)
    files = [trusted_root_path]
    # What `airgap install` writes for clients besides the trusted root, when present.
    others = [name for name in client_files.NAMES if name != client_files.TRUSTED_ROOT]
    files += [trust_dir / name for name in others if (trust_dir / name).is_file()]
    if tuf_root is None and (trust_dir / TUF_ROOT).is_file():
        tuf_root = trust_dir / TUF_ROOT
    if tuf_root is not None:
        # Installed as root.json whatever its name in the repository (roots/N.root.json).
        work_root = work / TUF_ROOT
        shutil.copyfile(tuf_root, work_root)
        files.append(work_root)

    if checkpoints is None and (trust_dir / SEED).is_file():
        checkpoints = trust_dir / SEED  # the seed `airgap nodes apply` also distributes
    store = _seed_store(checkpoints, trusted_root, work)
    states = [s for s in store.states() if trusted_root.tlog_by_id(s.log_id) is not None]
    if not states:
        raise UsageError(
            f"checkpoint store {store.path} pins no log of {trusted_root_path}: pin the internal "
            "Rekor first (airgap checkpoint fetch --rekor URL --trusted-root ...)"
        )
    # The same store gives the same bytes (stamped with its latest checkpoint's time, not the
    # clock), so an unchanged store changes nothing on the hosts.
    seed = work / SEED
    stamp = max(s.latest.added for s in states)
    document = export_document(states, stamp)
    atomic_write(seed, (json.dumps(document, indent=2, ensure_ascii=False) + "\n").encode())

    ca = site.registry.ca_file
    if ca is not None and not ca.is_file():
        raise UsageError(f"site {site.path}: registry.caFile {ca} does not exist")
    # The checks `airgap nodes apply` makes: each file parses as what its name says, and none
    # holds a private key.
    trust = {path.name: path.read_bytes() for path in [*files, seed]}
    check_material(NodeMaterial(trust, ca.read_bytes() if ca else None), trust_dir, site)
    return Material(
        trust_files=tuple(files),
        checkpoint_seed=seed,
        logs_seeded=len(states),
        registry_host=site.registry.host,
        registry_ca=ca,
        wheelhouse=wheelhouse,
        wheel_archive=wheelhouse.archive(work / "wheelhouse.tar") if wheelhouse else None,
    )


def _seed_store(given: Path | None, trusted_root: TrustedRoot, work: Path) -> CheckpointStore:
    """The store the seed comes from: a store directory (default: the operator's own), or an
    `airgap checkpoint export` file, imported into a scratch store, which verifies every
    checkpoint and proof in it against the trusted root."""
    if given is not None and given.is_file():
        store = CheckpointStore(work / "seed-store", trusted_root=trusted_root)
        store.path.mkdir()
        store.import_(given, trusted_root)
        return store
    store = CheckpointStore(given, trusted_root=trusted_root)
    if not store.path.is_dir():
        raise UsageError(f"checkpoint store {store.path} does not exist (--checkpoints)")
    return store


def published_tuf_root(repository: Path) -> Path:
    """The root.json of a TUF repository's published generation: the root its served metadata
    chains to (one signed by `trust rotate-root` but not yet built is not served yet)."""
    from provisioner.trust.layout import RepoLayout, pinned_root

    generation = RepoLayout(repository).current_generation()
    if generation is None:
        raise UsageError(
            f"TUF repository {repository} has published nothing yet: run airgap install "
            f"--trust {repository} or airgap trust build first"
        )
    return pinned_root(generation)
