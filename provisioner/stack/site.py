"""`site.yaml`: what the install command needs to know about one site, read strictly (unknown keys
refused, every error one line naming the field).

    apiVersion: airgap.dev/v1
    kind: Site
    charts: bundle/charts                               # the charts' archives (searched below)
    registry: {host: registry.internal:5000, caFile: ca.pem, pullSecret: internal-registry,
               credentials: registry-auth.json,    # docker config: the pull secret's content
               mapping: sigstore-stack.import-mapping-0123456789abcdef.json}
    namespaces: {trillian: trillian-system, ...}        # optional, these are the defaults
    ingress: {className: nginx, hosts: {rekor: {host: rekor.example.internal, tlsSecret: t}}}
    storage: {class: manual, hostPath: /var/lib/airgap/volumes}
    oidc: {issuers: [{url: https://kubernetes.default.svc.cluster.local, type: kubernetes}]}
    database: {external: {host: db.internal, port: 3306, secret: trillian-db}}  # or absent
    tsa: {enabled: false}
    policyController: {enabled: true}      # policy-controller, after tuf (airgap policy generate)
    tuf: {expiry: {root: 365, targets: 90, snapshot: 7, timestamp: 1},           # days
          serverImage: docker.io/nginxinc/nginx-unprivileged:1.27-alpine}  # static server
    nodes: {image: docker.io/library/busybox:1.37, trustDir: /etc/sigstore,     # trust on
            containerdCertsDir: /etc/containerd/certs.d}                        # every node
    keys: {fulcio: {organization: Example, commonName: Example Fulcio, rootDays: 3650,
                    intermediate: true}}
    values: {rekor: {server: {replicaCount: 2}}}   # the site's own chart values, merged last

Relative paths are relative to the site file. Everything that names a Service inside the
cluster comes from here and from the fixed release names of charts-values/ (`Site.urls`).
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from urllib.parse import urlsplit

from offline.errors import UsageError
from offline.inputs import read_input
from offline.oci.imageref import ImageRef, parse_image_ref
from offline.strict import StrictReader, at, describe
from offline.yamlfile import load_yaml

API_VERSION = "airgap.dev/v1"
KIND = "Site"
COMPONENTS = ("trillian", "rekor", "fulcio", "ctlog", "tsa", "tuf", "policyController", "nodes")
# Components reached from outside the cluster through an ingress (trillian never is).
# Components whose chart values a site may extend (`values:`), by release name.
VALUES_COMPONENTS = ("trillian", "rekor", "fulcio", "ctlog", "tsa", "tuf", "policy-controller")
INGRESS_COMPONENTS = ("rekor", "fulcio", "ctlog", "tsa", "tuf")
DEFAULT_NAMESPACES = {
    "trillian": "trillian-system",
    "rekor": "rekor-system",
    "fulcio": "fulcio-system",
    "ctlog": "ctlog-system",
    "tsa": "tsa-system",
    "tuf": "tuf-system",
    "policyController": "cosign-system",
    "nodes": "airgap-system",  # the trust DaemonSet (provisioner/nodes)
}
# The issuer kubeadm-style clusters give their service-account tokens (--service-account-issuer).
DEFAULT_ISSUER = "https://kubernetes.default.svc.cluster.local"
ISSUER_TYPES = ("kubernetes", "email", "uri", "username", "spiffe", "github-workflow", "gitlab")
DEFAULT_EXPIRY_DAYS = {"root": 365, "targets": 90, "snapshot": 7, "timestamp": 1}
CT_LOG_PREFIX = "sigstore"
# A static web server for the TUF repository: serves /usr/share/nginx/html on 8080, unprivileged,
# with no arguments (the tuf chart passes none). The chart's own server makes new keys.
DEFAULT_TUF_SERVER_IMAGE = "docker.io/nginxinc/nginx-unprivileged:1.27-alpine"
# Service names the charts get from charts-values/ (fullnameOverride and friends).
SERVICES = {
    "rekor": "rekor-server",
    "fulcio": "fulcio-server",
    "ctlog": "ctlog",
    "tsa": "tsa-server",
    "tuf": "tuf-server",
}

_DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")
_HOST = re.compile(
    r"(?=.{1,253}$)[A-Za-z0-9]([-A-Za-z0-9]*[A-Za-z0-9])?(\.[A-Za-z0-9]([-A-Za-z0-9]*[A-Za-z0-9])?)*"
)
_REGISTRY_HOST = re.compile(r"[A-Za-z0-9.-]+(:[0-9]{1,5})?")
# A node directory the trust DaemonSet writes through a hostPath: plain characters only (it is
# written into hosts.toml and a shell script) and at least two levels deep (never all of /etc).
_NODE_DIR = re.compile(r"(/[A-Za-z0-9._-]+){2,}")
DEFAULT_TRUST_DIR = "/etc/sigstore"
DEFAULT_CERTS_DIR = "/etc/containerd/certs.d"
_QUANTITY = re.compile(r"[0-9]+(\.[0-9]+)?(Ki|Mi|Gi|Ti|Pi|k|M|G|T|P)?")


@dataclass(frozen=True)
class Registry:
    host: str
    mapping: Path
    ca_file: Path | None = None
    pull_secret: str | None = None
    credentials: Path | None = None  # a docker config.json: install writes the pull secret


@dataclass(frozen=True)
class IngressHost:
    host: str
    tls_secret: str | None = None

    @property
    def url(self) -> str:
        return f"{'https' if self.tls_secret else 'http'}://{self.host}"


@dataclass(frozen=True)
class Ingress:
    class_name: str
    hosts: Mapping[str, IngressHost]


@dataclass(frozen=True)
class Storage:
    """`storage_class` for every claim the charts make; with `host_path`, airgap also makes
    hostPath PersistentVolumes of that class (a single node with no provisioner)."""

    storage_class: str
    host_path: Path | None = None
    mysql_size: str = "5Gi"
    attestations_size: str = "5Gi"


@dataclass(frozen=True)
class Issuer:
    url: str
    type: str = "kubernetes"
    client_id: str = "sigstore"


@dataclass(frozen=True)
class ExternalDatabase:
    """An existing MySQL/MariaDB; `secret` (in Trillian's namespace) holds mysql-user,
    mysql-password and mysql-database, made by the operator."""

    host: str
    secret: str
    port: int = 3306


@dataclass(frozen=True)
class FulcioCA:
    organization: str = "airgap"
    common_name: str = "airgap Fulcio root"
    root_days: int = 3650
    intermediate: bool = False


@dataclass(frozen=True)
class Nodes:
    """What `airgap nodes apply` puts on every node: `image` (a small shell image the bundle
    carries, found through the import mapping) writes the trust files into `trust_dir` and the
    internal registry's containerd configuration into `containerd_certs_dir`."""

    image: ImageRef
    trust_dir: PurePosixPath = field(default_factory=lambda: PurePosixPath(DEFAULT_TRUST_DIR))
    containerd_certs_dir: PurePosixPath = field(
        default_factory=lambda: PurePosixPath(DEFAULT_CERTS_DIR)
    )


@dataclass(frozen=True)
class Site:
    path: Path
    charts: Path
    registry: Registry
    storage: Storage
    namespaces: Mapping[str, str] = field(default_factory=lambda: dict(DEFAULT_NAMESPACES))
    ingress: Ingress | None = None
    issuers: tuple[Issuer, ...] = (Issuer(DEFAULT_ISSUER),)
    database: ExternalDatabase | None = None
    tsa: bool = False
    tuf_expiry_days: Mapping[str, int] = field(default_factory=lambda: dict(DEFAULT_EXPIRY_DAYS))
    fulcio_ca: FulcioCA = FulcioCA()
    values: Mapping[str, Mapping[str, object]] = field(default_factory=dict)
    tuf_server_image: ImageRef = field(
        default_factory=lambda: parse_image_ref(DEFAULT_TUF_SERVER_IMAGE)
    )
    policy_controller: bool = False
    nodes: Nodes | None = None  # no `nodes:` block: no trust DaemonSet

    def namespace(self, component: str) -> str:
        return self.namespaces[component]

    def service_url(self, component: str) -> str:
        """The component's URL inside the cluster (its Service's DNS name)."""
        url = f"http://{SERVICES[component]}.{self.namespace(component)}.svc"
        return f"{url}/{CT_LOG_PREFIX}" if component == "ctlog" else url

    def public_url(self, component: str) -> str:
        """Where clients reach the component: its ingress host if it has one, else the
        Service inside the cluster."""
        host = self.ingress.hosts.get(component) if self.ingress else None
        if host is None:
            return self.service_url(component)
        return f"{host.url}/{CT_LOG_PREFIX}" if component == "ctlog" else host.url


def load_site(path: str | Path) -> Site:
    path = Path(path)
    text = read_input(path, "site file").decode("utf-8", errors="replace")
    return parse_site(load_yaml(text, f"site {path}"), path)


def parse_site(document: object, path: Path) -> Site:
    return _SiteReader(path).site(document)


class _SiteReader(StrictReader):
    def __init__(self, path: Path) -> None:
        super().__init__(f"site {path}")
        self.path = path

    def site(self, document: object) -> Site:
        top = self.mapping(
            document,
            "",
            required=("apiVersion", "kind", "charts", "registry", "storage"),
            optional=(
                "namespaces",
                "ingress",
                "oidc",
                "database",
                "tsa",
                "tuf",
                "keys",
                "values",
                "policyController",
                "nodes",
            ),
        )
        if top["apiVersion"] != API_VERSION:
            self.fail("apiVersion", f"expected {API_VERSION!r}; got {top['apiVersion']!r}")
        if top["kind"] != KIND:
            self.fail("kind", f"expected {KIND!r}; got {top['kind']!r}")
        tsa = self.mapping(top.get("tsa", {}), "tsa", optional=("enabled",))
        admission = self.mapping(
            top.get("policyController", {}), "policyController", optional=("enabled",)
        )
        return Site(
            path=self.path,
            charts=self.file(top["charts"], "charts"),
            registry=self.registry(top["registry"], "registry"),
            storage=self.storage(top["storage"], "storage"),
            namespaces=self.namespaces(top.get("namespaces", {}), "namespaces"),
            ingress=self.ingress(top["ingress"], "ingress") if "ingress" in top else None,
            issuers=self.issuers(top.get("oidc", {}), "oidc"),
            database=self.database(top.get("database", {}), "database"),
            tsa=self.boolean(tsa.get("enabled", False), "tsa.enabled"),
            tuf_expiry_days=self.expiry(top.get("tuf", {}), "tuf"),
            tuf_server_image=self.tuf_server_image(top.get("tuf", {}), "tuf"),
            fulcio_ca=self.keys(top.get("keys", {}), "keys"),
            values=self.chart_values(top.get("values", {}), "values"),
            policy_controller=self.boolean(
                admission.get("enabled", False), "policyController.enabled"
            ),
            nodes=self.nodes(top["nodes"], "nodes") if "nodes" in top else None,
        )

    # -- sections -------------------------------------------------------------------------

    def registry(self, value: object, path: str) -> Registry:
        entry = self.mapping(
            value,
            path,
            required=("host", "mapping"),
            optional=("caFile", "pullSecret", "credentials"),
        )
        host = self.string(entry["host"], at(path, "host"))
        if not _REGISTRY_HOST.fullmatch(host):
            self.fail(at(path, "host"), f"{host!r} is not HOST[:PORT]")
        registry = Registry(
            host=host,
            mapping=self.file(entry["mapping"], at(path, "mapping")),
            ca_file=self.file(entry["caFile"], at(path, "caFile")) if "caFile" in entry else None,
            pull_secret=self.name(entry["pullSecret"], at(path, "pullSecret"))
            if "pullSecret" in entry
            else None,
            credentials=self.file(entry["credentials"], at(path, "credentials"))
            if "credentials" in entry
            else None,
        )
        if registry.credentials is not None and registry.pull_secret is None:
            self.fail(at(path, "credentials"), "given without pullSecret, the secret it fills")
        return registry

    def namespaces(self, value: object, path: str) -> dict[str, str]:
        entry = self.mapping(value, path, optional=COMPONENTS)
        names = dict(DEFAULT_NAMESPACES)
        for component, name in entry.items():
            names[component] = self.name(name, at(path, component))
        return names

    def ingress(self, value: object, path: str) -> Ingress:
        entry = self.mapping(value, path, required=("className", "hosts"))
        hosts_path = at(path, "hosts")
        hosts = self.mapping(entry["hosts"], hosts_path, optional=INGRESS_COMPONENTS)
        if not hosts:
            self.fail(hosts_path, "is empty")
        read = {}
        for component, host in hosts.items():
            where = at(hosts_path, component)
            item = self.mapping(host, where, required=("host",), optional=("tlsSecret",))
            name = self.string(item["host"], at(where, "host"))
            if not _HOST.fullmatch(name):
                self.fail(at(where, "host"), f"{name!r} is not a host name")
            tls = (
                self.name(item["tlsSecret"], at(where, "tlsSecret"))
                if "tlsSecret" in item
                else None
            )
            read[component] = IngressHost(name, tls)
        self.unique([h.host for h in read.values()], hosts_path)
        return Ingress(self.name(entry["className"], at(path, "className")), read)

    def storage(self, value: object, path: str) -> Storage:
        entry = self.mapping(
            value, path, required=("class",), optional=("hostPath", "mysqlSize", "attestationsSize")
        )
        host_path = None
        if "hostPath" in entry:
            host_path = Path(self.string(entry["hostPath"], at(path, "hostPath")))
            if not host_path.is_absolute():
                self.fail(at(path, "hostPath"), f"{str(host_path)!r} is not an absolute path")
        return Storage(
            storage_class=self.name(entry["class"], at(path, "class")),
            host_path=host_path,
            mysql_size=self.quantity(entry.get("mysqlSize", "5Gi"), at(path, "mysqlSize")),
            attestations_size=self.quantity(
                entry.get("attestationsSize", "5Gi"), at(path, "attestationsSize")
            ),
        )

    def issuers(self, value: object, path: str) -> tuple[Issuer, ...]:
        entry = self.mapping(value, path, optional=("issuers",))
        if "issuers" not in entry:
            return (Issuer(DEFAULT_ISSUER),)
        issuers = self.items(entry["issuers"], at(path, "issuers"), self.issuer)
        self.unique([i.url for i in issuers], at(path, "issuers"))
        return tuple(issuers)

    def issuer(self, value: object, path: str) -> Issuer:
        entry = self.mapping(value, path, required=("url",), optional=("type", "clientId"))
        url = self.string(entry["url"], at(path, "url"))
        parts = urlsplit(url)
        if parts.scheme != "https" or not parts.hostname or parts.query or parts.fragment:
            self.fail(at(path, "url"), f"{url!r} is not an https URL (Fulcio requires https)")
        return Issuer(
            url=url,
            type=self.choice(entry.get("type", "kubernetes"), at(path, "type"), ISSUER_TYPES),
            client_id=self.string(entry.get("clientId", "sigstore"), at(path, "clientId")),
        )

    def database(self, value: object, path: str) -> ExternalDatabase | None:
        entry = self.mapping(value, path, optional=("external",))
        if "external" not in entry:
            return None
        where = at(path, "external")
        external = self.mapping(
            entry["external"], where, required=("host", "secret"), optional=("port",)
        )
        host = self.string(external["host"], at(where, "host"))
        if not _HOST.fullmatch(host):
            self.fail(at(where, "host"), f"{host!r} is not a host name")
        port = self.integer(external.get("port", 3306), at(where, "port"), minimum=1)
        if port > 65535:
            self.fail(at(where, "port"), f"{port} is not a port number")
        return ExternalDatabase(host, self.name(external["secret"], at(where, "secret")), port)

    def expiry(self, value: object, path: str) -> dict[str, int]:
        entry = self.mapping(value, path, optional=("expiry", "serverImage"))
        where = at(path, "expiry")
        given = self.mapping(entry.get("expiry", {}), where, optional=tuple(DEFAULT_EXPIRY_DAYS))
        days = dict(DEFAULT_EXPIRY_DAYS)
        for role, value_ in given.items():
            days[role] = self.integer(value_, at(where, role), minimum=1)
        # Each role must outlive the one it signs for, or clients see a gap.
        order = ("timestamp", "snapshot", "targets", "root")
        for shorter, longer in itertools.pairwise(order):
            if days[shorter] > days[longer]:
                self.fail(
                    at(where, shorter),
                    f"{days[shorter]} days is longer than {longer}'s {days[longer]}",
                )
        return days

    def tuf_server_image(self, value: object, path: str) -> ImageRef:
        entry = self.mapping(value, path, optional=("expiry", "serverImage"))
        if "serverImage" not in entry:
            return parse_image_ref(DEFAULT_TUF_SERVER_IMAGE)
        where = at(path, "serverImage")
        try:
            return parse_image_ref(self.string(entry["serverImage"], where))
        except UsageError as exc:
            self.fail(where, str(exc))

    def nodes(self, value: object, path: str) -> Nodes:
        entry = self.mapping(
            value, path, required=("image",), optional=("trustDir", "containerdCertsDir")
        )
        where = at(path, "image")
        try:
            image = parse_image_ref(self.string(entry["image"], where))
        except UsageError as exc:
            self.fail(where, str(exc))
        trust_dir = self.node_dir(entry.get("trustDir", DEFAULT_TRUST_DIR), at(path, "trustDir"))
        certs_dir = self.node_dir(
            entry.get("containerdCertsDir", DEFAULT_CERTS_DIR), at(path, "containerdCertsDir")
        )
        if trust_dir == certs_dir:
            self.fail(at(path, "trustDir"), f"{str(trust_dir)!r} is also containerdCertsDir")
        if certs_dir in trust_dir.parents:
            self.fail(at(path, "trustDir"), f"{str(trust_dir)!r} is inside containerdCertsDir")
        if trust_dir in certs_dir.parents:
            self.fail(at(path, "containerdCertsDir"), f"{str(certs_dir)!r} is inside trustDir")
        return Nodes(image, trust_dir, certs_dir)

    def node_dir(self, value: object, path: str) -> PurePosixPath:
        text = self.string(value, path)
        parts = text.split("/")
        if not _NODE_DIR.fullmatch(text) or "." in parts or ".." in parts:
            self.fail(
                path,
                f"{text!r} is not an absolute directory at least two levels deep, named with "
                "letters, digits, '.', '_' and '-'",
            )
        return PurePosixPath(text)

    def keys(self, value: object, path: str) -> FulcioCA:
        entry = self.mapping(value, path, optional=("fulcio",))
        where = at(path, "fulcio")
        fulcio = self.mapping(
            entry.get("fulcio", {}),
            where,
            optional=("organization", "commonName", "rootDays", "intermediate"),
        )
        default = FulcioCA()
        return FulcioCA(
            organization=self.string(
                fulcio.get("organization", default.organization), at(where, "organization")
            ),
            common_name=self.string(
                fulcio.get("commonName", default.common_name), at(where, "commonName")
            ),
            root_days=self.integer(
                fulcio.get("rootDays", default.root_days), at(where, "rootDays"), minimum=1
            ),
            intermediate=self.boolean(
                fulcio.get("intermediate", default.intermediate), at(where, "intermediate")
            ),
        )

    def chart_values(self, value: object, path: str) -> dict[str, Mapping[str, object]]:
        """Per component, values merged over airgap's; each chart's schema checks them."""
        entry = self.mapping(value, path, optional=VALUES_COMPONENTS)
        return {
            component: self.table(given, at(path, component)) for component, given in entry.items()
        }

    # -- values ---------------------------------------------------------------------------

    def boolean(self, value: object, path: str) -> bool:
        if not isinstance(value, bool):
            self.fail(path, f"expected true or false; got {describe(value)}")
        return value

    def name(self, value: object, path: str) -> str:
        """A Kubernetes object name (DNS label)."""
        text = self.string(value, path)
        if not _DNS_LABEL.fullmatch(text):
            self.fail(path, f"{text!r} is not a Kubernetes name (lower case letters, digits, '-')")
        return text

    def quantity(self, value: object, path: str) -> str:
        text = self.string(value, path)
        if not _QUANTITY.fullmatch(text):
            self.fail(path, f"{text!r} is not a storage size such as 5Gi")
        return text

    def file(self, value: object, path: str) -> Path:
        """A path relative to the site file; whoever reads the file says if it is missing."""
        text = self.string(value, path)
        return Path(text) if Path(text).is_absolute() else self.path.parent / text
