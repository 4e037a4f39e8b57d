"""The mapping `bundle import` writes (provisioner/importer/report.py): where each image of the
bundle landed in the internal registry, digest unchanged. The stack's values are filled from it.

An image a chart runs is found by its upstream repository (`ghcr.io/sigstore/fulcio`): when the
bundle carries several images of that repository, the one with the chart's own digest wins, then
the one with the chart's tag; otherwise the choice is refused as ambiguous.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from offline.errors import UsageError
from offline.inputs import decode_strict_json, read_input
from offline.oci.digests import validate_digest
from offline.oci.imageref import ImageRef, parse_image_ref
from offline.strict import StrictReader, at
from provisioner.importer.report import MAPPING_FORMAT


@dataclass(frozen=True)
class MappedImage:
    """One image of the bundle: `source` as the bundle names it, `registry`/`repository` where
    it is now (pullable as `registry/repository@digest`)."""

    source: ImageRef
    registry: str
    repository: str
    digest: str
    tag: str | None

    @property
    def reference(self) -> str:
        return f"{self.registry}/{self.repository}@{self.digest}"


@dataclass(frozen=True)
class ImageMapping:
    path: Path
    target: str
    images: tuple[MappedImage, ...]

    def find(self, upstream: ImageRef, what: str) -> MappedImage:
        """The image standing for `upstream` (see the module's note); `what` names the chart's
        values key in the one-line refusal."""
        candidates = [i for i in self.images if i.source.name == upstream.name]
        if not candidates:
            raise UsageError(
                f"{what}: image {upstream} is not in the import mapping {self.path}; "
                f"add {upstream.name} to the bundle and import it"
            )
        if len(candidates) == 1:
            return candidates[0]
        by_digest = [i for i in candidates if i.digest == upstream.digest]
        by_tag = [i for i in candidates if upstream.tag and i.source.tag == upstream.tag]
        for chosen in (by_digest, by_tag):
            if len(chosen) == 1:
                return chosen[0]
        listed = ", ".join(str(i.source) for i in candidates)
        raise UsageError(
            f"{what}: the import mapping {self.path} has several images of {upstream.name} "
            f"({listed}) and none is the chart's {upstream}"
        )


def load_mapping(path: Path) -> ImageMapping:
    data = read_input(path, "import mapping")
    return parse_mapping(decode_strict_json(data, f"import mapping {path}"), path)


def parse_mapping(document: object, path: Path) -> ImageMapping:
    reader = StrictReader(f"import mapping {path}")
    top = reader.mapping(document, "", required=("format", "bundle", "target", "created", "images"))
    if top["format"] != MAPPING_FORMAT:
        reader.fail("format", f"expected {MAPPING_FORMAT!r}; got {top['format']!r}")
    target = reader.string(top["target"], "target")
    if target.startswith("oci:"):
        reader.fail("target", f"{target!r} is an OCI layout, not a registry a cluster pulls from")
    images = []
    for source, entry in reader.table(top["images"], "images").items():
        where = at("images", source)
        item = reader.mapping(
            entry,
            where,
            required=("target", "repository", "digest"),
            optional=("tag", "attachments"),
        )
        try:
            upstream = parse_image_ref(source)
            digest = validate_digest(reader.string(item["digest"], at(where, "digest")))
        except UsageError as exc:
            reader.fail(where, str(exc))
        repository = reader.string(item["repository"], at(where, "repository"))
        registry, _, name = repository.partition("/")
        if not name:
            reader.fail(at(where, "repository"), f"{repository!r} has no registry host")
        if reader.string(item["target"], at(where, "target")) != f"{repository}@{digest}":
            reader.fail(at(where, "target"), "is not the repository at the digest")
        tag = item.get("tag")
        if tag is not None:
            tag = reader.string(tag, at(where, "tag"))
        images.append(MappedImage(upstream, registry, name, digest, tag))
    return ImageMapping(path, target, tuple(images))
