"""policy-controller's `TrustRoot` from the site's TUF repository (`airgap trust`), and the
trusted root that repository publishes.

Two ways to hand policy-controller the repository (TrustRoot `spec`):
- `repository` (mirrorFS, the default): the published generation inlined as the tar.gz the
  `tuf-root` Secret carries (provisioner/trust/secret.py), with the root to pin. No network at
  all; but it is the repository as of now: its timestamp expires, so generate again after each
  `airgap trust refresh` (the note says when).
- `remote`: the root to pin and the in-cluster TUF service as the mirror; the controller follows
  every refresh the install serves.

Either way the webhook runs with `-disable-tuf` (charts-values/policy-controller.yaml): the public
TUF repository is never asked.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

from offline.errors import AirgapError, UsageError
from offline.trust.root import TrustedRoot, parse_trusted_root
from provisioner.trust.layout import RepoLayout, pinned_root, repository_dir
from provisioner.trust.published import read_published
from provisioner.trust.secret import MAX_SECRET_BYTES, repository_archive

TRUST_ROOT_NAME = "airgap"
TRUSTED_ROOT_TARGET = "trusted_root.json"
TufMode = Literal["mirror", "remote"]


@dataclass(frozen=True)
class SiteTrust:
    """What the published generation of the site's repository holds, checked."""

    root: bytes  # the root.json to pin
    repository: Path  # the served repository directory
    trusted_root_json: bytes
    trusted_root: TrustedRoot
    timestamp_expires: datetime


def read_site_trust(repo: Path) -> SiteTrust:
    """The published generation of `repo`, every signature and target checked; UsageError when
    there is none or it holds no trusted root."""
    layout = RepoLayout(repo)
    try:
        published = read_published(layout)
    except AirgapError as exc:
        raise UsageError(f"TUF repository {repo}: {exc}") from exc
    if published is None:
        raise UsageError(
            f"TUF repository {repo}: nothing is published yet; run airgap install with --trust "
            f"{repo} (or airgap trust build) first"
        )
    targets = {target.name: target.data for target in published.files}
    data = targets.get(TRUSTED_ROOT_TARGET)
    if data is None:
        raise UsageError(f"TUF repository {repo}: it publishes no {TRUSTED_ROOT_TARGET}")
    try:
        trusted = parse_trusted_root(data)
    except AirgapError as exc:
        raise UsageError(f"TUF repository {repo}: {TRUSTED_ROOT_TARGET}: {exc}") from exc
    return SiteTrust(
        root=pinned_root(published.generation).read_bytes(),
        repository=repository_dir(published.generation),
        trusted_root_json=data,
        trusted_root=trusted,
        timestamp_expires=published.timestamp.signed.expires,
    )


def trust_root(trust: SiteTrust, mode: TufMode, tuf_url: str) -> dict[str, Any]:
    """The TrustRoot object: the repository inlined (`mirror`) or served at `tuf_url`."""
    root = base64.b64encode(trust.root).decode("ascii")
    spec: dict[str, Any]
    if mode == "mirror":
        archive = repository_archive(trust.repository)
        if len(archive) + len(trust.root) > MAX_SECRET_BYTES:
            raise UsageError(
                f"the TUF repository archive is {len(archive)} bytes: too large to inline in a "
                f"TrustRoot; use --tuf remote"
            )
        spec = {
            "repository": {
                "root": root,
                "mirrorFS": base64.b64encode(archive).decode("ascii"),
                "targets": "targets",
                "trustedRootTarget": TRUSTED_ROOT_TARGET,
            }
        }
    else:
        spec = {
            "remote": {
                "root": root,
                "mirror": tuf_url,
                "targets": "targets",
                "trustedRootTarget": TRUSTED_ROOT_TARGET,
            }
        }
    return {
        "apiVersion": "policy.sigstore.dev/v1alpha1",
        "kind": "TrustRoot",
        "metadata": {"name": TRUST_ROOT_NAME, "labels": {"app.kubernetes.io/managed-by": "airgap"}},
        "spec": spec,
    }


def trusted_root_document(trust: SiteTrust) -> dict[str, Any]:
    document: dict[str, Any] = json.loads(trust.trusted_root_json)
    return document
