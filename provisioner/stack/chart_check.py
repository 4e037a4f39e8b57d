"""Checks of the values before anything is applied, each failure one line naming the key:

1. every values key is one the chart knows (the upstream schemas allow any key, so a misspelt
   key would be silently ignored): a key of its values.yaml, of its values.schema.json, or one
   its templates read; below a key the chart passes through whole (`toYaml`, `range`, `with`,
   or an empty mapping by default) anything goes;
2. `helm template` of the chart with the values, which checks them against values.schema.json
   (a wrong type) and renders every object;
3. every container of every rendered pod spec runs an image from the internal registry, by
   digest.

    files = chart_files(chart)                      # a chart directory or a packaged .tgz
    check_known_keys(values, files)
    documents = render(chart, values, release="rekor", namespace="rekor-system")
    check_images(documents, "registry.internal:5000", "rekor")
"""

from __future__ import annotations

import json
import os
import re
import tarfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from offline.errors import UsageError
from offline.oci.imageref import parse_image_ref
from provisioner.create.chart_images import manifest_images
from provisioner.create.charts import DEFAULT_TIMEOUT, ChartError, template_chart

_VALUES_REFERENCE = re.compile(r"\.Values((?:\.[A-Za-z_][A-Za-z0-9_]*)+)")
# Values a template hands on whole: whatever is below them is the chart's user's business.
_PASSED_WHOLE = re.compile(
    r"(?:toYaml|toJson|range(?:\s+\$\w+\s*,\s*\$\w+\s*:=)?|with)\s+\(?\s*\$?\.Values"
    r"((?:\.[A-Za-z_][A-Za-z0-9_]*)+)"
)
_FILE_LIMIT = 4 << 20
# helm 3.18+: "- at '/mysql/persistence/storageClass': got string, want null"
_SCHEMA_PROBLEM = re.compile(r"- at '([^']*)': ([^;]+)")


@dataclass(frozen=True)
class ChartFiles:
    name: str
    version: str
    values: dict[str, Any]
    schema: dict[str, Any]
    templates: tuple[str, ...]

    @property
    def label(self) -> str:
        return f"chart {self.name} {self.version}"


def chart_files(chart: Path) -> ChartFiles:
    """The top chart's Chart.yaml, values.yaml, values.schema.json and template texts (its
    vendored subcharts are theirs, not its own)."""
    files = dict(_read_chart(chart))
    where = f"chart {chart}"
    if "Chart.yaml" not in files:
        raise UsageError(f"{where}: no Chart.yaml")
    metadata = _yaml(files["Chart.yaml"], f"{where}: Chart.yaml")
    values = _yaml(files.get("values.yaml", b"{}"), f"{where}: values.yaml") or {}
    schema: dict[str, Any] = {}
    if "values.schema.json" in files:
        try:
            schema = json.loads(files["values.schema.json"])
        except ValueError as exc:
            raise UsageError(f"{where}: values.schema.json is not JSON ({exc})") from exc
    templates = tuple(
        text.decode("utf-8", errors="replace")
        for name, text in sorted(files.items())
        if name.startswith("templates/")
    )
    if not isinstance(metadata, dict) or not isinstance(values, dict):
        raise UsageError(f"{where}: Chart.yaml or values.yaml is not a mapping")
    return ChartFiles(
        str(metadata.get("name")), str(metadata.get("version")), values, schema, templates
    )


def _read_chart(chart: Path) -> Iterator[tuple[str, bytes]]:
    if chart.is_dir():
        for path in sorted(chart.rglob("*")):
            relative = path.relative_to(chart).as_posix()
            small = path.is_file() and path.stat().st_size <= _FILE_LIMIT
            if small and not relative.startswith("charts/"):
                yield relative, path.read_bytes()
        return
    try:
        with tarfile.open(chart, "r:gz") as archive:
            for member in archive:
                relative = member.name.partition("/")[2]
                if not member.isfile() or relative.startswith("charts/") or not relative:
                    continue
                if member.size > _FILE_LIMIT:
                    continue
                extracted = archive.extractfile(member)
                if extracted is not None:
                    yield relative, extracted.read()
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise UsageError(f"chart {chart}: not a readable chart archive ({exc})") from exc


def _yaml(data: bytes, where: str) -> Any:
    try:
        return yaml.safe_load(data.decode("utf-8", errors="replace"))
    except yaml.YAMLError as exc:
        raise UsageError(f"{where}: not valid YAML") from exc


# -- 1. keys --------------------------------------------------------------------------------------


def check_known_keys(values: Mapping[str, Any], files: ChartFiles) -> None:
    known = set(_paths(files.values))
    known |= set(_schema_paths(files.schema))
    referenced = {m.group(1)[1:] for t in files.templates for m in _VALUES_REFERENCE.finditer(t)}
    for reference in referenced:
        parts = reference.split(".")
        known |= {".".join(parts[: i + 1]) for i in range(len(parts))}
    whole = {m.group(1)[1:] for t in files.templates for m in _PASSED_WHOLE.finditer(t)}
    whole |= {path for path in known if _is_open(files.values, path)}
    for path in _paths(values):
        if path in known:
            continue
        parts = path.split(".")
        if any(".".join(parts[:i]) in whole for i in range(1, len(parts))):
            continue
        raise UsageError(
            f"{files.label}: values key {path} is not one the chart reads (not in its "
            f"values.yaml, values.schema.json or templates)"
        )


def _paths(values: Mapping[str, Any], prefix: str = "") -> Iterator[str]:
    """Every key path of nested mappings; lists and scalars end a path."""
    for key, value in values.items():
        path = f"{prefix}.{key}" if prefix else str(key)
        yield path
        if isinstance(value, Mapping):
            yield from _paths(value, path)


def _schema_paths(schema: Mapping[str, Any], prefix: str = "") -> Iterator[str]:
    properties = schema.get("properties")
    if not isinstance(properties, Mapping):
        return
    for key, sub in properties.items():
        path = f"{prefix}.{key}" if prefix else str(key)
        yield path
        if isinstance(sub, Mapping):
            yield from _schema_paths(sub, path)


def _is_open(values: Mapping[str, Any], path: str) -> bool:
    """A default that is an empty mapping or null: a slot for whatever the user puts there."""
    node: Any = values
    for key in path.split("."):
        if not isinstance(node, Mapping) or key not in node:
            return False
        node = node[key]
    return node is None or node == {}


# -- 2. helm ---------------------------------------------------------------------------------------


def render(
    chart: Path,
    values: Mapping[str, Any],
    *,
    release: str,
    namespace: str,
    helm: str | os.PathLike[str] | None = None,
    timeout: float = DEFAULT_TIMEOUT,
) -> list[Any]:
    """Every object `helm template` renders; the schema check happens here (helm's)."""
    label = f"chart {chart.name} (release {release})"
    try:
        documents = template_chart(
            chart,
            values,
            release=release,
            namespace=namespace,
            label=label,
            helm=helm,
            timeout=timeout,
        )
    except ChartError as exc:
        raise _schema_refusal(exc, label) or exc from exc
    return [d for d in documents if d]


def _schema_refusal(error: ChartError, label: str) -> ChartError | None:
    """helm's schema report (several lines, joined by charts.py) as one line per first
    problem: `LABEL: values key a.b.c: got string, want null (values.schema.json)`."""
    found = _SCHEMA_PROBLEM.search(str(error))
    if found is None:
        return None
    key = found.group(1).strip("/").replace("/", ".") or "(top level)"
    return ChartError(f"{label}: values key {key}: {found.group(2)} (values.schema.json)")


# -- 3. images -------------------------------------------------------------------------------------


def check_images(documents: list[Any], registry: str, chart: str) -> int:
    """Refuse the first container whose image is not `registry/...@sha256:...`; the number of
    containers checked otherwise."""
    checked = 0
    for document in documents:
        for resource, container, image in manifest_images(document):
            where = f"chart {chart}: {resource} container {container}"
            try:
                reference = parse_image_ref(image)
            except UsageError as exc:
                raise UsageError(f"{where}: image {image!r} is not a reference ({exc})") from exc
            if reference.registry != registry:
                raise UsageError(
                    f"{where} runs {image}, not an image of the internal registry {registry}"
                )
            if reference.digest is None:
                raise UsageError(f"{where} runs {image}, which is not pinned by digest")
            checked += 1
    return checked
