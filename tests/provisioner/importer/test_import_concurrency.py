"""`airgap bundle import` brings the images of different repositories at once. What must hold
under that concurrency, against the Debian Distribution registry (blobs linked per repository,
so a mount is visible):

- a blob that several images share is uploaded once and mounted into the other repositories,
  never mounted from a repository whose upload has not been acknowledged;
- children before parents in every repository: a manifest is pushed only after every blob and
  manifest it references is acknowledged there; every tag only after every image is whole;
- an upload that fails for good fails the import with one line naming the image, writes no
  tag, leaves a journal that names only what the target holds, and does not hang the other
  images; a rerun then ends like a clean import.
"""

from __future__ import annotations

import contextlib
import json
import random
import threading
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from offline.oci.digests import sha256_digest
from offline.oci.manifest import MANIFEST_MEDIA_TYPES, NotFound
from offline.oci.sources import RegistryOptions
from provisioner.bundle.signing import PublicKey
from provisioner.importer.importer import ImportFailed, import_bundle
from provisioner.importer.report import ImportReport
from tests.bundle_sites import create, operator_key, registry_options, write_spec
from tests.httpproxy import Proxy, ProxyHandler
from tests.image_graphs import Graph, check_target, populate
from tests.provisioner.importer.write_spy import spy_writes
from tests.registries import RegistryServer

pytestmark = pytest.mark.slow

NAMES = ("a", "b", "c", "d")


def _bundle(
    source: RegistryServer,
    target: RegistryServer,
    tmp_path: Path,
    same: bool,
) -> tuple[Path, PublicKey, dict[str, Graph], str]:
    """Four images in four repositories: the same image in each (every blob shared), or four
    different ones."""
    run = uuid.uuid4().hex[:8]
    graphs: dict[str, Graph] = {}
    with source.client() as registry:
        for name in NAMES:
            seed = run if same else f"{run}-{name}"
            graphs[name] = populate(registry.repository(f"c-{run}/{name}"), random.Random(seed))
    spec = write_spec(
        tmp_path / "spec.yaml", images=[f"{source.host}/c-{run}/{name}:v1" for name in NAMES]
    )
    _, key = operator_key(tmp_path)
    bundle = create(spec, tmp_path / "bundle", key, registry_options(target, source))
    return bundle.path, key.public_key(), graphs, f"c-{run}"


def _import(
    bundle: Path, public_key: PublicKey, target: RegistryServer, source: RegistryServer, kind: str
) -> tuple[ImportReport, str]:
    """The bundle imported under a fresh prefix of `target`: the report and the prefix."""
    prefix = f"{kind}{uuid.uuid4().hex[:8]}"
    report = import_bundle(
        bundle,
        public_key,
        f"{target.host}/{prefix}",
        options=registry_options(target, source),
    )
    return report, prefix


def _check_every_image(
    target: RegistryServer, prefix: str, source_prefix: str, graphs: dict[str, Graph]
) -> None:
    with target.client() as registry:
        for name in NAMES:
            check_target(registry.repository(f"{prefix}/{source_prefix}/{name}"), graphs[name])


def test_a_blob_shared_by_images_imported_at_once_is_uploaded_once(
    docker_registry: RegistryServer,
    referrers_registry: RegistryServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    bundle, public_key, graphs, source_prefix = _bundle(
        referrers_registry, docker_registry, tmp_path, same=True
    )
    uploads: Counter[str] = Counter()
    uploading: set[str] = set()
    acknowledged: set[tuple[str, str]] = set()
    lock = threading.Lock()
    mounted_early: list[str] = []

    def before(repository: str, name: str, args: tuple[Any, ...]) -> None:
        if name == "push_blob" and not repository.endswith("/airgap-imported"):
            with lock:  # the images' blobs (not the target's record of the import)
                uploads[args[1]] += 1
                uploading.add(args[1])
            time.sleep(0.05)  # long enough for the other images to want the same blob
        elif name == "mount_blob":
            digest, donor = args
            with lock:
                if (donor, digest) not in acknowledged:
                    mounted_early.append(f"{digest} from {donor}")

    def after(repository: str, name: str, args: tuple[Any, ...]) -> None:
        if name in ("push_blob", "mount_blob"):
            digest = args[1] if name == "push_blob" else args[0]
            with lock:
                acknowledged.add((repository, digest))
                uploading.discard(digest)

    spy_writes(monkeypatch, before, after)
    report, prefix = _import(bundle, public_key, docker_registry, referrers_registry, "m")
    monkeypatch.undo()

    assert mounted_early == []
    assert uploads and max(uploads.values()) == 1, uploads
    graph = graphs["a"]
    layers = {b.digest for i in graph.index.images for b in i.blobs} | {graph.base.digest}
    assert report.blobs_mounted >= len(layers) * (len(NAMES) - 1)
    _check_every_image(docker_registry, prefix, source_prefix, graphs)


def test_children_before_parents_and_tags_last_hold_across_images_imported_at_once(
    docker_registry: RegistryServer,
    referrers_registry: RegistryServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    bundle, public_key, graphs, source_prefix = _bundle(
        referrers_registry, docker_registry, tmp_path, same=False
    )
    acknowledged: set[tuple[str, str]] = set()
    lock = threading.Lock()
    early: list[str] = []
    writes: list[str] = []
    in_flight: Counter[str] = Counter()  # writes under way, per repository
    most_repositories = [0]

    def before(repository: str, name: str, args: tuple[Any, ...]) -> None:
        with lock:
            in_flight[repository] += 1
            busy = sum(1 for count in in_flight.values() if count)
            most_repositories[0] = max(most_repositories[0], busy)
        if name == "push_blob":
            time.sleep(0.02)  # so that images overlap
        if name not in ("push_manifest", "push_referrer"):
            return
        raw = args[0]
        reference = args[2] if len(args) > 2 else None
        tagged = reference is not None and not reference.startswith("sha256:")
        with lock:
            writes.append("tag" if tagged or name == "push_referrer" else "content")
        document = json.loads(raw)
        children = [document.get("config"), *document.get("layers", [])]
        children += document.get("manifests", [])
        for child in children:
            if not isinstance(child, dict):
                continue
            is_manifest = child.get("mediaType") in MANIFEST_MEDIA_TYPES
            # A fallback-tag index lists referrers pushed by then; an image index, its images.
            with lock:
                if (repository, child["digest"]) not in acknowledged and not is_manifest:
                    early.append(f"{repository}: {child['digest']} before it was acknowledged")
                if is_manifest and (repository, child["digest"]) not in acknowledged:
                    early.append(f"{repository}: manifest {child['digest']} not yet there")

    def after(repository: str, name: str, args: tuple[Any, ...]) -> None:
        with lock:
            in_flight[repository] -= 1
            if name == "push_blob":
                acknowledged.add((repository, args[1]))
            elif name == "mount_blob":
                acknowledged.add((repository, args[0]))
            elif name in ("push_manifest", "push_referrer"):
                acknowledged.add((repository, sha256_digest(args[0])))

    spy_writes(monkeypatch, before, after)
    _, prefix = _import(bundle, public_key, docker_registry, referrers_registry, "o")
    monkeypatch.undo()

    assert early == []
    # Images of different repositories overlapped ...
    assert most_repositories[0] > 1
    # ... and every tag and referrer listing came after the last content of every image
    # (the target's record of the bundle's sequence comes last of all, a tag too).
    assert "content" not in writes[writes.index("tag") :]
    _check_every_image(docker_registry, prefix, source_prefix, graphs)


def test_an_upload_that_fails_for_good_fails_the_import_cleanly_and_a_rerun_completes_it(
    docker_registry: RegistryServer,
    referrers_registry: RegistryServer,
    tmp_path: Path,
) -> None:
    bundle, public_key, graphs, source_prefix = _bundle(
        referrers_registry, docker_registry, tmp_path, same=False
    )
    victim = graphs["c"].index.images[1].layers[1].digest
    refused: list[str] = []
    faulty = threading.Event()
    faulty.set()

    def refuse_victim(handler: ProxyHandler, number: int) -> bool:
        # The upload's last PUT names the digest (URL-encoded: its hex part is as is).
        hit = "/blobs/uploads/" in handler.path and victim.split(":")[1] in handler.path
        if hit and faulty.is_set():
            refused.append(handler.command)
            handler.reply(400, {}, b'{"errors":[{"code":"BLOB_UPLOAD_INVALID"}]}')
            return True
        return False

    assert docker_registry.ca is not None
    prefix = f"f{uuid.uuid4().hex[:8]}"
    journal = tmp_path / "journal.jsonl"
    options = registry_options(docker_registry, referrers_registry)
    with Proxy(
        docker_registry.url, ca=docker_registry.ca.ca_cert, on_request=refuse_victim
    ) as proxy:
        fronted = dict(options.credentials)
        fronted[proxy.host] = fronted[docker_registry.host]
        through = RegistryOptions(
            credentials=fronted,
            ca_bundle=options.ca_bundle,
            insecure_http_hosts=options.insecure_http_hosts | {proxy.host},  # plain HTTP
            retry=options.retry,
        )
        finished = threading.Event()
        outcome: dict[str, BaseException] = {}

        def attempt() -> None:
            try:
                import_bundle(
                    bundle,
                    public_key,
                    f"{proxy.host}/{prefix}",
                    options=through,
                    journal_path=journal,
                    mapping_path=tmp_path / "mapping.json",
                )
            except BaseException as exc:
                outcome["error"] = exc
            finally:
                finished.set()

        threading.Thread(target=attempt, daemon=True).start()
        assert finished.wait(120), "the import hung after an upload failed"

        failure = outcome.get("error")
        assert isinstance(failure, ImportFailed), failure
        message = str(failure)
        assert "\n" not in message and "no image was tagged (rerun to resume)" in message
        assert f"{source_prefix}/c" in message
        assert refused
        with docker_registry.client() as registry:
            for name in NAMES:
                repository = registry.repository(f"{prefix}/{source_prefix}/{name}")
                with contextlib.suppress(NotFound):  # never made: no tag either
                    assert repository.list_tags() == []
            # Every journal line names what the target holds; the failed image is not whole.
            lines = [json.loads(line) for line in journal.read_text().splitlines()[1:]]
            for line in lines:
                repository = registry.repository(line["repo"])
                if line["kind"] == "blob":
                    assert repository.blob_exists(line["digest"]), line
                elif line["kind"] == "manifest":
                    assert repository.manifest_exists(line["digest"]), line
            images = {line["digest"] for line in lines if line["kind"] == "image"}
            assert graphs["c"].index.digest not in images
            victim_home = registry.repository(f"{prefix}/{source_prefix}/c")
            assert not victim_home.blob_exists(victim)
        assert not (tmp_path / "mapping.json").exists()

        faulty.clear()
        report = import_bundle(
            bundle,
            public_key,
            f"{proxy.host}/{prefix}",
            options=through,
            journal_path=journal,
            mapping_path=tmp_path / "mapping.json",
        )

    assert report.journal_records == len({(r["repo"], r["kind"], r["digest"]) for r in lines})
    assert not journal.exists()
    _check_every_image(docker_registry, prefix, source_prefix, graphs)
