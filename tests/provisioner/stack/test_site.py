"""provisioner.stack.site: site.yaml read strictly, every error one line naming the field."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from offline.errors import UsageError
from provisioner.stack.site import (
    DEFAULT_ISSUER,
    DEFAULT_NAMESPACES,
    load_site,
    parse_site,
)
from tests.provisioner.stack.sites import SITE_PATH, site_document

REPOSITORY = Path(__file__).resolve().parents[3]
EXAMPLE = REPOSITORY / "charts-values" / "site.example.yaml"


def refusal(document: object) -> str:
    with pytest.raises(UsageError) as info:
        parse_site(document, SITE_PATH)
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(f"site {SITE_PATH}: ")
    return message


def test_the_example_site_parses_with_every_section() -> None:
    site = load_site(EXAMPLE)
    assert site.registry.host == "registry.internal:5000"
    assert site.registry.mapping == EXAMPLE.parent / "sigstore-stack.import-mapping.json"
    assert site.registry.pull_secret == "internal-registry"
    assert site.registry.credentials == EXAMPLE.parent / "registry-auth.json"
    assert site.charts == EXAMPLE.parent / "sigstore-stack" / "charts"
    assert site.storage.host_path == Path("/var/lib/airgap/volumes")
    assert site.fulcio_ca.intermediate is True
    assert site.ingress is not None and set(site.ingress.hosts) == {"rekor", "fulcio", "tuf"}


def test_defaults_of_a_minimal_site() -> None:
    site = parse_site(site_document(), SITE_PATH)
    assert dict(site.namespaces) == DEFAULT_NAMESPACES
    assert [i.url for i in site.issuers] == [DEFAULT_ISSUER]
    assert site.database is None and site.tsa is False and site.ingress is None
    assert site.policy_controller is False
    assert site.registry.mapping == Path("/sites/lab/mapping.json")
    assert site.registry.ca_file is None
    assert site.tuf_expiry_days == {"root": 365, "targets": 90, "snapshot": 7, "timestamp": 1}


def test_the_charts_directory_and_the_registry_credentials_are_relative_to_the_site() -> None:
    site = parse_site(
        site_document(
            charts="carried/charts",
            registry={
                "host": "r:5000",
                "mapping": "m.json",
                "pullSecret": "internal-registry",
                "credentials": "auth/config.json",
            },
        ),
        SITE_PATH,
    )
    assert site.charts == Path("/sites/lab/carried/charts")
    assert site.registry.credentials == Path("/sites/lab/auth/config.json")
    assert parse_site(site_document(charts="/srv/charts"), SITE_PATH).charts == Path("/srv/charts")
    assert parse_site(site_document(), SITE_PATH).registry.credentials is None


def test_urls_inside_and_outside_the_cluster() -> None:
    site = parse_site(
        site_document(
            namespaces={"rekor": "sigstore"},
            ingress={
                "className": "nginx",
                "hosts": {"rekor": {"host": "rekor.lab", "tlsSecret": "t"}},
            },
        ),
        SITE_PATH,
    )
    assert site.service_url("rekor") == "http://rekor-server.sigstore.svc"
    assert site.public_url("rekor") == "https://rekor.lab"
    assert site.public_url("ctlog") == "http://ctlog.ctlog-system.svc/sigstore"
    assert site.public_url("fulcio") == "http://fulcio-server.fulcio-system.svc"


@pytest.mark.parametrize(
    ("document", "expected"),
    [
        (site_document(registries={}), "unknown key 'registries'"),
        (site_document(kind="Bundle"), "kind: expected 'Site'"),
        ({k: v for k, v in site_document().items() if k != "charts"}, ": missing charts"),
        (site_document(charts=["a", "b"]), "charts: expected"),
        (
            site_document(registry={"host": "r", "mapping": "m", "credentials": "auth.json"}),
            "registry.credentials: given without pullSecret",
        ),
        ({**site_document(), "registry": {"host": "r:5000"}}, "registry: missing mapping"),
        (
            site_document(registry={"host": "r:5000", "mapping": "m", "ca": "x"}),
            "registry: unknown key 'ca'",
        ),
        (
            site_document(registry={"host": "https://r", "mapping": "m"}),
            "registry.host: 'https://r' is not HOST[:PORT]",
        ),
        (
            site_document(registry={"host": "r", "mapping": "m", "pullSecret": "Pull_Secret"}),
            "registry.pullSecret: 'Pull_Secret' is not a Kubernetes name",
        ),
        (
            site_document(namespaces={"rekor": "Rekor"}),
            "namespaces.rekor: 'Rekor' is not a Kubernetes name",
        ),
        (site_document(namespaces={"redis": "x"}), "namespaces: unknown key 'redis'"),
        (site_document(storage={}), "storage: missing class"),
        (
            site_document(storage={"class": "manual", "hostPath": "volumes"}),
            "storage.hostPath: 'volumes' is not an absolute path",
        ),
        (
            site_document(storage={"class": "manual", "mysqlSize": "5 GB"}),
            "storage.mysqlSize: '5 GB' is not a storage size",
        ),
        (
            site_document(oidc={"issuers": [{"url": "http://issuer.lab"}]}),
            "oidc.issuers[0].url: 'http://issuer.lab' is not an https URL",
        ),
        (
            site_document(oidc={"issuers": [{"url": "https://a.lab", "type": "github"}]}),
            "oidc.issuers[0].type: expected one of",
        ),
        (
            site_document(oidc={"issuers": [{"url": "https://a.lab"}, {"url": "https://a.lab"}]}),
            "oidc.issuers: 'https://a.lab' is listed twice",
        ),
        (site_document(oidc={"issuers": []}), "oidc.issuers: is empty"),
        (
            site_document(database={"external": {"host": "db.lab"}}),
            "database.external: missing secret",
        ),
        (
            site_document(database={"external": {"host": "db.lab", "secret": "s", "port": 70000}}),
            "database.external.port: 70000 is not a port number",
        ),
        (
            site_document(database={"external": {"host": "db.lab", "secret": "s", "port": "3306"}}),
            "database.external.port: expected an integer",
        ),
        (
            site_document(tsa={"enabled": "yes"}),
            "tsa.enabled: expected true or false; got the text 'yes'",
        ),
        (
            site_document(policyController={"enabled": 1}),
            "policyController.enabled: expected true or false; got the number 1",
        ),
        (
            site_document(policyController={"enable": True}),
            "policyController: unknown key",
        ),
        (
            site_document(tuf={"expiry": {"timestamp": 0}}),
            "tuf.expiry.timestamp: expected an integer of at least 1",
        ),
        (
            site_document(tuf={"expiry": {"snapshot": 400}}),
            "tuf.expiry.snapshot: 400 days is longer than targets's 90",
        ),
        (site_document(tuf={"expiry": {"targetz": 1}}), "tuf.expiry: unknown key 'targetz'"),
        (
            site_document(keys={"fulcio": {"rootDays": -1}}),
            "keys.fulcio.rootDays: expected an integer of at least 1",
        ),
        (
            site_document(ingress={"className": "nginx", "hosts": {"trillian": {"host": "t.lab"}}}),
            "ingress.hosts: unknown key 'trillian'",
        ),
        (
            site_document(ingress={"className": "nginx", "hosts": {"rekor": {"host": "r lab"}}}),
            "ingress.hosts.rekor.host: 'r lab' is not a host name",
        ),
        (
            site_document(
                ingress={
                    "className": "nginx",
                    "hosts": {"rekor": {"host": "x.lab"}, "tuf": {"host": "x.lab"}},
                }
            ),
            "ingress.hosts: 'x.lab' is listed twice",
        ),
    ],
)
def test_each_mistake_is_one_line_naming_the_field(document: object, expected: str) -> None:
    assert expected in refusal(document)


def test_a_site_file_that_is_not_yaml_is_one_line(tmp_path: Path) -> None:
    path = tmp_path / "site.yaml"
    path.write_text("registry: [\n")
    with pytest.raises(UsageError, match=r"^site .*site.yaml: not valid YAML") as info:
        load_site(path)
    assert "\n" not in str(info.value)


def test_a_key_written_twice_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "site.yaml"
    path.write_text(yaml.safe_dump(site_document()) + "kind: Site\n")
    with pytest.raises(UsageError, match="duplicate key 'kind'"):
        load_site(path)
