"""What `airgap nodes apply` sends to the cluster: a ConfigMap with the node material and the
script that writes it, and a DaemonSet that runs the script on every node.

The version of the material is a hash of the ConfigMap's content (material and script). It names
the ConfigMap (immutable: a pod never sees its files change under it) and annotates the pod
template, so a change of trust rolls out to every node and an unchanged apply changes nothing.

Privileges: the container runs as root, because the directories it writes on the node (under
/etc) belong to root, but with every capability dropped (root writes its own directories and
files by their mode bits, no override needed), no privilege escalation, a read-only root
filesystem, no service account token, no host network, PID or IPC, and only two hostPaths: the
trust directory and the internal registry's own directory under containerd's certs.d (never
the whole of certs.d, nor /etc).
"""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import dataclass
from typing import Any

from provisioner.nodes.containerd import CA_FILE, HOSTS_TOML, hosts_toml, registry_dir
from provisioner.nodes.material import TRUST_NAMES, NodeMaterial
from provisioner.stack.mapping import ImageMapping
from provisioner.stack.secrets import MANAGED_BY
from provisioner.stack.site import Site

NAME = "airgap-node-trust"
CONTAINER = "write"
SELECTOR = {"app.kubernetes.io/name": NAME}
LABELS = {**SELECTOR, **MANAGED_BY}
VERSION_ANNOTATION = "airgap.dev/trust-version"
SPEC_ANNOTATION = "airgap.dev/applied-spec"
# Where the container sees things.
MATERIAL = "/airgap/material"
TRUST_MOUNT = "/node/trust"
REGISTRY_MOUNT = "/node/registry"
SCRIPT = "write.sh"
VERSION_KEY = "version"
# On the node, in the trust directory: which version it holds and since when (JSON).
RECORD = "airgap-node-trust.json"
# The line each pass of the script logs, which `nodes status` reads (status.py).
REPORT = "airgap-node-trust"
PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
RECHECK_SECONDS = 300  # files changed on the node by hand are put back within this


@dataclass(frozen=True)
class NodeObjects:
    version: str  # hex SHA-256 of the material and the script
    config_map: dict[str, Any]
    daemon_set: dict[str, Any]

    @property
    def config_map_name(self) -> str:
        return str(self.config_map["metadata"]["name"])


def trust_key(name: str) -> str:
    return f"trust.{name}"


def registry_key(name: str) -> str:
    return f"registry.{name}"


def material_files(site: Site, material: NodeMaterial) -> dict[str, bytes]:
    """ConfigMap key -> content: the trust files, the registry's files, the script."""
    files = {trust_key(name): data for name, data in sorted(material.trust.items())}
    if material.registry_ca is not None:
        files[registry_key(CA_FILE)] = material.registry_ca
    files[registry_key(HOSTS_TOML)] = hosts_toml(site, with_ca=material.registry_ca is not None)
    files[SCRIPT] = writer_script(sorted(material.trust), material.registry_ca is not None)
    return files


def content_version(files: dict[str, bytes]) -> str:
    digests = {key: hashlib.sha256(data).hexdigest() for key, data in files.items()}
    return hashlib.sha256(json.dumps(digests, sort_keys=True).encode()).hexdigest()


def render(site: Site, mapping: ImageMapping, material: NodeMaterial) -> NodeObjects:
    assert site.nodes is not None
    image = mapping.find(site.nodes.image, "site nodes.image").reference
    files = material_files(site, material)
    version = content_version(files)
    namespace = site.namespace("nodes")
    config_map: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": f"{NAME}-{version[:12]}", "namespace": namespace, "labels": LABELS},
        "immutable": True,
        "binaryData": {
            key: _base64(data) for key, data in {**files, VERSION_KEY: version.encode()}.items()
        },
    }
    daemon_set = _daemon_set(site, image, config_map["metadata"]["name"], version)
    spec_hash = hashlib.sha256(json.dumps(daemon_set, sort_keys=True).encode()).hexdigest()
    daemon_set["metadata"]["annotations"] = {SPEC_ANNOTATION: spec_hash}
    return NodeObjects(version, config_map, daemon_set)


def _daemon_set(site: Site, image: str, config_map: str, version: str) -> dict[str, Any]:
    assert site.nodes is not None
    registry = site.registry
    record = f"{TRUST_MOUNT}/{RECORD}"
    pod: dict[str, Any] = {
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "hostNetwork": False,
        "hostPID": False,
        "hostIPC": False,
        "nodeSelector": {"kubernetes.io/os": "linux"},
        "tolerations": [{"operator": "Exists"}],  # every taint: control plane, NoExecute, ...
        "terminationGracePeriodSeconds": 5,
        "securityContext": {
            "runAsUser": 0,
            "runAsGroup": 0,
            "runAsNonRoot": False,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "containers": [
            {
                "name": CONTAINER,
                "image": image,
                "imagePullPolicy": "IfNotPresent",
                "command": ["/bin/sh", f"{MATERIAL}/{SCRIPT}"],
                "env": [{"name": "PATH", "value": PATH}],
                "securityContext": {
                    "privileged": False,
                    "allowPrivilegeEscalation": False,
                    "readOnlyRootFilesystem": True,
                    "capabilities": {"drop": ["ALL"]},
                },
                "resources": {
                    "requests": {"cpu": "5m", "memory": "8Mi"},
                    "limits": {"cpu": "100m", "memory": "32Mi"},
                },
                "readinessProbe": {
                    "exec": {"command": ["grep", "-qF", f'"version": "{version}"', record]},
                    "periodSeconds": 2,
                    "failureThreshold": 1,
                },
                "volumeMounts": [
                    {"name": "material", "mountPath": MATERIAL, "readOnly": True},
                    {"name": "trust", "mountPath": TRUST_MOUNT},
                    {"name": "registry", "mountPath": REGISTRY_MOUNT},
                ],
            }
        ],
        "volumes": [
            {"name": "material", "configMap": {"name": config_map, "defaultMode": 0o444}},
            _host_path("trust", str(site.nodes.trust_dir)),
            _host_path("registry", str(registry_dir(site))),
        ],
    }
    if registry.pull_secret is not None:
        pod["imagePullSecrets"] = [{"name": registry.pull_secret}]
    return {
        "apiVersion": "apps/v1",
        "kind": "DaemonSet",
        "metadata": {"name": NAME, "namespace": site.namespace("nodes"), "labels": LABELS},
        "spec": {
            "selector": {"matchLabels": SELECTOR},
            "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "25%"}},
            "template": {
                "metadata": {"labels": LABELS, "annotations": {VERSION_ANNOTATION: version}},
                "spec": pod,
            },
        },
    }


def _host_path(name: str, path: str) -> dict[str, Any]:
    return {"name": name, "hostPath": {"path": path, "type": "DirectoryOrCreate"}}


def _base64(data: bytes) -> str:
    return base64.b64encode(data).decode()


# -- the script ------------------------------------------------------------------------------------

_SCRIPT_HEAD = f"""# Written by airgap nodes apply. Copies this node's trust files and the internal
# registry's containerd configuration from the ConfigMap at {MATERIAL}: each file goes
# to a temporary file in its own directory, then is renamed over the old one (a reader sees
# the whole old file or the whole new one); then the version is recorded. Again every
# {RECHECK_SECONDS}s, so a file changed on the node is put back.
# Every path is under $AIRGAP_ROOT, which the pod leaves empty (tests run it in a directory).
set -u
umask 022
M=${{AIRGAP_ROOT:-}}{MATERIAL}
T=${{AIRGAP_ROOT:-}}{TRUST_MOUNT}
R=${{AIRGAP_ROOT:-}}{REGISTRY_MOUNT}
VERSION=$(cat "$M/{VERSION_KEY}")
RECORD=$T/{RECORD}

put() {{  # put KEY DIR NAME: DIR/NAME gets KEY's content, mode 0644
  if cmp -s "$M/$1" "$2/$3" && [ "$(stat -c %a "$2/$3")" = 644 ]; then return 0; fi
  tmp="$2/.$3.airgap-tmp"
  if cat "$M/$1" > "$tmp" && chmod 0644 "$tmp" && mv -f "$tmp" "$2/$3"; then
    changed=$((changed + 1))
  else
    rm -f "$tmp"
    return 1
  fi
}}

drop() {{  # drop DIR NAME: a file an earlier version wrote and this one does not
  if [ -e "$1/$2" ] || [ -L "$1/$2" ]; then
    rm -f "$1/$2" || return 1
    changed=$((changed + 1))
  fi
}}

record() {{  # the version this node holds, and when it was written
  if [ "$changed" -eq 0 ] && grep -qF "\\"version\\": \\"$VERSION\\"" "$RECORD" 2>/dev/null; then
    return 0
  fi
  now=$(date -u +%Y-%m-%dT%H:%M:%SZ)
  printf '{{"version": "%s", "written": "%s"}}\\n' "$VERSION" "$now" > "$RECORD.airgap-tmp" &&
    chmod 0644 "$RECORD.airgap-tmp" && mv -f "$RECORD.airgap-tmp" "$RECORD"
}}
"""

_SCRIPT_TAIL = f"""
trap 'exit 0' TERM INT
while :; do
  if write_all; then
    pause={RECHECK_SECONDS}
  else
    echo "{REPORT} failed: a file could not be written; again in 10s" >&2
    pause=10
  fi
  sleep "$pause" &
  wait $!
done
"""


def writer_script(trust_names: list[str], with_ca: bool) -> bytes:
    """The script for this material: every file it writes and every one it removes, by name
    (names are fixed constants, never site input)."""
    steps = ['  chmod 0755 "$T" "$R" || return 1']
    for name in TRUST_NAMES:
        if name in trust_names:
            steps.append(f'  put {trust_key(name)} "$T" {name} || return 1')
        else:
            steps.append(f'  drop "$T" {name} || return 1')
    # The CA first: hosts.toml names it.
    if with_ca:
        steps.append(f'  put {registry_key(CA_FILE)} "$R" {CA_FILE} || return 1')
    else:
        steps.append(f'  drop "$R" {CA_FILE} || return 1')
    steps.append(f'  put {registry_key(HOSTS_TOML)} "$R" {HOSTS_TOML} || return 1')
    steps += [
        "  record || return 1",
        """  written=$(sed -n 's/.*"written": "\\([^"]*\\)".*/\\1/p' "$RECORD")""",
        f'  echo "{REPORT} version=$VERSION written=$written changed=$changed"',
    ]
    body = "\nwrite_all() {\n  changed=0\n" + "\n".join(steps) + "\n}\n"
    return (_SCRIPT_HEAD + body + _SCRIPT_TAIL).encode()
