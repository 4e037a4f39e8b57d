"""The images a chart's values.yaml describes, read by the sigstore charts' key conventions:
the tests' oracle for the shipped stack spec (tests/provisioner/create/test_stack_spec.py),
which checks it against the upstream charts' values without running helm. `bundle create` never
needs this: it renders every chart with helm and reads the images off the rendered objects
(provisioner/create/chart_images.py)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def values_images(values: Mapping[str, Any], *, app_version: str | None = None) -> list[str]:
    """The image references a values.yaml holds, in file order, without repeats; see
    `values_image_keys` for the conventions read."""
    seen: dict[str, None] = {}
    for _key, image in values_image_keys(values, app_version=app_version):
        seen.setdefault(image, None)
    return list(seen)


def values_image_keys(
    values: Mapping[str, Any], *, app_version: str | None = None
) -> list[tuple[str, str]]:
    """(dotted key, image) for every image a values.yaml describes, disabled features included.

    The sigstore charts' conventions (reference/charts.md §1.2), and the common generic ones:
    - `{registry, repository, version}`: `registry/repository@version` when version starts with
      `sha256:`, else `registry/repository:version` (so `v1@sha256:...` gives `repo:v1@sha256:...`);
      tuf puts these keys directly under `deployment`;
    - policy-controller: `{repository, version}` with the registry inside repository;
    - rekor-tiles / ctlog-tiles: `{registry, repository, flavor, version, <flavor>SHA}` gives
      `registry/repository/flavor:version@<flavorSHA>`;
    - `{[registry,] repository, tag [, digest]}` (a digest wins over the tag; an empty tag is
      the chart's appVersion when `app_version` is given, as most charts' helpers do);
    - `image: "full reference"`.
    A dict without a version, tag or digest is not a complete image and is left out.
    """
    found: list[tuple[str, str]] = []
    _walk_values(values, "", found, app_version)
    return found


def _walk_values(
    node: Any, path: str, found: list[tuple[str, str]], app_version: str | None
) -> None:
    if isinstance(node, Mapping):
        image = _image_from_dict(node, app_version)
        if image is not None:
            found.append((path, image))
        for key, value in node.items():
            child = f"{path}.{key}" if path else str(key)
            if key == "image" and isinstance(value, str):
                if value.strip():
                    found.append((child, value.strip()))
            else:
                _walk_values(value, child, found, app_version)
    elif isinstance(node, list):
        for index, value in enumerate(node):
            _walk_values(value, f"{path}[{index}]", found, app_version)


def _image_from_dict(node: Mapping[str, Any], app_version: str | None) -> str | None:
    def text(key: str) -> str:
        value = node.get(key)
        return str(value).strip() if isinstance(value, str | int | float) else ""

    repository = text("repository")
    if not repository:
        return None
    registry = text("registry")
    name = f"{registry}/{repository}" if registry else repository
    flavor, version = text("flavor"), text("version")
    if flavor and version and text(f"{flavor}SHA"):
        return f"{name}/{flavor}:{version}@{text(f'{flavor}SHA')}"
    if version:
        return f"{name}@{version}" if version.startswith("sha256:") else f"{name}:{version}"
    digest, tag = text("digest"), text("tag")
    if digest:
        return f"{name}@{digest}"
    if tag:
        return f"{name}:{tag}"
    if "tag" in node and app_version:
        return f"{name}:{app_version}"
    return None
