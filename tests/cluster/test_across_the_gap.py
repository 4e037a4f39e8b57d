"""The whole way across the gap, for real: on the connected side `bundle create` pulls an image
(through a mirror, under its upstream name) and a chart (from a chart repository) into a signed
bundle; the bundle directory is the only thing that crosses; inside the disconnected cluster's
namespace `bundle import` pushes it into the site's internal registry, digests unchanged; and
the carried chart, installed from the bundle with the image the mapping file names, runs and
serves."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import IO

from tests.bundle_sites import operator_key, write_spec
from tests.chart_servers import package_chart, serve_chart_repo
from tests.cluster.images import BUSYBOX, PROBE, base_layer
from tests.cluster.node import PROBE_SOURCE, Cluster
from tests.cluster.oci_build import ImageConfig, LayoutBuilder, file_identity
from tests.registries import RegistryServer
from tests.tools import go_program_from_source, go_tool

UPSTREAM = "ghcr.io/airgap-test/web"

CHART = {
    "Chart.yaml": "apiVersion: v2\nname: web\nversion: 0.1.0\nappVersion: '1'\n",
    "values.yaml": "image: ''\npullSecret: ''\n",
    "templates/deployment.yaml": """apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 1
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      {{- with .Values.pullSecret }}
      imagePullSecrets: [{name: {{ . }}}]
      {{- end }}
      containers:
      - name: web
        image: {{ .Values.image | quote }}
        ports: [{containerPort: 8080}]
        readinessProbe: {httpGet: {path: /healthz, port: 8080}, periodSeconds: 1}
""",
    "templates/service.yaml": """apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  selector: {app: web}
  ports: [{port: 80, targetPort: 8080}]
""",
}


def _write_chart(directory: Path) -> Path:
    for name, text in CHART.items():
        (directory / name).parent.mkdir(parents=True, exist_ok=True)
        (directory / name).write_text(text)
    return directory


def _airgap(*args: str) -> list[str]:
    return [sys.executable, "-m", "provisioner.cli", *args]


def test_an_image_and_its_chart_carried_across_the_gap_run_in_the_cluster(
    cluster: Cluster, referrers_registry: RegistryServer, tmp_path: Path
) -> None:
    # The connected side: the image in a registry standing for ghcr.io, the chart in a repo.
    probe = go_program_from_source(PROBE_SOURCE, "cluster-probe")
    builder = LayoutBuilder(tmp_path / "connected")

    def write_base(out: IO[bytes]) -> None:
        out.write(base_layer(probe).tar())

    recipe = f"cluster-probe base {file_identity(probe)} {file_identity(BUSYBOX)}"
    base = builder.layer(recipe, write_base)
    digest = builder.image(f"{UPSTREAM}:v1", [base], ImageConfig(entrypoint=(PROBE, "serve")))
    subprocess.run(
        [
            "skopeo", "copy", "--quiet", "--preserve-digests", "--dest-tls-verify=false",
            f"oci:{builder.layout.path}:{UPSTREAM}:v1",
            f"docker://{referrers_registry.host}/mirror/{UPSTREAM}:v1",
        ],
        check=True,
    )  # fmt: skip
    reference = f"{UPSTREAM}:v1@{digest}"
    helm = go_tool("helm")
    archive = package_chart(helm, _write_chart(tmp_path / "web"), tmp_path / "pkg", tmp_path / "h")
    public, _key = operator_key(tmp_path)
    bundle = tmp_path / "bundle"
    with serve_chart_repo(helm, [archive], tmp_path / "repo") as repo:
        spec = write_spec(
            tmp_path / "spec.yaml",
            images=[reference],
            charts=[
                {
                    "name": "web",
                    "version": "0.1.0",
                    "repo": repo.url,
                    "namespace": "web",
                    "set": {"image": reference},
                }
            ],
        )
        created = subprocess.run(
            _airgap(
                "bundle", "create", str(spec), "-o", str(bundle),
                "--sign-key", str(tmp_path / "operator.key"),
                "--registry-mirror", f"ghcr.io={referrers_registry.host}/mirror/ghcr.io",
                "--allow-http-registry", referrers_registry.host,
                "--helm", str(helm),
            ),
            capture_output=True, text=True, check=False,
        )  # fmt: skip
    assert created.returncode == 0, created.stderr

    # The disconnected side: only the bundle directory crossed.
    mapping = tmp_path / "mapping.json"
    cluster.run(
        _airgap(
            "bundle", "import", str(bundle), "--key", str(public),
            "--to", f"{cluster.registry}/site",
            "--registry-ca", str(cluster.pki.ca), "--mapping", str(mapping),
        ),
        timeout=300,
    )  # fmt: skip
    landed = json.loads(mapping.read_text())["images"][reference]
    assert landed["digest"] == digest
    target = landed["target"]
    assert target.startswith(f"{cluster.registry}/site/")

    cluster.apply([{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "web"}}])
    cluster.wait_until(
        "service account in web",
        lambda: cluster.succeeds(["kubectl", "-n", "web", "get", "sa", "default"]),
    )
    secret = cluster.pull_secret("web")
    (carried,) = (bundle / "charts").rglob("web-0.1.0.tgz")
    cluster.run(
        [
            "helm", "install", "web", str(carried), "--namespace", "web",
            "--set", f"image={target}", "--set", f"pullSecret={secret}",
            "--wait", "--timeout", "3m",
        ],
        timeout=240,
    )  # fmt: skip

    pod = json.loads(cluster.kubectl("-n", "web", "get", "pods", "-l", "app=web", "-o", "json"))
    (status,) = pod["items"][0]["status"]["containerStatuses"]
    assert status["imageID"].endswith(digest)
    ip = cluster.kubectl("-n", "web", "get", "svc", "web", "-o", "jsonpath={.spec.clusterIP}")
    answer = ""
    for _ in range(30):  # kube-proxy programs the endpoint a moment after the rollout
        answer = cluster.run(["curl", "-s", "--max-time", "2", f"http://{ip}/"], check=False).stdout
        if answer:
            break
        time.sleep(1)
    assert answer.startswith("hello from web-")
