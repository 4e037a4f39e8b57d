"""Small real Helm charts for the tests, and real places to fetch them from, all on loopback.

- `write_demo_chart`: a chart directory whose images all come from values, in the shapes the
  sigstore charts use: a Deployment with an initContainer (`{registry, repository, version}`
  dicts rendered by a helper like the sigstore charts' `<chart>.image`), a post-install Job hook
  (`image: "string"`), a CronJob (`{repository, tag}`), a test-hook Pod, an optional metrics
  sidecar (tag defaulting to appVersion), a Service with no image at all, and, switched on by
  `extras.enabled`, a List holding a DaemonSet, a custom kind with a pod template (Rollout) and
  a Pod with an ephemeral container.
- `package_chart`: `helm package`.
- `serve_chart_repo`: a chart repository (`helm repo index`) served by `http.server` in a thread.
- `push_oci`: `helm push` into a registry fixture from tests/registries.py (`referrers_registry`
  is plain HTTP without auth; `docker_registry` needs `login_registry` first, with its CA).

Every helm run here uses a private helm home, like the code under test.
"""

from __future__ import annotations

import functools
import http.server
import os
import shutil
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.registries import RegistryServer
from tests.tools import ToolMissing, go_tool

DEMO_CHART = "airgap-demo"
DEMO_APP_VERSION = "2.0.0"
INIT_DIGEST = "sha256:" + "1" * 64
SERVER_DIGEST = "sha256:" + "2" * 64
TEST_DIGEST = "sha256:" + "3" * 64

# What the demo chart renders with its defaults (release "demo"), as (image, resource, container).
DEMO_IMAGES = {
    (f"docker.io/busybox@{INIT_DIGEST}", "Deployment/demo-server", "wait-for-db"),
    (f"ghcr.io/example/server:v1.0.0@{SERVER_DIGEST}", "Deployment/demo-server", "server"),
    ("ghcr.io/example/migrate:1.2.0", "Job/demo-migrate", "migrate"),
    ("registry.example.com/tools/cleanup:3.1", "CronJob/demo-cleanup", "cleanup"),
    (f"curlimages/curl:8.17.0@{TEST_DIGEST}", "Pod/demo-test", "probe"),
}

_HELPERS = """\
{{/* As the sigstore charts' <chart>.image helper: a sha256: version is a digest. */}}
{{- define "demo.image" -}}
{{- if hasPrefix "sha256:" .version -}}
{{ .registry }}/{{ .repository }}@{{ .version }}
{{- else -}}
{{ .registry }}/{{ .repository }}:{{ .version }}
{{- end -}}
{{- end -}}
"""

_DEPLOYMENT = """\
{{- $_ := required "server.image.repository is required" .Values.server.image.repository }}
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ .Release.Name }}-server
  namespace: {{ .Release.Namespace }}
spec:
  selector:
    matchLabels: {app: server}
  template:
    metadata:
      labels: {app: server}
    spec:
      initContainers:
        - name: wait-for-db
          image: {{ include "demo.image" .Values.init.image | quote }}
      containers:
        - name: server
          image: {{ include "demo.image" .Values.server.image | quote }}
        {{- if .Values.metrics.enabled }}
        - name: metrics
          image: "{{ .Values.metrics.image.repository }}:\
{{ .Values.metrics.image.tag | default .Chart.AppVersion }}"
        {{- end }}
"""

_JOB_HOOK = """\
apiVersion: batch/v1
kind: Job
metadata:
  name: {{ .Release.Name }}-migrate
  annotations:
    "helm.sh/hook": post-install,post-upgrade
    "helm.sh/hook-delete-policy": hook-succeeded
spec:
  template:
    spec:
      restartPolicy: Never
      containers:
        - name: migrate
          image: {{ .Values.migrate.image | quote }}
"""

_CRONJOB = """\
apiVersion: batch/v1
kind: CronJob
metadata:
  name: {{ .Release.Name }}-cleanup
spec:
  schedule: "0 3 * * *"
  jobTemplate:
    spec:
      template:
        spec:
          restartPolicy: OnFailure
          containers:
            - name: cleanup
              image: "{{ .Values.cleanup.image.repository }}:{{ .Values.cleanup.image.tag }}"
"""

_TEST_POD = """\
apiVersion: v1
kind: Pod
metadata:
  name: {{ .Release.Name }}-test
  annotations:
    "helm.sh/hook": test
spec:
  restartPolicy: Never
  containers:
    - name: probe
      image: {{ include "demo.image" .Values.test.image | quote }}
      args: ["http://{{ .Release.Name }}-server"]
"""

_SERVICE = """\
apiVersion: v1
kind: Service
metadata:
  name: {{ .Release.Name }}-server
spec:
  selector: {app: server}
  ports:
    - port: 80
"""

# Off by default: the other shapes a pod spec comes in, for the tests that ask for them.
_EXTRAS = """\
{{- if .Values.extras.enabled }}
apiVersion: v1
kind: List
items:
  - apiVersion: apps/v1
    kind: DaemonSet
    metadata:
      name: {{ .Release.Name }}-agent
    spec:
      selector:
        matchLabels: {app: agent}
      template:
        metadata:
          labels: {app: agent}
        spec:
          containers:
            - name: agent
              image: {{ .Values.extras.agent.image | quote }}
---
apiVersion: argoproj.io/v1alpha1
kind: Rollout
metadata:
  name: {{ .Release.Name }}-canary
spec:
  template:
    spec:
      containers:
        - name: canary
          image: {{ .Values.extras.canary.image | quote }}
---
apiVersion: v1
kind: Pod
metadata:
  name: {{ .Release.Name }}-debug
spec:
  containers:
    - name: app
      image: {{ .Values.extras.canary.image | quote }}
  ephemeralContainers:
    - name: debugger
      image: {{ .Values.extras.debugger.image | quote }}
{{- end }}
"""

_VALUES = f"""\
init:
  image:
    registry: docker.io
    repository: busybox
    version: {INIT_DIGEST}
server:
  image:
    registry: ghcr.io
    repository: example/server
    version: v1.0.0@{SERVER_DIGEST}
metrics:
  enabled: false
  image:
    repository: quay.io/example/metrics
    tag: ""
migrate:
  image: ghcr.io/example/migrate:1.2.0
cleanup:
  image:
    repository: registry.example.com/tools/cleanup
    tag: "3.1"
extras:
  enabled: false
  agent:
    image: ghcr.io/example/agent:1.0
  canary:
    image: ghcr.io/example/canary:1.0
  debugger:
    image: busybox:1.36
test:
  image:
    registry: curlimages
    repository: curl
    version: 8.17.0@{TEST_DIGEST}
"""


def helm_program() -> Path:
    """The pinned helm (tests/tools/go-tools.txt); a test needing it fails when it is missing."""
    try:
        return go_tool("helm")
    except ToolMissing as exc:
        pytest.fail(str(exc))


def helm_env(home: Path, registry_config: Path | None = None) -> dict[str, str]:
    """This process's environment with a private helm home under `home`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("HELM_")}
    env.update(
        HELM_CONFIG_HOME=str(home / "config"),
        HELM_CACHE_HOME=str(home / "cache"),
        HELM_DATA_HOME=str(home / "data"),
    )
    if registry_config is not None:
        env["HELM_REGISTRY_CONFIG"] = str(registry_config)
    return env


def run_helm(
    helm: Path,
    args: list[str],
    home: Path,
    *,
    registry_config: Path | None = None,
    input: str | None = None,
) -> str:
    result = subprocess.run(
        [str(helm), *args],
        env=helm_env(home, registry_config),
        input=input,
        capture_output=True,
        text=True,
        timeout=120,
    )
    if result.returncode != 0:
        raise RuntimeError(f"helm {' '.join(args)} failed: {result.stderr.strip()}")
    return result.stdout


def write_demo_chart(
    directory: Path, name: str = DEMO_CHART, version: str = "0.1.0", values: str = _VALUES
) -> Path:
    """The demo chart's directory, `directory/<name>`."""
    chart = directory / name
    (chart / "templates" / "tests").mkdir(parents=True, exist_ok=True)
    (chart / "Chart.yaml").write_text(
        f"apiVersion: v2\nname: {name}\nversion: {version}\n"
        f"appVersion: {DEMO_APP_VERSION!r}\ndescription: airgap test chart\n"
    )
    (chart / "values.yaml").write_text(values)
    templates = {
        "_helpers.tpl": _HELPERS,
        "deployment.yaml": _DEPLOYMENT,
        "job-migrate.yaml": _JOB_HOOK,
        "cronjob.yaml": _CRONJOB,
        "service.yaml": _SERVICE,
        "extras.yaml": _EXTRAS,
        "tests/test-probe.yaml": _TEST_POD,
    }
    for relative, text in templates.items():
        (chart / "templates" / relative).write_text(text)
    return chart


def package_chart(helm: Path, chart_dir: Path, dest: Path, home: Path) -> Path:
    """`helm package` into `dest`; the archive's path."""
    dest.mkdir(parents=True, exist_ok=True)
    out = run_helm(helm, ["package", str(chart_dir), "--destination", str(dest)], home)
    # "Successfully packaged chart and saved it to: PATH"
    return Path(out.strip().rsplit(": ", 1)[-1])


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


@dataclass
class ChartRepo:
    url: str
    directory: Path
    requests: list[str]


@contextmanager
def serve_chart_repo(helm: Path, archives: list[Path], directory: Path) -> Iterator[ChartRepo]:
    """A chart repository holding `archives`, on http://127.0.0.1:PORT/ until the block ends.
    `requests` lists the paths asked for, in order."""
    directory.mkdir(parents=True, exist_ok=True)
    for archive in archives:
        shutil.copyfile(archive, directory / archive.name)
    requests: list[str] = []

    class Handler(_QuietHandler):
        def do_GET(self) -> None:
            requests.append(self.path)
            super().do_GET()

    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(Handler, directory=str(directory))
    )
    url = f"http://127.0.0.1:{server.server_address[1]}/"
    run_helm(helm, ["repo", "index", str(directory), "--url", url], directory.parent / "home")
    thread = threading.Thread(target=server.serve_forever, name="chart-repo", daemon=True)
    thread.start()
    try:
        yield ChartRepo(url=url, directory=directory, requests=requests)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def login_registry(helm: Path, registry: RegistryServer, registry_config: Path) -> None:
    """`helm registry login` to a TLS registry with auth (docker_registry), into
    `registry_config`; the password goes on stdin."""
    assert registry.credentials is not None and registry.ca is not None
    run_helm(
        helm,
        [
            "registry",
            "login",
            registry.host,
            "--username",
            registry.credentials.username,
            "--password-stdin",
            "--ca-file",
            str(registry.ca.ca_cert),
        ],
        registry_config.parent / "home",
        registry_config=registry_config,
        input=registry.credentials.password,
    )


def push_oci(
    helm: Path,
    archive: Path,
    registry: RegistryServer,
    home: Path,
    *,
    namespace: str = "charts",
    registry_config: Path | None = None,
) -> str:
    """`helm push` the archive into `registry`; the chart's `oci://host/namespace` base (the
    chart is at `<base>/<chart name>`)."""
    base = f"oci://{registry.host}/{namespace}"
    args = ["push", str(archive), base]
    if registry.tls:
        assert registry.ca is not None
        args += ["--ca-file", str(registry.ca.ca_cert)]
    else:
        args.append("--plain-http")
    run_helm(helm, args, home, registry_config=registry_config)
    return base
