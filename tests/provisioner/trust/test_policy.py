"""The expiry policy in REPO/policy.json: every role named, whole days, nothing unknown; a policy
that is absent or malformed stops every command that signs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from offline.errors import UsageError
from provisioner.stack.site import DEFAULT_EXPIRY_DAYS
from provisioner.trust.build import build
from provisioner.trust.policy import ExpiryPolicy, load_policy, save_policy
from tests.provisioner.trust.material import stack_targets


def test_the_defaults_are_the_site_configurations() -> None:
    assert ExpiryPolicy().to_json()["expiresDays"] == DEFAULT_EXPIRY_DAYS
    assert ExpiryPolicy.from_days({**DEFAULT_EXPIRY_DAYS, "timestamp": 2}).timestamp == 2


def test_the_policy_reads_back_as_written(tmp_path: Path) -> None:
    policy = ExpiryPolicy(root=730, targets=90, snapshot=14, timestamp=7)
    save_policy(policy, tmp_path / "policy.json")
    assert load_policy(tmp_path / "policy.json") == policy


@pytest.mark.parametrize(
    ("days", "words"),
    [
        ({"root": 365, "targets": 180, "snapshot": 30}, "must name exactly"),
        ({"root": 365, "targets": 180, "snapshot": 30, "timestamp": 14, "x": 1}, "must name"),
        ({"root": 365, "targets": 180, "snapshot": 30, "timestamp": 0}, "timestamp: 0"),
        ({"root": 365, "targets": 180, "snapshot": 30, "timestamp": 1.5}, "timestamp: 1.5"),
        ({"root": 365, "targets": 180, "snapshot": 30, "timestamp": True}, "timestamp: True"),
        ({"root": 99999, "targets": 180, "snapshot": 30, "timestamp": 14}, "root: 99999"),
        ({"root": 365, "targets": 180, "snapshot": 30, "timestamp": 31}, "longer than snapshot's"),
        ({"root": 365, "targets": 400, "snapshot": 30, "timestamp": 1}, "longer than root's 365"),
    ],
)
def test_a_malformed_policy_is_refused(tmp_path: Path, days: dict[str, object], words: str) -> None:
    path = tmp_path / "policy.json"
    path.write_text(json.dumps({"expiresDays": days}))
    with pytest.raises(UsageError, match=words):
        load_policy(path)


def test_a_policy_with_another_field_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "policy.json"
    path.write_text(json.dumps({"expiresDays": ExpiryPolicy().to_json()["expiresDays"], "x": 1}))
    with pytest.raises(UsageError, match="exactly one field"):
        load_policy(path)


def test_a_repository_without_its_policy_signs_nothing(repo: Path) -> None:
    (repo / "policy.json").unlink()
    link = (repo / "current").readlink()
    with pytest.raises(UsageError, match=r"expiry policy .* does not exist"):
        build(repo, [t for t in stack_targets() if t.name != "ctfe.pub"])
    assert (repo / "current").readlink() == link
