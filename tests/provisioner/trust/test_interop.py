"""What the repository is published as is read by the clients that will read it: the `tuf-root`
Secret (policy-controller's TrustRoot mirrorFS layout) by python-tuf's client, and the served
repository by cosign v3 (`cosign initialize --mirror --root`)."""

from __future__ import annotations

import base64
import io
import json
import os
import subprocess
import tarfile
from pathlib import Path

import pytest
from cryptography import x509

from provisioner.trust.build import build
from provisioner.trust.ceremony import RootKeys, init_repository, rotate_root
from provisioner.trust.refresh import refresh
from tests.provisioner.trust.material import client, fetch, serve, stack_targets
from tests.tools import go_tool


def secret_of(repo: Path) -> dict[str, object]:
    document = json.loads((repo / "current" / "tuf-root.secret.json").read_text())
    assert isinstance(document, dict)
    return document


def test_the_tuf_root_secret_holds_the_root_to_pin_and_the_repository_without_keys(
    repo: Path, tmp_path: Path
) -> None:
    secret = secret_of(repo)
    assert secret["kind"] == "Secret"
    assert secret["metadata"] == {
        "name": "tuf-root",
        "labels": {"app.kubernetes.io/managed-by": "airgap"},
    }
    data = secret["data"]
    assert isinstance(data, dict) and set(data) == {"root", "repository"}
    root = base64.b64decode(data["root"])
    assert root == (repo / "roots" / "1.root.json").read_bytes()
    archive = base64.b64decode(data["repository"])
    with tarfile.open(fileobj=io.BytesIO(archive), mode="r:gz") as tar:
        names = tar.getnames()
        assert all(n == "repository" or n.startswith("repository/") for n in names)
        assert not [n for n in names if n.endswith(".key") or "/keys" in n]
        tar.extractall(tmp_path / "unpacked", filter="data")
    # The archive is the served repository, and a client pinned to the secret's root takes it.
    with serve(tmp_path / "unpacked" / "repository") as url:
        updater = client(url, tmp_path / "client", root)
        for target in stack_targets():
            assert fetch(updater, target.name) == target.data


def test_the_secret_is_the_same_bytes_for_the_same_repository(repo: Path, tmp_path: Path) -> None:
    """Reapplying it after a rebuild of an unchanged repository changes nothing."""
    from provisioner.trust.secret import repository_archive

    served = repo / "current" / "repository"
    copy = tmp_path / "copy"
    subprocess.run(["cp", "-a", str(served), str(copy)], check=True)
    os.utime(copy / "timestamp.json", (0, 0))
    assert repository_archive(copy) == repository_archive(served)
    data = secret_of(repo)["data"]
    assert isinstance(data, dict)
    assert base64.b64decode(data["repository"]) == repository_archive(served)


def _cosign_initialize(url: str, root: Path, home: Path) -> subprocess.CompletedProcess[str]:
    home.mkdir(parents=True, exist_ok=True)
    env = {"PATH": os.environ["PATH"], "HOME": str(home), "TUF_ROOT": str(home / "tuf")}
    return subprocess.run(
        [str(go_tool("cosign")), "initialize", "--mirror", url, "--root", str(root)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.slow
def test_cosign_initializes_from_the_served_repository_and_after_a_refresh(
    repo: Path, tmp_path: Path
) -> None:
    home = tmp_path / "home"
    with serve(repo / "current" / "repository") as url:
        first = _cosign_initialize(url, repo / "current" / "root.json", home)
        assert first.returncode == 0, first.stderr
        cached = list((home / "tuf").rglob("trusted_root.json"))
        trusted_root = next(t for t in stack_targets() if t.name == "trusted_root.json")
        assert [p.read_bytes() for p in cached] == [trusted_root.data]
        refresh(repo)
        again = _cosign_initialize(url, repo / "current" / "root.json", home)
        assert again.returncode == 0, again.stderr
        timestamps = list((home / "tuf").rglob("timestamp.json"))
        assert [json.loads(p.read_text())["signed"]["version"] for p in timestamps] == [2]


@pytest.mark.slow
def test_cosign_refuses_the_repository_under_another_root(repo: Path, tmp_path: Path) -> None:
    other = tmp_path / "other"
    init_repository(other)
    with serve(repo / "current" / "repository") as url:
        result = _cosign_initialize(url, other / "roots" / "1.root.json", tmp_path / "home")
    assert result.returncode != 0
    assert "signature" in result.stderr.lower() or "threshold" in result.stderr.lower(), (
        result.stderr
    )


def test_sigstore_python_reads_its_trust_config_from_the_served_repository(
    repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sigstore.models import ClientTrustConfig

    # sigstore-python keeps its TUF state in the user's data and cache directories.
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    with serve(repo / "current" / "repository") as url:
        config = ClientTrustConfig.from_tuf(url, bootstrap_root=repo / "current" / "root.json")
    # The Fulcio chain it trusts is the one the repository publishes, intermediate first.
    published = {t.name: t.data for t in stack_targets()}
    expected = [
        *x509.load_pem_x509_certificates(published["fulcio_intermediate_v1.crt.pem"]),
        *x509.load_pem_x509_certificates(published["fulcio_v1.crt.pem"]),
    ]
    assert config.trusted_root.get_fulcio_certs() == expected


def test_the_configmap_form_lays_out_the_served_repository_file_for_file(repo: Path) -> None:
    from provisioner.trust.serving import configmap_files

    served = repo / "current" / "repository"
    data, items = configmap_files(served)
    laid_out = {item["path"]: base64.b64decode(data[item["key"]]) for item in items}
    on_disk = {
        p.relative_to(served).as_posix(): p.read_bytes() for p in served.rglob("*") if p.is_file()
    }
    assert laid_out == on_disk
    assert all("/" not in key for key in data)


@pytest.mark.slow
def test_cosign_pinned_to_the_first_root_follows_a_rotation_of_every_key(
    repo: Path, tmp_path: Path
) -> None:
    rotate_root(
        repo,
        RootKeys(repo / "keys" / "root"),
        new_root_keys=RootKeys(tmp_path / "new-root-keys"),
        new_keys=2,
        new_online_keys=True,
    )
    build(repo, stack_targets())
    with serve(repo / "current" / "repository") as url:
        result = _cosign_initialize(url, repo / "roots" / "1.root.json", tmp_path / "home")
    assert result.returncode == 0, result.stderr
    roots = list((tmp_path / "home" / "tuf").rglob("root.json"))
    assert roots and all(json.loads(p.read_text())["signed"]["version"] == 2 for p in roots)
