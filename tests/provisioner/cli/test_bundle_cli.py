"""`airgap bundle ...` as an operator runs it, each command in its own process: create, verify,
import (dry run, into a layout, into a registry), inventory and a delta bundle, push-ssh to a
real sshd; bad input is one line with a non-zero exit, no traceback, and nothing half-done."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest

from offline.oci.layout import OCILayout
from provisioner.copy.layout import RepositoryView
from tests.bundle_sites import push_graph, unique_repository, write_spec
from tests.registries import RegistryServer
from tests.sshd import SshServer, sshd_server_fixture  # noqa: F401

pytestmark = pytest.mark.slow


def airgap(*args: object, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRGAP_")}
    result = subprocess.run(
        [sys.executable, "-m", "provisioner.cli", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
        cwd=cwd,
    )
    assert "Traceback" not in result.stderr, result.stderr
    return result


def ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, result.stderr
    return result.stdout


def create_cli(
    spec: Path, out: Path, private: Path, registry: RegistryServer, *extra: object
) -> subprocess.CompletedProcess[str]:
    """`airgap bundle create SPEC -o OUT --sign-key KEY`, from a registry on plain HTTP."""
    return airgap(
        "bundle",
        "create",
        spec,
        "-o",
        out,
        "--sign-key",
        private,
        "--allow-http-registry",
        registry.host,
        *extra,
    )


def one_line_error(result: subprocess.CompletedProcess[str], code: int, pattern: str) -> None:
    import re

    assert result.returncode == code, (result.returncode, result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert re.search(pattern, lines[0]), lines[0]


@pytest.fixture
def keys(tmp_path: Path) -> tuple[Path, Path]:
    ok(airgap("bundle", "keygen", tmp_path / "operator.key", "--type", "ed25519"))
    assert (tmp_path / "operator.key").stat().st_mode & 0o777 == 0o600
    return tmp_path / "operator.key", tmp_path / "operator.pub"


@pytest.fixture
def spec(
    referrers_registry: RegistryServer, request: pytest.FixtureRequest, tmp_path: Path
) -> tuple[Path, str]:
    image = push_graph(
        referrers_registry, unique_repository(request, "app"), random.Random(request.node.name)
    )
    return write_spec(tmp_path / "spec.yaml", images=[image.reference]), image.reference


def test_create_verify_import_into_a_layout_and_a_registry(
    spec: tuple[Path, str],
    keys: tuple[Path, Path],
    referrers_registry: RegistryServer,
    docker_registry: RegistryServer,
    tmp_path: Path,
) -> None:
    spec_path, reference = spec
    private, public = keys
    created = json.loads(
        ok(create_cli(spec_path, tmp_path / "b", private, referrers_registry, "--output", "json"))
    )
    assert created["images"][0]["attachments"]["referrer"] == 3
    assert "verified" in ok(airgap("bundle", "verify", tmp_path / "b", "--key", public))

    dry = json.loads(
        ok(
            airgap(
                "bundle",
                "import",
                tmp_path / "b",
                "--key",
                public,
                "--to",
                f"oci:{tmp_path / 'target'}",
                "--dry-run",
                "--output",
                "json",
            )
        )
    )
    assert dry["dryRun"] and dry["bytesPushed"] > 0
    assert not (tmp_path / "target").exists()

    ok(
        airgap(
            "bundle",
            "import",
            tmp_path / "b",
            "--key",
            public,
            "--to",
            f"oci:{tmp_path / 'target'}",
        )
    )
    repository = reference.rsplit(":", 1)[0]
    graph_source = RepositoryView(OCILayout(tmp_path / "b" / "oci"), repository)
    target = RepositoryView(OCILayout(tmp_path / "target"), repository)
    assert target.resolve("v1").digest == graph_source.resolve("v1").digest

    assert docker_registry.ca is not None and docker_registry.credentials is not None
    docker_config = tmp_path / "docker" / "config.json"
    docker_config.parent.mkdir()
    import base64

    auth = base64.b64encode(
        f"{docker_registry.credentials.username}:{docker_registry.credentials.password}".encode()
    ).decode()
    docker_config.write_text(json.dumps({"auths": {docker_registry.host: {"auth": auth}}}))
    os.environ["DOCKER_CONFIG"] = str(docker_config.parent)
    try:
        out = ok(
            airgap(
                "bundle",
                "import",
                tmp_path / "b",
                "--key",
                public,
                "--to",
                f"{docker_registry.host}/cli",
                "--registry-ca",
                docker_registry.ca.ca_cert,
            )
        )
    finally:
        del os.environ["DOCKER_CONFIG"]
    assert "attachments verified" in out


def test_archive_parts_verify_and_a_flipped_part_is_named(
    spec: tuple[Path, str],
    keys: tuple[Path, Path],
    referrers_registry: RegistryServer,
    tmp_path: Path,
) -> None:
    spec_path, _ = spec
    private, public = keys
    ok(
        create_cli(
            spec_path,
            tmp_path / "b",
            private,
            referrers_registry,
            "--split",
            "1M",
            "--compress",
            "none",
        )
    )
    parts_list = tmp_path / "b.parts.json"
    assert not (tmp_path / "b").exists()  # the stream replaced the directory
    assert "parts verified" in ok(airgap("bundle", "verify", parts_list, "--key", public))
    part = tmp_path / "b.tar.part0001"
    data = bytearray(part.read_bytes())
    data[len(data) // 2] ^= 0x01
    part.write_bytes(bytes(data))
    result = airgap("bundle", "verify", parts_list, "--key", public, "--output", "json")
    assert result.returncode == 1
    assert json.loads(result.stdout)["resend"] == ["b.tar.part0001"]


def test_inventory_then_a_delta_bundle_carries_only_what_changed(
    spec: tuple[Path, str],
    keys: tuple[Path, Path],
    referrers_registry: RegistryServer,
    tmp_path: Path,
) -> None:
    spec_path, _ = spec
    private, public = keys
    ok(create_cli(spec_path, tmp_path / "full", private, referrers_registry))
    ok(
        airgap(
            "bundle",
            "import",
            tmp_path / "full",
            "--key",
            public,
            "--to",
            f"oci:{tmp_path / 'site'}",
        )
    )
    ok(
        airgap(
            "bundle",
            "inventory",
            "--registry",
            f"oci:{tmp_path / 'site'}",
            "-o",
            tmp_path / "site.json",
        )
    )
    delta = json.loads(
        ok(
            create_cli(
                spec_path,
                tmp_path / "delta",
                private,
                referrers_registry,
                "--since",
                tmp_path / "site.json",
                "--output",
                "json",
            )
        )
    )
    full = json.loads((tmp_path / "full" / "airgap-bundle.json").read_text())
    assert delta["onTarget"] > 0
    layer_bytes = sum(b["size"] for b in full["blobs"])
    assert delta["blobBytes"] < layer_bytes / 2
    ok(
        airgap(
            "bundle",
            "import",
            tmp_path / "delta",
            "--key",
            public,
            "--to",
            f"oci:{tmp_path / 'site'}",
        )
    )
    ok(airgap("bundle", "verify", tmp_path / "delta", "--key", public))


def test_push_ssh_sends_the_parts_and_a_rerun_sends_nothing(
    spec: tuple[Path, str],
    keys: tuple[Path, Path],
    referrers_registry: RegistryServer,
    sshd_server: SshServer,
    tmp_path: Path,
) -> None:
    spec_path, _ = spec
    private, _ = keys
    ok(create_cli(spec_path, tmp_path / "b", private, referrers_registry, "--split", "1M"))
    remote = tmp_path / "bastion"
    remote.mkdir()
    known_hosts = tmp_path / "known_hosts"
    args = (
        "bundle",
        "push-ssh",
        tmp_path / "b.parts.json",
        sshd_server.destination(remote),
        "--port",
        sshd_server.port,
        "--identity",
        sshd_server.client_key,
        "--known-hosts",
        known_hosts,
        "--output",
        "json",
    )
    one_line_error(airgap(*args), 1, "not in .*rerun with --accept-new-host-key to add it")
    first = json.loads(ok(airgap(*args, "--accept-new-host-key")))
    assert first["bytesSent"] > 0
    for name in ("b.parts.json", "b.parts.json.sig", "b.tar.zst.part0001"):
        assert (remote / name).read_bytes() == (tmp_path / name).read_bytes()
    again = json.loads(ok(airgap(*args)))
    assert again["bytesSent"] == 0


@pytest.mark.parametrize(
    ("args", "code", "pattern"),
    [
        (
            ("bundle", "create", "missing.yaml", "-o", "out", "--sign-key", "k.key"),
            2,
            "bundle spec missing.yaml does not exist",
        ),
        (
            ("bundle", "create", "bad.yaml", "-o", "out", "--sign-key", "k.key"),
            2,
            "unknown key 'imagez'",
        ),
        (("bundle", "verify", "nothing", "--key", "k.pub"), 2, "no bundle at nothing"),
        (
            ("bundle", "import", "nothing", "--key", "k.pub", "--to", "http://x"),
            2,
            "without a scheme",
        ),
        (("bundle", "import", "nothing", "--key", "k.key", "--to", "oci:t"), 2, "not a PEM public"),
        (("bundle", "push-ssh", "nothing", "u@h:/p"), 2, "no bundle at nothing"),
        (("bundle", "inventory", "--registry", "oci:", "-o", "inv.json"), 2, "names no directory"),
    ],
)
def test_bad_input_is_one_line(
    args: tuple[str, ...], code: int, pattern: str, tmp_path: Path
) -> None:
    ok(airgap("bundle", "keygen", tmp_path / "k.key"))
    (tmp_path / "bad.yaml").write_text(
        "apiVersion: airgap.dev/v1\nkind: BundleSpec\nname: x\nimagez: []\n"
    )
    one_line_error(airgap(*args, cwd=tmp_path), code, pattern)
    assert not (tmp_path / "out").exists()


def test_an_image_with_no_attachments_is_carried_and_said_to_have_none(
    keys: tuple[Path, Path], referrers_registry: RegistryServer, tmp_path: Path
) -> None:
    from tests.oci_images import make_image, push_image

    with referrers_registry.client() as registry:
        push_image(registry.repository("cli/plain"), make_image(random.Random("plain")), "v1")
    reference = f"{referrers_registry.host}/cli/plain:v1"
    spec_path = write_spec(tmp_path / "plain.yaml", images=[reference])
    private, _ = keys
    result = create_cli(spec_path, tmp_path / "b", private, referrers_registry)
    assert result.returncode == 0, result.stderr
    assert "1 images, 0 attachments" in result.stdout
    assert f"airgap: warning: {reference}: no signatures, attestations or SBOMs exist" in (
        result.stderr
    )
