"""Trust material for the nodes tests, made as `airgap install` makes it but without a cluster:
a key set for the site, its trusted root, signing config and public files written into a trust
directory (`<site dir>/trust/` is where install writes them), and the site's TUF repository
with those files published."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from provisioner.stack.client_files import client_files
from provisioner.stack.keys import generate_keyset, public_material
from provisioner.stack.signing_config import signing_config_json
from provisioner.stack.site import Site
from provisioner.stack.trusted_root import trusted_root_json
from provisioner.trust.build import build
from provisioner.trust.ceremony import init_repository

BUSYBOX = "docker.io/library/busybox:1.37"
DIGEST = "sha256:" + "c" * 64


def write_trust_dir(site: Site, directory: Path, tuf_repo: Path | None = None) -> dict[str, bytes]:
    """New keys for `site`, their client files in `directory`; with `tuf_repo` (made if
    absent) published in the site's TUF repository too. The files, by name."""
    public = public_material(generate_keyset(site))
    trusted_root = trusted_root_json(public.trusted_root_spec(site)).encode()
    signing = signing_config_json(site, public)
    files = client_files(trusted_root, signing, public)
    directory.mkdir(parents=True, exist_ok=True)
    for name, data in files.items():
        (directory / name).write_bytes(data)
    if tuf_repo is not None:
        if not tuf_repo.exists():
            init_repository(tuf_repo)
        build(tuf_repo, public.tuf_targets(trusted_root, signing))
    return files


def mapping_document(source: str, repository: str, digest: str) -> dict[str, Any]:
    """An import mapping as `bundle import` writes it, for one image."""
    return {
        "format": "airgap-import-mapping/v1",
        "bundle": "/bundles/nodes",
        "target": repository.rsplit("/", 1)[0],
        "created": "2026-12-01T00:00:00Z",
        "images": {
            source: {
                "target": f"{repository}@{digest}",
                "repository": repository,
                "tag": source.rsplit(":", 1)[1],
                "digest": digest,
                "attachments": 0,
            }
        },
    }


def write_mapping(path: Path, source: str, repository: str, digest: str) -> Path:
    path.write_text(json.dumps(mapping_document(source, repository, digest)))
    return path
