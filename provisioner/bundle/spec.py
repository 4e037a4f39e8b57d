"""The bundle spec (`bundles/*.yaml`): what `airgap bundle create` puts into a bundle.

    apiVersion: airgap.dev/v1
    kind: BundleSpec
    name: sigstore-stack                  # names the bundle in reports
    images:                               # by tag and/or digest; tags resolve at create time
      - ghcr.io/sigstore/fulcio:v1.8.8@sha256:ef72...
      - ref: docker.io/library/redis:6.2  # the long form takes options
        platforms: [linux/amd64]          # carry only these children of an index (see below)
    charts:
      - name: rekor
        version: 1.8.4
        repo: https://sigstore.github.io/helm-charts   # or oci: oci://host/path/rekor
                                                       # or path: ./charts/rekor (dir or .tgz)
        digest: sha256:...                # optional: the chart archive must have it
        values: [../charts-values/rekor.yaml]          # rendered with these to find images
        set: {server: {replicaCount: 1}}               # inline values, applied last
        namespace: rekor-system           # release namespace when rendering
    files:                                # tool binaries and the like, under files/
      - path: tools/cosign                # where in the bundle (under files/)
        source: ../dist/cosign            # a local file, relative to this spec
        sha256: 3b1f...                   # required: the file must have it
    trust:                                # trust material, under trust/ (same fields)
      - path: trusted_root.json
        source: trusted_root.json
        sha256: 9d0c...
    verify:                               # optional: images must pass this before export
      policy: policies/upstream.yaml      # an `airgap verify` policy file
      trustedRoot: trust/public-good.json
      checkpoints: checkpoints/           # optional checkpoint store
    allowMissingAttachments: false        # true: an attachment that cannot be fetched is
                                          # reported and left out instead of failing

Every image a chart renders must be listed under `images` (a missing one is an error naming the
chart); relative paths are relative to the spec file. Unknown keys, wrong types and duplicates
are one-line errors naming the field.

`platforms` keeps an index's other children out of the bundle: the index itself is then not
carried (its digest would no longer match its contents), so signatures made on the index do not
travel; create says so for each image where that happens.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from offline.errors import UsageError
from offline.inputs import read_input
from offline.oci.digests import SHA256_HEX, is_digest
from offline.oci.imageref import ImageRef, parse_image_ref
from offline.strict import StrictReader
from offline.yamlfile import load_yaml

API_VERSION = "airgap.dev/v1"
KIND = "BundleSpec"

_PLATFORM = re.compile(r"[a-z0-9]+/[a-z0-9_]+(/[a-z0-9.]+)?")
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


@dataclass(frozen=True)
class ImageSpec:
    reference: str
    ref: ImageRef
    platforms: tuple[str, ...] = ()


@dataclass(frozen=True)
class ChartSpec:
    name: str
    version: str
    repo: str | None = None
    oci: str | None = None
    path: Path | None = None
    digest: str | None = None
    values: tuple[Path, ...] = ()
    set_values: dict[str, Any] = field(default_factory=dict, hash=False)
    namespace: str | None = None

    @property
    def source(self) -> str:
        return self.repo or self.oci or str(self.path)


@dataclass(frozen=True)
class FileSpec:
    path: str  # relative to files/ or trust/ in the bundle
    source: Path
    sha256: str


@dataclass(frozen=True)
class VerifySpec:
    policy: Path
    trusted_root: Path
    checkpoints: Path | None = None


@dataclass(frozen=True)
class BundleSpec:
    name: str
    path: Path
    images: tuple[ImageSpec, ...] = ()
    charts: tuple[ChartSpec, ...] = ()
    files: tuple[FileSpec, ...] = ()
    trust: tuple[FileSpec, ...] = ()
    verify: VerifySpec | None = None
    allow_missing_attachments: bool = False


# ------------------------------------------------------------------------------- parsing
def load_spec(path: str | Path) -> BundleSpec:
    path = Path(path)
    text = read_input(path, "bundle spec").decode("utf-8", errors="replace")
    document = load_yaml(text, f"bundle spec {path}")
    return parse_spec(document, path)


def parse_spec(document: object, path: Path) -> BundleSpec:
    where = str(path)
    top = _mapping(
        document,
        where,
        required=("apiVersion", "kind", "name"),
        optional=("images", "charts", "files", "trust", "verify", "allowMissingAttachments"),
    )
    if top["apiVersion"] != API_VERSION:
        raise UsageError(f"{where}: apiVersion is {top['apiVersion']!r}, expected {API_VERSION!r}")
    if top["kind"] != KIND:
        raise UsageError(f"{where}: kind is {top['kind']!r}, expected {KIND!r}")
    name = _text(top["name"], f"{where}: name")
    if not _NAME.fullmatch(name):
        raise UsageError(f"{where}: name {name!r} must be letters, digits, '.', '_' or '-'")
    base = path.parent
    images = tuple(
        _image(v, f"{where}: images[{i}]") for i, v in enumerate(_seq(top, "images", where))
    )
    _unique([str(i.ref) for i in images], f"{where}: images")
    charts = tuple(
        _chart(v, f"{where}: charts[{i}]", base) for i, v in enumerate(_seq(top, "charts", where))
    )
    _unique([f"{c.name} {c.version}" for c in charts], f"{where}: charts")
    files = tuple(
        _file(v, f"{where}: files[{i}]", base) for i, v in enumerate(_seq(top, "files", where))
    )
    trust = tuple(
        _file(v, f"{where}: trust[{i}]", base) for i, v in enumerate(_seq(top, "trust", where))
    )
    _unique([f.path for f in files], f"{where}: files")
    _unique([f.path for f in trust], f"{where}: trust")
    verify = _verify(top["verify"], f"{where}: verify", base) if "verify" in top else None
    allow = top.get("allowMissingAttachments", False)
    if not isinstance(allow, bool):
        raise UsageError(f"{where}: allowMissingAttachments is not true or false")
    return BundleSpec(
        name=name,
        path=path,
        images=images,
        charts=charts,
        files=files,
        trust=trust,
        verify=verify,
        allow_missing_attachments=allow,
    )


def _image(value: object, where: str) -> ImageSpec:
    if isinstance(value, str):
        return ImageSpec(value, _ref(value, where))
    entry = _mapping(value, where, required=("ref",), optional=("platforms",))
    reference = _text(entry["ref"], f"{where}.ref")
    platforms = tuple(
        _text(p, f"{where}.platforms[{i}]") for i, p in enumerate(_seq(entry, "platforms", where))
    )
    for platform in platforms:
        if not _PLATFORM.fullmatch(platform):
            raise UsageError(f"{where}.platforms: {platform!r} is not os/arch[/variant]")
    return ImageSpec(reference, _ref(reference, where), platforms)


def _ref(reference: str, where: str) -> ImageRef:
    try:
        ref = parse_image_ref(reference)
    except UsageError as exc:
        raise UsageError(f"{where}: {exc}") from None
    if ref.tag is None and ref.digest is None:
        raise UsageError(f"{where}: {reference!r} names no tag or digest; pin it")
    return ref


def _chart(value: object, where: str, base: Path) -> ChartSpec:
    entry = _mapping(
        value,
        where,
        required=("name", "version"),
        optional=("repo", "oci", "path", "digest", "values", "set", "namespace"),
    )
    sources = [key for key in ("repo", "oci", "path") if key in entry]
    if len(sources) != 1:
        raise UsageError(f"{where}: give exactly one of repo, oci or path")
    name = _text(entry["name"], f"{where}.name")
    version = _text(str(entry["version"]), f"{where}.version")
    repo = oci = None
    local: Path | None = None
    if "repo" in entry:
        repo = _text(entry["repo"], f"{where}.repo")
        if not repo.startswith(("https://", "http://")):
            raise UsageError(f"{where}.repo {repo!r} is not an http(s) chart repository URL")
    elif "oci" in entry:
        oci = _text(entry["oci"], f"{where}.oci")
        if not oci.startswith("oci://"):
            raise UsageError(f"{where}.oci {oci!r} does not start with oci://")
    else:
        local = base / _text(entry["path"], f"{where}.path")
    digest = None
    if "digest" in entry:
        digest = _text(entry["digest"], f"{where}.digest")
        if not is_digest(digest):
            raise UsageError(f"{where}.digest {digest!r} is not sha256: and 64 hex digits")
    values = tuple(
        base / _text(v, f"{where}.values[{i}]") for i, v in enumerate(_seq(entry, "values", where))
    )
    set_values = entry.get("set", {})
    if not isinstance(set_values, dict):
        raise UsageError(f"{where}.set is not a mapping")
    namespace = _text(entry["namespace"], f"{where}.namespace") if "namespace" in entry else None
    return ChartSpec(
        name=name,
        version=version,
        repo=repo,
        oci=oci,
        path=local,
        digest=digest,
        values=values,
        set_values=set_values,
        namespace=namespace,
    )


def _file(value: object, where: str, base: Path) -> FileSpec:
    entry = _mapping(value, where, required=("path", "source", "sha256"), optional=())
    inside = _text(entry["path"], f"{where}.path")
    pure = PurePosixPath(inside)
    if pure.is_absolute() or ".." in pure.parts or str(pure) != inside or "\\" in inside:
        raise UsageError(f"{where}.path {inside!r} is not a plain relative path")
    sha256 = _text(entry["sha256"], f"{where}.sha256").removeprefix("sha256:")
    if not SHA256_HEX.fullmatch(sha256):
        raise UsageError(f"{where}.sha256 {entry['sha256']!r} is not 64 lowercase hex digits")
    return FileSpec(inside, base / _text(entry["source"], f"{where}.source"), sha256)


def _verify(value: object, where: str, base: Path) -> VerifySpec:
    entry = _mapping(value, where, required=("policy", "trustedRoot"), optional=("checkpoints",))
    checkpoints = entry.get("checkpoints")
    return VerifySpec(
        policy=base / _text(entry["policy"], f"{where}.policy"),
        trusted_root=base / _text(entry["trustedRoot"], f"{where}.trustedRoot"),
        checkpoints=None
        if checkpoints is None
        else base / _text(checkpoints, f"{where}.checkpoints"),
    )


# ------------------------------------------------------------------------------- helpers
# The checks themselves are the one strict reader's (offline.strict.StrictReader); `where`
# already names the file and the place in it.
def _mapping(
    value: object, where: str, *, required: tuple[str, ...], optional: tuple[str, ...]
) -> dict[str, Any]:
    return StrictReader(where).mapping(value, "", required, optional)


def _seq(entry: dict[str, Any], key: str, where: str) -> list[Any]:
    return StrictReader(where).sequence(entry.get(key), key)


def _text(value: object, where: str) -> str:
    return StrictReader(where).string(value, "")


def _unique(values: list[str], where: str) -> None:
    StrictReader(where).unique(values, "")
