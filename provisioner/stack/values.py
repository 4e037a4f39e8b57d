"""The values each upstream chart is installed with: the component's base values
(charts-values/<component>.yaml, the same at every site), then the site's part (namespace, pull
secret, storage, ingress hosts, OIDC issuers, database, public certificates), then every image
the chart runs rewritten to the internal registry by digest, from the import mapping.

The charts have no global registry override, so each image key is set on its own, in the shape
that chart reads (`IMAGE_KEYS`). The upstream image a key stands for is the chart's own default
(its values.yaml), found in the mapping by repository (mapping.py); one the mapping lacks is
refused in one line naming the chart's values key.

    values = build_values("rekor", site, mapping, public, chart_files(chart).values)
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from cryptography import x509

from offline.errors import UsageError
from offline.inputs import read_input
from offline.oci.imageref import ImageRef, parse_image_ref
from provisioner.create.charts import merge_values as merge
from provisioner.shipped import shipped_dir
from provisioner.stack.keys import PublicMaterial
from provisioner.stack.mapping import ImageMapping, MappedImage
from provisioner.stack.secrets import DATABASE
from provisioner.stack.site import Site
from provisioner.stack.storage import MYSQL_CLAIM

# Install order; the TSA only where the site has one.
COMPONENTS = ("trillian", "rekor", "fulcio", "ctlog", "tsa", "tuf", "policy-controller")
SITE_COMPONENT = {"policy-controller": "policyController"}  # its key in site.namespaces
REGISTRY_CA_CONFIGMAP = "internal-registry-ca"
# The tsa chart has no imagePullSecrets: its ServiceAccount must carry the pull secret instead.
NO_PULL_SECRET_VALUE = {"tsa": "tsa-server"}
# Fulcio trusts the cluster's CA (mounted at /var/run/fulcio/ca.crt) for Kubernetes issuers only
# when its config lists this issuer: its name is fixed in Fulcio's code.
FULCIO_K8S_ISSUER = "https://kubernetes.default.svc"


@dataclass(frozen=True)
class ImageKey:
    """Where a chart reads an image: `parts` is `{registry, repository, version}` (a `sha256:`
    version renders `registry/repository@version`); `joined` is `{repository, version}` with
    the registry inside the repository; `tagged` is joined but always rendered
    `repository:version`, so its version must be `TAG@sha256:...`."""

    path: tuple[str, ...]
    shape: str = "parts"

    @property
    def name(self) -> str:
        return ".".join(self.path)


IMAGE_KEYS: dict[str, tuple[ImageKey, ...]] = {
    "trillian": (
        ImageKey(("logServer", "image")),
        ImageKey(("logSigner", "image")),
        ImageKey(("createdb", "image")),
        ImageKey(("initContainerImage", "netcat")),
        ImageKey(("mysql", "image")),  # only with the database in the cluster
    ),
    "rekor": (
        ImageKey(("server", "image")),
        ImageKey(("redis", "image")),
        ImageKey(("createtree", "image")),
        ImageKey(("initContainerImage", "curl")),
    ),
    "fulcio": (ImageKey(("server", "image")),),
    "ctlog": (ImageKey(("server", "image")), ImageKey(("createtree", "image"))),
    "tsa": (ImageKey(("server", "image")),),
    "tuf": (ImageKey(("deployment",)),),
    "policy-controller": (
        ImageKey(("webhook", "image"), "joined"),
        ImageKey(("leasescleanup", "image"), "tagged"),
    ),
}


def registry_ca_configmap(site: Site) -> dict[str, Any] | None:
    """The internal registry's CA (public) for policy-controller's `registryCaBundle`."""
    if site.registry.ca_file is None:
        return None
    where = f"site {site.path}: registry.caFile {site.registry.ca_file}"
    data = read_input(site.registry.ca_file, where)
    try:
        x509.load_pem_x509_certificates(data)
    except ValueError as exc:
        raise UsageError(f"{where}: not PEM certificates ({exc})") from exc
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": REGISTRY_CA_CONFIGMAP,
            "namespace": component_namespace(site, "policy-controller"),
        },
        "data": {"ca.crt": data.decode("ascii", errors="replace")},
    }


def pull_secret_service_accounts(site: Site) -> list[tuple[str, str]]:
    """(namespace, ServiceAccount) that need the site's pull secret added by the installer,
    for charts that take no imagePullSecrets value."""
    if site.registry.pull_secret is None:
        return []
    return [
        (component_namespace(site, component), account)
        for component, account in NO_PULL_SECRET_VALUE.items()
        if component != "tsa" or site.tsa
    ]


def component_namespace(site: Site, component: str) -> str:
    return site.namespace(SITE_COMPONENT.get(component, component))


def build_values(
    component: str,
    site: Site,
    mapping: ImageMapping,
    public: PublicMaterial,
    chart_defaults: Mapping[str, Any],
    base_dir: Path | None = None,
) -> dict[str, Any]:
    """The values for `component`'s chart; `chart_defaults` is the chart's own values.yaml."""
    if component not in COMPONENTS:
        raise UsageError(f"no chart values for component {component!r}")
    values = merge(base_values(component, base_dir), site_values(component, site, public))
    return merge(values, image_values(component, site, mapping, chart_defaults))


def charts_values_dir() -> Path:
    try:
        return shipped_dir("charts-values")
    except FileNotFoundError as exc:
        raise UsageError(f"this installation of airgap is incomplete: {exc}") from exc


def base_values(component: str, base_dir: Path | None = None) -> dict[str, Any]:
    path = (base_dir or charts_values_dir()) / f"{component}.yaml"
    text = read_input(path, f"chart values for {component}").decode("utf-8", errors="replace")
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise UsageError(f"chart values {path}: not valid YAML ({exc})") from exc
    if not isinstance(document, dict):
        raise UsageError(f"chart values {path}: not a mapping")
    return document


# -- images ---------------------------------------------------------------------------------------


def image_values(
    component: str, site: Site, mapping: ImageMapping, chart_defaults: Mapping[str, Any]
) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for key in IMAGE_KEYS[component]:
        if key.path[0] == "mysql" and site.database is not None:
            continue  # the site's own database: the chart runs no MySQL
        where = f"chart {component}: values key {key.name}"
        default = dig(chart_defaults, key.path)
        if not isinstance(default, Mapping):
            raise UsageError(f"{where}: the chart has no image there")
        upstream = upstream_image(default, key, where)
        if component == "tuf" and site.tuf_server_image is not None:
            upstream = site.tuf_server_image
        image = mapping.find(upstream, where)
        if image.registry != site.registry.host:
            raise UsageError(
                f"{where}: the import mapping {mapping.path} put {upstream} in {image.registry}, "
                f"not in the site's registry {site.registry.host}"
            )
        _put(values, key.path, _rewritten(image, key, upstream))
    return values


def upstream_image(default: Mapping[str, Any], key: ImageKey, where: str) -> ImageRef:
    """The image a chart key names by default, as the chart renders it."""
    repository = str(default.get("repository") or "")
    version = str(default.get("version") or "")
    if key.shape == "parts":
        repository = f"{default.get('registry') or ''}/{repository}"
    separator = "@" if version.startswith("sha256:") and key.shape != "tagged" else ":"
    try:
        return parse_image_ref(f"{repository}{separator}{version}")
    except UsageError as exc:
        raise UsageError(f"{where}: the chart's default image is not a reference ({exc})") from exc


def _rewritten(image: MappedImage, key: ImageKey, upstream: ImageRef) -> dict[str, str]:
    if key.shape == "parts":
        return {"registry": image.registry, "repository": image.repository, "version": image.digest}
    repository = f"{image.registry}/{image.repository}"
    if key.shape == "joined":
        return {"repository": repository, "version": image.digest}
    # Rendered `repository:version` whatever the version: a tag before the digest keeps it a
    # reference, and the digest is what is pulled.
    tag = image.tag or upstream.tag or "airgap"
    return {"repository": repository, "version": f"{tag}@{image.digest}"}


# -- the site's part ------------------------------------------------------------------------------


def site_values(component: str, site: Site, public: PublicMaterial) -> dict[str, Any]:
    values: dict[str, Any] = {}
    if component != "policy-controller":
        values["forceNamespace"] = component_namespace(site, component)
    if site.registry.pull_secret is not None and component not in NO_PULL_SECRET_VALUE:
        values["imagePullSecrets"] = [{"name": site.registry.pull_secret}]
    builder = _SITE_PARTS.get(component)
    return merge(values, builder(site, public)) if builder is not None else values


def _trillian(site: Site, public: PublicMaterial) -> dict[str, Any]:
    if site.database is not None:
        return {
            "mysql": {
                "enabled": False,
                "hostname": site.database.host,
                "port": site.database.port,
                "auth": {"existingSecret": site.database.secret},
            }
        }
    return {
        "mysql": {
            "auth": {"existingSecret": DATABASE},
            # Made by airgap with the site's class (storage.py): the chart takes no class.
            "persistence": {"enabled": True, "existingClaim": MYSQL_CLAIM},
        }
    }


def _rekor(site: Site, public: PublicMaterial) -> dict[str, Any]:
    # A hostPath volume keeps its root-owned directory whatever fsGroup says, so on such a site
    # the non-root server writes attestations to an emptyDir instead.
    persistent = site.storage.host_path is None
    server: dict[str, Any] = {
        "attestation_storage": {
            "enabled": True,
            "persistence": {
                "enabled": persistent,
                "storageClass": site.storage.storage_class,
                "size": site.storage.attestations_size,
            },
        },
    }
    ingress = _ingress(site, "rekor")
    if ingress is not None:
        server["ingress"] = {"enabled": True, **ingress}
    return {
        "trillian": {"forceNamespace": site.namespace("trillian")},
        "server": server,
    }


def _fulcio(site: Site, public: PublicMaterial) -> dict[str, Any]:
    issuers = {
        issuer.url: {"issuer-url": issuer.url, "client-id": issuer.client_id, "type": issuer.type}
        for issuer in site.issuers
    }
    if any(i.type == "kubernetes" for i in site.issuers) and FULCIO_K8S_ISSUER not in issuers:
        # Makes Fulcio read the cluster's CA for the site's Kubernetes issuers; it accepts no
        # token itself, since the API server's discovery names the cluster's real issuer.
        issuers[FULCIO_K8S_ISSUER] = {
            "issuer-url": FULCIO_K8S_ISSUER,
            "client-id": "sigstore",
            "type": "kubernetes",
        }
    server: dict[str, Any] = {"args": {"ct_log_url": site.service_url("ctlog")}}
    ingress = _ingress(site, "fulcio")
    if ingress is not None:
        tls = ingress.pop("tls", None)
        server["ingress"] = {"http": {"enabled": True, **ingress}}
        if tls is not None:
            server["ingress"]["tls"] = tls  # the chart reads tls beside http, not inside it
    # No meta-issuers: only the issuers the site names are accepted.
    return {"server": server, "config": {"contents": {"oidc-issuers": issuers}}}


def _ctlog(site: Site, public: PublicMaterial) -> dict[str, Any]:
    values: dict[str, Any] = {"trillian": {"namespace": site.namespace("trillian")}}
    ingress = _ingress(site, "ctlog")
    if ingress is not None:
        values["server"] = {"ingress": {"enabled": True, **ingress}}
    return values


def _tsa(site: Site, public: PublicMaterial) -> dict[str, Any]:
    if public.tsa_chain is None:
        raise UsageError(f"site {site.path}: the TSA is on but the key set has no TSA chain")
    server: dict[str, Any] = {"args": {"cert_chain": public.tsa_chain.decode()}}
    ingress = _ingress(site, "tsa")
    if ingress is not None:
        tls = ingress.pop("tls", None)
        server["ingress"] = {"http": {"enabled": True, **ingress}}
        if tls is not None:
            server["ingress"]["tls"] = tls
    return {"server": server}


def _tuf(site: Site, public: PublicMaterial) -> dict[str, Any]:
    values: dict[str, Any] = {"secrets": {"tsa": {"enabled": site.tsa}}}
    ingress = _ingress(site, "tuf")
    if ingress is not None:
        hosts = ingress.pop("hosts")
        values["ingress"] = {"create": True, "http": {"hosts": hosts}, **ingress}
    return values


def _policy_controller(site: Site, public: PublicMaterial) -> dict[str, Any]:
    if site.registry.ca_file is None:
        return {}
    # The webhook fetches signatures from the internal registry itself: it must trust its CA.
    return {"webhook": {"registryCaBundle": {"name": REGISTRY_CA_CONFIGMAP, "key": "ca.crt"}}}


_SITE_PARTS = {
    "trillian": _trillian,
    "rekor": _rekor,
    "fulcio": _fulcio,
    "ctlog": _ctlog,
    "tsa": _tsa,
    "tuf": _tuf,
    "policy-controller": _policy_controller,
}


def _ingress(site: Site, component: str) -> dict[str, Any] | None:
    host = site.ingress.hosts.get(component) if site.ingress else None
    if host is None or site.ingress is None:
        return None
    ingress: dict[str, Any] = {
        "className": site.ingress.class_name,
        "hosts": [{"host": host.host, "path": "/"}],
    }
    if host.tls_secret is not None:
        ingress["tls"] = [{"hosts": [host.host], "secretName": host.tls_secret}]
    return ingress


# -- helpers --------------------------------------------------------------------------------------


def dig(values: Mapping[str, Any], path: tuple[str, ...]) -> Any:
    node: Any = values
    for key in path:
        if not isinstance(node, Mapping):
            return None
        node = node.get(key)
    return node


def _put(values: dict[str, Any], path: tuple[str, ...], value: Any) -> None:
    node = values
    for key in path[:-1]:
        node = node.setdefault(key, {})
    node[path[-1]] = value
