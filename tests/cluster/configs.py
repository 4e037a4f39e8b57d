"""The configuration files of the node's programs, each written under the cluster's state
directory: containerd (its own root, state and socket, never the system service), the internal
registry's routing (`certs.d/<host>/hosts.toml`, as an air-gapped site configures it), the
registry itself, CNI, kubelet and kube-proxy.

Choices forced by this machine kind (see ../shared/reference/cluster.md, pitfalls):
- `restrict_oom_score_adj`: root here lacks CAP_SYS_RESOURCE, so runc cannot lower a sandbox's
  oom_score_adj and every pod would fail to start;
- `failCgroupV1: false`, `cgroupDriver: cgroupfs`: cgroup v1, no systemd;
- `resolvConf` names no nameserver (never the host's), CoreDNS has no `forward`: no name is ever
  resolved outside the cluster;
- kube-proxy never writes the global conntrack sysctls.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from tests.cluster.network import Addresses
from tests.cluster.pki import NODE_NAME, ClusterPKI

REGISTRY_PORT = 5000


@dataclass(frozen=True)
class NodePaths:
    """Where each program keeps its files, under one state directory."""

    state: Path

    @property
    def containerd(self) -> Path:
        return self.state / "containerd"

    @property
    def containerd_config(self) -> Path:
        return self.containerd / "config.toml"

    @property
    def containerd_socket(self) -> Path:
        return self.containerd / "containerd.sock"

    @property
    def certs_d(self) -> Path:
        return self.containerd / "certs.d"

    @property
    def cni_conf_dir(self) -> Path:
        return self.state / "cni" / "net.d"

    @property
    def kubelet(self) -> Path:
        return self.state / "kubelet"

    @property
    def kubelet_config(self) -> Path:
        return self.kubelet / "config.yaml"

    @property
    def kube_proxy_config(self) -> Path:
        return self.state / "kube-proxy.yaml"

    @property
    def registry(self) -> Path:
        return self.state / "registry"

    @property
    def registry_config(self) -> Path:
        return self.registry / "config.yml"

    @property
    def etcd(self) -> Path:
        return self.state / "etcd"

    @property
    def logs(self) -> Path:
        return self.state / "logs"

    @property
    def hostpath(self) -> Path:
        """A directory the tests' hostPath volumes may use, readable from the host."""
        return self.state / "hostpath"


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def write_containerd(
    paths: NodePaths, *, sandbox_image: str, registry: str, pki: ClusterPKI
) -> None:
    """containerd 1.6's config, with the internal registry routed through certs.d. containerd
    has no registry credentials: pods pull with their pull secrets."""
    c = paths.containerd
    cri = '[plugins."io.containerd.grpc.v1.cri"'
    _write(
        paths.containerd_config,
        f"""version = 2
root = "{c / "root"}"
state = "{c / "state"}"
disabled_plugins = ["io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs",
  "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.aufs"]
[grpc]
  address = "{paths.containerd_socket}"
[plugins."io.containerd.internal.v1.opt"]
  path = "{c / "opt"}"
{cri}]
  sandbox_image = "{sandbox_image}"
  stream_server_address = "127.0.0.1"
  enable_cdi = false
  netns_mounts_under_state_dir = true
  restrict_oom_score_adj = true
  {cri}.containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    {cri}.containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      {cri}.containerd.runtimes.runc.options]
        BinaryName = "/usr/sbin/runc"
        SystemdCgroup = false
  {cri}.cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "{paths.cni_conf_dir}"
    max_conf_num = 1
  {cri}.registry]
    config_path = "{paths.certs_d}"
""",
    )
    write_registry_route(paths, registry, f"https://{registry}", pki.ca)


def write_registry_route(paths: NodePaths, host: str, server: str, ca: Path) -> None:
    """`certs.d/<host>/hosts.toml`: pulls for `host` go to `server` only, trusting `ca`. No
    fallback: `server` is also the upstream containerd would otherwise try."""
    _write(
        paths.certs_d / host / "hosts.toml",
        f"""server = "{server}"
[host."{server}"]
  capabilities = ["pull", "resolve"]
  ca = "{ca}"
""",
    )


def write_registry(paths: NodePaths, addresses: Addresses, pki: ClusterPKI, htpasswd: Path) -> None:
    storage = paths.registry / "data"
    storage.mkdir(parents=True, exist_ok=True)
    config = {
        "version": 0.1,
        "log": {"level": "info", "formatter": "text"},
        "storage": {"filesystem": {"rootdirectory": str(storage)}, "delete": {"enabled": True}},
        "http": {
            "addr": f"{addresses.node_ip}:{REGISTRY_PORT}",
            "tls": {"certificate": str(pki.cert("registry")), "key": str(pki.key("registry"))},
        },
        "auth": {"htpasswd": {"realm": "airgap-internal", "path": str(htpasswd)}},
    }
    # JSON is YAML: no YAML writer needed for a file this small.
    _write(paths.registry_config, json.dumps(config, indent=2))


def write_cni(paths: NodePaths, addresses: Addresses) -> None:
    conflist = {
        "cniVersion": "0.4.0",
        "name": "airgap",
        "plugins": [
            {
                "type": "bridge",
                "bridge": "cni0",
                "isGateway": True,
                "ipMasq": False,
                "hairpinMode": True,
                "ipam": {
                    "type": "host-local",
                    "dataDir": str(paths.state / "cni" / "ipam"),
                    "ranges": [[{"subnet": addresses.pod_cidr}]],
                    "routes": [{"dst": "0.0.0.0/0"}],
                },
            },
            {"type": "portmap", "capabilities": {"portMappings": True}},
        ],
    }
    _write(paths.cni_conf_dir / "10-airgap.conflist", json.dumps(conflist, indent=2))


def write_kubelet(
    paths: NodePaths, addresses: Addresses, pki: ClusterPKI, cgroup_root: str
) -> None:
    k = paths.kubelet
    _write(k / "resolv.conf", "# no upstream DNS inside the node\noptions ndots:1\n")
    (k / "manifests").mkdir(parents=True, exist_ok=True)
    config = {
        "apiVersion": "kubelet.config.k8s.io/v1beta1",
        "kind": "KubeletConfiguration",
        "address": addresses.node_ip,
        "port": 10250,
        "readOnlyPort": 0,
        "healthzBindAddress": "127.0.0.1",
        "healthzPort": 10248,
        "authentication": {
            "anonymous": {"enabled": False},
            "webhook": {"enabled": True},
            "x509": {"clientCAFile": str(pki.ca)},
        },
        "authorization": {"mode": "Webhook"},
        "tlsCertFile": str(pki.cert("node")),
        "tlsPrivateKeyFile": str(pki.key("node")),
        "cgroupDriver": "cgroupfs",
        "failSwapOn": False,
        "failCgroupV1": False,
        "cgroupRoot": cgroup_root,
        "containerRuntimeEndpoint": f"unix://{paths.containerd_socket}",
        "clusterDomain": "cluster.local",
        "clusterDNS": [addresses.dns_ip],
        "resolvConf": str(k / "resolv.conf"),
        "serializeImagePulls": False,
        "evictionHard": {
            "memory.available": "100Mi",
            "nodefs.available": "1%",
            "imagefs.available": "1%",
            "nodefs.inodesFree": "1%",
        },
        "imageGCHighThresholdPercent": 100,
        "imageGCLowThresholdPercent": 99,
        "staticPodPath": str(k / "manifests"),
        "podLogsDir": str(k / "pod-logs"),
        "syncFrequency": "10s",
        "nodeStatusReportFrequency": "10s",
    }
    _write(paths.kubelet_config, json.dumps(config, indent=2))


def write_kube_proxy(paths: NodePaths, addresses: Addresses, pki: ClusterPKI) -> None:
    config = {
        "apiVersion": "kubeproxy.config.k8s.io/v1alpha1",
        "kind": "KubeProxyConfiguration",
        "clientConnection": {"kubeconfig": str(pki.kubeconfig("admin"))},
        "mode": "iptables",
        "hostnameOverride": NODE_NAME,
        "clusterCIDR": addresses.cluster_cidr,
        "bindAddress": addresses.node_ip,
        "metricsBindAddress": "127.0.0.1:10249",
        "healthzBindAddress": "127.0.0.1:10256",
        "nodePortAddresses": [f"{addresses.node_ip}/32"],
        # Zeros: kube-proxy leaves the machine-wide nf_conntrack sysctls alone.
        "conntrack": {
            "maxPerCore": 0,
            "min": 0,
            "tcpEstablishedTimeout": "0s",
            "tcpCloseWaitTimeout": "0s",
        },
    }
    _write(paths.kube_proxy_config, json.dumps(config, indent=2))
