"""Replayed, substituted and doctored bundles at import, into an OCI layout (no registry needed).

What must hold:
- a bundle older than the newest of its name the target imported is refused (tags would move
  back), and so is another bundle with the same sequence; `--allow-rollback` lets it in;
- a directory unpacked beside a parts list is used only if it is the bundle the signed parts
  list names, and then checked whole like any bundle;
- a journal shipped inside a bundle is refused with the bundle, and no journal, wherever it
  is, makes import skip a blob or manifest the target does not have;
- after an import the bundle still verifies (the mapping and the journal are not in it);
- a directory that is not a bundle is bad input (exit 2), a bundle that fails is exit 1.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import uuid
from dataclasses import replace
from pathlib import Path
from typing import Any, Literal

import pytest

from offline.errors import UsageError, VerificationFailure
from offline.oci.layout import OCILayout
from offline.oci.manifest import OCI_MANIFEST
from provisioner.archive.names import parts_list_path
from provisioner.archive.write import write_archive
from provisioner.bundle.check import verify_bundle_dir
from provisioner.bundle.manifest import MANIFEST_FILE, BundleManifest, layout_files
from provisioner.bundle.sequence import state_dir
from provisioner.bundle.signing import PrivateKey, PublicKey
from provisioner.copy.inventory import parse_target
from provisioner.importer.importer import RollbackRefused, default_journal_path, import_bundle
from provisioner.importer.journal import JOURNAL_FORMAT, target_key
from provisioner.importer.record import LAYOUT_RECORD
from tests.bundle_sites import registry_options
from tests.provisioner.bundle.test_bundle_check import Bundle, build_bundle
from tests.registries import RegistryServer


@pytest.fixture
def bundle(tmp_path: Path) -> Bundle:
    made = build_bundle(tmp_path / "new", "ed25519")
    made.resign(replace(made.manifest, sequence=200))
    return made


def older(bundle: Bundle, root: Path, sequence: int = 100) -> Bundle:
    """Another bundle of the same name, signed by the same key, at `sequence`."""
    other = Bundle(Path(shutil.copytree(bundle.path, root / "bundle")), *_rest(bundle))
    other.resign(replace(bundle.manifest, sequence=sequence))
    return other


def _rest(
    bundle: Bundle,
) -> tuple[BundleManifest, PrivateKey, PublicKey, Literal["ecdsa-p256", "ed25519"]]:
    return (bundle.manifest, bundle.private, bundle.public, bundle.kind)


def tags(layout: Path) -> dict[str, str]:
    return {
        e.annotations["org.opencontainers.image.ref.name"]: e.digest
        for e in OCILayout(layout).entries()
        if "org.opencontainers.image.ref.name" in e.annotations
    }


# ----------------------------------------------------------------------------- rollback
def test_an_older_bundle_signed_by_the_same_key_is_refused(bundle: Bundle, tmp_path: Path) -> None:
    target = f"oci:{tmp_path / 'target'}"
    import_bundle(bundle.path, bundle.public, target)
    before = tags(tmp_path / "target")
    old = older(bundle, tmp_path / "old")
    assert verify_bundle_dir(old.path, old.public).ok  # signed and whole: only older

    with pytest.raises(RollbackRefused, match="sequence 100 is older than sequence 200") as caught:
        import_bundle(old.path, old.public, target)
    assert caught.value.exit_code == 1
    assert tags(tmp_path / "target") == before

    # A dry run says so too, and the same bundle again is a rerun.
    with pytest.raises(RollbackRefused):
        import_bundle(old.path, old.public, target, dry_run=True)
    import_bundle(bundle.path, bundle.public, target)
    import_bundle(old.path, old.public, target, allow_rollback=True)
    with pytest.raises(RollbackRefused):  # the record kept the highest
        import_bundle(old.path, old.public, target)


def test_another_bundle_with_the_same_sequence_is_refused(bundle: Bundle, tmp_path: Path) -> None:
    target = f"oci:{tmp_path / 'target'}"
    import_bundle(bundle.path, bundle.public, target)
    twin = older(bundle, tmp_path / "twin", sequence=200)
    twin.resign(replace(twin.manifest, created=twin.manifest.created.replace(year=2027)))
    with pytest.raises(RollbackRefused, match="two bundles claim one version"):
        import_bundle(twin.path, twin.public, target)


def test_a_layout_target_moved_elsewhere_remembers(bundle: Bundle, tmp_path: Path) -> None:
    import_bundle(bundle.path, bundle.public, f"oci:{tmp_path / 'target'}")
    shutil.rmtree(state_dir())  # another host: only the layout's own record is left
    (tmp_path / "target").rename(tmp_path / "moved")
    with pytest.raises(RollbackRefused):
        import_bundle(
            older(bundle, tmp_path / "old").path, bundle.public, f"oci:{tmp_path / 'moved'}"
        )


# ---------------------------------------------------------------------- the parts list
def test_a_bundle_other_than_the_parts_list_names_is_refused(
    bundle: Bundle, tmp_path: Path
) -> None:
    signed = (bundle.path / MANIFEST_FILE).read_bytes()
    import hashlib

    expected = hashlib.sha256(signed).hexdigest()
    old = older(bundle, tmp_path / "old")
    with pytest.raises(VerificationFailure, match="is not the bundle its parts list names"):
        import_bundle(
            old.path, old.public, f"oci:{tmp_path / 't'}", expected_manifest_sha256=expected
        )
    assert not (tmp_path / "t").exists()


def airgap(*args: object) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRGAP_")}
    result = subprocess.run(
        [sys.executable, "-m", "provisioner.cli", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    assert "Traceback" not in result.stderr, result.stderr
    return result


def public_key_file(bundle: Bundle) -> Path:
    return bundle.path.parent / "keys" / "operator.pub"


def test_cli_import_of_parts_refuses_a_substituted_unpacked_directory(
    bundle: Bundle, tmp_path: Path
) -> None:
    """`bundle import P.parts.json` unpacks into P.bundle once; an older bundle put there in
    between (signed by the same key) is not imported in its place."""
    out = tmp_path / "media"
    out.mkdir()
    write_archive(
        bundle.path, out / "site", compress="zstd", split_size=None, signing_key=bundle.private
    )
    parts = parts_list_path(out / "site")
    key = public_key_file(bundle)
    first = airgap("bundle", "import", parts, "--key", key, "--to", f"oci:{tmp_path / 'a'}")
    assert first.returncode == 0, first.stderr
    unpacked = out / "site.bundle"
    assert verify_bundle_dir(unpacked, bundle.public).ok

    shutil.rmtree(unpacked)
    shutil.copytree(older(bundle, tmp_path / "old").path, unpacked)
    result = airgap("bundle", "import", parts, "--key", key, "--to", f"oci:{tmp_path / 'b'}")
    assert result.returncode == 1, result.stderr
    assert "does not hold the bundle" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "b").exists()

    # The right bundle, doctored after unpacking (an extra tag in index.json), is refused too.
    shutil.rmtree(unpacked)
    shutil.copytree(bundle.path, unpacked)
    index = unpacked / "oci" / "index.json"
    document = json.loads(index.read_bytes())
    document["manifests"].append(
        {
            **document["manifests"][0],
            "annotations": {"org.opencontainers.image.ref.name": "evil:latest"},
        }
    )
    index.write_text(json.dumps(document))
    result = airgap("bundle", "import", parts, "--key", key, "--to", f"oci:{tmp_path / 'c'}")
    assert result.returncode == 1, result.stderr
    assert "oci/index.json" in result.stderr
    assert not (tmp_path / "c").exists()


@pytest.mark.parametrize("command", ["verify", "import"])
def test_a_directory_that_is_not_a_bundle_exits_2(
    command: str, bundle: Bundle, tmp_path: Path
) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    extra = ("--to", f"oci:{tmp_path / 't'}") if command == "import" else ()
    result = airgap("bundle", command, empty, "--key", public_key_file(bundle), *extra)
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip().splitlines() == [
        f"airgap: {empty} is not a bundle directory: it holds no {MANIFEST_FILE}"
    ]
    # A bundle that fails its checks stays a failure (exit 1).
    (bundle.path / "stray").write_bytes(b"x")
    result = airgap("bundle", command, bundle.path, "--key", public_key_file(bundle), *extra)
    assert result.returncode == 1, result.stderr


# ------------------------------------------------------------------------------ journals
def test_a_journal_shipped_in_the_bundle_is_refused_with_it(bundle: Bundle, tmp_path: Path) -> None:
    """The old default journal path was inside the bundle: one shipped there claiming every
    blob made import skip them. Now it is an unsigned file, and the bundle is refused."""
    journal = bundle.path / ".import-journal-0123456789abcdef.jsonl"
    journal.write_text(json.dumps({"format": "airgap-import-journal/v1", "target": "x"}) + "\n")
    with pytest.raises(VerificationFailure, match=r"\.import-journal-0123456789abcdef\.jsonl is"):
        import_bundle(bundle.path, bundle.public, f"oci:{tmp_path / 't'}")


def test_a_journal_that_claims_everything_skips_nothing(bundle: Bundle, tmp_path: Path) -> None:
    """Whatever a journal says, every blob and manifest is asked of the target: one that
    lies (or a registry garbage-collected since) costs an upload, never a hole."""
    target = parse_target(f"oci:{tmp_path / 'target'}")
    manifest_sha256 = verify_bundle_dir(bundle.path, bundle.public).manifest_sha256
    assert manifest_sha256 is not None
    path = tmp_path / "lying.jsonl"
    lines = [{"format": JOURNAL_FORMAT, "target": target_key(target), "manifest": manifest_sha256}]
    for image in bundle.manifest.images:
        name = image.reference.rsplit(":", 1)[0]
        lines.append({"repo": name, "kind": "image", "digest": image.digest})
        for node in image.graph:
            lines.append({"repo": name, "kind": "manifest", "digest": node.digest})
        for blob in bundle.manifest.blobs:
            lines.append({"repo": name, "kind": "blob", "digest": blob.digest})
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))

    report = import_bundle(bundle.path, bundle.public, target, journal_path=path)
    assert report.journal_records > 0
    layout = OCILayout(tmp_path / "target")
    for blob in bundle.manifest.blobs:
        assert layout.blob_exists(blob.digest), blob.digest


def test_the_journal_and_mapping_stay_out_of_the_bundle(bundle: Bundle, tmp_path: Path) -> None:
    target = parse_target(f"oci:{tmp_path / 'target'}")
    manifest_sha256 = verify_bundle_dir(bundle.path, bundle.public).manifest_sha256
    assert manifest_sha256 is not None
    journal = default_journal_path(target, manifest_sha256)
    assert journal.is_relative_to(state_dir())
    assert manifest_sha256[:16] in journal.name

    report = import_bundle(bundle.path, bundle.public, target)
    assert report.mapping is not None
    assert (
        report.mapping
        == bundle.path.parent / f"bundle.import-mapping-{report.mapping.name[-21:-5]}.json"
    )
    assert report.mapping.parent == bundle.path.parent
    assert not journal.exists()
    # The bundle is as it was: it verifies, and a second import is a rerun.
    assert verify_bundle_dir(bundle.path, bundle.public).ok
    import_bundle(bundle.path, bundle.public, target)


def test_a_journal_of_another_bundle_is_refused(bundle: Bundle, tmp_path: Path) -> None:
    target = parse_target(f"oci:{tmp_path / 'target'}")
    path = tmp_path / "journal.jsonl"
    header = {"format": JOURNAL_FORMAT, "target": target_key(target), "manifest": "0" * 64}
    path.write_text(json.dumps(header) + "\n")
    with pytest.raises(UsageError, match="is of another bundle"):
        import_bundle(bundle.path, bundle.public, target, journal_path=path)


@pytest.mark.parametrize("option", ["journal_path", "mapping_path"])
def test_a_journal_or_mapping_inside_the_bundle_is_refused(
    option: str, bundle: Bundle, tmp_path: Path
) -> None:
    """It would be an unsigned file in the bundle, which the next check refuses."""
    target = f"oci:{tmp_path / 'target'}"
    with pytest.raises(UsageError, match="is inside the bundle"):
        options: dict[str, Any] = {option: bundle.path / "x.json"}
        import_bundle(bundle.path, bundle.public, target, **options)
    assert verify_bundle_dir(bundle.path, bundle.public).ok


def test_a_fifo_given_as_the_journal_is_refused_not_waited_on(
    bundle: Bundle, tmp_path: Path
) -> None:
    fifo = tmp_path / "journal.fifo"
    os.mkfifo(fifo)
    with pytest.raises(UsageError, match="is not a regular file"):
        import_bundle(bundle.path, bundle.public, f"oci:{tmp_path / 't'}", journal_path=fifo)


def test_the_report_names_the_bundle_and_its_sequence(bundle: Bundle, tmp_path: Path) -> None:
    report = import_bundle(bundle.path, bundle.public, f"oci:{tmp_path / 'target'}")
    assert (report.to_json()["bundleName"], report.to_json()["sequence"]) == ("test", 200)


# ---------------------------------------------------------------- a registry as the target
def test_a_registry_target_keeps_the_record_for_every_host(
    bundle: Bundle, docker_registry: RegistryServer, tmp_path: Path
) -> None:
    """The target's own record (an artifact beside the images) refuses an older bundle even
    on a host that never imported into it; a damaged one is refused, not read as empty."""
    prefix = f"replay/{uuid.uuid4().hex[:10]}"
    target = f"{docker_registry.host}/{prefix}"
    options = registry_options(docker_registry)
    import_bundle(bundle.path, bundle.public, target, options=options)
    with docker_registry.client() as registry:
        records = registry.repository(f"{prefix}/airgap-imported")
        document = records.fetch_manifest(records.resolve("test").digest).json()
    assert document["artifactType"] == "application/vnd.airgap.import-record.v1+json"
    assert document["annotations"]["dev.airgap.bundle.sequence"] == "200"

    shutil.rmtree(state_dir())  # another host
    old = older(bundle, tmp_path / "old")
    with pytest.raises(RollbackRefused, match="older than sequence 200"):
        import_bundle(old.path, old.public, target, options=options)

    with docker_registry.client() as registry:
        repository = registry.repository(f"{prefix}/airgap-imported")
        del document["annotations"]["dev.airgap.bundle.sequence"]
        repository.push_manifest(json.dumps(document).encode(), OCI_MANIFEST, "test")
    with pytest.raises(UsageError, match=r"import record .* is damaged") as caught:
        import_bundle(old.path, old.public, target, options=options)
    assert caught.value.exit_code == 2


def test_a_bundle_of_files_alone_is_recorded_in_a_layout_it_makes(
    bundle: Bundle, tmp_path: Path
) -> None:
    shutil.rmtree(bundle.path / "oci")
    OCILayout.create(bundle.path / "oci")
    bundle.resign(replace(bundle.manifest, images=(), blobs=(), layout=layout_files(bundle.path)))
    target = tmp_path / "target"
    import_bundle(bundle.path, bundle.public, f"oci:{target}")
    assert (target / "oci-layout").is_file() and (target / LAYOUT_RECORD).is_file()


def test_the_command_line_names_the_flag_that_imports_an_older_bundle(
    bundle: Bundle, tmp_path: Path
) -> None:
    """The library says what is wrong; the command that has the override names it."""
    target = f"oci:{tmp_path / 'target'}"
    import_bundle(bundle.path, bundle.public, target)
    old = older(bundle, tmp_path / "old")
    args = ("bundle", "import", old.path, "--key", public_key_file(bundle), "--to", target)
    refused = airgap(*args)
    assert refused.returncode == 1, refused.stderr
    [line] = refused.stderr.strip().splitlines()
    assert "is older than sequence 200" in line
    assert line.endswith("; pass --allow-rollback to import it anyway")
    assert airgap(*args, "--allow-rollback").returncode == 0
