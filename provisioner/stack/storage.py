"""The volumes airgap makes for the charts.

Trillian's chart cannot be given a storage class (its values.schema.json allows only null for
`mysql.persistence.storageClass`), so airgap makes MySQL's claim itself, with the site's class,
and hands it to the chart as `existingClaim`. On a site with no provisioner (`storage.hostPath`),
airgap also makes the PersistentVolume each claim binds to: a hostPath directory of the site's
class, reserved for that claim (claimRef), kept when the claim goes (Retain).
"""

from __future__ import annotations

from typing import Any

from provisioner.stack.secrets import MANAGED_BY
from provisioner.stack.site import Site

MYSQL_CLAIM = "trillian-mysql"


def claims(site: Site) -> list[dict[str, Any]]:
    """The PersistentVolumeClaims to make before the charts (none with an external database)."""
    if site.database is not None:
        return []
    return [
        {
            "apiVersion": "v1",
            "kind": "PersistentVolumeClaim",
            "metadata": {
                "name": MYSQL_CLAIM,
                "namespace": site.namespace("trillian"),
                "labels": MANAGED_BY,
            },
            "spec": {
                "accessModes": ["ReadWriteOnce"],
                "storageClassName": site.storage.storage_class,
                "resources": {"requests": {"storage": site.storage.mysql_size}},
            },
        }
    ]


def persistent_volumes(site: Site, instance: str) -> list[dict[str, Any]]:
    """hostPath volumes for the claims, on a site that has no provisioner; else none. Each
    install `instance` (new after `uninstall --delete-keys`) gets its own directories: a new
    database password never meets an old database's files."""
    if site.storage.host_path is None:
        return []
    volumes = []
    for claim in claims(site):
        namespace, name = claim["metadata"]["namespace"], claim["metadata"]["name"]
        volumes.append(
            {
                "apiVersion": "v1",
                "kind": "PersistentVolume",
                "metadata": {"name": f"airgap-{namespace}-{name}", "labels": MANAGED_BY},
                "spec": {
                    "capacity": claim["spec"]["resources"]["requests"],
                    "accessModes": claim["spec"]["accessModes"],
                    "storageClassName": site.storage.storage_class,
                    "persistentVolumeReclaimPolicy": "Retain",
                    "claimRef": {"namespace": namespace, "name": name},
                    "hostPath": {
                        "path": str(site.storage.host_path / f"{namespace}-{name}-{instance}"),
                        "type": "DirectoryOrCreate",
                    },
                },
            }
        )
    return volumes
