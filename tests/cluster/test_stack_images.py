"""The stack's images, built here, keep the contracts their upstream images have with the charts:
each is tried on the cluster the way its chart runs it (entrypoint, env, args, probes)."""

from __future__ import annotations

import hashlib
import json
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

from offline.oci.layout import OCILayout
from provisioner.trust.serving import configmap_files
from tests.cluster.node import Cluster
from tests.cluster.stack_images import (
    IMAGES,
    StackImages,
    build_stack_images,
    push,
    write_authfile,
)
from tests.cluster.workloads import namespace, pod_spec, run_to_completion, service_account
from tests.registries import RegistryServer

NS = "stack-images"
Images = Mapping[str, str]


def test_the_layout_lists_every_image_under_its_upstream_name(stack_images: StackImages) -> None:
    layout = OCILayout(stack_images.layout)
    for image in IMAGES:
        assert layout.resolve(image.name).digest == stack_images.digests[image.name]
        manifest = layout.fetch_manifest(stack_images.digests[image.name])
        assert manifest.media_type == "application/vnd.oci.image.manifest.v1+json"


def _blob(stack_images: StackImages, digest: str) -> Any:
    return json.loads((stack_images.layout / "blobs" / "sha256" / digest[7:]).read_bytes())


def test_the_go_servers_run_as_nonroot_like_upstreams_images(stack_images: StackImages) -> None:
    for name in PROGRAMS:
        manifest = _blob(stack_images, stack_images.digests[stack_images.image(name).name])
        config = _blob(stack_images, manifest["config"]["digest"])
        assert config["config"]["User"] == "65532", name


def test_a_push_to_a_loopback_registry_keeps_every_digest(
    stack_images: StackImages, docker_registry: RegistryServer, tmp_path: Path
) -> None:
    # The connected side: a registry on the host's loopback, under the upstream paths.
    assert docker_registry.credentials is not None
    authfile = write_authfile(
        tmp_path / "auth.json",
        docker_registry.host,
        docker_registry.credentials.username,
        docker_registry.credentials.password,
    )

    def run(argv: Sequence[str]) -> str:
        return subprocess.run(argv, capture_output=True, text=True, check=True).stdout

    pushed = push(
        stack_images,
        docker_registry.host,
        run,
        authfile=authfile,
        cert_dir=docker_registry.cert_dir,
    )
    client = docker_registry.client()
    for image in IMAGES:
        digest = stack_images.digests[image.name]
        assert pushed[image.name] == f"{docker_registry.host}/{image.repository}@{digest}"
        tag = stack_images.content_tag(image)
        assert client.repository(image.repository).resolve(tag).digest == digest


def test_a_rebuild_gives_the_same_digests(stack_images: StackImages) -> None:
    assert build_stack_images(stack_images.layout.parent).digests == stack_images.digests


@pytest.fixture(scope="module")
def ns(cluster: Cluster, internal_stack_images: Images) -> str:
    return namespace(cluster, NS)


def _deploy(
    cluster: Cluster,
    name: str,
    port: int,
    container: dict[str, Any],
    volumes: list[dict[str, Any]] | None = None,
) -> None:
    """A Deployment of one container behind a Service `name`, Ready by its probe."""
    labels = {"app": name}
    cluster.apply(
        [
            {
                "apiVersion": "apps/v1",
                "kind": "Deployment",
                "metadata": {"name": name, "namespace": NS},
                "spec": {
                    "selector": {"matchLabels": labels},
                    "template": {
                        "metadata": {"labels": labels},
                        "spec": pod_spec([container], volumes=volumes or []),
                    },
                },
            },
            {
                "apiVersion": "v1",
                "kind": "Service",
                "metadata": {"name": name, "namespace": NS},
                "spec": {"selector": labels, "ports": [{"port": port, "targetPort": port}]},
            },
        ]
    )
    cluster.kubectl("-n", NS, "rollout", "status", f"deployment/{name}", "--timeout=180s")


def secret(key: str) -> dict[str, Any]:
    return {"secretKeyRef": {"name": "mysql", "key": key}}


# The trillian chart's mysql Deployment: env from its Secret, args, exec probes.
MYSQL_STATUS = {"exec": {"command": ["/etc/init.d/mysql", "status"]}, "periodSeconds": 2}


@pytest.fixture(scope="module")
def mysql(cluster: Cluster, ns: str, internal_stack_images: Images) -> str:
    cluster.apply(
        [
            {
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": {"name": "mysql", "namespace": ns},
                "stringData": {"root": "r00t'pw", "password": "app-s3cret"},
            }
        ]
    )
    _deploy(
        cluster,
        "mysql",
        3306,
        {
            "name": "mysql",
            "image": internal_stack_images["gcr.io/trillian-opensource-ci/db_server"],
            "args": ["--ignore-db-dir=lost+found"],
            "env": [
                {"name": "MYSQL_ROOT_PASSWORD", "valueFrom": secret("root")},
                {"name": "MYSQL_DATABASE", "value": "trillian"},
                {"name": "MYSQL_USER", "value": "trillian"},
                {"name": "MYSQL_PASSWORD", "valueFrom": secret("password")},
            ],
            "ports": [{"containerPort": 3306}],
            "readinessProbe": MYSQL_STATUS,
            "livenessProbe": {**MYSQL_STATUS, "initialDelaySeconds": 10},
            "volumeMounts": [{"name": "data", "mountPath": "/var/lib/mysql"}],
        },
        [{"name": "data", "emptyDir": {}}],
    )
    return f"mysql.{ns}.svc"


def test_db_server_is_ready_and_serves_the_app_user_its_database_over_the_service(
    cluster: Cluster, mysql: str, internal_stack_images: Images
) -> None:
    logs = run_to_completion(
        cluster,
        NS,
        "mysql-client",
        pod_spec(
            [
                {
                    "name": "client",
                    "image": internal_stack_images["ghcr.io/sigstore/scaffolding/createdb"],
                    "command": ["mariadb", "-h", mysql, "-u", "trillian", "trillian", "-N", "-e"],
                    "args": ["SELECT CURRENT_USER(), DATABASE(); SHOW TABLES"],
                    "env": [
                        {
                            "name": "MYSQL_PWD",
                            "valueFrom": secret("password"),
                        }
                    ],
                }
            ]
        ),
    )
    assert "trillian@%\ttrillian" in logs
    # The initdb.d script ran: Trillian's schema is there.
    assert {"Trees", "TreeControl", "Subtree", "LeafData", "SequencedLeafData"} <= set(logs.split())


def test_createdb_creates_trillians_tables_with_the_charts_arguments(
    cluster: Cluster, mysql: str, internal_stack_images: Images
) -> None:
    # The trillian chart's createdb Job: --db_name and --mysql_uri with the user's password.
    password = "app-s3cret"
    logs = run_to_completion(
        cluster,
        NS,
        "createdb",
        pod_spec(
            [
                {
                    "name": "createdb",
                    "image": internal_stack_images["ghcr.io/sigstore/scaffolding/createdb"],
                    "args": [
                        "--db_name=trillian",
                        f"--mysql_uri=trillian:{password}@tcp({mysql}:3306)/",
                    ],
                }
            ]
        ),
    )
    assert "createdb: Trillian's schema is in trillian:" in logs
    assert "Trees" in logs.split()


def test_redis_answers_ping_from_another_pod(
    cluster: Cluster, ns: str, internal_stack_images: Images
) -> None:
    # The rekor chart's redis: its args and its exec probe through /bin/sh -i.
    ping = {
        "exec": {
            "command": ["/bin/sh", "-i", "-c", 'test "$(redis-cli -h 127.0.0.1 ping)" = "PONG"']
        },
        "periodSeconds": 2,
    }
    redis = internal_stack_images["docker.io/library/redis"]
    _deploy(
        cluster,
        "redis",
        6379,
        {
            "name": "redis",
            "image": redis,
            "args": ["--bind", "0.0.0.0", "--appendonly", "yes"],
            "ports": [{"containerPort": 6379}],
            "readinessProbe": ping,
            "livenessProbe": ping,
        },
    )
    logs = run_to_completion(
        cluster,
        NS,
        "redis-client",
        pod_spec(
            [
                {
                    "name": "ping",
                    "image": redis,
                    "command": ["redis-cli", "-h", f"redis.{ns}.svc", "ping"],
                }
            ]
        ),
    )
    assert logs.strip() == "PONG"


# Each Go program answers as its entrypoint, run as the chart runs it (args only).
PROGRAMS = {
    "ghcr.io/sigstore/scaffolding/trillian_log_server": (["--help"], "-mysql_uri"),
    "ghcr.io/sigstore/scaffolding/trillian_log_signer": (["--help"], "-sequencer_interval"),
    "ghcr.io/sigstore/rekor/rekor-server": (["version"], "GitVersion:    v1.5.4"),
    "ghcr.io/sigstore/fulcio": (["version"], "GitVersion:    v1.8.8"),
    "ghcr.io/sigstore/scaffolding/ct_server": (["--help"], "-log_config"),
    "ghcr.io/sigstore/timestamp-server": (["version"], "GitVersion:    v2.1.0"),
    "ghcr.io/sigstore/policy-controller/policy-controller": (["--help"], "-disable-tuf"),
    "ghcr.io/sigstore/scaffolding/createtree": (["--help"], "-admin_server"),
}


def test_each_go_server_image_runs_its_program_as_the_entrypoint(
    cluster: Cluster, ns: str, internal_stack_images: Images
) -> None:
    containers = [
        {"name": f"p{i}", "image": internal_stack_images[name], "args": args}
        for i, (name, (args, _)) in enumerate(PROGRAMS.items())
    ]
    run_to_completion(cluster, NS, "programs", pod_spec(containers))
    for i, (name, (_, expected)) in enumerate(PROGRAMS.items()):
        logs = cluster.kubectl("-n", ns, "logs", "pod/programs", "-c", f"p{i}")
        assert expected in logs, name


def test_netcat_waits_for_an_open_port_as_the_trillian_chart_runs_it(
    cluster: Cluster, mysql: str, internal_stack_images: Images
) -> None:
    netcat = internal_stack_images["docker.io/subfuzion/netcat"]
    logs = run_to_completion(
        cluster,
        NS,
        "netcat",
        pod_spec(
            [
                {
                    "name": "open",
                    "image": netcat,
                    "command": [
                        "sh",
                        "-c",
                        f"until nc -z -w 10 {mysql} 3306; do sleep 1; done; echo open",
                    ],
                },
                {
                    "name": "closed",
                    "image": netcat,
                    "command": ["sh", "-c", f"nc -z -w 2 {mysql} 3307; echo closed=$?"],
                },
            ]
        ),
    )
    assert "open" in logs.split()
    assert "closed=1" in logs.split()


def test_curl_waits_for_a_configmap_key_as_the_ctlog_chart_runs_it(
    cluster: Cluster, ns: str, internal_stack_images: Images
) -> None:
    # ctlog's createctconfig init container: the API with the pod's token and CA, --fail, grep.
    cluster.apply(
        [
            {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {"name": "ctlog-config", "namespace": ns},
                "data": {"treeID": "42"},
            },
            service_account(
                ns, "curl", [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get"]}]
            ),
        ]
    )
    api = f"https://kubernetes.default.svc/api/v1/namespaces/{ns}/configmaps"
    sa = "/var/run/secrets/kubernetes.io/serviceaccount"
    fetch = (
        f'curl --fail --header "Authorization: Bearer $(cat {sa}/token)" '
        f"--cacert {sa}/ca.crt --max-time 10 {api}"
    )
    logs = run_to_completion(
        cluster,
        NS,
        "curl",
        pod_spec(
            [
                {
                    "name": "found",
                    "image": internal_stack_images["docker.io/curlimages/curl"],
                    "command": [
                        "sh",
                        "-c",
                        f"until {fetch}/ctlog-config | grep '\"treeID\":'; do sleep 1; done",
                    ],
                },
                {
                    "name": "missing",
                    "image": internal_stack_images["docker.io/curlimages/curl"],
                    "command": ["sh", "-c", f"{fetch}/absent; echo status=$?"],
                },
            ],
            serviceAccountName="curl",
        ),
    )
    assert '"data":{"treeID":"42"}' in logs
    assert "status=22" in logs.split()


def test_kubectl_deletes_the_leases_as_policy_controllers_cleanup_hook_runs_it(
    cluster: Cluster, ns: str, internal_stack_images: Images
) -> None:
    cluster.apply(
        [
            {
                "apiVersion": "coordination.k8s.io/v1",
                "kind": "Lease",
                "metadata": {"name": "webhook-leader", "namespace": ns},
                "spec": {"holderIdentity": "someone"},
            },
            service_account(
                ns,
                "leases-cleanup",
                [
                    {
                        "apiGroups": ["coordination.k8s.io"],
                        "resources": ["leases"],
                        "verbs": ["list", "delete", "deletecollection"],
                    }
                ],
            ),
        ]
    )
    logs = run_to_completion(
        cluster,
        NS,
        "leases-cleanup",
        pod_spec(
            [
                {
                    "name": "kubectl",
                    "image": internal_stack_images["cgr.dev/chainguard/kubectl"],
                    "command": [
                        "/bin/sh",
                        "-c",
                        f"kubectl delete leases --all --ignore-not-found -n {ns}",
                    ],
                }
            ],
            serviceAccountName="leases-cleanup",
        ),
    )
    assert 'lease.coordination.k8s.io "webhook-leader" deleted' in logs
    assert json.loads(cluster.kubectl("-n", ns, "get", "leases", "-o", "json"))["items"] == []


def _tuf_repository(directory: Path) -> dict[str, bytes]:
    """A small published repository: files by path, as a TUF client fetches them (the
    bytes are what counts: no newline at the end, a non-ASCII name, a CRLF, a NUL)."""
    trusted_root = b'{"mediaType": "application/vnd.dev.sigstore.trustedroot+json;version=0.1"}'
    files = {
        "1.root.json": '{"signed": {"_type": "root", "owner": "Zoë"}}'.encode(),
        "timestamp.json": b'{"signed": {"_type": "timestamp"}}\r\n\x00',
        f"targets/{hashlib.sha256(trusted_root).hexdigest()}.trusted_root.json": trusted_root,
    }
    for path, body in files.items():
        (directory / path).parent.mkdir(parents=True, exist_ok=True)
        (directory / path).write_bytes(body)
    return files


def test_the_static_server_serves_the_tuf_repository_from_its_configmap_as_the_tuf_chart_runs_it(
    cluster: Cluster, ns: str, internal_stack_images: Images, tmp_path: Path
) -> None:
    # The tuf chart's Deployment with airgap's static server: no command or args, port 8080,
    # the chart's projected secrets, the repository's ConfigMap laid out as the repository at
    # the document root; here also a read-only root filesystem and no capabilities.
    files = _tuf_repository(tmp_path)
    data, items = configmap_files(tmp_path)
    cluster.apply(
        [
            {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {"name": "tuf-repository", "namespace": ns},
                "binaryData": data,
            },
            {
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": {"name": "tuf-secrets", "namespace": ns},
                "stringData": {"rekor-pubkey": "not read by the server"},
            },
        ]
    )
    _deploy(
        cluster,
        "tuf",
        8080,
        {
            "name": "tuf",
            "image": internal_stack_images["docker.io/nginxinc/nginx-unprivileged"],
            "ports": [{"containerPort": 8080}],
            "securityContext": {
                "readOnlyRootFilesystem": True,
                "runAsNonRoot": True,
                "allowPrivilegeEscalation": False,
                "capabilities": {"drop": ["ALL"]},
            },
            "volumeMounts": [
                {"name": "tuf-secrets", "mountPath": "/var/run/tuf-secrets", "readOnly": True},
                {"name": "repository", "mountPath": "/usr/share/nginx/html", "readOnly": True},
            ],
        },
        [
            {
                "name": "tuf-secrets",
                "projected": {"sources": [{"secret": {"name": "tuf-secrets"}}]},
            },
            {"name": "repository", "configMap": {"name": "tuf-repository", "items": items}},
        ],
    )
    # The image's own user, as nginx-unprivileged's.
    identity = cluster.kubectl("-n", ns, "exec", "deployment/tuf", "--", "id").split()
    assert identity[:2] == ["uid=101(nginx)", "gid=101(nginx)"]

    # kube-proxy routes the Service a moment after the rollout, more so on a busy machine.
    address = cluster.kubectl("-n", ns, "get", "svc", "tuf", "-o", "jsonpath={.spec.clusterIP}")
    first = f"http://{address}:8080/{next(iter(files))}"
    cluster.wait_until(
        "the static server's Service routed",
        lambda: cluster.succeeds(["curl", "--fail", "--silent", "--max-time", "2", first]),
        timeout=60,
    )
    server = f"http://tuf.{ns}.svc:8080"
    get = "curl --fail --silent --max-time 10"
    fetches = [f"{get} -o /tmp/{i} {server}/{path}" for i, path in enumerate(files)]
    saved = " ".join(f"/tmp/{i}" for i in range(len(files)))
    missing = f"{server}/2.root.json"
    script = [
        *fetches,
        f"sha256sum {saved}",
        f"curl --silent --max-time 10 {missing}",
        "echo",
        f"{get} -o /dev/null {missing}; echo status=$?",
    ]
    logs = run_to_completion(
        cluster,
        NS,
        "tuf-client",
        pod_spec(
            [
                {
                    "name": "get",
                    "image": internal_stack_images["docker.io/curlimages/curl"],
                    "command": ["sh", "-c", " && ".join(script)],
                }
            ]
        ),
    )
    # Each file byte for byte, at its path; a file the repository lacks is a 404.
    for i, body in enumerate(files.values()):
        assert f"{hashlib.sha256(body).hexdigest()}  /tmp/{i}" in logs.splitlines()
    assert "404 Not Found" in logs
    assert "status=22" in logs.split()
