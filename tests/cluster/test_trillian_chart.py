"""The upstream trillian chart (0.3.16) installs on the cluster with only the images built here,
each named by digest in the internal registry, and the createtree stand-in makes a tree on it as
the rekor and ctlog charts' Jobs do. What differs from the chart's defaults is what an air-gapped
install must give (../shared/reference/cluster-stack.md §2): every image, the pull secret, a
volume for the database's claim (no provisioner), and the database passwords."""

from __future__ import annotations

import json
import secrets
from collections.abc import Mapping

import pytest

from tests.cluster.node import PULL_SECRET, Cluster
from tests.conftest import SHARED

CHART = SHARED / "upstream" / "sigstore-helm-charts" / "trillian"
NS = "trillian-system"
LOG_SERVER = f"trillian-log-server.{NS}:8091"


def _image(cluster: Cluster, images: Mapping[str, str], name: str) -> dict[str, str]:
    """The chart's image dict for `name` in the internal registry, by digest."""
    repository, digest = images[name].removeprefix(f"{cluster.registry}/").split("@")
    return {"registry": cluster.registry, "repository": repository, "version": digest}


@pytest.fixture(scope="module")
def trillian(
    cluster: Cluster,
    internal_stack_images: Mapping[str, str],
    tmp_path_factory: pytest.TempPathFactory,
) -> str:
    """A `helm install --wait` of the chart; its release name."""
    cluster.apply([{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}}])
    cluster.pull_secret(NS)
    cluster.apply(
        [
            {
                "apiVersion": "v1",
                "kind": "PersistentVolume",
                "metadata": {"name": "trillian-mysql"},
                "spec": {
                    "capacity": {"storage": "2Gi"},
                    "accessModes": ["ReadWriteOnce"],
                    "claimRef": {"namespace": NS, "name": "trillian-mysql"},
                    "hostPath": {
                        "path": str(cluster.paths.hostpath / "trillian-mysql"),
                        "type": "DirectoryOrCreate",
                    },
                },
            }
        ]
    )

    def image(name: str) -> dict[str, str]:
        return _image(cluster, internal_stack_images, name)

    values = {
        "imagePullSecrets": [{"name": PULL_SECRET}],
        "initContainerImage": {
            "netcat": image("docker.io/subfuzion/netcat"),
            "curl": image("docker.io/curlimages/curl"),
        },
        "mysql": {
            "image": image("gcr.io/trillian-opensource-ci/db_server"),
            "auth": {
                "password": secrets.token_urlsafe(12),
                "rootPassword": secrets.token_urlsafe(12),
            },
            "persistence": {"size": "2Gi"},
        },
        "logServer": {"image": image("ghcr.io/sigstore/scaffolding/trillian_log_server")},
        "logSigner": {"image": image("ghcr.io/sigstore/scaffolding/trillian_log_signer")},
        "createdb": {"image": image("ghcr.io/sigstore/scaffolding/createdb")},
    }
    values_file = tmp_path_factory.mktemp("trillian") / "values.json"
    values_file.touch(0o600)  # the passwords
    values_file.write_text(json.dumps(values))  # JSON is YAML
    cluster.run(
        [
            "helm",
            "install",
            "trillian",
            str(CHART),
            "-n",
            NS,
            "-f",
            str(values_file),
            "--wait",
            "--timeout",
            "4m",
        ],
        timeout=300,
    )
    return "trillian"


def test_the_chart_installs_and_its_createdb_job_makes_trillians_tables(
    cluster: Cluster, trillian: str
) -> None:
    cluster.kubectl(
        "-n", NS, "wait", "--for=condition=complete", "job/trillian-createdb", "--timeout=120s"
    )
    assert "createdb: Trillian's schema is in trillian:" in cluster.kubectl(
        "-n", NS, "logs", "job/trillian-createdb"
    )
    deployments = cluster.kubectl_json("-n", NS, "get", "deployments")["items"]
    ready = {d["metadata"]["name"]: d["status"].get("readyReplicas", 0) for d in deployments}
    assert ready == {"trillian-mysql": 1, "trillian-log-server": 1, "trillian-log-signer": 1}


def _createtree_job(cluster: Cluster, images: Mapping[str, str], name: str) -> str:
    """The rekor chart's createtree Job (its args, its Role on the one ConfigMap); its logs."""
    meta = {"name": name, "namespace": NS}
    cluster.apply(
        [
            {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": meta},
            {
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "Role",
                "metadata": meta,
                "rules": [
                    {
                        "apiGroups": [""],
                        "resources": ["configmaps"],
                        "resourceNames": ["rekor-config"],
                        "verbs": ["get", "update"],
                    }
                ],
            },
            {
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "RoleBinding",
                "metadata": meta,
                "subjects": [{"kind": "ServiceAccount", "name": name, "namespace": NS}],
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name},
            },
            {
                "apiVersion": "batch/v1",
                "kind": "Job",
                "metadata": meta,
                "spec": {
                    "backoffLimit": 2,
                    "template": {
                        "spec": {
                            "restartPolicy": "Never",
                            "serviceAccountName": name,
                            "imagePullSecrets": [{"name": PULL_SECRET}],
                            "containers": [
                                {
                                    "name": "createtree",
                                    "image": images["ghcr.io/sigstore/scaffolding/createtree"],
                                    "args": [
                                        "--namespace=$(NAMESPACE)",
                                        "--configmap=rekor-config",
                                        "--display_name=rekortree",
                                        f"--admin_server={LOG_SERVER}",
                                        "--force=false",
                                    ],
                                    "env": [
                                        {
                                            "name": "NAMESPACE",
                                            "valueFrom": {
                                                "fieldRef": {"fieldPath": "metadata.namespace"}
                                            },
                                        }
                                    ],
                                }
                            ],
                        }
                    },
                },
            },
        ]
    )
    cluster.kubectl("-n", NS, "wait", "--for=condition=complete", f"job/{name}", "--timeout=120s")
    return cluster.kubectl("-n", NS, "logs", f"job/{name}")


def _trees(cluster: Cluster) -> list[list[str]]:
    """Trillian's Trees table, read in the database pod as the chart's user (its env)."""
    query = "SELECT TreeId, TreeState, TreeType, DisplayName FROM Trees"
    client = 'MYSQL_PWD="$MYSQL_PASSWORD" mariadb -h127.0.0.1 -u"$MYSQL_USER" "$MYSQL_DATABASE"'
    out = cluster.kubectl(
        "-n", NS, "exec", "deploy/trillian-mysql", "--", "sh", "-c", f'{client} -N -e "{query}"'
    )
    return [line.split("\t") for line in out.splitlines()]


def test_createtree_makes_a_tree_records_its_id_and_keeps_it_on_a_rerun(
    cluster: Cluster, trillian: str, internal_stack_images: Mapping[str, str]
) -> None:
    cluster.apply(
        [
            {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {"name": "rekor-config", "namespace": NS},
            }
        ]
    )
    _createtree_job(cluster, internal_stack_images, "createtree")
    config = cluster.kubectl_json("-n", NS, "get", "configmap", "rekor-config")
    tree = config["data"]["treeID"]
    assert [tree, "ACTIVE", "LOG", "rekortree"] in _trees(cluster)
    # A second run (a reinstall's Job) finds the ID and makes no other tree.
    logs = _createtree_job(cluster, internal_stack_images, "createtree-again")
    assert f"Found existing TreeID: {tree}" in logs
    assert len(_trees(cluster)) == 1
