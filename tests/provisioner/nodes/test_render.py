"""provisioner.nodes.render: the DaemonSet that writes the trust on every node, its ConfigMap,
and the version hash that rolls a change out and leaves an unchanged apply alone."""

from __future__ import annotations

import base64
import dataclasses
from typing import Any

import pytest

from offline.errors import UsageError
from offline.oci.imageref import parse_image_ref
from provisioner.nodes.containerd import hosts_toml
from provisioner.nodes.material import read_material
from provisioner.nodes.render import (
    SCRIPT,
    VERSION_ANNOTATION,
    VERSION_KEY,
    NodeObjects,
    render,
)
from tests.provisioner.nodes.conftest import REGISTRY, NodesSite
from tests.provisioner.nodes.material import DIGEST


def rendered(lab: NodesSite) -> NodeObjects:
    return render(lab.site, lab.mapping, read_material(lab.site, None, None))


def pod_spec(objects: NodeObjects) -> dict[str, Any]:
    spec: dict[str, Any] = objects.daemon_set["spec"]["template"]["spec"]
    return spec


def config_map_files(objects: NodeObjects) -> dict[str, bytes]:
    return {k: base64.b64decode(v) for k, v in objects.config_map["binaryData"].items()}


def test_it_runs_on_every_node_whatever_its_taints(lab: NodesSite) -> None:
    spec = pod_spec(rendered(lab))
    assert spec["tolerations"] == [{"operator": "Exists"}]
    assert "affinity" not in spec and spec["nodeSelector"] == {"kubernetes.io/os": "linux"}


def test_it_runs_as_root_with_no_capability_no_token_and_a_read_only_root(lab: NodesSite) -> None:
    spec = pod_spec(rendered(lab))
    (container,) = spec["containers"]
    security = container["securityContext"]
    assert security["capabilities"] == {"drop": ["ALL"]}
    assert security["allowPrivilegeEscalation"] is False
    assert security["privileged"] is False
    assert security["readOnlyRootFilesystem"] is True
    assert spec["securityContext"]["runAsUser"] == 0
    assert spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert spec["automountServiceAccountToken"] is False
    assert not (spec["hostNetwork"] or spec["hostPID"] or spec["hostIPC"])


def test_the_only_host_paths_are_the_trust_dir_and_the_registrys_own_certs_dir(
    lab: NodesSite,
) -> None:
    spec = pod_spec(rendered(lab))
    host_paths = {v["hostPath"]["path"] for v in spec["volumes"] if "hostPath" in v}
    assert host_paths == {"/etc/sigstore", f"/etc/containerd/certs.d/{REGISTRY}"}
    mounts = {m["name"]: m for m in spec["containers"][0]["volumeMounts"]}
    assert mounts["material"]["readOnly"] is True


def test_the_image_is_the_carried_one_in_the_internal_registry_by_digest(lab: NodesSite) -> None:
    spec = pod_spec(rendered(lab))
    assert spec["containers"][0]["image"] == f"{REGISTRY}/carried/busybox@{DIGEST}"
    assert spec["imagePullSecrets"] == [{"name": "internal-registry"}]


def test_an_image_the_bundle_did_not_carry_is_refused_in_one_line(lab: NodesSite) -> None:
    assert lab.site.nodes is not None
    nodes = dataclasses.replace(lab.site.nodes, image=parse_image_ref("docker.io/library/alpine:3"))
    site = dataclasses.replace(lab.site, nodes=nodes)
    with pytest.raises(UsageError, match=r"^site nodes.image: image docker.io/library/alpine:3 "):
        render(site, lab.mapping, read_material(site, None, None))


def test_the_config_map_carries_the_trust_files_the_registry_config_and_the_script(
    lab: NodesSite,
) -> None:
    objects = rendered(lab)
    files = config_map_files(objects)
    for name, data in lab.files.items():
        assert files[f"trust.{name}"] == data
    assert files["registry.ca.crt"] == (lab.trust_dir.parent / "registry-ca.pem").read_bytes()
    assert files["registry.hosts.toml"] == hosts_toml(lab.site, with_ca=True)
    assert files[VERSION_KEY] == objects.version.encode()
    assert SCRIPT in files
    assert objects.config_map["immutable"] is True
    assert objects.config_map_name.endswith(objects.version[:12])
    assert all(b"PRIVATE KEY" not in data for data in files.values())


def test_hosts_toml_sends_pulls_to_the_registry_only_trusting_the_ca_beside_it(
    lab: NodesSite,
) -> None:
    text = hosts_toml(lab.site, with_ca=True).decode()
    assert f'server = "https://{REGISTRY}"' in text
    assert f'[host."https://{REGISTRY}"]' in text
    assert '  capabilities = ["pull", "resolve"]' in text
    assert f'  ca = "/etc/containerd/certs.d/{REGISTRY}/ca.crt"' in text
    assert "ca =" not in hosts_toml(lab.site, with_ca=False).decode()


def test_the_same_material_renders_the_same_objects(lab: NodesSite) -> None:
    first, second = rendered(lab), rendered(lab)
    assert first == second
    annotations = first.daemon_set["spec"]["template"]["metadata"]["annotations"]
    assert annotations == {VERSION_ANNOTATION: first.version}


def test_a_changed_trust_file_is_a_new_version_a_new_config_map_and_a_new_pod_template(
    lab: NodesSite,
) -> None:
    before = rendered(lab)
    (lab.trust_dir / "rekor.pub").write_bytes(lab.files["ctfe.pub"])
    after = rendered(lab)
    assert after.version != before.version
    assert after.config_map_name != before.config_map_name
    template = after.daemon_set["spec"]["template"]
    assert template["metadata"]["annotations"][VERSION_ANNOTATION] == after.version
    volumes = {v["name"]: v for v in template["spec"]["volumes"]}
    assert volumes["material"]["configMap"]["name"] == after.config_map_name


def test_changed_node_directories_are_a_new_version(lab: NodesSite) -> None:
    assert lab.site.nodes is not None
    before = rendered(lab)
    nodes = dataclasses.replace(
        lab.site.nodes, containerd_certs_dir=type(lab.site.nodes.trust_dir)("/etc/cd/certs.d")
    )
    after = render(
        dataclasses.replace(lab.site, nodes=nodes), lab.mapping, read_material(lab.site, None, None)
    )
    assert after.version != before.version
