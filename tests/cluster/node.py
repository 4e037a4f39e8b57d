"""A real single-node Kubernetes cluster, disconnected, for the tests.

`Cluster.start()` brings up, inside a network namespace of its own (tests/cluster/network.py):
the site's internal registry (Debian `docker-registry`, TLS from the cluster's test CA, htpasswd
auth), etcd, kube-apiserver, kube-controller-manager, kube-scheduler, containerd (own config,
root, state and socket), kubelet and kube-proxy; builds and pushes the node's own images; and
deploys CoreDNS. It waits on real readiness: the node Ready, CoreDNS answering, the registry
serving. `stop()` stops every process by PID, then whatever is left in the namespace or its
cgroups, removes the namespace, its mounts and host routes and restores the sysctls kubelet
rewrites; `leftovers()` says what a teardown failed to remove.

Every command that talks to the cluster goes through `Cluster.run`, which enters the namespace
behind its guard. A failed start stops everything it had started and raises with the tails of
every component's log.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from tests.cluster import configs
from tests.cluster.binaries import NodeBinaries, find_binaries
from tests.cluster.images import CLUSTER_IMAGES, ImageBuilder, base_layer, program_layer
from tests.cluster.manifests import coredns
from tests.cluster.network import GUARD_REFUSED, GuardRefused, NodeNamespace
from tests.cluster.pki import NODE_NAME, ClusterPKI, make_cluster_pki
from tests.registries import write_htpasswd
from tests.stack.procs import ProcessManager, StackError
from tests.tools import go_program_from_source

T = TypeVar("T")
PROBE_SOURCE = Path(__file__).parents[1] / "tools" / "cluster-probe"
REGISTRY_USER = "airgap-site"
PULL_SECRET = "internal-registry"
TAIL = 25


class ClusterError(StackError):
    """The cluster failed to start or a command against it failed; carries the diagnosis."""


@dataclass
class Cluster:
    name: str
    state: Path
    binaries: NodeBinaries = field(default_factory=find_binaries)
    namespace: NodeNamespace = field(init=False)
    paths: configs.NodePaths = field(init=False)
    pki: ClusterPKI = field(init=False)
    processes: ProcessManager = field(init=False)
    registry_password: str = field(default_factory=lambda: secrets.token_urlsafe(18))
    images: dict[str, str] = field(default_factory=dict)  # name -> digest reference
    timings: dict[str, float] = field(default_factory=dict)  # step -> seconds since start

    def __post_init__(self) -> None:
        self.namespace = NodeNamespace(self.name, self.state)
        self.paths = configs.NodePaths(self.state)
        self.pki = ClusterPKI(self.state / "pki")
        self.processes = ProcessManager(self.paths.logs)

    # ---- facts tests use ------------------------------------------------------------------

    @property
    def node_ip(self) -> str:
        return self.namespace.addresses.node_ip

    @property
    def node_name(self) -> str:
        return NODE_NAME

    @property
    def registry(self) -> str:
        """The internal registry's host:port, as image references name it."""
        return f"{self.node_ip}:{configs.REGISTRY_PORT}"

    @property
    def env(self) -> dict[str, str]:
        """Environment of commands run in the cluster: kubectl's config, crane's and helm's
        registry credentials and CA, and no proxy (nothing may leave the node)."""
        return {
            "PATH": self.binaries.path,
            "HOME": str(self.state / "home"),
            "KUBECONFIG": str(self.pki.kubeconfig("admin")),
            "DOCKER_CONFIG": str(self.state / "docker"),
            "SSL_CERT_FILE": str(self.pki.ca),
            "LANG": "C.UTF-8",
        }

    # ---- running commands in the cluster --------------------------------------------------

    def run(
        self,
        command: Sequence[str],
        *,
        input: str | None = None,
        timeout: float = 120.0,
        check: bool = True,
        env: Mapping[str, str] | None = None,
    ) -> subprocess.CompletedProcess[str]:
        """Run `command` inside the node's namespaces (the one way to talk to the cluster)."""
        argv = self.namespace.enter(command)
        result = subprocess.run(
            argv,
            input=input,
            capture_output=True,
            text=True,
            timeout=timeout,
            env={**self.env, **(env or {})},
            check=False,
        )
        if result.returncode == GUARD_REFUSED:
            raise GuardRefused(result.stderr.strip())
        if check and result.returncode != 0:
            raise ClusterError(
                f"{' '.join(command)} failed ({result.returncode}): "
                f"{(result.stderr or result.stdout).strip()[-2000:]}"
            )
        return result

    def call(self, function: Callable[[], T]) -> T:
        """`function()` run in-process from inside the node's network namespace (see
        `NodeNamespace.call_inside`): for library code that talks to the cluster itself."""
        return self.namespace.call_inside(function)

    def output(self, command: Sequence[str], **kwargs: Any) -> str:
        return self.run(command, **kwargs).stdout

    def kubectl(self, *args: str, input: str | None = None, timeout: float = 120.0) -> str:
        return self.output(["kubectl", *args], input=input, timeout=timeout)

    def apply(self, manifest: str | list[dict[str, Any]]) -> None:
        text = manifest if isinstance(manifest, str) else _yaml_stream(manifest)
        self.kubectl("apply", "-f", "-", input=text)

    def kubectl_json(self, *args: str) -> Any:
        return json.loads(self.kubectl(*args, "-o", "json"))

    def wait_until(
        self, what: str, check: Callable[[], bool], timeout: float = 120.0, every: float = 0.5
    ) -> None:
        deadline = time.monotonic() + timeout
        while not check():
            if time.monotonic() > deadline:
                raise ClusterError(f"{what}: not after {timeout:.0f}s\n{self.diagnose()}")
            time.sleep(every)

    def succeeds(self, command: Sequence[str], timeout: float = 30.0) -> bool:
        try:
            return self.run(command, check=False, timeout=timeout).returncode == 0
        except subprocess.TimeoutExpired:
            return False

    def pull_secret(self, namespace: str) -> str:
        """The internal registry's pull secret in `namespace` (made once), by name."""
        config = {"auths": {self.registry: {"auth": self._registry_auth()}}}
        secret = {
            "apiVersion": "v1",
            "kind": "Secret",
            "type": "kubernetes.io/dockerconfigjson",
            "metadata": {"name": PULL_SECRET, "namespace": namespace},
            "data": {".dockerconfigjson": base64.b64encode(json.dumps(config).encode()).decode()},
        }
        self.apply([secret])
        return PULL_SECRET

    def _registry_auth(self) -> str:
        return base64.b64encode(f"{REGISTRY_USER}:{self.registry_password}".encode()).decode()

    # ---- start ----------------------------------------------------------------------------

    def start(self) -> None:
        """Bring the cluster up; on any failure stop what was started and raise with logs."""
        self._t0 = time.monotonic()
        try:
            self._start()
        except BaseException as exc:
            diagnosis = self.diagnose() if self.namespace.anchor is not None else ""
            try:
                self.stop()
            finally:
                if isinstance(exc, Exception) and not isinstance(exc, ClusterError):
                    raise ClusterError(f"cluster start failed: {exc}\n{diagnosis}") from exc
            raise

    def _mark(self, step: str) -> None:
        self.timings[step] = round(time.monotonic() - self._t0, 2)

    def _start(self) -> None:
        probe = go_program_from_source(PROBE_SOURCE, "cluster-probe")
        self.namespace.create()
        self._mark("namespace")
        make_cluster_pki(self.pki.directory, self.namespace.addresses)
        self._write_configs()
        self._start_registry()
        self._start_control_plane()
        # The images are built while the apiserver comes up; containerd's config names one.
        self._build_images(probe)
        configs.write_containerd(
            self.paths, sandbox_image=self.images["pause"], registry=self.registry, pki=self.pki
        )
        self._start_containerd()
        self._preload_sandbox_image()
        self._wait_apiserver()
        self._start_node_agents()
        self.wait_until("node Ready", self._node_ready, timeout=120)
        self._mark("node Ready")
        self.wait_until(
            "default service account",
            lambda: self.succeeds(["kubectl", "-n", "default", "get", "sa", "default"]),
        )
        self._deploy_coredns()
        self._mark("CoreDNS answering")

    def _write_configs(self) -> None:
        a = self.namespace.addresses
        htpasswd = write_htpasswd(
            self.paths.registry / "htpasswd", REGISTRY_USER, self.registry_password
        )
        configs.write_registry(self.paths, a, self.pki, htpasswd)
        configs.write_cni(self.paths, a)
        configs.write_kubelet(self.paths, a, self.pki, self.namespace.cgroup_root)
        configs.write_kube_proxy(self.paths, a, self.pki)
        docker = self.state / "docker"
        docker.mkdir(parents=True, exist_ok=True)
        fd = os.open(docker / "config.json", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump({"auths": {self.registry: {"auth": self._registry_auth()}}}, f)
        (self.state / "home").mkdir(exist_ok=True)

    def _launch(self, name: str, command: Sequence[str], **kwargs: Any) -> None:
        self.processes.start(name, self.namespace.enter(command), env=self.env, **kwargs)

    def _start_registry(self) -> None:
        url = f"https://{self.registry}/v2/"
        self._launch(
            "registry",
            ["docker-registry", "serve", str(self.paths.registry_config)],
            ready=lambda: self._http_status(url) == "401",
            timeout=30,
        )
        self._mark("registry")

    def _http_status(self, url: str) -> str:
        result = self.run(
            ["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "2", url],
            check=False,
            timeout=10,
        )
        return result.stdout.strip()

    def _start_control_plane(self) -> None:
        a, p, b = self.namespace.addresses, self.pki, self.binaries
        self._launch(
            "etcd",
            [
                str(b.etcd),
                "--name=node0",
                f"--data-dir={self.paths.etcd}",
                "--listen-client-urls=http://127.0.0.1:2379",
                "--advertise-client-urls=http://127.0.0.1:2379",
                "--listen-peer-urls=http://127.0.0.1:2380",
                "--initial-advertise-peer-urls=http://127.0.0.1:2380",
                "--initial-cluster=node0=http://127.0.0.1:2380",
                "--unsafe-no-fsync",
                "--log-level=warn",
            ],
            ready=lambda: self._http_status("http://127.0.0.1:2379/health") == "200",
            timeout=60,
        )
        self._mark("etcd")
        self._launch(
            "kube-apiserver",
            [
                str(b.kube("kube-apiserver")),
                "--etcd-servers=http://127.0.0.1:2379",
                f"--advertise-address={a.node_ip}",
                "--secure-port=6443",
                f"--tls-cert-file={p.cert('apiserver')}",
                f"--tls-private-key-file={p.key('apiserver')}",
                f"--client-ca-file={p.ca}",
                f"--service-account-key-file={p.service_account_public}",
                f"--service-account-signing-key-file={p.service_account_key}",
                "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
                "--authorization-mode=Node,RBAC",
                "--allow-privileged=true",
                "--enable-admission-plugins=NodeRestriction",
                f"--service-cluster-ip-range={a.service_cidr}",
                f"--kubelet-client-certificate={p.cert('admin')}",
                f"--kubelet-client-key={p.key('admin')}",
                # The node's host name resolves nowhere in here: reach kubelet by its IP.
                "--kubelet-preferred-address-types=InternalIP",
                f"--proxy-client-cert-file={p.cert('admin')}",
                f"--proxy-client-key-file={p.key('admin')}",
                f"--requestheader-client-ca-file={p.ca}",
                "--requestheader-username-headers=X-Remote-User",
                "--requestheader-group-headers=X-Remote-Group",
                "--requestheader-extra-headers-prefix=X-Remote-Extra-",
            ],
            stop_grace=20,
        )
        admin = str(p.kubeconfig("admin"))
        self._launch(
            "kube-controller-manager",
            [
                str(b.kube("kube-controller-manager")),
                f"--kubeconfig={admin}",
                "--bind-address=127.0.0.1",
                "--leader-elect=false",
                "--authorization-always-allow-paths=/healthz,/readyz,/livez,/metrics",
                f"--root-ca-file={p.ca}",
                f"--service-account-private-key-file={p.service_account_key}",
                f"--cluster-signing-cert-file={p.ca}",
                f"--cluster-signing-key-file={p.key('ca')}",
                "--use-service-account-credentials=true",
            ],
        )
        self._launch(
            "kube-scheduler",
            [
                str(b.kube("kube-scheduler")),
                f"--kubeconfig={admin}",
                "--bind-address=127.0.0.1",
                "--leader-elect=false",
                "--authorization-always-allow-paths=/healthz,/readyz,/livez,/metrics",
            ],
        )

    def _wait_apiserver(self) -> None:
        self.processes.wait_ready(
            self.processes.processes["kube-apiserver"],
            lambda: self.output(["kubectl", "get", "--raw=/readyz"], check=False) == "ok",
            timeout=120,
        )
        self._mark("kube-apiserver")

    def _start_containerd(self) -> None:
        socket = str(self.paths.containerd_socket)
        self._launch(
            "containerd",
            ["containerd", "--config", str(self.paths.containerd_config)],
            ready=lambda: self.succeeds(["ctr", "-a", socket, "version"], timeout=5),
            timeout=60,
        )
        self._mark("containerd")

    def _build_images(self, probe: Path) -> None:
        builder = ImageBuilder(
            self.state / "images", self.registry, lambda argv: self.output(argv, timeout=120)
        )
        builder.add_layer("base", base_layer(probe))
        builder.add_layer("coredns", program_layer("usr/local/bin/coredns", self.binaries.coredns))
        for spec in CLUSTER_IMAGES:
            self.images[spec.name] = builder.build(spec)
        self._mark("images")

    def _preload_sandbox_image(self) -> None:
        """containerd pulls the sandbox image itself, without the pods' pull secrets: a site
        preloads it on every node, and so does this one, through the same certs.d routing."""
        self.output(
            [
                "ctr",
                "-a",
                str(self.paths.containerd_socket),
                "-n",
                "k8s.io",
                "images",
                "pull",
                "--hosts-dir",
                str(self.paths.certs_d),
                "--user",
                f"{REGISTRY_USER}:{self.registry_password}",
                self.images["pause"],
            ]
        )
        self._mark("sandbox image")

    def _start_node_agents(self) -> None:
        b, p = self.binaries, self.paths
        self._launch(
            "kubelet",
            [
                str(b.kube("kubelet")),
                f"--config={p.kubelet_config}",
                f"--kubeconfig={self.pki.kubeconfig('kubelet')}",
                f"--hostname-override={NODE_NAME}",
                f"--node-ip={self.node_ip}",
                f"--root-dir={p.kubelet / 'root'}",
                f"--cert-dir={p.kubelet / 'pki'}",
                "-v=1",
            ],
        )
        self._launch("kube-proxy", [str(b.kube("kube-proxy")), f"--config={p.kube_proxy_config}"])

    def _node_ready(self) -> bool:
        jsonpath = '{.status.conditions[?(@.type=="Ready")].status}'
        result = self.run(
            ["kubectl", "get", "node", NODE_NAME, "-o", f"jsonpath={jsonpath}"], check=False
        )
        self.processes.check_alive()
        return result.stdout.strip() == "True"

    def _deploy_coredns(self) -> None:
        self.pull_secret("kube-system")
        self.apply(coredns(self.images["coredns"], self.namespace.addresses.dns_ip, PULL_SECRET))
        self.wait_until(
            "CoreDNS answering",
            lambda: self.succeeds(
                [
                    "busybox",
                    "nslookup",
                    "kubernetes.default.svc.cluster.local",
                    self.namespace.addresses.dns_ip,
                ],
                timeout=5,
            ),
            timeout=120,
            every=1.0,
        )

    # ---- stop and diagnosis ---------------------------------------------------------------

    def stop(self) -> None:
        """Stop kubelet first (so it restarts nothing), then the pods and their shims, the
        rest of the components, and the namespace with everything in it."""
        for name in ("kube-proxy", "kubelet"):
            self.processes.stop(name, timeout=10)
        # Pods, shims, containerd and the control plane: nothing in there needs a clean exit.
        self.namespace.kill_processes_inside()
        self.processes.stop_all()
        self.namespace.destroy()

    def leftovers(self) -> list[str]:
        return self.namespace.leftovers()

    def resident_memory(self) -> dict[str, int]:
        """Resident set size in bytes: each component, and `pods` for every other process in
        the namespace or its cgroups (shims and containers)."""
        components = {p.pid: name for name, p in self.processes.processes.items()}
        sizes: dict[str, int] = {}
        for pid in self.namespace.processes_inside():
            name = components.get(pid, "pods")
            sizes[name] = sizes.get(name, 0) + _rss(pid)
        return sizes

    def diagnose(self) -> str:
        """Tails of every component's log, the pods, and `kubectl describe` of what is not
        ready: what a failing test shows."""
        parts = [self.processes.log_tails(TAIL)]
        try:
            parts.append(
                "---- pods ----\n"
                + self.output(
                    ["kubectl", "get", "pods", "-A", "-o", "wide"], check=False, timeout=20
                )
            )
            pods = json.loads(
                self.output(["kubectl", "get", "pods", "-A", "-o", "json"], check=False, timeout=20)
                or "{}"
            )
            for pod in pods.get("items", []):
                conditions = pod.get("status", {}).get("conditions", [])
                ready = any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)
                if not ready and pod.get("status", {}).get("phase") != "Succeeded":
                    meta = pod["metadata"]
                    parts.append(
                        f"---- describe pod {meta['namespace']}/{meta['name']} ----\n"
                        + self.output(
                            ["kubectl", "-n", meta["namespace"], "describe", "pod", meta["name"]],
                            check=False,
                            timeout=20,
                        )[-3000:]
                    )
        except (GuardRefused, subprocess.TimeoutExpired, ValueError) as exc:
            parts.append(f"(no kubectl diagnosis: {exc})")
        return "\n".join(parts)


def _rss(pid: int) -> int:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0
    for line in status.splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def _yaml_stream(objects: list[dict[str, Any]]) -> str:
    # JSON is YAML; `kubectl apply -f -` takes a stream of documents.
    return "\n---\n".join(json.dumps(o) for o in objects)
