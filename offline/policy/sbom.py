"""Packages listed in SBOM attestations, and the bans a policy puts on them.

Formats read (the in-toto predicate is the SBOM document itself):
- SPDX 2.x JSON: `packages[]` with `name`, `versionInfo`, and `externalRefs[]` whose
  `referenceType` is `purl` (the purl in `referenceLocator`). cosign's `--type spdx` stores the
  file as a JSON string; that string is read as SPDX JSON, or else as SPDX tag-value
  (`PackageName:`, `PackageVersion:`, `ExternalRef: PACKAGE-MANAGER purl pkg:...`).
- SPDX 3 JSON-LD: `@graph[]` elements of type `software_Package` with `name`,
  `software_packageVersion`, `software_packageUrl` and `externalIdentifier[]` of type
  `packageUrl`.
- CycloneDX JSON: `components[]`, nested `components[]` at any depth, and
  `metadata.component`, with `group`, `name`, `version` and `purl`.

A ban names a package by `name` or by `purl`, optionally with a version range
(offline.policy.versions):
- `name` matches, ignoring case, the package's name, or `group:name` / `group/name` where the
  group is the CycloneDX `group` or the namespace of the package's purl
  (`org.apache.logging.log4j:log4j-core`, `@angular/core`).
- `purl` matches a package purl with the same type, namespace and name (normalised as the purl
  spec says for types whose names ignore case); qualifiers and subpath are ignored. A version in
  the banned purl must equal the package's version; otherwise `versions` applies, if given.
- A package without a version (absent, empty or NOASSERTION) under a ban with a version
  condition is reported: nothing shows it is outside the banned range.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

from offline.policy.versions import VersionRange, versions_equal

SPDX_PREDICATE_PREFIX = "https://spdx.dev/Document"
CYCLONEDX_PREDICATE_PREFIX = "https://cyclonedx.org/bom"

# purl-spec: types whose namespace and name are case-insensitive, written lower case.
_LOWER_CASE_TYPES = frozenset({"alpm", "apk", "bitbucket", "composer", "deb", "github", "hex"})
_NO_VERSION = frozenset({"", "NOASSERTION", "NONE"})


class SbomFormatError(ValueError):
    """The SBOM could not be read; the message is one line."""


def is_sbom_predicate(predicate_type: str) -> bool:
    return predicate_type.startswith((SPDX_PREDICATE_PREFIX, CYCLONEDX_PREDICATE_PREFIX))


@dataclass(frozen=True)
class Purl:
    """A package URL; `text` is as written, the other fields decoded and normalised."""

    text: str
    type: str
    namespace: str | None
    name: str
    version: str | None

    def same_package(self, other: Purl) -> bool:
        return (self.type, self.namespace, self.name) == (other.type, other.namespace, other.name)

    def __str__(self) -> str:
        return self.text


def parse_purl(text: str) -> Purl:
    """Parse `pkg:type/namespace/name@version?qualifiers#subpath`; ValueError if malformed."""
    if not text.startswith("pkg:"):
        raise ValueError(f"{text!r} is not a package URL (it must start with pkg:)")
    body = text[4:].lstrip("/").split("#", 1)[0].split("?", 1)[0]
    version: str | None = None
    if "@" in body:
        body, raw_version = body.rsplit("@", 1)
        version = unquote(raw_version) or None
    parts = [part for part in body.strip("/").split("/") if part]
    if len(parts) < 2:
        raise ValueError(f"{text!r} is not a package URL (it needs a type and a name)")
    purl_type = parts[0].lower()
    namespace = "/".join(unquote(part) for part in parts[1:-1]) or None
    name = unquote(parts[-1])
    if purl_type in _LOWER_CASE_TYPES:
        namespace = namespace.lower() if namespace else None
        name = name.lower()
    elif purl_type == "pypi":
        name = re.sub(r"[-_.]+", "-", name).lower()
    return Purl(text=text, type=purl_type, namespace=namespace, name=name, version=version)


@dataclass(frozen=True)
class Package:
    """One package an SBOM lists."""

    name: str
    version: str | None
    group: str | None = None
    purls: tuple[Purl, ...] = ()

    def __str__(self) -> str:
        return f"{self.name} {self.version}" if self.version else self.name

    @property
    def effective_version(self) -> str | None:
        if self.version:
            return self.version
        return next((purl.version for purl in self.purls if purl.version), None)


@dataclass(frozen=True)
class BannedPackage:
    """One `bannedPackages` entry: exactly one of `name` and `purl`, and optional versions."""

    name: str | None = None
    purl: Purl | None = None
    versions: VersionRange | None = None

    def __post_init__(self) -> None:
        if (self.name is None) == (self.purl is None):
            raise ValueError("a banned package has exactly one of name and purl")
        if self.purl is not None and self.purl.version and self.versions is not None:
            raise ValueError("a banned purl with a version cannot also have a version range")

    def __str__(self) -> str:
        what = self.name if self.name is not None else str(self.purl)
        return f"{what} {self.versions}" if self.versions is not None else f"{what}"

    def violation(self, package: Package) -> str | None:
        """The reason `package` is banned by this entry, or None."""
        version = package.effective_version
        if self.name is not None:
            if not _name_matches(self.name, package):
                return None
            exact = None
        else:
            assert self.purl is not None  # __post_init__ guarantees one of the two
            purl = self.purl
            matching = [candidate for candidate in package.purls if purl.same_package(candidate)]
            if not matching:
                return None
            exact = purl.version
            # The version the matching purl states is the one the ban is about.
            version = matching[0].version or package.version
        if exact is None and self.versions is None:
            return f"SBOM lists banned package {package} (rule: {self})"
        if version is None:
            return (
                f"SBOM lists {package.name} with no version, so nothing shows it is outside the "
                f"banned versions (rule: {self})"
            )
        if exact is not None:
            banned = versions_equal(version, exact)
        else:
            assert self.versions is not None
            try:
                banned = self.versions.contains(version)
            except ValueError:
                return (
                    f"SBOM lists {package.name} with version {version!r}, which cannot be "
                    f"compared with the banned versions (rule: {self})"
                )
        return f"SBOM lists banned package {package} (rule: {self})" if banned else None


@dataclass(frozen=True)
class SbomRule:
    banned_packages: tuple[BannedPackage, ...]


def check_sbom(rule: SbomRule, predicate_type: str, predicate: object) -> list[str]:
    """The violations of `rule` in an SBOM predicate, one line each (empty when it holds)."""
    try:
        packages = read_packages(predicate_type, predicate)
    except SbomFormatError as exc:
        return [str(exc)]
    reasons: dict[str, None] = {}  # ordered and without repeats: SBOMs list a package twice
    for package in packages:
        for ban in rule.banned_packages:
            reason = ban.violation(package)
            if reason is not None:
                reasons[reason] = None
    return list(reasons)


def read_packages(predicate_type: str, predicate: object) -> list[Package]:
    """Every package the SBOM lists; SbomFormatError when it is not a format read here."""
    is_spdx = predicate_type.startswith(SPDX_PREDICATE_PREFIX)
    if not is_spdx and not predicate_type.startswith(CYCLONEDX_PREDICATE_PREFIX):
        raise SbomFormatError(f"predicate type {predicate_type} is not an SPDX or CycloneDX SBOM")
    document = predicate
    if isinstance(predicate, str):
        try:
            document = json.loads(predicate)
        except (ValueError, RecursionError):  # not JSON; also too deep, too long a number
            if is_spdx:
                return _spdx_tag_value(predicate)
            raise SbomFormatError("CycloneDX SBOM could not be read: not JSON") from None
    if not isinstance(document, Mapping):
        raise SbomFormatError("SBOM could not be read: the predicate is not a JSON object")
    if is_spdx:
        if "@graph" in document:
            return _spdx3(document)
        if "spdxVersion" in document or "packages" in document:
            return _spdx2(document)
        raise SbomFormatError("SPDX SBOM could not be read: neither SPDX 2 (spdxVersion) nor 3")
    if document.get("bomFormat") != "CycloneDX" and "components" not in document:
        raise SbomFormatError("CycloneDX SBOM could not be read: no bomFormat or components")
    return _cyclonedx(document)


def _spdx2(document: Mapping[str, Any]) -> list[Package]:
    packages = []
    for entry in _objects(document.get("packages"), "SPDX packages"):
        name = entry.get("name")
        if not isinstance(name, str):
            continue
        purls = [
            ref.get("referenceLocator")
            for ref in _objects(entry.get("externalRefs"), "SPDX externalRefs")
            if ref.get("referenceType") == "purl"
        ]
        packages.append(_package(name, entry.get("versionInfo"), None, purls))
    return packages


def _spdx3(document: Mapping[str, Any]) -> list[Package]:
    packages = []
    for element in _objects(document.get("@graph"), "SPDX 3 @graph"):
        if element.get("type") not in ("software_Package", "Package"):
            continue
        name = element.get("name")
        if not isinstance(name, str):
            continue
        purls = [element.get("software_packageUrl")]
        purls += [
            identifier.get("identifier")
            for identifier in _objects(element.get("externalIdentifier"), "externalIdentifier")
            if identifier.get("externalIdentifierType") == "packageUrl"
        ]
        packages.append(_package(name, element.get("software_packageVersion"), None, purls))
    return packages


def _spdx_tag_value(text: str) -> list[Package]:
    packages: list[Package] = []
    name: str | None = None
    version: str | None = None
    purls: list[object] = []
    in_text = False
    for line in text.splitlines():
        # Multi-line values sit between <text> and </text>; nothing inside them is a tag.
        if in_text:
            in_text = "</text>" not in line
            continue
        tag, _, value = line.partition(":")
        value = value.strip()
        if value.startswith("<text>") and "</text>" not in value:
            in_text = True
        if tag == "PackageName":
            if name is not None:
                packages.append(_package(name, version, None, purls))
            name, version, purls = value, None, []
        elif tag == "PackageVersion" and name is not None:
            version = value
        elif tag == "ExternalRef" and name is not None:
            fields = value.split()
            if len(fields) == 3 and fields[1] == "purl":
                purls.append(fields[2])
    if name is not None:
        packages.append(_package(name, version, None, purls))
    if not packages and "SPDXVersion:" not in text:
        raise SbomFormatError("SPDX SBOM could not be read: neither JSON nor SPDX tag-value")
    return packages


def _cyclonedx(document: Mapping[str, Any]) -> list[Package]:
    packages = []
    metadata = document.get("metadata")
    roots = list(_objects(document.get("components"), "CycloneDX components"))
    if isinstance(metadata, Mapping) and isinstance(metadata.get("component"), Mapping):
        roots.append(metadata["component"])
    # An explicit stack: nesting depth is the SBOM author's choice, not Python's recursion limit.
    stack = roots[::-1]
    while stack:
        component = stack.pop()
        name = component.get("name")
        if isinstance(name, str):
            group = component.get("group")
            packages.append(
                _package(
                    name,
                    component.get("version"),
                    group if isinstance(group, str) and group else None,
                    [component.get("purl")],
                )
            )
        stack.extend(reversed(list(_objects(component.get("components"), "components"))))
    return packages


def _objects(value: object, what: str) -> Iterator[Mapping[str, Any]]:
    """The objects in a JSON list that may be absent; anything else is an unreadable SBOM."""
    if value is None:
        return
    if not isinstance(value, list):
        raise SbomFormatError(f"SBOM could not be read: {what} is not a list")
    for item in value:
        if not isinstance(item, Mapping):
            raise SbomFormatError(f"SBOM could not be read: {what} holds a non-object")
        yield item


def _package(name: str, version: object, group: str | None, purls: list[object]) -> Package:
    parsed = []
    for text in purls:
        if not isinstance(text, str):
            continue
        try:
            parsed.append(parse_purl(text))
        except ValueError:
            # Name bans still apply; a purl ban cannot match what is not a purl.
            continue
    clean_version = version.strip() if isinstance(version, str) else None
    if clean_version is not None and clean_version.upper() in _NO_VERSION:
        clean_version = None
    return Package(name=name, version=clean_version, group=group, purls=tuple(parsed))


def _name_matches(banned: str, package: Package) -> bool:
    qualified = [(package.group, package.name)] if package.group else []
    qualified += [(purl.namespace, purl.name) for purl in package.purls if purl.namespace]
    names = {package.name}
    for group, name in qualified:
        names |= {f"{group}:{name}", f"{group}/{name}"}
    return banned.casefold() in {name.casefold() for name in names}
