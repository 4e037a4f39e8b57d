"""`airgap bundle import` and `airgap bundle inventory`, against real registries: the Debian
Distribution registry (TLS, htpasswd, no referrers API) and go-containerregistry's (with the
referrers API), and an OCI layout directory as the target that needs no registry.

What must hold:
- every digest and every attachment (cosign tags, referrers, referrers of referrers) arrives
  unchanged, the tags are written last, and a rerun imports nothing;
- the mapping file says where each image landed;
- a dry run reports the bytes to push and a tag that would move, and writes nothing;
- a bundle with one flipped byte (blob, manifest, bundle manifest, signature) is refused before
  the target is contacted; an index.json that no longer places a signed attachment too;
- an import killed at any point, then run again, ends identical to a clean import;
- a registry that fails intermittently is survived; one that fails for good fails clearly,
  with no tag written;
- a delta bundle imports onto the target that holds its base (mounting across repositories
  where the registry needs it), and is refused with nothing pushed on an empty target;
- the inventory of a registry after an import lists what was imported, and a delta bundle made
  from it leaves all of that out.
"""

from __future__ import annotations

import json
import random
import shutil
import threading
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from offline.errors import AirgapError, UsageError, VerificationFailure
from offline.oci.layout import OCILayout
from offline.oci.manifest import OCI_EMPTY_DIGEST, NotFound
from offline.oci.registry_http import RetryPolicy
from offline.oci.sources import RegistryOptions
from provisioner.bundle.sequence import state_dir
from provisioner.bundle.signing import PublicKey, load_public_key
from provisioner.copy.catalog import CatalogUnavailable, list_repositories
from provisioner.copy.inventory import build_inventory
from provisioner.copy.layout import RepositoryView
from provisioner.importer.importer import ImportFailed, TagMove, import_bundle
from tests.bundle_sites import (
    SourceImage,
    create,
    operator_key,
    push_graph,
    registry_options,
    write_spec,
)
from tests.httpproxy import Proxy, ProxyHandler
from tests.image_graphs import Graph, check_target
from tests.oci_images import make_image, push_image
from tests.provisioner.importer.write_spy import spy_writes
from tests.registries import RegistryServer

pytestmark = pytest.mark.slow

FAST = RetryPolicy(attempts=4, base_delay=0.02, max_delay=0.1, total_time=10.0)


@dataclass
class Bundle:
    path: Path
    public_key: PublicKey
    images: dict[str, SourceImage]  # "app", "tool"
    work: Path

    def source_path(self, name: str) -> str:
        """The source repository path without its registry host (what lands under a prefix)."""
        return self.images[name].reference.split("/", 1)[1].rsplit(":", 1)[0]

    def source_name(self, name: str) -> str:
        return self.images[name].reference.rsplit(":", 1)[0]

    def tag(self, name: str) -> str:
        return self.images[name].reference.rsplit(":", 1)[1]

    def copy(self, directory: Path) -> Path:
        return Path(shutil.copytree(self.path, directory / "bundle"))


@pytest.fixture(scope="module")
def bundle(referrers_registry: RegistryServer, tmp_path_factory: pytest.TempPathFactory) -> Bundle:
    """One signed bundle of two images with every kind of attachment, from a source registry."""
    work = tmp_path_factory.mktemp("import")
    run = uuid.uuid4().hex[:8]
    images = {
        "app": push_graph(referrers_registry, f"src-{run}/sigstore/app", random.Random("app")),
        "tool": push_graph(referrers_registry, f"src-{run}/tools/tool", random.Random("t"), "v2"),
    }
    spec = write_spec(work / "spec.yaml", images=[i.reference for i in images.values()])
    public, key = operator_key(work)
    result = create(spec, work / "bundle", key, registry_options(referrers_registry))
    return Bundle(result.path, load_public_key(public), images, work)


def fresh_prefix() -> str:
    return f"imports/{uuid.uuid4().hex[:10]}"


def options_for(*servers: RegistryServer, proxy: Proxy | None = None) -> RegistryOptions:
    options = registry_options(*servers)
    if proxy is None:
        return options
    # The proxy fronts the server: it is reached with its credentials.
    fronted = next(iter(options.credentials.values()), None)
    return RegistryOptions(
        credentials={**options.credentials, **({proxy.host: fronted} if fronted else {})},
        ca_bundle=options.ca_bundle,
        insecure_http_hosts=options.insecure_http_hosts | {proxy.host},
        retry=FAST,
    )


def tags_of(server: RegistryServer, repository: str) -> list[str]:
    with server.client() as registry:
        try:
            return sorted(registry.repository(repository).list_tags())
        except NotFound:
            return []


def snapshot(server: RegistryServer, repository: str, graph: Graph) -> dict[str, Any]:
    """What a reader of the target sees: every tag and what it names, every referrer list."""
    with server.client() as registry:
        repo = registry.repository(repository)
        tags = {tag: repo.resolve(tag).digest for tag in sorted(repo.list_tags())}
        referrers = {
            digest: sorted(d.digest for d in repo.referrers(digest).descriptors)
            for digest in graph.manifests
        }
    return {"tags": tags, "referrers": referrers}


def import_into(
    bundle: Bundle, target: str, options: RegistryOptions, tmp_path: Path, **kwargs: Any
) -> Any:
    kwargs.setdefault("mapping_path", tmp_path / "mapping.json")
    return import_bundle(bundle.path, bundle.public_key, target, options=options, **kwargs)


# ------------------------------------------------------------------------------ round trip
@pytest.mark.parametrize("target_kind", ["docker_registry", "referrers_registry", "oci"])
def test_every_digest_and_attachment_arrives_unchanged(
    target_kind: str,
    bundle: Bundle,
    referrers_registry: RegistryServer,
    request: pytest.FixtureRequest,
    tmp_path: Path,
) -> None:
    prefix = fresh_prefix()
    if target_kind == "oci":
        target = f"oci:{tmp_path / 'layout'}"
        options = options_for(referrers_registry)
    else:
        server: RegistryServer = request.getfixturevalue(target_kind)
        target = f"{server.host}/{prefix}"
        options = options_for(server)

    report = import_into(bundle, target, options, tmp_path)

    for name, image in bundle.images.items():
        if target_kind == "oci":
            layout = OCILayout(tmp_path / "layout")
            check_target(
                RepositoryView(layout, bundle.source_name(name)), image.graph, bundle.tag(name)
            )
        else:
            with server.client() as registry:
                repository = registry.repository(f"{prefix}/{bundle.source_path(name)}")
                check_target(repository, image.graph, bundle.tag(name))
    assert report.attachments_verified == 10  # 2 cosign tags and 3 referrers, per image
    assert "10 attachments verified in the target" in report.summary()
    assert json.loads(json.dumps(report.to_json()))["images"][0]["digest"] == (
        bundle.images["app"].graph.index.digest
    )
    assert report.journal is None and not list(bundle.path.glob(".import-journal-*"))
    mapping = json.loads((tmp_path / "mapping.json").read_text())
    app = mapping["images"][bundle.images["app"].reference]
    digest = bundle.images["app"].graph.index.digest
    if target_kind == "oci":
        assert app["target"] == f"oci:{tmp_path / 'layout'}@{digest}"
        assert app["repository"] == bundle.source_name("app")
    else:
        assert app["target"] == f"{server.host}/{prefix}/{bundle.source_path('app')}@{digest}"
        assert app["repository"] == f"{server.host}/{prefix}/{bundle.source_path('app')}"
    assert (app["tag"], app["digest"], app["attachments"]) == ("v1", digest, 5)
    assert mapping["format"] == "airgap-import-mapping/v1" and mapping["target"] == target


@pytest.mark.parametrize("target_kind", ["docker_registry", "oci"])
def test_a_second_import_pushes_nothing(
    target_kind: str, bundle: Bundle, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    if target_kind == "oci":
        target, options = f"oci:{tmp_path / 'layout'}", RegistryOptions()
    else:
        server: RegistryServer = request.getfixturevalue(target_kind)
        target, options = f"{server.host}/{fresh_prefix()}", options_for(server)
    first = import_into(bundle, target, options, tmp_path)
    assert not first.pushed_nothing

    again = import_into(bundle, target, options, tmp_path)

    assert again.pushed_nothing, again.to_json()
    assert again.tag_moves == []
    assert all(i.blobs_to_push == 0 and i.blobs_present > 0 for i in again.images)


def test_tags_are_written_last(
    bundle: Bundle,
    referrers_registry: RegistryServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    writes: list[tuple[str, str]] = []
    spy_writes(monkeypatch, lambda _repo, name, args: writes.append(describe_write(name, args)))

    import_into(
        bundle,
        f"{referrers_registry.host}/{fresh_prefix()}",
        options_for(referrers_registry),
        tmp_path,
    )

    # After all of it, the target's record of the bundle's sequence (its own repository).
    assert writes[-2:] == [("blob", OCI_EMPTY_DIGEST), ("tag", "test")]
    writes = writes[:-2]
    kinds = [kind for kind, _ in writes]
    last_content = max(i for i, kind in enumerate(kinds) if kind in ("blob", "manifest"))
    first_tag = min(i for i, kind in enumerate(kinds) if kind in ("tag", "referrer"))
    assert last_content < first_tag, writes
    assert kinds.count("tag") == 4 + 2  # two cosign tags per image, then the image tags
    assert kinds.count("referrer") == 6
    # Every cosign tag and referrer listing before the images' own tags (which go to their
    # repositories at once: in either order).
    assert sorted(writes[-2:]) == [("tag", "v1"), ("tag", "v2")]


# ----------------------------------------------------------------------------------- dry run
def test_dry_run_reports_bytes_to_push_and_a_tag_that_would_move_and_writes_nothing(
    bundle: Bundle, referrers_registry: RegistryServer, tmp_path: Path
) -> None:
    prefix = fresh_prefix()
    app_repository = f"{prefix}/{bundle.source_path('app')}"
    other = make_image(random.Random("someone else's v1"))
    with referrers_registry.client() as registry:
        push_image(registry.repository(app_repository), other, "v1")
    methods: set[str] = set()

    def record(handler: ProxyHandler, number: int) -> bool:
        methods.add(handler.command)
        return False

    with Proxy(referrers_registry.url, on_request=record) as proxy:
        target = f"{proxy.host}/{prefix}"
        dry = import_into(bundle, target, options_for(proxy=proxy), tmp_path, dry_run=True)

    assert methods <= {"GET", "HEAD"}
    assert tags_of(referrers_registry, app_repository) == ["v1"]
    assert tags_of(referrers_registry, f"{prefix}/{bundle.source_path('tool')}") == []
    assert not (tmp_path / "mapping.json").exists()
    assert not (state_dir() / "import-journals").exists() or not list(
        (state_dir() / "import-journals").iterdir()
    )
    app_digest = bundle.images["app"].graph.index.digest
    assert dry.tag_moves == [
        TagMove(f"{proxy.host}/{app_repository}", "v1", other.digest, app_digest)
    ]
    assert dry.bytes_to_push > 0 and dry.to_json()["dryRun"] is True

    real = import_into(
        bundle, f"{referrers_registry.host}/{prefix}", options_for(referrers_registry), tmp_path
    )

    # What the dry run announced is what the import then did.
    for announced, done in zip(dry.images, real.images, strict=True):
        assert announced.bytes_to_push == done.bytes_to_push
        assert announced.blobs_to_push == done.blobs_to_push
        assert announced.manifests_to_push == done.manifests_to_push
    assert [(m.tag, m.current, m.new) for m in real.tag_moves] == [("v1", other.digest, app_digest)]


def test_dry_run_into_a_layout_that_does_not_exist_creates_nothing(
    bundle: Bundle, tmp_path: Path
) -> None:
    target = f"oci:{tmp_path / 'new'}"
    dry = import_into(bundle, target, RegistryOptions(), tmp_path, dry_run=True)

    assert not (tmp_path / "new").exists()
    # The second image finds what the first would have written (blobs of a layout are shared).
    assert dry.images[0].blobs_present == 0 and all(i.bytes_to_push > 0 for i in dry.images)
    real = import_into(bundle, target, RegistryOptions(), tmp_path)
    assert [i.bytes_to_push for i in dry.images] == [i.bytes_to_push for i in real.images]
    assert [i.blobs_to_push for i in dry.images] == [i.blobs_to_push for i in real.images]


# ------------------------------------------------------------------------------- tampering
def _flip(path: Path, offset: int = 10) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x01
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("what", ["layer blob", "image manifest", "bundle manifest", "signature"])
def test_one_flipped_byte_is_refused_before_the_target_is_contacted(
    what: str, bundle: Bundle, referrers_registry: RegistryServer, tmp_path: Path
) -> None:
    copy = bundle.copy(tmp_path)
    graph = bundle.images["app"].graph
    blobs = copy / "oci" / "blobs" / "sha256"
    victim = {
        "layer blob": blobs / graph.base.digest.split(":")[1],
        "image manifest": blobs / graph.index.images[0].digest.split(":")[1],
        "bundle manifest": copy / "airgap-bundle.json",
        "signature": copy / "airgap-bundle.json.sig",
    }[what]
    data = victim.read_bytes()
    # In the signature file, a byte of the signature itself (not of its JSON framing).
    _flip(victim, data.index(b'"signature"') + 20 if what == "signature" else 12)
    prefix = fresh_prefix()

    with Proxy(referrers_registry.url) as proxy, pytest.raises(VerificationFailure) as failure:
        import_bundle(
            copy,
            bundle.public_key,
            f"{proxy.host}/{prefix}",
            options=options_for(proxy=proxy),
            mapping_path=tmp_path / "mapping.json",
        )

    assert "\n" not in str(failure.value)
    assert proxy.count == 0
    for name in bundle.images:
        assert tags_of(referrers_registry, f"{prefix}/{bundle.source_path(name)}") == []
    assert not list(copy.glob(".import-*")) and not (tmp_path / "mapping.json").exists()


def test_an_index_json_that_no_longer_places_a_signed_attachment_is_refused(
    bundle: Bundle, tmp_path: Path
) -> None:
    """index.json is signed (its SHA-256 is in the manifest): one changed is refused before the
    target is contacted, like any other changed file."""
    copy = bundle.copy(tmp_path)
    index_path = copy / "oci" / "index.json"
    index = json.loads(index_path.read_text())
    sig_tag = bundle.images["app"].graph.index_sig.tag
    index["manifests"] = [
        e
        for e in index["manifests"]
        if not e.get("annotations", {})
        .get("org.opencontainers.image.ref.name", "")
        .endswith(sig_tag)
    ]
    index_path.write_text(json.dumps(index))

    with pytest.raises(VerificationFailure, match=r"oci/index\.json is \d+ bytes shorter"):
        import_bundle(copy, bundle.public_key, f"oci:{tmp_path / 'target'}")
    assert not (tmp_path / "target").exists()


# ---------------------------------------------------------------------------- interruptions
class Killed(BaseException):
    """The process dying: nothing in the import may catch it."""


def describe_write(name: str, args: tuple[Any, ...]) -> tuple[str, str]:
    if name == "push_blob":
        return ("blob", args[1])
    if name == "push_referrer":
        return ("referrer", "")
    if name == "mount_blob":
        return ("mount", args[0])
    reference = args[2] if len(args) > 2 else None
    if reference is None or reference.startswith("sha256:"):
        return ("manifest", "")
    return ("tag", reference)


@pytest.fixture(scope="module")
def clean_import(bundle: Bundle, docker_registry: RegistryServer) -> dict[str, Any]:
    """What an uninterrupted import into the Distribution registry looks like, per image, and
    how many writes it takes."""
    prefix = fresh_prefix()
    writes: list[str] = []
    with pytest.MonkeyPatch.context() as monkeypatch:
        spy_writes(monkeypatch, lambda _repo, name, args: writes.append(name))
        import_bundle(
            bundle.path,
            bundle.public_key,
            f"{docker_registry.host}/{prefix}",
            options=options_for(docker_registry),
            mapping_path=bundle.work / f"clean-{prefix.replace('/', '-')}.json",
        )
    return {
        "writes": len(writes),
        **{
            name: snapshot(docker_registry, f"{prefix}/{bundle.source_path(name)}", image.graph)
            for name, image in bundle.images.items()
        },
    }


@pytest.mark.parametrize(
    ("when", "acknowledged"),
    [(0.0, False), (0.3, True), (0.6, False), (0.97, False), (1.0, True)],
)
def test_an_import_killed_anywhere_then_rerun_ends_identical_to_a_clean_import(
    when: float,
    acknowledged: bool,
    bundle: Bundle,
    docker_registry: RegistryServer,
    clean_import: dict[str, Any],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Killed at the write a fraction `when` through a clean import's writes, before the
    write reached the registry or after it did but before the journal line: the rerun
    completes it either way."""
    kill_at = max(1, round(when * clean_import["writes"]))
    prefix = fresh_prefix()
    target = f"{docker_registry.host}/{prefix}"
    journal = tmp_path / "journal.jsonl"
    writes = {"n": 0, "killed": 0}
    lock = threading.Lock()

    def kill_once() -> None:
        # Images of different repositories are written at once: the count moves on in other
        # threads, and only one write is the one killed.
        with lock:
            if writes["n"] < kill_at or writes["killed"]:
                return
            writes["killed"] = 1
        raise Killed

    def count(_repo: str, name: str, args: tuple[Any, ...]) -> None:
        with lock:
            writes["n"] += 1
        if not acknowledged:
            kill_once()

    def after(_repo: str, name: str, args: tuple[Any, ...]) -> None:
        if acknowledged:
            kill_once()

    spy_writes(monkeypatch, count, after)
    with pytest.raises(Killed):
        import_into(bundle, target, options_for(docker_registry), tmp_path, journal_path=journal)
    monkeypatch.undo()

    # A journal line only for what the registry holds.
    lines = [json.loads(line) for line in journal.read_text().splitlines()[1:]]
    with docker_registry.client() as registry:
        for line in lines:
            repository = registry.repository(line["repo"])
            exists = (
                repository.blob_exists if line["kind"] == "blob" else repository.manifest_exists
            )
            assert line["kind"] == "image" or exists(line["digest"]), line

    report = import_into(
        bundle, target, options_for(docker_registry), tmp_path, journal_path=journal
    )

    assert report.journal_records == len({(r["repo"], r["kind"], r["digest"]) for r in lines})
    assert not journal.exists()
    for name, image in bundle.images.items():
        state = snapshot(docker_registry, f"{prefix}/{bundle.source_path(name)}", image.graph)
        assert state == clean_import[name]


# ---------------------------------------------------------------------------------- faults
def test_a_registry_that_fails_intermittently_is_survived(
    bundle: Bundle, docker_registry: RegistryServer, tmp_path: Path
) -> None:
    """Every eighth request fails: a 503, a 500 or a dropped connection, in turn."""
    faults: list[str] = []

    def every_eighth(handler: ProxyHandler, number: int) -> bool:
        if number % 8:
            return False
        fault = ("503", "500", "drop")[len(faults) % 3]
        faults.append(fault)
        if fault == "drop":
            handler.drop()
        else:
            handler.reply(int(fault), {}, b'{"errors":[{"code":"UNAVAILABLE"}]}')
        return True

    assert docker_registry.ca is not None
    prefix = fresh_prefix()
    with Proxy(
        docker_registry.url, ca=docker_registry.ca.ca_cert, on_request=every_eighth
    ) as proxy:
        report = import_into(
            bundle, f"{proxy.host}/{prefix}", options_for(docker_registry, proxy=proxy), tmp_path
        )

    assert faults.count("drop") >= 5
    assert report.attachments_verified == 10
    with docker_registry.client() as registry:
        for name, image in bundle.images.items():
            repository = registry.repository(f"{prefix}/{bundle.source_path(name)}")
            check_target(repository, image.graph, bundle.tag(name))


def test_a_registry_that_fails_for_good_fails_clearly_with_no_tag_written(
    bundle: Bundle, referrers_registry: RegistryServer, tmp_path: Path
) -> None:
    def broken_after_30(handler: ProxyHandler, number: int) -> bool:
        if number <= 30:
            return False
        handler.reply(503, {}, b'{"errors":[{"code":"UNAVAILABLE"}]}')
        return True

    prefix = fresh_prefix()
    with (
        Proxy(referrers_registry.url, on_request=broken_after_30) as proxy,
        pytest.raises(ImportFailed) as failure,
    ):
        import_into(
            bundle,
            f"{proxy.host}/{prefix}",
            options_for(proxy=proxy),
            tmp_path,
            journal_path=tmp_path / "journal.jsonl",
        )

    message = str(failure.value)
    assert "\n" not in message and "HTTP 503" in message
    assert "no image was tagged (rerun to resume)" in message
    assert failure.value.exit_code == 2  # the registry failed, not the bundle: exit 2
    for name in bundle.images:
        assert tags_of(referrers_registry, f"{prefix}/{bundle.source_path(name)}") == []
    assert not (tmp_path / "mapping.json").exists()


# ------------------------------------------------------------------------ delta, inventory
@pytest.mark.parametrize("target_kind", ["docker_registry", "referrers_registry"])
def test_a_delta_bundle_imports_onto_its_base_and_is_refused_on_an_empty_target(
    target_kind: str,
    bundle: Bundle,
    referrers_registry: RegistryServer,
    request: pytest.FixtureRequest,
    tmp_path: Path,
) -> None:
    server: RegistryServer = request.getfixturevalue(target_kind)
    options = options_for(server, referrers_registry)
    base_prefix = fresh_prefix()
    import_into(bundle, f"{server.host}/{base_prefix}", options, tmp_path)
    inventory = build_inventory(f"{server.host}/{base_prefix}", options)
    app = bundle.images["app"].graph
    # The same image under a new name: every blob is one the target already has.
    twin = push_graph(referrers_registry, f"src-{uuid.uuid4().hex[:8]}/twin", random.Random("app"))
    assert twin.graph.index.digest == app.index.digest
    spec = write_spec(tmp_path / "delta.yaml", images=[twin.reference])
    _, key = operator_key(tmp_path)
    delta = create(spec, tmp_path / "delta", key, options, since=inventory)
    assert {b.digest for b in delta.manifest.on_target} == _blob_digests(app)
    delta_key = key.public_key()

    twin_path = twin.reference.split("/", 1)[1].rsplit(":", 1)[0]
    empty_prefix = fresh_prefix()
    # go-containerregistry's registry serves any blob it holds in every repository: an empty
    # target is a fresh layout there.
    empty = (
        f"{server.host}/{empty_prefix}"
        if target_kind == "docker_registry"
        else f"oci:{tmp_path / 'empty'}"
    )
    dry = import_bundle(delta.path, delta_key, empty, options=options, dry_run=True)
    assert not dry.ok and len(dry.missing_on_target) == len(delta.manifest.on_target)
    with pytest.raises(UsageError, match="import the base bundle first") as refused:
        import_bundle(delta.path, delta_key, empty, options=options)
    assert "nothing was pushed" in str(refused.value)
    assert not list(delta.path.glob(".import-journal-*"))
    assert tags_of(server, f"{empty_prefix}/{twin_path}") == []
    if target_kind != "docker_registry":
        assert not list((tmp_path / "empty" / "blobs" / "sha256").iterdir())

    report = import_bundle(
        delta.path,
        delta_key,
        f"{server.host}/{base_prefix}",
        options=options,
        mapping_path=tmp_path / "delta-mapping.json",
    )

    (states,) = report.on_target.values()
    expected = (
        f"mounted from {base_prefix}/{bundle.source_path('app')}"
        if target_kind == "docker_registry"  # Distribution links blobs per repository
        else "present"
    )
    assert set(states.values()) == {expected}
    with server.client() as registry:
        check_target(registry.repository(f"{base_prefix}/{twin_path}"), app)


def _blob_digests(graph: Graph) -> set[str]:
    """The layers and configs of a graph (its manifests are not blobs of the inventory)."""
    manifests = graph.manifests
    digests: set[str] = set()
    for raw in manifests.values():
        document = json.loads(raw)
        for key in ("config",):
            if key in document:
                digests.add(document[key]["digest"])
        digests.update(layer["digest"] for layer in document.get("layers", []))
    return digests - set(manifests)


def test_the_inventory_lists_what_an_import_brought(
    bundle: Bundle, docker_registry: RegistryServer, tmp_path: Path
) -> None:
    prefix = fresh_prefix()
    options = options_for(docker_registry)
    import_into(bundle, f"{docker_registry.host}/{prefix}", options, tmp_path)

    inventory = build_inventory(f"{docker_registry.host}/{prefix}", options)

    assert (inventory.registry, inventory.prefix) == (docker_registry.host, prefix)
    for image in bundle.images.values():
        for digest in _blob_digests(image.graph):
            assert digest in inventory.blobs
        # Every manifest, attachments and fallback-tag indexes included.
        assert set(image.graph.manifests) <= inventory.manifests
    base = bundle.images["app"].graph.base
    assert inventory.blobs[base.digest] == len(base.data)
    with docker_registry.client() as registry:
        paged = list_repositories(registry, prefix=prefix, page_size=3)
    assert sorted(paged) == sorted(
        [f"{prefix}/{bundle.source_path(n)}" for n in bundle.images] + [f"{prefix}/airgap-imported"]
    )


def test_a_registry_without_a_catalog_is_inventoried_by_named_repositories(
    bundle: Bundle, referrers_registry: RegistryServer, tmp_path: Path
) -> None:
    prefix = fresh_prefix()
    import_into(
        bundle, f"{referrers_registry.host}/{prefix}", options_for(referrers_registry), tmp_path
    )

    def no_catalog(handler: ProxyHandler, number: int) -> bool:
        if "/_catalog" in handler.path:
            handler.reply(404, {}, b'{"errors":[{"code":"UNSUPPORTED"}]}')
            return True
        return False

    with Proxy(referrers_registry.url, on_request=no_catalog) as proxy:
        target = f"{proxy.host}/{prefix}"
        with pytest.raises(CatalogUnavailable, match="name the repositories to look at instead"):
            build_inventory(target, options_for(proxy=proxy))
        app = f"{prefix}/{bundle.source_path('app')}"
        inventory = build_inventory(target, options_for(proxy=proxy), repositories=[app])
        with pytest.raises(AirgapError, match="no repository"):
            build_inventory(target, options_for(proxy=proxy), repositories=[f"{prefix}/nothing"])

    graph = bundle.images["app"].graph
    assert _blob_digests(graph) <= set(inventory.blobs)
    assert set(graph.manifests) <= inventory.manifests  # referrers through the API
    tool = bundle.images["tool"].graph
    assert tool.base.digest not in inventory.blobs and tool.index.digest not in inventory.manifests


def test_the_inventory_of_a_layout_target(bundle: Bundle, tmp_path: Path) -> None:
    import_into(bundle, f"oci:{tmp_path / 'layout'}", RegistryOptions(), tmp_path)

    inventory = build_inventory(f"oci:{tmp_path / 'layout'}")

    for image in bundle.images.values():
        assert _blob_digests(image.graph) <= set(inventory.blobs)
        assert set(image.graph.manifests) <= inventory.manifests


def test_a_layer_shared_by_two_repositories_is_uploaded_once_and_mounted_once(
    docker_registry: RegistryServer, referrers_registry: RegistryServer, tmp_path: Path
) -> None:
    from tests.bundle_sites import create, registry_options, write_spec
    from tests.image_graphs import populate

    run = uuid.uuid4().hex[:8]
    with referrers_registry.client() as registry:
        graph = populate(registry.repository(f"share-{run}/a"), random.Random(run))
        populate(registry.repository(f"share-{run}/b"), random.Random(run))
    host = referrers_registry.host
    spec = write_spec(
        tmp_path / "spec.yaml", images=[f"{host}/share-{run}/a:v1", f"{host}/share-{run}/b:v1"]
    )
    _, key = operator_key(tmp_path)
    options = registry_options(docker_registry, referrers_registry)
    bundle = create(spec, tmp_path / "bundle", key, options)

    report = import_bundle(
        bundle.path, key.public_key(), f"{docker_registry.host}/m{run}", options=options
    )

    assert report.blobs_mounted >= 1
    for name in ("a", "b"):
        target = docker_registry.client().repository(f"m{run}/share-{run}/{name}")
        assert target.blob_exists(graph.base.digest)
