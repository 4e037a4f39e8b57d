"""`python -m tests.cluster run -- COMMAND` reaches a cluster another process runs (what a
person trying airgap by hand uses), through the same guard as the tests."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.cluster.__main__ import describe
from tests.cluster.node import Cluster


def _run(state: Path, *command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tests.cluster", "run", "--", *command],
        env={"AIRGAP_TEST_CLUSTER": str(state), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )


def test_run_enters_the_described_cluster(cluster: Cluster, tmp_path: Path) -> None:
    state = tmp_path / "cluster.json"
    state.write_text(json.dumps(describe(cluster)))
    result = _run(state, "kubectl", "get", "nodes", "-o", "name")
    assert (result.returncode, result.stdout) == (0, f"node/{cluster.node_name}\n")
    assert _run(state, "sh", "-c", "exit 3").returncode == 3


def test_run_refuses_a_description_whose_anchor_is_not_in_the_namespace(
    cluster: Cluster, tmp_path: Path
) -> None:
    state = tmp_path / "cluster.json"
    state.write_text(json.dumps({**describe(cluster), "anchor": 1}))  # init: the host's namespace
    result = _run(state, "touch", str(tmp_path / "ran"))
    assert result.returncode == 2
    assert (
        result.stderr.strip() == f"cluster namespace {cluster.name} has no running anchor process"
    )
    assert not (tmp_path / "ran").exists()


def test_run_without_a_running_cluster_says_how_to_start_one(tmp_path: Path) -> None:
    result = _run(tmp_path / "absent.json", "kubectl", "get", "nodes")
    assert result.returncode == 2
    assert "start one with `-m tests.cluster up`" in result.stderr
