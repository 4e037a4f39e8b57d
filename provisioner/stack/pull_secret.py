"""The internal registry's pull secret, written from the site's `registry.credentials` (a docker
config.json) into every namespace that pulls from it: the stack's and the node DaemonSet's."""

from __future__ import annotations

import base64
import json
from typing import Any

from offline.errors import UsageError
from offline.inputs import read_input
from provisioner.stack import secrets as names
from provisioner.stack.site import Site


def pull_secret_manifest(site: Site) -> dict[str, Any]:
    """The Secret (no namespace yet) from `registry.credentials`, refused unless it is a docker
    config with an `auths` entry for the registry's host."""
    registry = site.registry
    if registry.pull_secret is None or registry.credentials is None:
        raise UsageError(
            f"site {site.path}: registry.credentials and registry.pullSecret are needed"
        )
    where = f"site {site.path}: registry.credentials {registry.credentials}"
    data = read_input(registry.credentials, where)
    try:
        auths = json.loads(data).get("auths")
    except (ValueError, AttributeError):
        auths = None
    if not isinstance(auths, dict) or not any(
        registry.host == host.removeprefix("https://").rstrip("/") for host in auths
    ):
        raise UsageError(f"{where}: not a docker config with auths for {registry.host}")
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "kubernetes.io/dockerconfigjson",
        "metadata": {"name": registry.pull_secret, "labels": names.MANAGED_BY},
        "data": {".dockerconfigjson": base64.b64encode(data).decode()},
    }


def in_namespace(manifest: dict[str, Any], namespace: str) -> dict[str, Any]:
    return {**manifest, "metadata": {**manifest["metadata"], "namespace": namespace}}
