"""Shared test fixtures and paths."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# The private Sigstore stack fixture (`sigstore_stack`) and its log-tail report hook; the
# registries (`docker_registry`: TLS and htpasswd, no referrers API; `referrers_registry`:
# go-containerregistry's, with the API), each started once per session when a test asks; the
# real disconnected Kubernetes node (`cluster`, tests/cluster), likewise; the whole stack carried
# into it by `bundle create` and `bundle import`, with a site for `airgap install`
# (`carried_stack`, tests/cluster/carried_stack.py).
pytest_plugins = [
    "tests.stack.fixtures",
    "tests.registries",
    "tests.cluster.fixtures",
    "tests.cluster.stack_fixtures",
    "tests.cluster.connected",
    "tests.cluster.carried_stack",
]

REPO = Path(__file__).resolve().parent.parent
# shared/ sits beside the checkout (in CI and on developer machines); AIRGAP_SHARED overrides.
SHARED = Path(os.environ.get("AIRGAP_SHARED", REPO.parent / "shared"))
TESTDATA = SHARED / "testdata"


@pytest.fixture(autouse=True)
def _isolated_user_dirs(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No test reads or writes the real user's checkpoint store, config or state (bundle
    sequences, import records and journals)."""
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("XDG_DATA_HOME", str(home / "data"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / "config"))
    monkeypatch.setenv("XDG_STATE_HOME", str(home / "state"))
    monkeypatch.delenv("AIRGAP_CHECKPOINTS", raising=False)
    monkeypatch.delenv("AIRGAP_TRUSTED_ROOT", raising=False)
