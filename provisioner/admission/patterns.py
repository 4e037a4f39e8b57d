"""A policy file's image patterns and signer regular expressions, as admission controllers read
them.

Image patterns. airgap matches an image's canonical name without tag or digest: `*` within one
path segment, `**` across segments, `**/` also zero segments, `?` one character. The
controllers match the reference with its tag or digest:
- policy-controller (pkg/apis/glob): the reference's full name (`host/repo:tag`,
  `host/repo@sha256:...`, Docker Hub as `index.docker.io`), only the characters
  `A-Za-z0-9-_:/*.@`, `*` as `[^/]*`, `**` as `.*`, anchored at both ends;
- Kyverno: a wildcard over the reference, `*` any run of characters (`/` too), `?` one.
So each pattern becomes globs that add `:**`/`@**` (`:*`/`@*`) after the name, and one per
choice of zero or more segments for each `**/`. A controller's `*` may also run into a tag or a
digest: its globs can match more images than airgap's pattern, never fewer. Matching more is
stricter at admission, not weaker: an image must pass every policy that matches it there.

Regular expressions. airgap's match the whole value (Python `re.fullmatch`); the controllers
use Go's RE2, unanchored. A pattern becomes `^(?:PATTERN)$`; constructs RE2 lacks
(lookaround, backreferences, atomic groups, possessive quantifiers, `\\Z`, verbose flags) are
Inexpressible.
"""

from __future__ import annotations

import itertools
import re

from provisioner.admission.notes import Inexpressible

MAX_SEGMENT_CHOICES = 3  # `**/` occurrences expanded; 2**3 globs per pattern at most
_POLICY_CONTROLLER_GLOB = re.compile(r"[A-Za-z0-9_:/*.@-]+")
_RE2_LACKS = (
    (re.compile(r"\(\?<?[=!]"), "lookaround"),
    (re.compile(r"\\[1-9]|\(\?P="), "a backreference"),
    (re.compile(r"\(\?>"), "an atomic group"),
    (re.compile(r"(?<!\\)[*+?}]\+"), "a possessive quantifier"),
    (re.compile(r"\\Z"), "\\Z"),
    (re.compile(r"\(\?[aiLmsux]*[xLau]"), "a flag RE2 does not know"),
)


def _check_name_pattern(pattern: str) -> None:
    if pattern.startswith("oci:"):
        raise Inexpressible("image layouts (oci:) are not images a pod runs")


def _segment_choices(pattern: str) -> list[str]:
    """`pattern` with each `**/` either kept or dropped (airgap's zero-segments case)."""
    parts = pattern.split("**/")
    if len(parts) - 1 > MAX_SEGMENT_CHOICES:
        raise Inexpressible(f"more than {MAX_SEGMENT_CHOICES} '**/' in one pattern")
    variants = []
    for choice in itertools.product(("**/", ""), repeat=len(parts) - 1):
        text = parts[0] + "".join(sep + part for sep, part in zip(choice, parts[1:], strict=True))
        variants.append(text)
    return list(dict.fromkeys(variants))


def policy_controller_globs(pattern: str) -> list[str]:
    """policy-controller globs matching at least the images `pattern` matches."""
    _check_name_pattern(pattern)
    if pattern == "**":
        return ["**"]
    if "?" in pattern:
        raise Inexpressible("policy-controller globs have no '?'")
    if not _POLICY_CONTROLLER_GLOB.fullmatch(pattern):
        raise Inexpressible("policy-controller globs allow only letters, digits and - _ : / * . @")
    if pattern.startswith("docker.io/"):
        pattern = "index.docker.io/" + pattern.removeprefix("docker.io/")
    globs = []
    for variant in _segment_choices(pattern):
        if variant.endswith("**"):
            globs.append(variant)  # already runs on into a tag or a digest
        else:
            globs += [f"{variant}:**", f"{variant}@**"]
    return globs


def kyverno_globs(pattern: str) -> list[str]:
    """Kyverno imageReferences matching at least the images `pattern` matches."""
    _check_name_pattern(pattern)
    if pattern == "**":
        return ["*"]
    globs = []
    for variant in _segment_choices(pattern):
        variant = variant.replace("**", "*")
        if variant.endswith("*"):
            globs.append(variant)
        else:
            globs += [f"{variant}:*", f"{variant}@*"]
    return list(dict.fromkeys(globs))


def go_regexp(pattern: re.Pattern[str]) -> str:
    """`pattern` as an anchored RE2 expression matching the same whole values."""
    for construct, what in _RE2_LACKS:
        if construct.search(pattern.pattern):
            raise Inexpressible(
                f"regular expression {pattern.pattern!r} uses {what}, which Go's RE2 lacks"
            )
    return f"^(?:{pattern.pattern})$"
