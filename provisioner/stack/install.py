"""`airgap install`: the private Sigstore stack, in order, each step waited for and proven.

Everything that can be refused is refused before the first write (`prepare`): the mapping and
every image in it, the charts and their values (helm's schema), the key Secrets already in the
cluster (a different key stops the install, naming the secret), the recorded tree IDs, the pull
secret. Then `apply` goes in order:

    namespaces, pull secrets, volumes, key Secrets, OIDC discovery
    -> trillian (database, schema, log server, signer)
    -> rekor (its tree: created once, recorded, pinned) -> probe
    -> fulcio -> probe
    -> ctlog (its tree, then ctlog-secret from it) -> probe
    -> tsa (when on) -> probe
    -> tuf (the site's repository, signed offline, served statically) -> probe
    -> policy-controller (when on: the registry's CA, no stale leases, its webhook answering)
    -> trusted_root.json and signing_config.v0.2.json written for clients
    -> nodes (when the site has a nodes block: the trust on every node, provisioner/nodes/)

A rerun is the same walk: what exists and matches is "unchanged", nothing is made twice, and an
interrupted install resumes where it stopped. `dry_run` runs `prepare` and reports what `apply`
would do, changing nothing (not even the local TUF repository).
"""

from __future__ import annotations

import base64
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, Protocol

from offline.atomicfile import atomic_write
from offline.errors import AirgapError, UsageError
from offline.trust.root import TrustedRoot, parse_trusted_root
from provisioner.stack import secrets as names
from provisioner.stack.chart_archives import find_chart
from provisioner.stack.client_files import client_files
from provisioner.stack.keys import KeySet, PublicMaterial, public_material
from provisioner.stack.kube import Kube, ProbeFailed, StepNotReady, Workload
from provisioner.stack.mapping import ImageMapping, load_mapping
from provisioner.stack.probes import (
    Post,
    check_ctlog,
    check_fulcio,
    check_rekor,
    check_tsa,
    check_tuf,
)
from provisioner.stack.pull_secret import in_namespace, pull_secret_manifest
from provisioner.stack.releases import Releases
from provisioner.stack.render import RenderedComponent, render_component
from provisioner.stack.secrets import (
    Existing,
    KeyMismatch,
    SecretPlan,
    ctlog_config_secret,
    keyset_from_cluster,
    plan_secrets,
    render_secrets,
)
from provisioner.stack.signing_config import signing_config_json
from provisioner.stack.site import CT_LOG_PREFIX, SERVICES, Site
from provisioner.stack.state import InstallState, check_tree_id, read_state
from provisioner.stack.storage import claims, persistent_volumes
from provisioner.stack.trusted_root import trusted_root_json
from provisioner.stack.values import (
    REGISTRY_CA_CONFIGMAP,
    component_namespace,
    registry_ca_configmap,
)

TREE_CONFIGMAPS = {"rekor": "rekor-config", "ctlog": "ctlog-config"}
TREE_JOBS = {"rekor": "rekor-createtree", "ctlog": "ctlog-createtree"}
TUF_CONFIGMAP = "tuf-repository"
TUF_SERVED_AT = "/usr/share/nginx/html"  # the static server's document root (site.py)
OIDC_DISCOVERY_BINDING = "airgap-oidc-discovery"
# Step actions that report a state and change nothing.
UNCHANGING = frozenset({"unchanged", "ready", "complete", "verified"})


@dataclass(frozen=True)
class Step:
    component: str
    subject: str  # "secret rekor-system/rekor-signer", "release rekor", "probe", ...
    action: str  # created, updated, unchanged, installed, upgraded, ready, verified, would ...
    detail: str = ""
    seconds: float = 0.0

    def to_json(self) -> dict[str, Any]:
        return {
            "component": self.component,
            "subject": self.subject,
            "action": self.action,
            "detail": self.detail,
            "seconds": round(self.seconds, 1),
        }


class Report(Protocol):
    def component(self, name: str) -> None: ...

    def step(self, step: Step) -> None: ...


@dataclass(frozen=True)
class InstallOptions:
    trust_repo: Path | None = None  # `airgap trust init` directory; None: no TUF step
    online_password: bytes | None = None
    out_dir: Path | None = None  # where trusted_root.json and friends go
    timeout: float = 300.0  # per wait
    helm: str | None = None
    dry_run: bool = False


@dataclass
class Prepared:
    mapping: ImageMapping
    components: list[str]
    keys: KeySet
    public: PublicMaterial
    secret_plans: list[SecretPlan]
    state: InstallState
    trusted_root: bytes
    signing_config: bytes
    rendered: dict[str, RenderedComponent]
    charts: dict[str, Path]
    pull_secret: dict[str, Any] | None
    tuf: TufRepository | None


@dataclass(frozen=True)
class TufRepository:
    pinned_root: bytes
    files: dict[str, bytes]  # path in the served tree -> bytes
    targets: dict[str, bytes]  # target name -> bytes
    changed: bool  # a new generation was (or, in a dry run, would be) signed


@dataclass
class InstallResult:
    steps: list[Step] = field(default_factory=list)
    trust_files: dict[str, str] = field(default_factory=dict)  # name -> path written

    @property
    def changed(self) -> bool:
        return any(s.action not in UNCHANGING for s in self.steps)


class Installer:
    def __init__(
        self,
        site: Site,
        kube: Kube,
        releases: Releases,
        options: InstallOptions,
        report: Report,
    ) -> None:
        self.site = site
        self.kube = kube
        self.releases = releases
        self.options = options
        self.report = report
        self.result = InstallResult()
        self.rendered: dict[str, RenderedComponent] = {}

    # ---- the whole walk -------------------------------------------------------------------

    def run(self) -> InstallResult:
        prepared = self.prepare()
        if self.options.dry_run:
            self._plan(prepared)
        else:
            self.apply(prepared)
        return self.result

    def prepared_values(self) -> dict[str, dict[str, Any]]:
        """Each release's chart and values, as the last prepare rendered them (dry run)."""
        return {
            c: {"chart": r.chart.name, "namespace": r.namespace, "values": r.values}
            for c, r in self.rendered.items()
        }

    def components(self) -> list[str]:
        wanted = ["trillian", "rekor", "fulcio", "ctlog"]
        if self.site.tsa:
            wanted.append("tsa")
        if self.options.trust_repo is not None:
            wanted.append("tuf")
        if self.site.policy_controller:
            wanted.append("policy-controller")
        return wanted

    # ---- prepare: every refusal before the first write ------------------------------------

    def prepare(self) -> Prepared:
        site = self.site
        mapping = load_mapping(site.registry.mapping)
        components = self.components()
        charts = {c: find_chart(site.charts, c) for c in components}
        existing = self._existing_secrets()
        keys = keyset_from_cluster(site, existing)
        plans = plan_secrets(render_secrets(site, keys), existing)
        state = read_state(self.kube, site)
        if "ctlog" in state.trees:  # its ctlog-secret must be the one made for that tree
            plan_secrets([ctlog_config_secret(site, keys, int(state.trees["ctlog"]))], existing)
        public = public_material(keys)
        trusted_root = trusted_root_json(public.trusted_root_spec(site)).encode()
        signing = signing_config_json(site, public)
        tuf = (
            self._tuf_repository(public, trusted_root, signing, sign=False)
            if "tuf" in components
            else None
        )
        pull_secret = self._pull_secret(components)
        if site.nodes is not None:  # refused now, not after the stack is up
            mapping.find(site.nodes.image, "site nodes.image")
        rendered = {c: self._render(c, charts[c], mapping, public, state, tuf) for c in components}
        self.rendered = rendered
        return Prepared(
            mapping,
            components,
            keys,
            public,
            plans,
            state,
            trusted_root,
            signing,
            rendered,
            charts,
            pull_secret,
            tuf,
        )

    def _render(
        self,
        component: str,
        chart: Path,
        mapping: ImageMapping,
        public: PublicMaterial,
        state: InstallState,
        tuf: TufRepository | None,
    ) -> RenderedComponent:
        return render_component(
            component,
            chart,
            self.site,
            mapping,
            public,
            helm=self.options.helm,
            overrides=self._overrides(component, state, tuf),
        )

    def _rerender(self, prepared: Prepared, component: str, state: InstallState) -> None:
        """Render again with what the install learned since (a tree ID, the signed repository)."""
        prepared.rendered[component] = self._render(
            component,
            prepared.charts[component],
            prepared.mapping,
            prepared.public,
            state,
            prepared.tuf,
        )

    def _existing_secrets(self) -> Existing:
        found: dict[tuple[str, str], Mapping[str, Any]] = {}
        for component, name in secret_names(self.site):
            namespace = self.site.namespace(component)
            secret = self.kube.read_secret(namespace, name)
            if secret is not None:
                found[(namespace, name)] = secret
        return found

    def _pull_secret(self, components: list[str]) -> dict[str, Any] | None:
        """The pull secret to write in each namespace (from `registry.credentials`), else None
        once checked that every existing namespace already has it."""
        registry = self.site.registry
        if registry.pull_secret is None:
            return None
        if registry.credentials is None:
            for component in components:
                namespace = component_namespace(self.site, component)
                if self.kube.read_secret(namespace, registry.pull_secret) is None and (
                    self.kube.namespace_exists(namespace)
                ):
                    raise UsageError(
                        f"site {self.site.path}: secret {namespace}/{registry.pull_secret} "
                        f"(registry.pullSecret) does not exist; create it or give "
                        f"registry.credentials"
                    )
            return None
        return pull_secret_manifest(self.site)

    def _tuf_repository(
        self, public: PublicMaterial, trusted_root: bytes, signing: bytes, *, sign: bool
    ) -> TufRepository:
        """The repository to serve: as published now (`sign` False: prepare and dry runs sign
        nothing), or after a build that publishes these targets (once the keys are stored)."""
        from provisioner.trust.build import build
        from provisioner.trust.layout import RepoLayout, pinned_root, repository_dir
        from provisioner.trust.published import read_published
        from provisioner.trust.serving import repository_files

        assert self.options.trust_repo is not None
        layout = RepoLayout(self.options.trust_repo)
        targets = public.tuf_targets(trusted_root, signing)
        wanted = {t.name: t.data for t in targets}
        if sign:
            result = build(layout.path, targets, online_password=self.options.online_password)
            generation, changed = result.generation, result.changed
        else:
            previous = read_published(layout)
            if previous is None:
                return TufRepository(b"", {}, wanted, changed=True)
            generation = previous.generation
            changed = {t.name: t.data for t in previous.files} != wanted
        files = repository_files(repository_dir(generation))
        return TufRepository(pinned_root(generation).read_bytes(), files, wanted, changed)

    def _overrides(
        self, component: str, state: InstallState, tuf: TufRepository | None
    ) -> dict[str, Any]:
        if component in state.trees:  # the recorded tree, so no reinstall makes another
            return {"server": {"config": {"treeID": state.trees[component]}}}
        if component == "tuf" and tuf is not None:
            items = [{"key": _configmap_key(path), "path": path} for path in tuf.files]
            volume = {"name": "repository", "configMap": {"name": TUF_CONFIGMAP, "items": items}}
            mount = {"name": "repository", "mountPath": TUF_SERVED_AT, "readOnly": True}
            return {"deployment": {"volumes": [volume], "volumeMounts": [mount]}}
        return {}

    # ---- dry run --------------------------------------------------------------------------

    def _plan(self, prepared: Prepared) -> None:
        for namespace in self._namespaces(prepared):
            exists = self.kube.namespace_exists(namespace)
            self._record("cluster", f"namespace {namespace}", _would(not exists, "create"))
        for plan in prepared.secret_plans:
            self._record(
                "cluster",
                f"secret {plan.namespace}/{plan.name}",
                _would(plan.action == "create", "create"),
            )
        for component in prepared.components:
            self.report.component(component)
            rendered = prepared.rendered[component]
            revision = self.releases.revision(rendered.release, rendered.namespace)
            action = "would install" if revision is None else "would upgrade if changed"
            self._record(component, f"release {rendered.release}", action, rendered.chart.name)
            if component in TREE_JOBS:
                tree = prepared.state.trees.get(component)
                self._record(
                    component,
                    "tree",
                    "unchanged" if tree else "would create",
                    f"tree {tree}" if tree else "by the chart's createtree job, then recorded",
                )
        if prepared.tuf is not None:
            self._record("tuf", "repository", _would(prepared.tuf.changed, "sign"))
        if self.site.nodes is not None:
            self._record("nodes", "trust on every node", "would apply", "airgap nodes apply")

    # ---- apply ----------------------------------------------------------------------------

    def apply(self, prepared: Prepared) -> None:
        self.report.component("cluster")
        self._cluster_objects(prepared)
        state = prepared.state
        for component in prepared.components:
            self.report.component(component)
            if component == "trillian":
                self._release(prepared, component)
            elif component in ("rekor", "ctlog"):
                state = self._log(prepared, component, state)
            elif component == "fulcio":
                self._release(prepared, component)
                self._probe(
                    component,
                    lambda get: check_fulcio(
                        get, prepared.public.fulcio_chain, [i.url for i in self.site.issuers]
                    ),
                )
            elif component == "tsa":
                self._tsa(prepared)
            elif component == "tuf":
                self._tuf(prepared)
            elif component == "policy-controller":
                self._policy_controller(prepared)
        self._write_trust_files(prepared)
        self._nodes(prepared)

    def _cluster_objects(self, prepared: Prepared) -> None:
        for namespace in self._namespaces(prepared):
            action = self.kube.ensure_namespace(namespace)
            self._record("cluster", f"namespace {namespace}", action)
            if prepared.pull_secret is not None:
                secret = in_namespace(prepared.pull_secret, namespace)
                action = self.kube.ensure_replaceable(secret)
                self._record(
                    "cluster", f"pull secret {namespace}/{secret['metadata']['name']}", action
                )
        if not prepared.state.stored:  # first: the volumes' directories are named after it
            self.kube.ensure_replaceable(prepared.state.manifest(self.site))
            self._record("cluster", "install instance", "created", prepared.state.instance)
        for volume in persistent_volumes(self.site, prepared.state.instance):
            action = self.kube.ensure_created(volume)
            self._record("cluster", f"volume {volume['metadata']['name']}", action)
        for claim in claims(self.site):
            action = self.kube.ensure_created(claim)
            meta = claim["metadata"]
            self._record("cluster", f"claim {meta['namespace']}/{meta['name']}", action)
        for plan in prepared.secret_plans:
            if plan.action == "create":
                self.kube.create_secret(plan.manifest)
            self._record(
                "cluster",
                f"secret {plan.namespace}/{plan.name}",
                "created" if plan.action == "create" else "unchanged",
            )
        if any(i.type == "kubernetes" for i in self.site.issuers):
            action = self.kube.ensure_created(oidc_discovery_binding())
            self._record(
                "cluster",
                f"clusterrolebinding {OIDC_DISCOVERY_BINDING}",
                action,
                "Fulcio reads the cluster's OIDC discovery without credentials",
            )

    def _log(self, prepared: Prepared, component: str, state: InstallState) -> InstallState:
        """A log on its own Trillian tree: made once by the chart's createtree Job, recorded,
        then pinned in the release's values so no later install makes another."""
        rendered = prepared.rendered[component]
        namespace = rendered.namespace
        outcome = self._release(prepared, component, wait=False)
        tree = state.trees.get(component)
        if tree is None:
            job = Workload("Job", namespace, TREE_JOBS[component])
            self._wait(component, job)
            data = self.kube.read_config_map(namespace, TREE_CONFIGMAPS[component]) or {}
            where = f"configmap {namespace}/{TREE_CONFIGMAPS[component]}"
            tree = check_tree_id(data.get("treeID"), where)
            state = state.with_tree(component, tree)
            self.kube.ensure_replaceable(state.manifest(self.site))
            self._record(component, "tree", "created", f"tree {tree}, recorded")
            self._rerender(prepared, component, state)
            self._release(prepared, component, wait=False, note="tree ID pinned")
        else:
            self._record(component, "tree", "unchanged", f"tree {tree}")
        if component == "ctlog":
            (plan,) = plan_secrets(
                [ctlog_config_secret(self.site, prepared.keys, int(tree))],
                self._existing_secrets(),
            )
            if plan.action == "create":
                self.kube.create_secret(plan.manifest)
                for workload in rendered_workloads(prepared.rendered[component]):
                    if workload.kind == "Deployment":  # waiting for this Secret's mount
                        self.kube.replace_pods(workload)
            self._record(
                component,
                f"secret {plan.namespace}/{plan.name}",
                "created" if plan.action == "create" else "unchanged",
            )
        self._wait_all(component, prepared.rendered[component], jobs=outcome != "unchanged")
        trusted = _trusted_root(prepared.trusted_root)
        if component == "rekor":
            self._probe(
                component, lambda get: check_rekor(get, prepared.public.rekor, trusted, tree)
            )
        else:
            self._probe(
                component,
                lambda get: check_ctlog(
                    get, CT_LOG_PREFIX, prepared.public.ctlog, prepared.public.fulcio_root
                ),
            )
        return state

    def _tsa(self, prepared: Prepared) -> None:
        self._tsa_account(prepared)
        self._release(prepared, "tsa")
        chain = prepared.public.tsa_chain or b""  # rendering refused a TSA without one
        post = self._service_post("tsa")
        self._probe("tsa", lambda get: check_tsa(get, post, chain))

    def _tsa_account(self, prepared: Prepared) -> None:
        """The tsa chart takes no imagePullSecrets: its ServiceAccount, made here first with
        Helm's ownership marks so the release adopts it, carries the pull secret."""
        secret = self.site.registry.pull_secret
        if secret is None:
            return
        namespace = component_namespace(self.site, "tsa")
        account = SERVICES["tsa"]
        action = self.kube.ensure_service_account(namespace, account, "tsa", secret)
        self._record("tsa", f"serviceaccount {namespace}/{account}", action, "with the pull secret")

    def _tuf(self, prepared: Prepared) -> None:
        """Sign the site's targets into the repository (the keys they name are stored by
        now), then serve that generation."""
        started = time.monotonic()
        tuf = self._tuf_repository(
            prepared.public, prepared.trusted_root, prepared.signing_config, sign=True
        )
        prepared.tuf = tuf
        self._record("tuf", "repository", "signed" if tuf.changed else "unchanged", "", started)
        self._rerender(prepared, "tuf", prepared.state)
        namespace = component_namespace(self.site, "tuf")
        configmap = {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": TUF_CONFIGMAP, "namespace": namespace, "labels": names.MANAGED_BY},
            "binaryData": {
                _configmap_key(path): base64.b64encode(data).decode()
                for path, data in tuf.files.items()
            },
        }
        action = self.kube.ensure_replaceable(configmap)
        self._record("tuf", f"configmap {namespace}/{TUF_CONFIGMAP}", action)
        self._release(prepared, "tuf")
        self._probe("tuf", lambda get: check_tuf(get, tuf.pinned_root, tuf.targets))

    def _policy_controller(self, prepared: Prepared) -> None:
        """The webhook trusts the internal registry's CA (it fetches signatures itself), starts
        without leases an earlier release left, and counts as ready once it answers."""
        from provisioner.admission.webhook import delete_leases, wait_admitting

        component = "policy-controller"
        rendered = prepared.rendered[component]
        configmap = registry_ca_configmap(self.site)
        if configmap is not None:
            action = self.kube.ensure_replaceable(configmap)
            self._record(
                component, f"configmap {rendered.namespace}/{REGISTRY_CA_CONFIGMAP}", action
            )
        if self.releases.revision(rendered.release, rendered.namespace) is None:
            stale = delete_leases(self.kube, rendered.namespace)
            if stale:
                self._record(component, "leases", "deleted", f"{stale} left by an earlier release")
        self._release(prepared, component)
        started = time.monotonic()
        wait_admitting(self.kube, self.options.timeout)
        detail = "admits a ClusterImagePolicy (server-side dry run)"
        self._record(component, "webhook", "verified", detail, started)

    # ---- releases, waits, probes ----------------------------------------------------------

    def _release(
        self, prepared: Prepared, component: str, *, wait: bool = True, note: str = ""
    ) -> str:
        rendered = prepared.rendered[component]
        started = time.monotonic()
        outcome = self.releases.ensure(
            rendered.release,
            rendered.chart,
            rendered.namespace,
            rendered.values,
            timeout=int(self.options.timeout),
        )
        detail = f"{outcome.chart}, revision {outcome.revision}" + (f"; {note}" if note else "")
        self._record(component, f"release {rendered.release}", outcome.action, detail, started)
        if wait:
            self._wait_all(component, rendered, jobs=outcome.action != "unchanged")
        return outcome.action

    def _wait_all(self, component: str, rendered: RenderedComponent, *, jobs: bool) -> None:
        """Wait for every workload the release runs. A Job of an unchanged release may be gone
        (the charts set a TTL): it completed when the release was applied."""
        for workload in rendered_workloads(rendered):
            if workload.kind == "Job" and not jobs and not self.kube.exists(workload):
                continue
            self._wait(component, workload)

    def _wait(self, component: str, workload: Workload) -> None:
        started = time.monotonic()
        self.kube.wait_ready(workload, self.options.timeout)
        what = "complete" if workload.kind == "Job" else "ready"
        self._record(component, f"{workload.kind.lower()} {workload.name}", what, "", started)

    def _probe(self, component: str, check: Callable[[Callable[[str], bytes]], str]) -> None:
        """Run `check` against the component's Service until it passes or the wait is over:
        a Service's endpoints lag its pods' readiness by a moment."""
        namespace = component_namespace(self.site, component)
        service = SERVICES[component]

        def get(path: str) -> bytes:
            return self.kube.service_get(namespace, service, path)

        started = time.monotonic()
        deadline = started + self.options.timeout
        while True:
            try:
                detail = check(get)
                break
            except ProbeFailed as exc:
                if time.monotonic() > deadline:
                    raise StepNotReady(
                        f"{component} is running but not serving what airgap set up: {exc}", ""
                    ) from exc
                time.sleep(2)
        self._record(component, f"service {service}", "verified", detail, started)

    def _service_post(self, component: str) -> Post:
        namespace = component_namespace(self.site, component)
        return partial(self.kube.service_post, namespace, SERVICES[component])

    # ---- outputs --------------------------------------------------------------------------

    def _write_trust_files(self, prepared: Prepared) -> None:
        out = self.options.out_dir
        if out is None:
            return
        out.mkdir(parents=True, exist_ok=True)
        files = client_files(prepared.trusted_root, prepared.signing_config, prepared.public)
        for name, data in files.items():
            path = out / name
            if not (path.is_file() and path.read_bytes() == data):
                atomic_write(path, data, mode=0o644)
            self.result.trust_files[name] = str(path)

    def _nodes(self, prepared: Prepared) -> None:
        """Last: the trust files just written, on every node (`airgap nodes apply`)."""
        if self.site.nodes is None or self.options.out_dir is None:
            return
        from provisioner.nodes.apply import apply_nodes, prepare_nodes

        self.report.component("nodes")
        objects = prepare_nodes(
            self.site, prepared.mapping, self.options.out_dir, self.options.trust_repo
        )

        def record(subject: str, action: str, detail: str, seconds: float) -> None:
            self._record("nodes", subject, action, detail, time.monotonic() - seconds)

        apply_nodes(self.site, self.kube, objects, timeout=self.options.timeout, record=record)

    def _namespaces(self, prepared: Prepared) -> list[str]:
        """The components' namespaces, and those the key Secrets go to (tuf's public keys go
        in even when this run serves no repository)."""
        wanted = [component_namespace(self.site, c) for c in prepared.components]
        wanted += [plan.namespace for plan in prepared.secret_plans]
        return list(dict.fromkeys(wanted))

    def _record(
        self,
        component: str,
        subject: str,
        action: str,
        detail: str = "",
        started: float | None = None,
    ) -> None:
        seconds = time.monotonic() - (started if started is not None else time.monotonic())
        step = Step(component, subject, action, detail, seconds)
        self.result.steps.append(step)
        self.report.step(step)


# -- pieces ---------------------------------------------------------------------------------------


def secret_names(site: Site) -> list[tuple[str, str]]:
    """(component, name) of every Secret airgap owns for the site."""
    listed = [
        ("rekor", names.REKOR_SIGNER),
        ("fulcio", names.FULCIO_SERVER),
        ("fulcio", names.FULCIO_PUBLIC),
        ("ctlog", names.CTLOG_KEY),
        ("ctlog", names.CTLOG_PUBLIC),
        ("ctlog", names.CTLOG_CONFIG),
        ("tuf", names.REKOR_PUBLIC),
        ("tuf", names.FULCIO_PUBLIC),
        ("tuf", names.CTLOG_PUBLIC),
    ]
    if site.database is None:
        listed.insert(0, ("trillian", names.DATABASE))
    if site.tsa:
        listed += [("tsa", names.TSA_SERVER), ("tuf", names.TSA_CHAIN)]
    return listed


def rendered_workloads(rendered: RenderedComponent) -> list[Workload]:
    """The release's Jobs first (schema, tree), then its long-running workloads; not its hooks."""
    found = []
    for document in rendered.documents:
        if not isinstance(document, dict) or document.get("kind") not in (
            "Job",
            "Deployment",
            "StatefulSet",
            "DaemonSet",
        ):
            continue
        metadata = document.get("metadata") or {}
        if "helm.sh/hook" in (metadata.get("annotations") or {}):
            continue  # helm runs hooks itself, when they are due (policy-controller's on delete)
        found.append(
            Workload(
                document["kind"], metadata.get("namespace") or rendered.namespace, metadata["name"]
            )
        )
    return sorted(found, key=lambda w: w.kind != "Job")


def oidc_discovery_binding() -> dict[str, Any]:
    """Lets Fulcio read the cluster's OIDC discovery document and keys without credentials, as
    any OIDC relying party does (`system:service-account-issuer-discovery` is bound only to
    authenticated service accounts by default)."""
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRoleBinding",
        "metadata": {"name": OIDC_DISCOVERY_BINDING, "labels": names.MANAGED_BY},
        "roleRef": {
            "apiGroup": "rbac.authorization.k8s.io",
            "kind": "ClusterRole",
            "name": "system:service-account-issuer-discovery",
        },
        "subjects": [
            {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "Group",
                "name": "system:unauthenticated",
            }
        ],
    }


def _configmap_key(path: str) -> str:
    return path.replace("/", ".")


def _would(change: bool, verb: str) -> str:
    return f"would {verb}" if change else "unchanged"


def _trusted_root(data: bytes) -> TrustedRoot:
    try:
        return parse_trusted_root(data)
    except AirgapError as exc:  # built and read back above: cannot happen unless a bug
        raise KeyMismatch(f"the trusted root built for this site does not parse: {exc}") from exc
