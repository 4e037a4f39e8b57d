"""Releases on the real cluster: installed once, upgraded only when the chart or a value
changed, left alone otherwise (a rerun rotates nothing), refused in one line when the values
break the chart's schema, and removed on uninstall."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from provisioner.stack.kube import Kube
from provisioner.stack.releases import ReleaseFailed, Releases
from tests.chart_servers import package_chart
from tests.cluster.node import Cluster
from tests.tools import go_tool

SCHEMA = {
    "$schema": "http://json-schema.org/draft-07/schema#",
    "type": "object",
    "properties": {"greeting": {"type": "string"}, "replicas": {"type": "integer"}},
    "additionalProperties": False,
}


@pytest.fixture(scope="module")
def chart(tmp_path_factory: pytest.TempPathFactory) -> Path:
    source = tmp_path_factory.mktemp("chart") / "settings"
    (source / "templates").mkdir(parents=True)
    (source / "Chart.yaml").write_text("apiVersion: v2\nname: settings\nversion: 1.0.0\n")
    (source / "values.yaml").write_text("greeting: hello\nreplicas: 1\n")
    (source / "values.schema.json").write_text(json.dumps(SCHEMA))
    (source / "templates" / "configmap.yaml").write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: {{ .Release.Name }}}\n"
        "data: {greeting: {{ .Values.greeting | quote }}}\n"
    )
    home = tmp_path_factory.mktemp("helm-home")
    return package_chart(go_tool("helm"), source, source.parent / "packages", home)


@pytest.fixture(scope="module")
def releases(cluster: Cluster) -> Releases:
    namespace = "releases-test"
    kube = Kube.from_kubeconfig(cluster.pki.kubeconfig("admin"))
    cluster.call(lambda: kube.ensure_namespace(namespace))
    return Releases(str(go_tool("helm")), cluster.pki.kubeconfig("admin"))


def _greeting(cluster: Cluster) -> str:
    return cluster.kubectl(
        "-n", "releases-test", "get", "configmap", "settings", "-o", "jsonpath={.data.greeting}"
    )


def test_a_release_is_installed_then_left_alone_then_upgraded_only_on_change(
    cluster: Cluster, releases: Releases, chart: Path
) -> None:
    def ensure(values: dict[str, object]) -> tuple[str, int]:
        outcome = cluster.call(lambda: releases.ensure("settings", chart, "releases-test", values))
        return outcome.action, outcome.revision

    assert ensure({"greeting": "hello"}) == ("installed", 1)
    assert _greeting(cluster) == "hello"
    assert ensure({"greeting": "hello"}) == ("unchanged", 1)
    assert ensure({"greeting": "bonjour"}) == ("upgraded", 2)
    assert _greeting(cluster) == "bonjour"
    assert cluster.call(lambda: releases.revision("settings", "releases-test")) == 2


def test_values_against_the_schema_are_refused_in_one_line_naming_the_field(
    cluster: Cluster, releases: Releases, chart: Path
) -> None:
    with pytest.raises(ReleaseFailed) as refused:
        cluster.call(lambda: releases.ensure("bad", chart, "releases-test", {"replicas": "three"}))
    message = str(refused.value)
    assert message.startswith("release bad: ")
    assert "replicas" in message
    assert "\n" not in message
    assert refused.value.exit_code == 2
    assert cluster.call(lambda: releases.revision("bad", "releases-test")) is None


def test_uninstall_removes_the_release_and_says_when_there_was_none(
    cluster: Cluster, releases: Releases, chart: Path
) -> None:
    cluster.call(lambda: releases.ensure("gone", chart, "releases-test", {}))
    assert cluster.call(lambda: releases.uninstall("gone", "releases-test")) is True
    assert cluster.call(lambda: releases.revision("gone", "releases-test")) is None
    assert cluster.call(lambda: releases.uninstall("gone", "releases-test")) is False
