"""What an install records in the cluster so that a rerun, or an install after an interruption,
makes nothing twice: the install's instance (names its volumes' directories) and each log's
Trillian tree ID. Kept in the ConfigMap `airgap-install` in Trillian's namespace, beside the
database the trees live in; `uninstall` keeps it with the keys.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass, field, replace
from typing import Any

from provisioner.stack.kube import Kube
from provisioner.stack.secrets import MANAGED_BY, KeyMismatch
from provisioner.stack.site import Site

STATE_CONFIGMAP = "airgap-install"
TREE_LOGS = ("rekor", "ctlog")
_TREE_ID = re.compile(r"[1-9][0-9]{0,18}")
_INSTANCE = re.compile(r"[a-z0-9]{8}")


@dataclass(frozen=True)
class InstallState:
    instance: str
    trees: dict[str, str] = field(default_factory=dict)  # log -> Trillian tree ID
    stored: bool = False  # read from the cluster (else new, not yet written)

    def with_tree(self, log: str, tree_id: str) -> InstallState:
        return replace(self, trees={**self.trees, log: tree_id})

    def manifest(self, site: Site) -> dict[str, Any]:
        data = {"instance": self.instance}
        data.update({f"{log}-tree-id": tree for log, tree in sorted(self.trees.items())})
        return {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {
                "name": STATE_CONFIGMAP,
                "namespace": site.namespace("trillian"),
                "labels": MANAGED_BY,
            },
            "data": data,
        }


def read_state(kube: Kube, site: Site) -> InstallState:
    """The recorded state, checked; a new one (not yet stored) on a first install."""
    namespace = site.namespace("trillian")
    data = kube.read_config_map(namespace, STATE_CONFIGMAP)
    if data is None:
        return InstallState(instance=new_instance())
    where = f"configmap {namespace}/{STATE_CONFIGMAP}"
    instance = data.get("instance", "")
    if not _INSTANCE.fullmatch(instance):
        raise KeyMismatch(f"{where}: instance {instance!r} is not one airgap records")
    trees = {}
    for log in TREE_LOGS:
        tree = data.get(f"{log}-tree-id")
        if tree is None:
            continue
        if not _TREE_ID.fullmatch(tree):
            raise KeyMismatch(f"{where}: {log}-tree-id {tree!r} is not a Trillian tree ID")
        trees[log] = tree
    return InstallState(instance, trees, stored=True)


def check_tree_id(value: str | None, where: str) -> str:
    if value is None or not _TREE_ID.fullmatch(value):
        raise KeyMismatch(f"{where}: tree ID {value!r} is not a Trillian tree ID")
    return value


def new_instance() -> str:
    alphabet = "abcdefghijklmnopqrstuvwxyz0123456789"
    return "".join(secrets.choice(alphabet) for _ in range(8))
