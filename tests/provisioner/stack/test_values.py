"""provisioner.stack.values and .chart_check: every upstream chart, rendered by the pinned helm
with the values airgap generates, passes its schema and runs only images of the internal
registry by digest; a missing image, a wrong key or a wrong type is one line naming it."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from offline.errors import UsageError
from offline.oci.imageref import parse_image_ref
from provisioner.bundle.spec import load_spec
from provisioner.create.chart_images import manifest_images
from provisioner.create.charts import ChartError
from provisioner.stack.chart_check import (
    ChartFiles,
    chart_files,
    check_images,
    check_known_keys,
    render,
)
from provisioner.stack.keys import KeySet, PublicMaterial, generate_keyset, public_material
from provisioner.stack.mapping import ImageMapping, load_mapping
from provisioner.stack.render import render_component
from provisioner.stack.secrets import ctlog_config_secret, render_secrets, secret_data
from provisioner.stack.site import Site, parse_site
from provisioner.stack.storage import claims, persistent_volumes
from provisioner.stack.values import (
    COMPONENTS,
    build_values,
    component_namespace,
    pull_secret_service_accounts,
    registry_ca_configmap,
)
from tests.conftest import SHARED
from tests.provisioner.stack.sites import REGISTRY, lab_site, site_document
from tests.tools import go_tool

REPOSITORY = Path(__file__).resolve().parents[3]
STACK_SPEC = REPOSITORY / "bundles" / "sigstore-stack.yaml"
PREFIX = "sigstore"
# The digest `bundle create` would resolve for the image bundles/sigstore-stack.yaml names by tag
# (policy-controller's kubectl hook: upstream pins no digest), standing in for it here.
MORE_IMAGES = ("cgr.dev/chainguard/kubectl:latest-dev@sha256:" + "c" * 64,)


# -- fixtures ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def charts(sigstore_chart_packages: dict[str, Path]) -> dict[str, Path]:
    """The upstream charts packaged with their dependencies vendored, at the bundle's versions."""
    archives = list(sigstore_chart_packages.values())
    versions = {chart.name: chart.version for chart in load_spec(STACK_SPEC).charts}
    chosen = {}
    for component in COMPONENTS:
        found = [a for a in archives if a.name.rsplit("-", 1)[0] == component]
        if component in versions:
            found = [a for a in found if a.name == f"{component}-{versions[component]}.tgz"]
        (chosen[component],) = found
    return chosen


def mapping_document(references: list[str], registry: str = REGISTRY) -> dict[str, Any]:
    """A mapping as `bundle import --to REGISTRY/PREFIX` writes it."""
    images = {}
    for text in references:
        ref = parse_image_ref(text)
        assert ref.digest is not None
        repository = f"{registry}/{PREFIX}/{ref.repository}"
        images[text] = {
            "target": f"{repository}@{ref.digest}",
            "repository": repository,
            "tag": ref.tag,
            "digest": ref.digest,
            "attachments": 0,
        }
    return {
        "format": "airgap-import-mapping/v1",
        "bundle": "/bundles/sigstore-stack",
        "target": f"{registry}/{PREFIX}",
        "created": "2026-12-01T00:00:00Z",
        "images": images,
    }


def stack_references() -> list[str]:
    """What an import of the stack bundle maps: its pinned images, and stand-ins for the digests
    `bundle create` resolves for the ones the spec names by tag."""
    pinned = [str(image.ref) for image in load_spec(STACK_SPEC).images if image.ref.digest]
    return pinned + list(MORE_IMAGES)


def write_mapping(path: Path, document: dict[str, Any]) -> ImageMapping:
    path.write_text(json.dumps(document, indent=2))
    return load_mapping(path)


@pytest.fixture(scope="module")
def mapping(tmp_path_factory: pytest.TempPathFactory) -> ImageMapping:
    path = tmp_path_factory.mktemp("mapping") / "mapping.json"
    return write_mapping(path, mapping_document(stack_references()))


def make_site(**overrides: Any) -> Site:
    """A site with every option that reaches the charts: pull secret, registry CA, TSA, hosts."""
    registry = {"host": REGISTRY, "mapping": "m.json", "pullSecret": "internal-registry"}
    hosts = {
        c: {"host": f"{c}.lab", "tlsSecret": f"{c}-tls"}
        for c in ("rekor", "fulcio", "ctlog", "tsa", "tuf")
    }
    wanted: dict[str, Any] = {
        "registry": {**registry, "caFile": "ca.pem"},
        "tsa": {"enabled": True},
        "ingress": {"className": "nginx", "hosts": hosts},
    }
    return lab_site(**{**wanted, **overrides})


@pytest.fixture(scope="module")
def site() -> Site:
    return make_site()


@pytest.fixture(scope="module")
def keys(site: Site) -> KeySet:
    return generate_keyset(site)


@pytest.fixture(scope="module")
def public(keys: KeySet) -> PublicMaterial:
    return public_material(keys)


def values_for(
    component: str,
    site: Site,
    mapping: ImageMapping,
    public: PublicMaterial,
    charts: dict[str, Path],
) -> dict[str, Any]:
    return build_values(component, site, mapping, public, chart_files(charts[component]).values)


def rendered(
    component: str, values: dict[str, Any], site: Site, charts: dict[str, Path]
) -> list[Any]:
    return render(
        charts[component],
        values,
        release=component,
        namespace=component_namespace(site, component),
        helm=go_tool("helm"),
    )


@pytest.fixture(scope="module")
def stack(
    site: Site, mapping: ImageMapping, public: PublicMaterial, charts: dict[str, Path]
) -> dict[str, list[Any]]:
    """Every component rendered as the installer does it: values built, then checked."""
    return {
        component: render_component(
            component, charts[component], site, mapping, public, helm=go_tool("helm")
        ).documents
        for component in COMPONENTS
    }


def internal(text: str) -> str:
    """Where the mapping put an upstream image."""
    ref = parse_image_ref(text)
    return f"{REGISTRY}/{PREFIX}/{ref.repository}@{ref.digest}"


def one_line(error: pytest.ExceptionInfo[Exception]) -> str:
    message = str(error.value)
    assert "\n" not in message
    return message


# -- every chart, every image ---------------------------------------------------------------------

CURL_8_17 = (
    "docker.io/curlimages/curl@sha256:"
    "935d9100e9ba842cdb060de42472c7ca90cfe9a7c96e4dacb55e79e560b3ff40"
)
EXPECTED = {
    "trillian": {
        "gcr.io/trillian-opensource-ci/db_server@sha256:2a685a38dd0129cceb646c232d285383f614c7e6fa51ff8f512aef78e4298461",
        "ghcr.io/sigstore/scaffolding/trillian_log_server@sha256:5a878e4e4f03790d2dda4b07a551ff9832128b307447d4156255c73690aa2da3",
        "ghcr.io/sigstore/scaffolding/trillian_log_signer@sha256:28c5ff40963f83ffdf4e2d9ea1e4e2c877c33cfb0ff068f3daad1c1080aad0ac",
        "ghcr.io/sigstore/scaffolding/createdb@sha256:3cee6c78973b82af6c3c3632bf8d44dafbab1632b3999a7292b170237c5dd5cc",
        "docker.io/subfuzion/netcat@sha256:7e808e84a631d9c2cd5a04f6a084f925ea388e3127553461536c1248c3333c8a",
    },
    "rekor": {
        "ghcr.io/sigstore/rekor/rekor-server@sha256:100d793d68d0e1ba9fea7df8503304cef1ca736c891bd074fcae3d450dd64169",
        "docker.io/redis@sha256:148bb5411c184abd288d9aaed139c98123eeb8824c5d3fce03cf721db58066d8",
        "ghcr.io/sigstore/scaffolding/createtree@sha256:e5232e8c9122fcf87260b48f4b05bcb95c35c8aaa57581b42f0fde7460bd3e91",
        CURL_8_17,  # rekor's own curl, not trillian's 8.21.0: the chart's digest decides
    },
    "fulcio": {
        "ghcr.io/sigstore/fulcio@sha256:ef72cf56c64b7455ceda5268d1cc801b92992e7ce36b744b40b7761684d60753"
    },
    "ctlog": {
        "ghcr.io/sigstore/scaffolding/ct_server@sha256:66664ba563e7c2564ba32fb5d0e8fdeb42d7f0d5ce45f0df5d80074daea5126c",
        "ghcr.io/sigstore/scaffolding/createtree@sha256:e5232e8c9122fcf87260b48f4b05bcb95c35c8aaa57581b42f0fde7460bd3e91",
    },
    "tsa": {
        "ghcr.io/sigstore/timestamp-server@sha256:8637f0482ed1ecb229b44ebd0afc760f6f57114a4d53c6953cf65c00218896b2"
    },
    "tuf": {  # never the chart's own server: it makes new keys at every start
        "docker.io/nginxinc/nginx-unprivileged@sha256:"
        "65e3e85dbaed8ba248841d9d58a899b6197106c23cb0ff1a132b7bfe0547e4c0"
    },
    "policy-controller": {
        "ghcr.io/sigstore/policy-controller/policy-controller@sha256:0bcd60beb93f4427c29cf3a669743caf58490e98ded4380c33c09f092734a6ab",
        "cgr.dev/chainguard/kubectl@sha256:" + "c" * 64,
    },
}


@pytest.mark.parametrize("component", COMPONENTS)
def test_each_chart_runs_only_the_mapped_images_by_digest(
    component: str, stack: dict[str, list[Any]]
) -> None:
    documents = stack[component]
    assert check_images(documents, REGISTRY, component) > 0
    images = {
        str(parse_image_ref(image)).replace(":latest-dev@", "@")
        for document in documents
        for _, _, image in manifest_images(document)
    }
    assert images == {internal(upstream) for upstream in EXPECTED[component]}


def test_every_secret_a_pod_reads_is_one_airgap_makes(
    site: Site, keys: KeySet, stack: dict[str, list[Any]]
) -> None:
    """Names and keys of the Secrets match what the charts mount and read, in each namespace."""
    made = {
        (s["metadata"]["namespace"], s["metadata"]["name"]): set(secret_data(s, "test"))
        for s in [*render_secrets(site, keys), ctlog_config_secret(site, keys, 1)]
    }
    made_by_charts = {
        (d["metadata"].get("namespace"), d["metadata"]["name"])
        for documents in stack.values()
        for d in documents
        if d["kind"] == "Secret"
    }
    read = set(_secrets_read(stack))
    assert read  # the walk finds something
    for namespace, name, key in sorted(read):
        if (namespace, name) in made_by_charts:
            continue
        assert (namespace, name) in made, f"{namespace}/{name} is read but never made"
        assert key is None or key in made[(namespace, name)], f"{namespace}/{name} lacks {key}"
    assert ("rekor-system", "rekor-signer", "private") in read
    assert ("fulcio-system", "fulcio-server-secret", "password") in read
    assert ("ctlog-system", "ctlog-secret", None) in read
    assert ("trillian-system", "trillian-database", "mysql-password") in read
    assert ("tsa-system", "tsa-server-secret", "private") in read
    assert ("tuf-system", "fulcio-pub-key", "cert") in read


def _secrets_read(stack: dict[str, list[Any]]) -> Iterator[tuple[str, str, str | None]]:
    for documents in stack.values():
        for document in documents:
            namespace = document["metadata"].get("namespace")
            spec = document.get("spec", {}).get("template", {}).get("spec", {})
            for volume in spec.get("volumes", []):
                if "secret" in volume:
                    items = volume["secret"].get("items") or [{"key": None}]
                    for item in items:
                        yield namespace, volume["secret"]["secretName"], item["key"]
                for source in volume.get("projected", {}).get("sources", []):
                    if "secret" in source:
                        for item in source["secret"].get("items", []):
                            yield namespace, source["secret"]["name"], item["key"]
            for container in spec.get("containers", []) + spec.get("initContainers", []):
                for env in container.get("env", []):
                    ref = env.get("valueFrom", {}).get("secretKeyRef")
                    if ref:
                        yield namespace, ref["name"], ref["key"]


def test_no_configmap_and_no_value_holds_a_private_key(
    site: Site,
    keys: KeySet,
    mapping: ImageMapping,
    public: PublicMaterial,
    charts: dict[str, Path],
    stack: dict[str, list[Any]],
) -> None:
    secrets = [keys.rekor.pem, keys.fulcio.pem, keys.ctlog.pem]
    assert keys.tsa is not None and keys.database is not None
    secrets += [keys.tsa.pem, keys.database.password.encode(), keys.database.root_password.encode()]
    secrets += [
        p.encode() for p in (keys.fulcio.password, keys.ctlog.password, keys.tsa.password) if p
    ]
    for component in COMPONENTS:
        values = json.dumps(values_for(component, site, mapping, public, charts)).encode()
        configmaps = [d for d in stack[component] if d["kind"] == "ConfigMap"]
        for text in (values, json.dumps(configmaps).encode()):
            assert b"PRIVATE KEY" not in text, component
            assert not any(secret in text for secret in secrets), component


def test_what_the_site_decides_reaches_the_charts(stack: dict[str, list[Any]]) -> None:
    def objects(component: str, kind: str) -> dict[str, Any]:
        return {d["metadata"]["name"]: d for d in stack[component] if d["kind"] == kind}

    fulcio = objects("fulcio", "Deployment")["fulcio-server"]["spec"]["template"]["spec"]
    assert "--ct-log-url=http://ctlog.ctlog-system.svc/sigstore" in fulcio["containers"][0]["args"]
    config = objects("fulcio", "ConfigMap")["fulcio-server-config"]["data"]["config.yaml"]
    assert "https://kubernetes.default.svc.cluster.local:" in config
    assert "meta-issuers" not in config  # only the issuers the site names
    rekor = objects("rekor", "Deployment")["rekor-server"]["spec"]["template"]["spec"]
    assert "--rekor_server.signer=/key/private" in rekor["containers"][0]["args"]
    assert (
        "--trillian_log_server.address=trillian-logserver.trillian-system"
        in (rekor["containers"][0]["args"])
    )
    assert rekor["securityContext"]["fsGroup"] == 65533
    assert rekor["imagePullSecrets"] == [{"name": "internal-registry"}]
    claim = objects("rekor", "PersistentVolumeClaim")["rekor-server"]
    assert claim["spec"]["storageClassName"] == "manual"
    mysql = objects("trillian", "Deployment")["trillian-mysql"]["spec"]["template"]["spec"]
    assert mysql["volumes"][0]["persistentVolumeClaim"]["claimName"] == "trillian-mysql"
    assert not objects("trillian", "Secret")  # the passwords are airgap's, never random ones
    assert not objects("fulcio", "Job") and set(objects("ctlog", "Job")) == {"ctlog-createtree"}
    ingress = objects("rekor", "Ingress")["rekor-server"]["spec"]
    assert ingress["tls"] == [{"hosts": ["rekor.lab"], "secretName": "rekor-tls"}]
    assert objects("fulcio", "Ingress")["fulcio-server-http"]["spec"]["tls"][0]["hosts"] == [
        "fulcio.lab"
    ]
    tsa = objects("tsa", "ConfigMap")["tsa-server-config"]["data"]["chain.pem"]
    assert tsa.count("BEGIN CERTIFICATE") == 2
    tsa_pod = objects("tsa", "Deployment")["tsa-server"]["spec"]["template"]["spec"]
    tsa_server = tsa_pod["containers"][0]
    assert "--timestamp-signer=file" in tsa_server["args"]
    # Nothing dials out of the gap (NTP pools), nothing holds an API token it never uses.
    assert {"name": "DISABLE-NTP-MONITORING", "value": "true"} in tsa_server["env"]
    assert tsa_pod["automountServiceAccountToken"] is False
    webhook = objects("policy-controller", "Deployment")["policy-controller-webhook"]
    assert "-disable-tuf=true" in webhook["spec"]["template"]["spec"]["containers"][0]["args"]


def test_the_tsa_chart_takes_no_pull_secret_so_its_service_account_gets_it(site: Site) -> None:
    assert pull_secret_service_accounts(site) == [("tsa-system", "tsa-server")]
    assert pull_secret_service_accounts(make_site(tsa={"enabled": False})) == []


# -- images the mapping must provide --------------------------------------------------------------


def test_a_missing_image_is_one_line_naming_the_values_key(
    tmp_path: Path, site: Site, public: PublicMaterial, charts: dict[str, Path]
) -> None:
    references = [r for r in stack_references() if "rekor-server" not in r]
    partial = write_mapping(tmp_path / "mapping.json", mapping_document(references))
    with pytest.raises(UsageError) as error:
        values_for("rekor", site, partial, public, charts)
    assert one_line(error) == (
        "chart rekor: values key server.image: image ghcr.io/sigstore/rekor/rekor-server:v1.5.4"
        "@sha256:100d793d68d0e1ba9fea7df8503304cef1ca736c891bd074fcae3d450dd64169 is not in the "
        f"import mapping {tmp_path / 'mapping.json'}; add ghcr.io/sigstore/rekor/rekor-server to "
        "the bundle and import it"
    )


def test_images_built_for_a_site_are_found_by_their_tag(
    tmp_path: Path, site: Site, public: PublicMaterial, charts: dict[str, Path]
) -> None:
    """Images rebuilt inside a gap (the test cluster's) keep the upstream name and tag, not the
    digest: the chart's tag picks the one to run."""
    local = "sha256:" + "d" * 64
    document = mapping_document(stack_references())
    document["images"]["ghcr.io/sigstore/fulcio:v1.8.8"] = {
        "target": f"{REGISTRY}/{PREFIX}/sigstore/fulcio@{local}",
        "repository": f"{REGISTRY}/{PREFIX}/sigstore/fulcio",
        "tag": "v1.8.8",
        "digest": local,
        "attachments": 0,
    }
    del document["images"][
        next(r for r in document["images"] if r.startswith("ghcr.io/sigstore/fulcio:v1.8.8@"))
    ]
    rebuilt = write_mapping(tmp_path / "mapping.json", document)
    values = values_for("fulcio", site, rebuilt, public, charts)
    assert values["server"]["image"] == {
        "registry": REGISTRY,
        "repository": f"{PREFIX}/sigstore/fulcio",
        "version": local,
    }


def test_two_candidates_and_neither_the_charts_is_refused(
    tmp_path: Path, site: Site, public: PublicMaterial, charts: dict[str, Path]
) -> None:
    references = [r for r in stack_references() if "/fulcio:" not in r]
    references += [f"ghcr.io/sigstore/fulcio:v1.9.{n}@sha256:{str(n) * 64}" for n in (1, 2)]
    other = write_mapping(tmp_path / "mapping.json", mapping_document(references))
    with pytest.raises(UsageError) as error:
        values_for("fulcio", site, other, public, charts)
    assert "chart fulcio: values key server.image: the import mapping" in one_line(error)
    assert "several images of ghcr.io/sigstore/fulcio (ghcr.io/sigstore/fulcio:v1.9.1@" in str(
        error.value
    )


def test_a_mapping_into_another_registry_is_refused(
    tmp_path: Path, site: Site, public: PublicMaterial, charts: dict[str, Path]
) -> None:
    elsewhere = write_mapping(
        tmp_path / "mapping.json", mapping_document(stack_references(), "other.lab")
    )
    with pytest.raises(UsageError) as error:
        values_for("tuf", site, elsewhere, public, charts)
    assert one_line(error).endswith("in other.lab, not in the site's registry registry.lab:5000")


# -- values the charts refuse ---------------------------------------------------------------------


def test_a_misspelt_values_key_is_one_line_naming_it(
    site: Site, mapping: ImageMapping, public: PublicMaterial, charts: dict[str, Path]
) -> None:
    values = values_for("rekor", site, mapping, public, charts)
    values["server"]["signerFileSecretOption"] = values["server"].pop("signerFileSecretOptions")
    with pytest.raises(UsageError) as error:
        check_known_keys(values, chart_files(charts["rekor"]))
    assert one_line(error) == (
        "chart rekor 1.8.4: values key server.signerFileSecretOption is not one the chart reads "
        "(not in its values.yaml, values.schema.json or templates)"
    )


def test_keys_below_what_a_chart_passes_through_whole_are_free(
    site: Site, mapping: ImageMapping, public: PublicMaterial, charts: dict[str, Path]
) -> None:
    values = values_for("rekor", site, mapping, public, charts)
    values["server"]["securityContext"]["seccompProfile"] = {"type": "RuntimeDefault"}
    values["server"]["nodeSelector"] = {"kubernetes.io/os": "linux"}
    check_known_keys(values, chart_files(charts["rekor"]))


def test_a_wrong_type_is_refused_by_the_charts_schema_in_one_line(
    site: Site, mapping: ImageMapping, public: PublicMaterial, charts: dict[str, Path]
) -> None:
    values = values_for("trillian", site, mapping, public, charts)
    values["mysql"]["persistence"]["storageClass"] = "manual"  # the upstream schema: null only
    with pytest.raises(ChartError) as error:
        rendered("trillian", values, site, charts)
    assert one_line(error) == (
        "chart trillian-0.3.16.tgz (release trillian): values key "
        "mysql.persistence.storageClass: got string, want null (values.schema.json)"
    )


def test_an_image_outside_the_internal_registry_is_refused(
    site: Site, mapping: ImageMapping, public: PublicMaterial, charts: dict[str, Path]
) -> None:
    values = values_for("rekor", site, mapping, public, charts)
    values["redis"]["image"]["registry"] = "docker.io"
    documents = rendered("rekor", values, site, charts)
    with pytest.raises(UsageError) as error:
        check_images(documents, REGISTRY, "rekor")
    assert one_line(error).startswith(
        "chart rekor: Deployment/rekor-redis container rekor-redis runs docker.io/"
    )


def test_an_image_by_tag_is_refused(stack: dict[str, list[Any]]) -> None:
    documents = copy.deepcopy(stack["fulcio"])
    for document in documents:
        if document["kind"] == "Deployment":
            document["spec"]["template"]["spec"]["containers"][0]["image"] = (
                f"{REGISTRY}/{PREFIX}/sigstore/fulcio:v1.8.8"
            )
    with pytest.raises(UsageError, match=r"which is not pinned by digest$"):
        check_images(documents, REGISTRY, "fulcio")


# -- other sites ----------------------------------------------------------------------------------


def test_an_external_database_runs_no_mysql(mapping: ImageMapping, charts: dict[str, Path]) -> None:
    external = make_site(
        database={"external": {"host": "mariadb.db.lab", "port": 3307, "secret": "trillian-db"}}
    )
    keys = generate_keyset(external)
    values = values_for("trillian", external, mapping, public_material(keys), charts)
    check_known_keys(values, chart_files(charts["trillian"]))
    documents = rendered("trillian", values, external, charts)
    check_images(documents, REGISTRY, "trillian")
    deployments = {d["metadata"]["name"] for d in documents if d["kind"] == "Deployment"}
    assert deployments == {"trillian-logserver", "trillian-logsigner"}
    job = next(d for d in documents if d["kind"] == "Job")["spec"]["template"]["spec"]
    env = {e["name"]: e for e in job["containers"][0]["env"]}
    assert env["MYSQL_HOSTNAME"]["value"] == "mariadb.db.lab"
    assert env["MYSQL_PASSWORD"]["valueFrom"]["secretKeyRef"]["name"] == "trillian-db"
    assert claims(external) == []


def test_a_site_without_a_provisioner_gets_host_path_volumes(
    mapping: ImageMapping, charts: dict[str, Path]
) -> None:
    bare = make_site(storage={"class": "manual", "hostPath": "/var/lib/airgap", "mysqlSize": "2Gi"})
    (volume,) = persistent_volumes(bare, "a1b2c3")
    assert volume["spec"]["claimRef"] == {"namespace": "trillian-system", "name": "trillian-mysql"}
    assert volume["spec"]["storageClassName"] == "manual"
    assert volume["spec"]["capacity"] == {"storage": "2Gi"}
    # Each install instance gets its own directory: new passwords never meet old files.
    path = volume["spec"]["hostPath"]["path"]
    assert path == "/var/lib/airgap/trillian-system-trillian-mysql-a1b2c3"
    (claim,) = claims(bare)
    assert claim["spec"]["storageClassName"] == "manual"
    # The non-root Rekor cannot write a root-owned hostPath directory: its attestations go to
    # an emptyDir there.
    values = values_for("rekor", bare, mapping, public_material(generate_keyset(bare)), charts)
    documents = rendered("rekor", values, bare, charts)
    assert not [d for d in documents if d["kind"] == "PersistentVolumeClaim"]
    server = next(
        d
        for d in documents
        if d["metadata"]["name"] == "rekor-server" and d["kind"] == "Deployment"
    )
    storage = next(
        v for v in server["spec"]["template"]["spec"]["volumes"] if v["name"] == "storage"
    )
    assert storage == {"name": "storage", "emptyDir": {}}
    assert persistent_volumes(make_site(), "a1b2c3") == []


def test_a_site_can_name_the_tuf_static_server(
    tmp_path: Path, public: PublicMaterial, charts: dict[str, Path]
) -> None:
    nginx = "docker.io/library/nginx:1.27@sha256:" + "e" * 64
    mapping = write_mapping(
        tmp_path / "mapping.json", mapping_document([*stack_references(), nginx])
    )
    site = make_site(tuf={"serverImage": "docker.io/library/nginx:1.27"})
    values = values_for("tuf", site, mapping, public, charts)
    assert values["deployment"]["repository"] == f"{PREFIX}/library/nginx"
    assert values["deployment"]["version"] == "sha256:" + "e" * 64


def test_chart_files_read_from_an_archive_and_a_directory_agree(charts: dict[str, Path]) -> None:
    packed = chart_files(charts["tuf"])
    unpacked = chart_files(SHARED / "upstream" / "sigstore-helm-charts" / "tuf")
    assert isinstance(packed, ChartFiles) and packed.values == unpacked.values
    assert packed.schema == unpacked.schema and packed.templates


def test_the_registry_ca_goes_to_policy_controller_as_a_configmap(
    tmp_path: Path, public: PublicMaterial
) -> None:
    (tmp_path / "ca.pem").write_bytes(public.fulcio_root)  # any certificate will do
    document = site_document(registry={"host": REGISTRY, "mapping": "m", "caFile": "ca.pem"})
    site = parse_site(document, tmp_path / "site.yaml")
    configmap = registry_ca_configmap(site)
    assert configmap is not None
    assert configmap["metadata"] == {"name": "internal-registry-ca", "namespace": "cosign-system"}
    assert configmap["data"]["ca.crt"] == public.fulcio_root.decode()
    (tmp_path / "ca.pem").write_text("not a certificate")
    with pytest.raises(UsageError, match=r"registry.caFile .*ca.pem: not PEM certificates"):
        registry_ca_configmap(site)


def test_fulcio_runs_without_an_api_token(stack: dict[str, list[Any]]) -> None:
    """With one, Fulcio sends it with its OIDC requests and refuses the API server's keys URL
    (another host than the issuer's): keyless signing with the cluster's tokens would fail."""
    (server,) = [d for d in stack["fulcio"] if d["kind"] == "Deployment"]
    assert server["spec"]["template"]["spec"]["automountServiceAccountToken"] is False
