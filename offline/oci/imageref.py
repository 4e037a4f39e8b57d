"""Image references as users write them, parsed into a canonical form.

Two kinds:
- registry references, `[registry[:port]/]repo[:tag][@sha256:hex]`, with docker's defaults: no
  registry means docker.io, a single name on docker.io gets `library/`, no tag and no digest means
  `latest`. A first component is a registry when it has a `.` or a `:`, is `localhost`, or has
  upper-case letters (repository names cannot), exactly as docker decides it.
- OCI image layouts on disk, `oci:DIR[:REF]` or `oci:DIR@sha256:hex`, as skopeo writes them: DIR
  ends at the first `:` (so DIR cannot contain one), REF is a `org.opencontainers.image.ref.name`
  or a digest.

`str()` of a parsed reference is its canonical form, and parsing that again gives an equal value.
"""

from __future__ import annotations

import re
from pathlib import Path

from offline.errors import UsageError
from offline.oci.digests import is_digest, validate_digest
from offline.record import Record

DEFAULT_REGISTRY = "docker.io"
DEFAULT_TAG = "latest"
LAYOUT_PREFIX = "oci:"

# distribution/reference grammar.
_PATH_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_REPOSITORY = re.compile(rf"{_PATH_COMPONENT}(?:/{_PATH_COMPONENT})*")
_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_HOST = rf"(?:{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*|\[[0-9a-fA-F:.]+\])"
_REGISTRY = re.compile(rf"{_HOST}(?::[0-9]{{1,5}})?")
_TAG = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}")
_NAME_MAX = 255
# image-spec annotations.md: the grammar of org.opencontainers.image.ref.name.
_REF_NAME_COMPONENT = r"[A-Za-z0-9]+(?:(?:[-._:@+]|--)[A-Za-z0-9]+)*"
_REF_NAME = re.compile(rf"{_REF_NAME_COMPONENT}(?:/{_REF_NAME_COMPONENT})*")
_LAYOUT_DIGEST_SUFFIX = re.compile(r"(.*)@(sha256:[^:@/]*)")


class ImageRef(Record):
    """An image in a registry. `tag` is kept beside `digest` for display; the digest wins."""

    __slots__ = ("digest", "registry", "repository", "tag")

    def __init__(
        self, registry: str, repository: str, tag: str | None = None, digest: str | None = None
    ) -> None:
        self.registry = registry
        self.repository = repository
        self.tag = tag
        self.digest = digest

    @property
    def name(self) -> str:
        return f"{self.registry}/{self.repository}"

    @property
    def reference(self) -> str:
        """What to ask the registry for: the digest when known, else the tag."""
        if self.digest is not None:
            return self.digest
        return self.tag if self.tag is not None else DEFAULT_TAG

    def with_digest(self, digest: str) -> ImageRef:
        return self.replace(digest=validate_digest(digest))

    def with_tag(self, tag: str) -> ImageRef:
        return self.replace(tag=_validate_tag(tag, tag), digest=None)

    def __str__(self) -> str:
        text = self.name
        if self.tag is not None:
            text += f":{self.tag}"
        if self.digest is not None:
            text += f"@{self.digest}"
        return text


class LayoutRef(Record):
    """An image in an OCI image layout directory; `ref` is a ref.name or a digest, or None
    when the layout holds a single image."""

    __slots__ = ("path", "ref")

    def __init__(self, path: Path, ref: str | None = None) -> None:
        self.path = path
        self.ref = ref

    @property
    def digest(self) -> str | None:
        return self.ref if self.ref is not None and is_digest(self.ref) else None

    def __str__(self) -> str:
        text = f"{LAYOUT_PREFIX}{self.path}"
        if self.ref is None:
            return text
        return f"{text}@{self.ref}" if is_digest(self.ref) else f"{text}:{self.ref}"


def parse_reference(text: str) -> ImageRef | LayoutRef:
    """A registry reference or, with the `oci:` prefix, an image-layout reference."""
    if text.startswith(LAYOUT_PREFIX):
        return parse_layout_ref(text)
    return parse_image_ref(text)


def parse_image_ref(text: str) -> ImageRef:
    original = text
    text = text.removeprefix("docker://")
    if not text:
        raise UsageError("empty image reference")
    if text != text.strip() or any(c.isspace() for c in text):
        raise UsageError(f"image reference {original!r} contains white space")

    digest = None
    if "@" in text:
        text, digest = text.rsplit("@", 1)
        validate_digest(digest, f"image reference {original!r}: digest")
    tag = None
    last_slash = text.rfind("/")
    colon = text.rfind(":")
    if colon > last_slash:
        text, tag = text[:colon], text[colon + 1 :]
        _validate_tag(tag, original)
    if not text:
        raise UsageError(f"image reference {original!r} has no repository name")

    registry, repository = _split_registry(text)
    if not _REGISTRY.fullmatch(registry):
        raise UsageError(f"image reference {original!r}: invalid registry {registry!r}")
    if not repository:
        raise UsageError(f"image reference {original!r} has no repository name")
    if repository.lower() != repository:
        raise UsageError(
            f"image reference {original!r}: repository {repository!r} must be lower case"
        )
    if not _REPOSITORY.fullmatch(repository):
        raise UsageError(f"image reference {original!r}: invalid repository name {repository!r}")
    if len(registry) + 1 + len(repository) > _NAME_MAX:
        raise UsageError(f"image reference {original!r}: name longer than {_NAME_MAX} characters")
    if tag is None and digest is None:
        tag = DEFAULT_TAG
    return ImageRef(registry=registry, repository=repository, tag=tag, digest=digest)


def parse_layout_ref(text: str) -> LayoutRef:
    if not text.startswith(LAYOUT_PREFIX):
        raise UsageError(f"layout reference {text!r} must start with {LAYOUT_PREFIX}")
    body = text[len(LAYOUT_PREFIX) :]
    ref: str | None = None
    at_digest = _LAYOUT_DIGEST_SUFFIX.fullmatch(body)
    if at_digest is not None and ":" not in at_digest.group(1):
        body, ref = at_digest.group(1), at_digest.group(2)
        validate_digest(ref, f"layout reference {text!r}: digest")
    elif ":" in body:
        body, ref = body.split(":", 1)
        if ref.startswith("@"):
            ref = validate_digest(ref[1:], f"layout reference {text!r}: digest")
        elif ref.startswith("sha256:") or is_digest(ref):
            validate_digest(ref, f"layout reference {text!r}: digest")
        elif not _REF_NAME.fullmatch(ref):
            raise UsageError(
                f"layout reference {text!r}: {ref!r} is not a valid ref name "
                "(letters, digits and -._:@/+ between them)"
            )
    if not body:
        raise UsageError(f"layout reference {text!r} names no directory")
    return LayoutRef(path=Path(body), ref=ref)


def _split_registry(name: str) -> tuple[str, str]:
    first, sep, rest = name.partition("/")
    is_registry = sep and (
        "." in first or ":" in first or first == "localhost" or first.lower() != first
    )
    if not is_registry:
        registry, repository = DEFAULT_REGISTRY, name
    else:
        registry, repository = first, rest
    registry = normalize_registry(registry)
    if registry == DEFAULT_REGISTRY and "/" not in repository:
        repository = f"library/{repository}"
    return registry, repository


def normalize_registry(host: str) -> str:
    """Docker Hub's other name is docker.io."""
    return DEFAULT_REGISTRY if host == "index.docker.io" else host


def is_valid_registry(host: str) -> bool:
    return _REGISTRY.fullmatch(host) is not None


def is_valid_repository(name: str) -> bool:
    return len(name) <= _NAME_MAX and _REPOSITORY.fullmatch(name) is not None


def is_valid_tag(tag: str) -> bool:
    return _TAG.fullmatch(tag) is not None


def _validate_tag(tag: str, original: str) -> str:
    if not _TAG.fullmatch(tag):
        raise UsageError(
            f"image reference {original!r}: invalid tag {tag!r} "
            "(letters, digits, _ . -, at most 128, not starting with . or -)"
        )
    return tag
