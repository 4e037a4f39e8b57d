"""The upstream charts of the stack (trillian 0.3.16, rekor 1.8.4, fulcio 2.11.0, ctlog 0.2.67,
policy-controller 0.10.6) install on the cluster with only the images built here, each named by
digest in the internal registry: Trillian's database gets its tables, the createtree stand-in
makes a tree as the rekor and ctlog charts' Jobs do, Rekor serves its log with the signing key
given to it, Fulcio and the CT log serve the root given to them, and policy-controller runs and
is uninstalled through its kubectl hook.

What differs from the charts' defaults is what an air-gapped install must give
(../shared/reference/cluster-stack.md §2, §2b, §3): every image and the pull secret; a volume
for the database's claim (no provisioner) and the database passwords; Rekor's signing key, the
trillian subchart vendored into rekor's (helm wants it even disabled) and the standalone trillian
chart's log server name; Fulcio's CA (createcerts off); the CT log's `ctlog-secret`, written from
the tree its createtree Job made (createctconfig off); policy-controller's -disable-tuf.
"""

from __future__ import annotations

import base64
import json
import secrets
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from tests.cluster.node import PULL_SECRET, Cluster
from tests.cluster.stack_images import StackImages
from tests.cluster.workloads import namespace, pod_spec, run_to_completion, service_account
from tests.conftest import SHARED
from tests.stack import pki

CHARTS = SHARED / "upstream" / "sigstore-helm-charts"
TRILLIAN = "trillian-system"
REKOR = "rekor-system"
FULCIO = "fulcio-system"
CTLOG = "ctlog-system"
CT_PREFIX = "sigstorescaffolding"
POLICY = "cosign-system"
LOG_SERVER = f"trillian-log-server.{TRILLIAN}:8091"
Images = Mapping[str, str]


def _image(cluster: Cluster, images: Images, name: str) -> dict[str, str]:
    """The charts' image dict for `name` in the internal registry, by digest."""
    repository, digest = images[name].removeprefix(f"{cluster.registry}/").split("@")
    return {"registry": cluster.registry, "repository": repository, "version": digest}


def _helm_install(
    cluster: Cluster, release: str, chart: Path, ns: str, values: dict[str, Any], directory: Path
) -> None:
    values_file = directory / f"{release}-values.json"
    values_file.touch(0o600)  # passwords
    values_file.write_text(json.dumps(values))  # JSON is YAML
    cluster.run(
        ["helm", "install", release, str(chart), "-n", ns, "-f", str(values_file),
         "--wait", "--timeout", "4m"],
        timeout=300,
    )  # fmt: skip


def _fetch(cluster: Cluster, images: Images, ns: str, name: str, *urls: str) -> str:
    """GET each of `urls` in turn from pod `name` (the curl image, as the charts' init
    containers run it), each failing on an HTTP error; the bodies, one a line."""
    curls = [f"curl --fail --silent --max-time 10 {url}" for url in urls]
    get = {
        "name": "get",
        "image": images["docker.io/curlimages/curl"],
        "command": ["sh", "-c", " && echo && ".join(curls)],
    }
    return run_to_completion(cluster, ns, name, pod_spec([get]))


@pytest.fixture(scope="module")
def trillian(
    cluster: Cluster, internal_stack_images: Images, tmp_path_factory: pytest.TempPathFactory
) -> str:
    """A `helm install --wait` of the trillian chart; its release name."""
    namespace(cluster, TRILLIAN)
    cluster.apply(
        [
            {
                "apiVersion": "v1",
                "kind": "PersistentVolume",
                "metadata": {"name": "trillian-mysql"},
                "spec": {
                    "capacity": {"storage": "2Gi"},
                    "accessModes": ["ReadWriteOnce"],
                    "claimRef": {"namespace": TRILLIAN, "name": "trillian-mysql"},
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
    directory = tmp_path_factory.mktemp("trillian")
    _helm_install(cluster, "trillian", CHARTS / "trillian", TRILLIAN, values, directory)
    return "trillian"


def test_the_trillian_chart_installs_and_its_createdb_job_makes_trillians_tables(
    cluster: Cluster, trillian: str
) -> None:
    cluster.kubectl(
        "-n", TRILLIAN, "wait", "--for=condition=complete", "job/trillian-createdb",
        "--timeout=120s",
    )  # fmt: skip
    logs = cluster.kubectl("-n", TRILLIAN, "logs", "job/trillian-createdb")
    assert "createdb: Trillian's schema is in trillian:" in logs
    deployments = cluster.kubectl_json("-n", TRILLIAN, "get", "deployments")["items"]
    ready = {d["metadata"]["name"]: d["status"].get("readyReplicas", 0) for d in deployments}
    assert ready == {"trillian-mysql": 1, "trillian-log-server": 1, "trillian-log-signer": 1}


def _createtree_job(cluster: Cluster, images: Images, name: str) -> str:
    """The rekor chart's createtree Job (its args, its Role on the one ConfigMap); its logs."""
    rules = [
        {
            "apiGroups": [""],
            "resources": ["configmaps"],
            "resourceNames": ["rekor-config"],
            "verbs": ["get", "update"],
        }
    ]
    container = {
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
            {"name": "NAMESPACE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}}
        ],
    }
    cluster.apply([service_account(TRILLIAN, name, rules)])
    return run_to_completion(
        cluster, TRILLIAN, name, pod_spec([container], serviceAccountName=name)
    )


def _trees(cluster: Cluster) -> list[list[str]]:
    """Trillian's Trees table, read in the database pod as the chart's user (its env)."""
    query = "SELECT TreeId, TreeState, TreeType, DisplayName FROM Trees"
    client = 'MYSQL_PWD="$MYSQL_PASSWORD" mariadb -h127.0.0.1 -u"$MYSQL_USER" "$MYSQL_DATABASE"'
    out = cluster.kubectl(
        "-n", TRILLIAN, "exec", "deploy/trillian-mysql", "--", "sh", "-c",
        f'{client} -N -e "{query}"',
    )  # fmt: skip
    return [line.split("\t") for line in out.splitlines()]


def test_createtree_makes_a_tree_records_its_id_and_keeps_it_on_a_rerun(
    cluster: Cluster, trillian: str, internal_stack_images: Images
) -> None:
    cluster.apply(
        [
            {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {"name": "rekor-config", "namespace": TRILLIAN},
            }
        ]
    )
    _createtree_job(cluster, internal_stack_images, "createtree")
    config = cluster.kubectl_json("-n", TRILLIAN, "get", "configmap", "rekor-config")
    tree = config["data"]["treeID"]
    assert [tree, "ACTIVE", "LOG", "rekortree"] in _trees(cluster)
    # A second run (a reinstall's Job) finds the ID and makes no other tree.
    logs = _createtree_job(cluster, internal_stack_images, "createtree-again")
    assert f"Found existing TreeID: {tree}" in logs
    assert sum(row[3] == "rekortree" for row in _trees(cluster)) == 1


@pytest.fixture(scope="module")
def rekor(
    cluster: Cluster,
    trillian: str,
    internal_stack_images: Images,
    sigstore_chart_packages: dict[str, Path],
    tmp_path_factory: pytest.TempPathFactory,
) -> bytes:
    """A `helm install --wait` of the rekor chart against the trillian release, signing with a
    key made here; the key's public half (DER)."""
    namespace(cluster, REKOR)
    key = ec.generate_private_key(ec.SECP256R1())
    private = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    cluster.apply(
        [
            {
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": {"name": "rekor-signer", "namespace": REKOR},
                "stringData": {"private": private.decode()},
            }
        ]
    )
    directory = tmp_path_factory.mktemp("rekor")
    chart = sigstore_chart_packages["rekor"]  # trillian vendored

    def image(name: str) -> dict[str, str]:
        return _image(cluster, internal_stack_images, name)

    values = {
        "imagePullSecrets": [{"name": PULL_SECRET}],
        "initContainerImage": {"curl": image("docker.io/curlimages/curl")},
        "redis": {"image": image("docker.io/library/redis")},
        "createtree": {"image": image("ghcr.io/sigstore/scaffolding/createtree")},
        "server": {
            "image": image("ghcr.io/sigstore/rekor/rekor-server"),
            "ingress": {"enabled": False},
            "signer": "/var/run/rekor-signer/rekor-key.pem",
            "signerFileSecretOptions": {
                "secretName": "rekor-signer",
                "secretMountPath": "/var/run/rekor-signer",
                "secretMountSubPath": "rekor-key.pem",
                "privateKeySecretKey": "private",
            },
            # emptyDir: no provisioner, and a hostPath directory is root's, the server 65533.
            "attestation_storage": {"persistence": {"enabled": False}},
        },
        "trillian": {
            "enabled": False,
            "forceNamespace": TRILLIAN,
            "logServer": {"name": "trillian-log-server"},
        },
    }
    _helm_install(cluster, "rekor", chart, REKOR, values, directory)
    return key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def test_rekor_serves_its_log_on_its_tree_with_the_key_given_to_it(
    cluster: Cluster, rekor: bytes, internal_stack_images: Images
) -> None:
    server = f"http://rekor-server.{REKOR}.svc/api/v1/log"
    logs = _fetch(cluster, internal_stack_images, REKOR, "get-log", server, f"{server}/publicKey")
    log_info, public_pem = logs.split("\n", 1)
    tree = cluster.kubectl_json("-n", REKOR, "get", "configmap", "rekor-config")["data"]["treeID"]
    info = json.loads(log_info)
    assert (info["treeID"], info["treeSize"]) == (tree, 0)
    served = serialization.load_pem_public_key(public_pem.encode()).public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    assert served == rekor


@pytest.fixture(scope="module")
def fulcio(
    cluster: Cluster,
    internal_stack_images: Images,
    sigstore_chart_packages: dict[str, Path],
    tmp_path_factory: pytest.TempPathFactory,
) -> bytes:
    """A `helm install --wait` of the fulcio chart with its file CA given to it (createcerts
    off, as an air-gapped install does); the CA's certificate (PEM)."""
    namespace(cluster, FULCIO)
    password = pki.password()
    key = pki.ec_key()
    private, certificate = pki.pkcs8_pem(key, password), pki.cert_pem(pki.fulcio_root(key))
    cluster.apply(
        [
            {
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": {"name": "fulcio-server-secret", "namespace": FULCIO},
                "stringData": {
                    "private": private.decode(),
                    "cert": certificate.decode(),
                    "password": password,
                },
            }
        ]
    )
    directory = tmp_path_factory.mktemp("fulcio")
    chart = sigstore_chart_packages["fulcio"]  # ctlog 0.2.66 vendored
    values = {
        "imagePullSecrets": [{"name": PULL_SECRET}],
        "server": {
            "image": _image(cluster, internal_stack_images, "ghcr.io/sigstore/fulcio"),
            "ingress": {"http": {"enabled": False}, "grpc": {"enabled": False}},
        },
        "createcerts": {"enabled": False},
        "ctlog": {"enabled": False},
    }
    _helm_install(cluster, "fulcio", chart, FULCIO, values, directory)
    return certificate


def test_fulcio_serves_the_root_it_was_given(
    cluster: Cluster, fulcio: bytes, internal_stack_images: Images
) -> None:
    url = f"http://fulcio-server.{FULCIO}.svc/api/v1/rootCert"
    logs = _fetch(cluster, internal_stack_images, FULCIO, "get-root", url)
    served = x509.load_pem_x509_certificates(logs.encode())
    assert served == [x509.load_pem_x509_certificate(fulcio)]


def _ct_config(tree: str, password: str) -> str:
    """ct_server's LogMultiConfig as scaffolding's createctconfig writes it into `ctlog-secret`
    (the chart passes only --log_config=/ctfe-keys/config): one log on the trillian backend."""
    return (
        "backends {\n"
        "  backend {\n"
        '    name: "trillian"\n'
        f'    backend_spec: "{LOG_SERVER}"\n'
        "  }\n"
        "}\n"
        "log_configs {\n"
        "  config {\n"
        f"    log_id: {tree}\n"
        f'    prefix: "{CT_PREFIX}"\n'
        '    roots_pem_file: "/ctfe-keys/fulcio-0"\n'
        "    private_key {\n"
        "      [type.googleapis.com/keyspb.PEMKeyFile] {\n"
        '        path: "/ctfe-keys/private"\n'
        f'        password: "{password}"\n'
        "      }\n"
        "    }\n"
        '    ext_key_usages: "CodeSigning"\n'
        '    log_backend_name: "trillian"\n'
        "  }\n"
        "}\n"
    )


@pytest.fixture(scope="module")
def ctlog(
    cluster: Cluster,
    trillian: str,
    internal_stack_images: Images,
    tmp_path_factory: pytest.TempPathFactory,
) -> bytes:
    """The ctlog chart installed as an air-gapped install must: createctconfig off, its tree made
    by the chart's createtree Job (the stand-in), then `ctlog-secret` written from that tree ID
    and keys made here, and the server rolled out; the Fulcio root it accepts (PEM)."""
    namespace(cluster, CTLOG)
    values = {
        "imagePullSecrets": [{"name": PULL_SECRET}],
        "server": {
            "image": _image(
                cluster, internal_stack_images, "ghcr.io/sigstore/scaffolding/ct_server"
            )
        },
        "createtree": {
            "image": _image(
                cluster, internal_stack_images, "ghcr.io/sigstore/scaffolding/createtree"
            )
        },
        "createctconfig": {"enabled": False},
        "trillian": {"namespace": TRILLIAN, "logServer": {"name": "trillian-log-server"}},
    }
    values_file = tmp_path_factory.mktemp("ctlog") / "values.json"
    values_file.write_text(json.dumps(values))
    cluster.run(
        ["helm", "install", "ctlog", str(CHARTS / "ctlog"), "-n", CTLOG, "-f", str(values_file)]
    )
    cluster.kubectl(
        "-n", CTLOG, "wait", "--for=condition=complete", "job/ctlog-createtree", "--timeout=120s"
    )
    tree = cluster.kubectl_json("-n", CTLOG, "get", "configmap", "ctlog-config")["data"]["treeID"]
    password = pki.password()
    key = pki.ec_key()
    fulcio_key = pki.ec_key()
    root = pki.cert_pem(pki.fulcio_root(fulcio_key))
    cluster.apply(
        [
            {
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": {"name": "ctlog-secret", "namespace": CTLOG},
                "stringData": {
                    "config": _ct_config(tree, password),
                    "private": pki.legacy_encrypted_pem(key, password).decode(),
                    "public": pki.public_pem(key).decode(),
                    "fulcio-0": root.decode(),
                },
            }
        ]
    )
    cluster.kubectl("-n", CTLOG, "rollout", "status", "deployment/ctlog", "--timeout=180s")
    return root


def test_the_ct_log_accepts_the_fulcio_root_it_was_given(
    cluster: Cluster, ctlog: bytes, internal_stack_images: Images
) -> None:
    url = f"http://ctlog.{CTLOG}.svc/{CT_PREFIX}/ct/v1/get-roots"
    logs = _fetch(cluster, internal_stack_images, CTLOG, "get-roots", url)
    der = x509.load_pem_x509_certificate(ctlog).public_bytes(serialization.Encoding.DER)
    assert json.loads(logs) == {"certificates": [base64.b64encode(der).decode()]}


def test_policy_controller_runs_and_its_uninstall_hook_clears_its_leases(
    cluster: Cluster,
    stack_images: StackImages,
    internal_stack_images: Images,
    tmp_path: Path,
) -> None:
    # The webhook (by digest) serves its TLS probes; the post-delete hook runs kubectl (the
    # chart names it by tag: the content tag) to delete the knative leases, without which a
    # reinstalled webhook never gets its certificate.
    namespace(cluster, POLICY)
    webhook = internal_stack_images["ghcr.io/sigstore/policy-controller/policy-controller"]
    kubectl = stack_images.image("cgr.dev/chainguard/kubectl")
    repository, digest = webhook.split("@")
    values = {
        "imagePullSecrets": [{"name": PULL_SECRET}],
        "webhook": {
            "image": {"repository": repository, "version": digest},
            "extraArgs": {"disable-tuf": "true"},  # no public TUF repository here
        },
        "leasescleanup": {
            "image": {
                "repository": f"{cluster.registry}/{kubectl.repository}",
                "version": stack_images.content_tag(kubectl),
            }
        },
    }
    chart = CHARTS / "policy-controller"
    _helm_install(cluster, "policy-controller", chart, POLICY, values, tmp_path)
    assert cluster.kubectl_json("-n", POLICY, "get", "leases")["items"]
    cluster.run(["helm", "uninstall", "policy-controller", "-n", POLICY, "--wait"], timeout=300)
    assert cluster.kubectl_json("-n", POLICY, "get", "leases")["items"] == []
