"""`airgap trust ...` on the command line: the operator's path from init to refresh, and every
expected failure as one line with its exit code (2 for bad input, 1 for material that does not
verify or needs action)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from provisioner.cli.main import main
from provisioner.stack.site import DEFAULT_EXPIRY_DAYS
from tests.provisioner.trust.material import stack_targets

PASSWORD = "correct horse battery staple"


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(["trust", *argv])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def material(tmp_path: Path) -> Path:
    directory = tmp_path / "material"
    directory.mkdir()
    for target in stack_targets():
        (directory / target.name).write_bytes(target.data)
    return directory


def test_the_operator_path_from_init_to_refresh(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, material: Path
) -> None:
    repo = str(tmp_path / "repo")
    code, out, _ = run(
        capsys, "init", "--dir", repo, "--keys", "3", "--threshold", "2", "--output", "json"
    )
    assert code == 0
    init = json.loads(out)
    assert init["threshold"] == 2 and len(init["keyids"]) == 3
    assert init["policy"] == DEFAULT_EXPIRY_DAYS

    code, out, _ = run(capsys, "build", "--dir", repo, "--from", str(material), "--output", "json")
    assert code == 0
    built = json.loads(out)
    assert built["changed"] is True
    assert built["targets"] == sorted(t.name for t in stack_targets())
    assert Path(built["secret"]).is_file() and Path(built["root"]).is_file()

    code, out, _ = run(capsys, "build", "--dir", repo, "--from", str(material))
    assert (code, out.split(":")[0]) == (0, "unchanged")

    code, out, _ = run(capsys, "status", "--dir", repo)
    assert code == 0
    assert "timestamp: version 1" in out

    code, out, _ = run(capsys, "status", "--dir", repo, "--warn-days", "20")
    assert code == 1
    assert "WARN timestamp version 1 expires on" in out and "airgap trust refresh" in out

    code, out, _ = run(capsys, "refresh", "--dir", repo, "--output", "json")
    assert code == 0
    assert json.loads(out)["roles"]["timestamp"]["version"] == 2


def test_a_rotation_of_root_and_online_keys_is_published_by_the_next_build(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, material: Path
) -> None:
    repo = str(tmp_path / "repo")
    assert run(capsys, "init", "--dir", repo)[0] == 0
    assert run(capsys, "build", "--dir", repo, "--from", str(material))[0] == 0
    new = str(tmp_path / "new-root-keys")
    code, out, _ = run(
        capsys,
        "rotate-root",
        "--dir",
        repo,
        "--new-keys",
        "2",
        "--new-root-keys",
        new,
        "--threshold",
        "2",
        "--new-online-keys",
        "--output",
        "json",
    )
    assert code == 0
    assert json.loads(out)["version"] == 2
    code, out, _ = run(capsys, "status", "--dir", repo)
    assert code == 1 and "FAIL root version 2 is not published yet" in out
    code, out, _ = run(capsys, "build", "--dir", repo, "--from", str(material), "--output", "json")
    roles = json.loads(out)["roles"]
    assert (roles["root"]["version"], roles["targets"]["version"]) == (2, 2)
    assert run(capsys, "status", "--dir", repo)[0] == 0


def test_keys_made_with_a_password_need_it_and_never_show_it(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    material: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    repo = tmp_path / "repo"
    monkeypatch.setenv("AIRGAP_TUF_ROOT_KEY_PASSWORD", PASSWORD)
    monkeypatch.setenv("AIRGAP_TUF_ONLINE_KEY_PASSWORD", PASSWORD)
    outputs = [run(capsys, "init", "--dir", str(repo))]
    for key in (*repo.glob("keys/*/*.key"),):
        assert b"ENCRYPTED PRIVATE KEY" in key.read_bytes()
    monkeypatch.delenv("AIRGAP_TUF_ONLINE_KEY_PASSWORD")
    outputs.append(run(capsys, "build", "--dir", str(repo), "--from", str(material)))
    assert outputs[-1][0] == 2
    assert "encrypted; a password is needed" in outputs[-1][2]
    monkeypatch.setenv("AIRGAP_TUF_ONLINE_KEY_PASSWORD", PASSWORD)
    outputs.append(run(capsys, "build", "--dir", str(repo), "--from", str(material)))
    assert outputs[-1][0] == 0
    outputs.append(run(capsys, "refresh", "--dir", str(repo), "--output", "json"))
    assert outputs[-1][0] == 0
    for _, out, err in outputs:
        assert PASSWORD not in out + err
    for secret in repo.rglob("*.json"):
        assert PASSWORD.encode() not in secret.read_bytes()


def test_changed_target_bytes_fail_status_and_refresh_with_one_line(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, material: Path
) -> None:
    repo = tmp_path / "repo"
    assert run(capsys, "init", "--dir", str(repo))[0] == 0
    assert run(capsys, "build", "--dir", str(repo), "--from", str(material))[0] == 0
    target = next((repo / "current" / "repository" / "targets").glob("*.trusted_root.json"))
    target.write_bytes(target.read_bytes() + b" ")
    for command in ("status", "refresh"):
        code, _, err = run(capsys, command, "--dir", str(repo))
        assert code == 1
        assert err.count("\n") == 1
        assert "trusted_root.json" in err and "changed without a rebuild" in err


def _bad_inputs(tmp_path: Path, material: Path) -> list[tuple[list[str], str]]:
    repo = str(tmp_path / "repo")
    other = str(tmp_path / "elsewhere")
    trusted_root = str(material / "trusted_root.json")
    no_operator = tmp_path / "signing_config.v0.2.json"
    document = json.loads((material / "signing_config.v0.2.json").read_text())
    del document["caUrls"][0]["operator"]
    no_operator.write_text(json.dumps(document))
    return [
        (["build", "--dir", other, "--from", str(material)], "run airgap trust init"),
        (["status", "--dir", other], "run airgap trust init"),
        (["init", "--dir", other, "--keys", "2", "--threshold", "3"], "--threshold 3"),
        (["init", "--dir", repo], "already holds a TUF repository"),
        (["build", "--dir", repo, "--target", "trusted_root.json"], "expected NAME=FILE"),
        (["build", "--dir", repo, "--target", f"x={tmp_path}/absent"], "absent"),
        (
            ["build", "--dir", repo, "--target", f"rekor.pub={material}/rekor.pub"],
            "no trusted_root.json",
        ),
        (["build", "--dir", repo, "--target", f"rekor.pub={trusted_root}"], "not a PEM public key"),
        (
            [
                "build",
                "--dir",
                repo,
                "--target",
                f"signing_config.json={trusted_root}",
                "--target",
                f"trusted_root.json={trusted_root}",
            ],
            "signing_config.v0.2.json",
        ),
        (["build", "--dir", repo, "--target", f"../x={trusted_root}"], "target name '../x'"),
        (
            ["build", "--dir", repo, "--target", f"trusted_root.json={material}/rekor.pub"],
            "trusted_root.json",
        ),
        (
            [
                "build",
                "--dir",
                repo,
                "--target",
                f"trusted_root.json={trusted_root}",
                "--target",
                f"signing_config.v0.2.json={no_operator}",
            ],
            "sigstore-python does not read it as a SigningConfig (caUrls.0.operator",
        ),
        (["refresh", "--dir", repo], "nothing is published yet"),
        (["rotate-root", "--dir", repo, "--new-keys", "2"], "go together"),
        (["status", "--dir", repo, "--warn-days", "-1"], "must not be negative"),
    ]


def test_bad_input_is_one_line_and_exit_2(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, material: Path
) -> None:
    assert run(capsys, "init", "--dir", str(tmp_path / "repo"))[0] == 0
    for argv, words in _bad_inputs(tmp_path, material):
        code, out, err = run(capsys, *argv)
        assert code == 2, (argv, err)
        assert err.startswith("airgap: ") and err.count("\n") == 1, (argv, err)
        assert words in err, (argv, err)
        assert "Traceback" not in err and out == ""
