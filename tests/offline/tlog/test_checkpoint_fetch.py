"""`airgap checkpoint fetch --rekor URL`: the store follows a reachable log forward, proving
consistency at every step, and refuses forks, rollbacks and lies."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from offline.cli.main import main
from tests.fake_rekor import FakeRekor, serve
from tests.tlog_fixture import TestLog


class Site:
    def __init__(self, tmp_path: Path) -> None:
        self.log = TestLog("rekor.airgap.test")
        self.log.extend(10)
        self.rekor = FakeRekor(self.log)
        self.trusted_root = tmp_path / "trusted_root.json"
        self.trusted_root.write_text(self.log.trusted_root_json())
        self.store = tmp_path / "checkpoints"

    def fetch(self, url: str, *extra: str) -> int:
        return main(
            [
                "checkpoint",
                "fetch",
                "--rekor",
                url,
                "--trusted-root",
                str(self.trusted_root),
                "--checkpoints",
                str(self.store),
                *extra,
            ]
        )

    def fork(self, size: int) -> FakeRekor:
        """Another server with the same key and origin, serving a different tree."""
        fork = TestLog("rekor.airgap.test", key=self.log.key, tree_id=self.log.tree_id)
        for i in range(size):
            fork.append(f"forked entry {i}".encode())
        return FakeRekor(fork)


@pytest.fixture
def site(tmp_path: Path) -> Site:
    return Site(tmp_path)


def test_the_first_fetch_pins_on_first_use(site: Site, capsys: pytest.CaptureFixture[str]) -> None:
    with serve(site.rekor) as url:
        assert site.fetch(url) == 0
    assert "pinned on first use" in capsys.readouterr().out


def test_a_grown_log_is_followed_with_a_verified_consistency_proof(
    site: Site, capsys: pytest.CaptureFixture[str]
) -> None:
    with serve(site.rekor) as url:
        assert site.fetch(url) == 0
        site.log.extend(7)
        capsys.readouterr()
        assert site.fetch(url, "--output", "json") == 0
    [result] = json.loads(capsys.readouterr().out)
    assert (result["size"], result["outcome"], result["previous_latest_size"]) == (17, "added", 10)
    assert "/api/v1/log/proof?firstSize=10&lastSize=17&treeID=" in site.rekor.requests[-1]


def test_fetching_an_unchanged_log_changes_nothing(
    site: Site, capsys: pytest.CaptureFixture[str]
) -> None:
    with serve(site.rekor) as url:
        assert site.fetch(url) == 0
        capsys.readouterr()
        assert site.fetch(url) == 0
    assert "unchanged" in capsys.readouterr().out


def test_a_second_rekor_with_the_same_key_and_another_tree_is_caught(
    site: Site, capsys: pytest.CaptureFixture[str]
) -> None:
    with serve(site.rekor) as url:
        assert site.fetch(url) == 0
    with serve(site.fork(15)) as fork_url:
        capsys.readouterr()
        assert site.fetch(fork_url) == 1
    err = capsys.readouterr().err
    assert "consistency proof" in err
    assert list(site.store.rglob("evidence/*.json"))


def test_a_same_size_fork_is_a_split_view(site: Site, capsys: pytest.CaptureFixture[str]) -> None:
    with serve(site.rekor) as url:
        assert site.fetch(url) == 0
    with serve(site.fork(10)) as fork_url:
        capsys.readouterr()
        assert site.fetch(fork_url) == 1
    assert "split view" in capsys.readouterr().err.lower()


def test_a_log_that_shrank_is_a_rollback(site: Site, capsys: pytest.CaptureFixture[str]) -> None:
    with serve(site.rekor) as url:
        assert site.fetch(url) == 0
        site.rekor.overrides["/api/v1/log"] = lambda q: (200, site.log.log_info(size=6))
        capsys.readouterr()
        assert site.fetch(url) == 1
    err = capsys.readouterr().err
    assert "smaller than the pinned size 10" in err


def test_a_lying_consistency_proof_is_refused(
    site: Site, capsys: pytest.CaptureFixture[str]
) -> None:
    with serve(site.rekor) as url:
        assert site.fetch(url) == 0
        site.log.extend(6)
        bad = site.log.proof_json(10, 16)
        bad["hashes"][0] = bad["hashes"][-1]
        site.rekor.overrides["/api/v1/log/proof"] = lambda q: (200, bad)
        capsys.readouterr()
        assert site.fetch(url) == 1
    assert "consistency" in capsys.readouterr().err
    listing = json.loads(_list(site, capsys))
    assert listing["logs"][0]["latest_size"] == 10


def test_an_unreachable_rekor_is_a_one_line_error(
    site: Site, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AIRGAP_RETRIES", "1")
    assert site.fetch("http://127.0.0.1:9") == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "did not answer" in err


def _list(site: Site, capsys: pytest.CaptureFixture[str]) -> str:
    capsys.readouterr()
    assert main(["checkpoint", "list", "--checkpoints", str(site.store), "--output", "json"]) == 0
    return capsys.readouterr().out
