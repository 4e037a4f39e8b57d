"""Helm charts for a bundle, through helm: pulled at a pinned version, recorded by digest, and
rendered with their values to find every container image they run (the images are found in the
rendered objects and compared with the spec's by chart_images.py).

    pulled = pull_chart(source, dest_dir)            # dest_dir/<name>-<version>.tgz
    images = render_images(pulled.path, source)      # every image, with the resource using it
    for line in compare_images(images, spec_images): # chart images the spec does not carry
        ...

Helm runs through pyhelm3 (`Command.run` and `Command.template`), always with a private,
temporary HELM_CONFIG_HOME / HELM_CACHE_HOME / HELM_DATA_HOME, so nothing in the user's helm
setup changes, no stale repository index or plugin is used, and every run starts clean. The
helm program is the `helm` argument, else `$AIRGAP_HELM`, else `helm` on PATH.

Where a chart comes from (`ChartSource`, exactly one of):
- `repo`: an http(s) chart repository (`helm pull NAME --repo URL --version V`);
- `oci`: `oci://host/path/NAME` (`helm pull oci://... --version V`);
- `path`: a chart directory (`helm package`; its archive differs at every packaging because helm
  writes the current time into it, so the recorded digest is that of the archive made now) or
  a `.tgz` (copied as is).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import os
import re
import shutil
import tarfile
import tempfile
from collections.abc import Coroutine, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import pyhelm3
import yaml

from offline.atomicfile import fsync_dir
from offline.errors import AirgapError, UsageError, VerificationFailure
from offline.inputs import read_input
from offline.oci.digests import validate_digest
from provisioner.create.chart_images import ChartImage, manifest_images

HELM_ENV = "AIRGAP_HELM"
# Generous: a pull of a large chart over a slow link; helm itself has no overall timeout.
DEFAULT_TIMEOUT = 300.0
_CHUNK = 1 << 20
_CHART_YAML_LIMIT = 1 << 20
# An exact version, as `--version` must get it: helm would read `^1.2` or `1.x` as a range.
_VERSION = re.compile(r"v?\d+(?:\.\d+){0,2}(?:-[0-9A-Za-z.-]+)?(?:\+[0-9A-Za-z.-]+)?")
_CHART_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
_REASON_LIMIT = 600

_T = TypeVar("_T")
_LOG = logging.getLogger(__name__)
_LOG.addHandler(logging.NullHandler())


class ChartError(AirgapError):
    """Helm could not pull, package or render a chart; the message names the chart, its version,
    where it comes from and helm's own reason."""

    exit_code = 2


@dataclass(frozen=True)
class ChartSource:
    """One chart of a bundle spec. Values files are merged in order, then `values` on top
    (helm's own merge: mappings merge key by key, anything else replaces)."""

    name: str
    version: str
    repo: str | None = None
    oci: str | None = None
    path: Path | None = None
    values_files: tuple[Path, ...] = ()
    values: Mapping[str, Any] = field(default_factory=dict)
    release: str | None = None
    namespace: str | None = None
    digest: str | None = None

    def __post_init__(self) -> None:
        if not _CHART_NAME.fullmatch(self.name):
            raise UsageError(f"chart name {self.name!r} is not a chart name (letters, digits, -_.)")
        if not _VERSION.fullmatch(self.version):
            raise UsageError(
                f"chart {self.name}: version {self.version!r} is not an exact version "
                "(a range or a wildcard would not pin the chart)"
            )
        given = [k for k in ("repo", "oci", "path") if getattr(self, k) is not None]
        if len(given) != 1:
            raise UsageError(
                f"chart {self.name} {self.version}: give exactly one of repo, oci, path "
                f"(got {', '.join(given) if given else 'none'})"
            )
        if self.repo is not None and not re.match(r"https?://[^/\s]+", self.repo):
            raise UsageError(
                f"chart {self.name} {self.version}: repo {self.repo!r} is not an http(s) URL"
            )
        if self.oci is not None:
            _check_oci(self.name, self.version, self.oci)
        if self.path is not None:
            object.__setattr__(self, "path", Path(self.path))
        object.__setattr__(self, "values_files", tuple(Path(p) for p in self.values_files))
        if self.digest is not None:
            validate_digest(self.digest, f"chart {self.name} {self.version}: digest")
            if self.path is not None and not str(self.path).endswith(".tgz"):
                raise UsageError(
                    f"chart {self.name} {self.version}: a digest cannot pin a chart directory "
                    "(helm package stamps the time into every archive); pin a packaged .tgz"
                )

    @property
    def location(self) -> str:
        """Where the chart comes from, as messages show it."""
        return str(self.repo or self.oci or self.path)

    @property
    def label(self) -> str:
        return f"chart {self.name} {self.version} from {self.location}"


@dataclass(frozen=True)
class PulledChart:
    """A chart archive in place: `path` is `<dest_dir>/<name>-<version>.tgz`, `digest` the
    sha256 of its bytes."""

    name: str
    version: str
    digest: str
    path: Path


def resolve_helm(helm: str | os.PathLike[str] | None = None) -> str:
    """The helm program to run: `helm`, else $AIRGAP_HELM, else `helm` on PATH."""
    wanted = os.fspath(helm) if helm is not None else os.environ.get(HELM_ENV) or "helm"
    found = shutil.which(wanted)
    if found is None:
        raise UsageError(
            f"helm program {wanted!r} not found: install helm 3, or set {HELM_ENV} to its path"
        )
    found = os.path.abspath(found)
    if "=" in found:
        # `env` would read it as a variable assignment (see _Helm).
        raise UsageError(f"helm program path {found!r} contains '=': move or link it elsewhere")
    return found


def pull_chart(
    source: ChartSource,
    dest_dir: Path,
    *,
    helm: str | os.PathLike[str] | None = None,
    ca_file: Path | None = None,
    plain_http: bool = False,
    registry_config: Path | None = None,
    timeout: float = DEFAULT_TIMEOUT,
) -> PulledChart:
    """Fetch `source` into `dest_dir/<name>-<version>.tgz` (atomically) and record its digest.

    `ca_file` verifies an https repository or registry; `plain_http` talks plain HTTP to an OCI
    registry; `registry_config` is a helm registry config (from `helm registry login`) holding
    the OCI credentials. The archive's own Chart.yaml must name the same chart and version, and
    with `source.digest` set the archive must hash to it.
    """
    program = resolve_helm(helm)
    dest_dir = Path(dest_dir)
    dest_dir.mkdir(parents=True, exist_ok=True)
    for given, what in ((ca_file, "CA file"), (registry_config, "registry config")):
        if given is not None and not Path(given).is_file():
            raise UsageError(f"{source.label}: {what} {given} is not a file")
    # The work directory sits in dest_dir, so the final rename stays on one file system.
    with tempfile.TemporaryDirectory(dir=dest_dir, prefix=".pull-") as work_dir:
        work = Path(work_dir)
        out = work / "out"
        out.mkdir()
        command = _Helm(program, work / "helm-home", registry_config=registry_config)
        if source.path is not None:
            archive = _local_archive(source, source.path, out, command, timeout)
        else:
            args = _pull_args(source, out, ca_file=ca_file, plain_http=plain_http)
            _run(source.label, command.run(args), timeout)
            archive = _single_archive(source, out)
        digest = _file_digest(archive)
        if source.digest is not None and digest != source.digest:
            raise VerificationFailure(
                f"{source.label}: the archive is {digest}, the spec pins {source.digest}"
            )
        _check_chart_yaml(source, archive)
        final = dest_dir / f"{source.name}-{source.version}.tgz"
        with open(archive, "rb") as f:
            os.fsync(f.fileno())
        os.replace(archive, final)
        fsync_dir(dest_dir)
    return PulledChart(name=source.name, version=source.version, digest=digest, path=final)


def render_images(
    chart_tgz: Path,
    source: ChartSource,
    *,
    helm: str | os.PathLike[str] | None = None,
    timeout: float = DEFAULT_TIMEOUT,
) -> list[ChartImage]:
    """Every container image of the chart rendered with the source's values, sorted, one entry
    per (image, resource, container). Hooks (Jobs, test Pods) are rendered too: they run."""
    values = merged_values(source)
    documents = template_chart(
        Path(chart_tgz),
        values,
        release=source.release or source.name,
        namespace=source.namespace,
        label=source.label,
        helm=helm,
        timeout=timeout,
    )
    chart = f"{source.name}-{source.version}"
    found = {
        ChartImage(image=image, resource=resource, container=container, chart=chart)
        for document in documents
        for resource, container, image in manifest_images(document)
    }
    return sorted(found)


def template_chart(
    chart: Path,
    values: Mapping[str, Any],
    *,
    release: str,
    namespace: str | None,
    label: str,
    helm: str | os.PathLike[str] | None = None,
    timeout: float = DEFAULT_TIMEOUT,
) -> list[Any]:
    """`helm template` of `chart` (a directory or an archive) with `values`: every rendered
    object, hooks included. helm checks the values against the chart's values.schema.json;
    its refusal, like any failure, is a one-line ChartError starting with `label`."""
    program = resolve_helm(helm)
    try:
        json.dumps(values)  # what pyhelm3 sends helm on stdin
    except (TypeError, ValueError) as exc:
        raise UsageError(f"{label}: values cannot be given to helm: {exc}") from exc
    with tempfile.TemporaryDirectory(prefix="airgap-helm-") as home:
        command = _Helm(program, Path(home) / "helm-home")

        async def template() -> list[Any]:
            documents = await command.template(release, chart, values, namespace=namespace)
            # pyhelm3 returns a lazy yaml.load_all: parse everything inside the error handling.
            return list(documents)

        try:
            return _run(label, template(), timeout)
        except yaml.YAMLError as exc:
            raise ChartError(f"{label}: helm's output is not YAML: {_one_line(exc)}") from exc


def merged_values(source: ChartSource) -> dict[str, Any]:
    """The source's values files merged in order, then its inline values, as helm merges them."""
    merged: dict[str, Any] = {}
    for path in source.values_files:
        merged = merge_values(merged, _read_values_file(source, path))
    return merge_values(merged, dict(source.values))


# --- helm through pyhelm3 ------------------------------------------------------------------


class _Helm(pyhelm3.Command):  # type: ignore[misc]  # pyhelm3 has no type information
    """pyhelm3's Command with a private helm home. pyhelm3 runs `helm` through a shell with this
    process's environment and takes no environment of its own, so each command becomes
    `exec env -u HELM_... HELM_...=... helm ...`: the settings reach helm without touching
    os.environ, and `exec` makes helm the shell's own process, so that pyhelm3's terminate on
    a timeout stops helm itself rather than only the shell (dash forks for `sh -c`)."""

    def __init__(self, helm: str, home: Path, *, registry_config: Path | None = None) -> None:
        super().__init__(executable="exec")
        # pyhelm3 logs every failed command as a warning, which Python's last-resort handler
        # would print to stderr: our one-line error says it, so log quietly unless configured.
        self._logger = _LOG
        settings = {
            "HELM_CONFIG_HOME": home / "config",
            "HELM_CACHE_HOME": home / "cache",
            "HELM_DATA_HOME": home / "data",
            # Set too: a user's own HELM_REPOSITORY_CONFIG etc. would override the homes.
            "HELM_REGISTRY_CONFIG": registry_config or home / "config" / "registry" / "config.json",
            "HELM_REPOSITORY_CONFIG": home / "config" / "repositories.yaml",
            "HELM_REPOSITORY_CACHE": home / "cache" / "repository",
            "HELM_PLUGINS": home / "data" / "plugins",
        }
        unset = sorted(k for k in os.environ if k.startswith("HELM_") and k not in settings)
        self._prefix: list[str] = [
            shutil.which("env") or "/usr/bin/env",
            *(arg for name in unset for arg in ("-u", name)),
            *(f"{name}={os.fspath(value)}" for name, value in settings.items()),
            helm,
        ]

    async def run(self, command: list[Any], input: bytes | None = None) -> bytes:
        result: bytes = await super().run([*self._prefix, *command], input)
        return result


def _run(label: str, coroutine: Coroutine[Any, Any, _T], timeout: float) -> _T:
    """Run one helm coroutine to its end; helm's failures become one-line ChartErrors."""
    try:
        return asyncio.run(asyncio.wait_for(coroutine, timeout))
    except TimeoutError as exc:
        raise ChartError(f"{label}: helm did not finish within {timeout:g} s") from exc
    except pyhelm3.errors.Error as exc:
        raise ChartError(f"{label}: {_helm_reason(exc.stderr, exc.returncode)}") from exc


def _helm_reason(stderr: bytes, returncode: int) -> str:
    """helm's stderr as one line: `Error: ` prefixes and warnings dropped."""
    lines = [line.strip() for line in stderr.decode(errors="replace").splitlines()]
    lines = [line for line in lines if line]
    noise = ("WARNING:", "walk.go:", "Use --debug flag")
    errors = [line for line in lines if not line.startswith(noise)] or lines
    reason = "; ".join(line.removeprefix("Error: ") for line in errors)
    if not reason:
        return f"helm exited with status {returncode} and said nothing"
    return reason if len(reason) <= _REASON_LIMIT else reason[: _REASON_LIMIT - 3] + "..."


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


def _pull_args(
    source: ChartSource, out: Path, *, ca_file: Path | None, plain_http: bool
) -> list[str]:
    if source.repo is not None:
        args = ["pull", source.name, "--repo", source.repo]
    else:
        assert source.oci is not None
        args = ["pull", source.oci]
        if plain_http:
            args.append("--plain-http")
    args += ["--version", source.version, "--destination", str(out)]
    if ca_file is not None:
        args += ["--ca-file", str(ca_file)]
    return args


def _local_archive(
    source: ChartSource, path: Path, out: Path, command: _Helm, timeout: float
) -> Path:
    if path.is_dir():
        _run(source.label, command.run(["package", str(path), "--destination", str(out)]), timeout)
        return _single_archive(source, out)
    if not path.is_file():
        raise UsageError(f"{source.label}: no such chart directory or .tgz file")
    archive = out / path.name
    try:
        shutil.copyfile(path, archive)
    except OSError as exc:
        raise UsageError(f"{source.label}: cannot read it: {exc.strerror or exc}") from exc
    return archive


def _single_archive(source: ChartSource, out: Path) -> Path:
    archives = sorted(out.glob("*.tgz"))
    if len(archives) != 1:
        names = ", ".join(p.name for p in out.iterdir()) or "nothing"
        raise ChartError(f"{source.label}: expected one chart archive from helm, got {names}")
    return archives[0]


def _file_digest(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
    return f"sha256:{digest.hexdigest()}"


def _check_chart_yaml(source: ChartSource, archive: Path) -> None:
    """The archive's top-level Chart.yaml must name the chart and version asked for."""
    metadata = _read_chart_yaml(source, archive)
    name, version = metadata.get("name"), str(metadata.get("version", ""))
    if name != source.name or version.removeprefix("v") != source.version.removeprefix("v"):
        raise VerificationFailure(
            f"{source.label}: the archive's Chart.yaml says {name} {version or '(no version)'}"
        )


def _read_chart_yaml(source: ChartSource, archive: Path) -> dict[str, Any]:
    try:
        # Streamed, stopping at the first `<top>/Chart.yaml` (helm writes it first); nothing
        # is extracted to disk.
        with tarfile.open(archive, "r:gz") as tar:
            for member in tar:
                parts = member.name.split("/")
                if len(parts) == 2 and parts[1] == "Chart.yaml" and member.isfile():
                    if member.size > _CHART_YAML_LIMIT:
                        break
                    f = tar.extractfile(member)
                    assert f is not None
                    metadata = yaml.safe_load(f.read())
                    if isinstance(metadata, dict):
                        return metadata
                    break
    except (tarfile.TarError, OSError, EOFError, yaml.YAMLError) as exc:
        raise VerificationFailure(
            f"{source.label}: not a readable chart archive: {_one_line(exc)}"
        ) from exc
    raise VerificationFailure(f"{source.label}: the archive has no readable top-level Chart.yaml")


def _check_oci(name: str, version: str, ref: str) -> None:
    where = f"chart {name} {version}: oci {ref!r}"
    if not ref.startswith("oci://"):
        raise UsageError(f"{where} must start with oci://")
    host, _, path = ref.removeprefix("oci://").partition("/")
    last = path.rsplit("/", 1)[-1]
    if not host or not path:
        raise UsageError(f"{where} must be oci://HOST/PATH/{name}")
    if ":" in last or "@" in last:
        raise UsageError(f"{where}: give the version in `version`, not in the reference")
    if last != name:
        raise UsageError(f"{where} must end with /{name} (helm push names the repository so)")


# --- values ------------------------------------------------------------------------------


class _ValuesLoader(yaml.SafeLoader):
    """YAML as helm reads values: dates stay strings (helm converts YAML to JSON, which has no
    dates), so the merged values can go to helm as JSON."""


_ValuesLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def _read_values_file(source: ChartSource, path: Path) -> dict[str, Any]:
    text = read_input(path, f"{source.label}: values file").decode("utf-8", errors="replace")
    try:
        document = yaml.load(text, Loader=_ValuesLoader)
    except yaml.YAMLError as exc:
        raise UsageError(
            f"{source.label}: values file {path} is not valid YAML: {_one_line(exc)}"
        ) from exc
    if document is None:
        return {}
    if not isinstance(document, dict):
        raise UsageError(f"{source.label}: values file {path} must hold a mapping")
    return document


def merge_values(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """helm's mergeMaps: mappings merge recursively, anything else (null too) replaces."""
    out = dict(base)
    for key, value in override.items():
        current = out.get(key)
        if isinstance(value, Mapping) and isinstance(current, Mapping):
            out[key] = merge_values(current, value)
        else:
            out[key] = value
    return out
