"""The images a CD script asks about: a plain list, or the Kubernetes manifests it will apply.

A plain list has one reference per line (blank lines and `#` comments ignored). Manifests are
YAML documents (several per file, or a `List`); every container, init container and ephemeral
container image in any pod template is collected, in order, without duplicates.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from offline.errors import UsageError

CONTAINER_KEYS = ("containers", "initContainers", "ephemeralContainers")


def _images_in(node: Any) -> Iterator[str]:
    """Images of every container list below `node` (pod specs nest at various depths)."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key in CONTAINER_KEYS and isinstance(value, list):
                for container in value:
                    if isinstance(container, dict) and isinstance(container.get("image"), str):
                        yield container["image"]
            else:
                yield from _images_in(value)
    elif isinstance(node, list):
        for item in node:
            yield from _images_in(item)


def parse_image_list(text: str, source: str) -> list[str]:
    lines = [line.split("#", 1)[0].strip() for line in text.splitlines()]
    looks_like_yaml = any(":" in line and " " in line for line in lines if line) or any(
        line.startswith(("apiVersion", "kind", "---")) for line in lines
    )
    if not looks_like_yaml:
        return list(dict.fromkeys(line for line in lines if line))
    import yaml  # only for manifests: a plain list of images is read without it

    try:
        documents = [d for d in yaml.safe_load_all(text) if d is not None]
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise UsageError(f"{source}: not a list of images nor valid YAML{where}") from exc
    images = list(dict.fromkeys(image for d in documents for image in _images_in(d)))
    if not images:
        raise UsageError(f"{source}: no container images found in the manifests")
    return images
