"""`airgap policy generate`: the site's admission policies, written as YAML files.

    files = generate(GenerateRequest(site, policy, trust_repo, enforce=False, tuf="mirror"))
    write_files(files, out_dir)

`policy-controller.yaml` holds the TrustRoot and the ClusterImagePolicy objects, `kyverno.yaml`
the ClusterPolicy. Every input is read and checked before anything is written; the files are
written whole (atomically), readable by all (they hold public keys only).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC
from pathlib import Path
from typing import Any

import yaml

from offline.atomicfile import atomic_write
from offline.policy.policy_file import load_policy_file
from provisioner.admission import kyverno, policy_controller
from provisioner.admission.notes import Generated, Note
from provisioner.admission.trustroot import (
    TRUST_ROOT_NAME,
    TufMode,
    read_site_trust,
    trust_root,
    trusted_root_document,
)
from provisioner.stack.site import load_site

FILES = {policy_controller.CONTROLLER: "policy-controller.yaml", kyverno.CONTROLLER: "kyverno.yaml"}


@dataclass(frozen=True)
class GenerateRequest:
    site: Path
    policy: Path
    trust_repo: Path
    enforce: bool = False
    tuf: TufMode = "mirror"


@dataclass
class GeneratedFiles:
    controllers: list[Generated] = field(default_factory=list)
    notes: list[Note] = field(default_factory=list)

    def documents(self, controller: str) -> list[dict[str, Any]]:
        return next(g.objects for g in self.controllers if g.controller == controller)


def generate(request: GenerateRequest) -> GeneratedFiles:
    site = load_site(request.site)
    policies = load_policy_file(request.policy)
    trust = read_site_trust(request.trust_repo)

    pc = Generated(policy_controller.CONTROLLER)
    pc.objects.append(trust_root(trust, request.tuf, site.service_url("tuf")))
    if request.tuf == "mirror":
        expires = f"{trust.timestamp_expires.astimezone(UTC):%Y-%m-%d %H:%M} UTC"
        pc.note(
            "*",
            "TrustRoot",
            f"the TUF repository is inlined as of now; its timestamp expires {expires}: after "
            "airgap trust refresh, generate and apply again (or use --tuf remote)",
        )
    authorities = trusted_root_document(trust).get("certificateAuthorities") or [{}]
    fulcio_url = str(authorities[0].get("uri") or site.service_url("fulcio"))
    policy_controller.cluster_image_policies(
        policies, TRUST_ROOT_NAME, fulcio_url, enforce=request.enforce, generated=pc
    )
    if not request.enforce:
        pc.note(
            "*",
            "mode",
            "warn: images that fail are admitted with a warning; images no policy names are "
            "still denied by policy-controller's no-match policy (deny)",
        )
    keys = kyverno.SiteKeys(trusted_root_document(trust))
    kv = kyverno.cluster_policy(policies, keys, enforce=request.enforce)
    controllers = [pc, kv]
    return GeneratedFiles(controllers, [note for g in controllers for note in g.notes])


class _Dumper(yaml.SafeDumper):
    """PEM keys, certificates and policies as literal blocks, as a person would write them."""


def _text(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _text)


def render(documents: list[dict[str, Any]]) -> str:
    """Multi-document YAML; a JSON round trip first, so shared parts print in full (no
    anchors, which some tools refuse)."""
    plain = json.loads(json.dumps(documents))
    return yaml.dump_all(plain, Dumper=_Dumper, sort_keys=False, width=1000)


def write_files(files: GeneratedFiles, out_dir: Path) -> dict[str, Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    written = {}
    for generated in files.controllers:
        path = out_dir / FILES[generated.controller]
        atomic_write(path, render(generated.objects).encode(), mode=0o644)
        written[generated.controller] = path
    return written
