"""What must hold for an image: the policy `airgap verify` applies, from a file or from flags.

The policy file (YAML; unknown keys, duplicate keys and wrong types are errors):

    apiVersion: airgap.dev/v1
    kind: ImagePolicy
    policies:                       # the first whose `images` match applies; none: the image fails
      - name: platform-images       # unique; reports name it
        images:                     # globs over the image name, without tag or digest
          - "registry.internal:5000/platform/**"
          - "oci:**"
        signers:                    # at least one valid signature by any of these
          - issuer: https://kubernetes.default.svc          # or issuerRegExp
            subject: system:serviceaccount:ci:builder       # or subjectRegExp
          - key: keys/release.pub   # PEM or DER public key, relative to this file
        attestations:               # each present, signed by one of `signers`, and holding
          - predicateType: slsaprovenance1                  # a URI or a cosign alias
            slsa: {builderId: "...", buildType: "...", sourceRepository: "..."}
          - predicateType: spdx
            sbom:
              bannedPackages:
                - {name: log4j-core, versions: "<2.17.1"}
                - {purl: "pkg:maven/org.apache.logging.log4j/log4j-core@2.14.1"}
          - predicateType: vuln
            vuln: {maxSeverity: high}                       # none, low, medium, high, critical
        tlog: required              # or ignore; required fails a signature with no log entry
        pinning: require            # or warn, off; absent: require for logs the store knows
        maxCheckpointAge: 7d        # newest pinned checkpoint of the entry's log; s, m, h, d

Images are matched by their canonical name: `docker.io/library/nginx` (not `nginx`),
`registry.internal:5000/platform/api`, or `oci:` and the layout directory for image layouts.
In a pattern `*` matches within one path segment, `**` across segments (`a/**/b` also matches
`a/b`), `?` one character other than `/`; everything else is literal. So `oci:**` matches every
image layout, while `oci:*` matches only layouts named without a `/` (`oci:bundle`).

Keyless signers need an issuer and a subject, each exact or a regular expression that must
match the whole value. The subject is compared with every SAN of the Fulcio certificate (URI,
email, and Sigstore's otherName); the issuer is Fulcio's OIDC issuer extension. Attestation
conditions, SBOM bans and version ranges are described in offline.policy.attestations,
offline.policy.sbom and offline.policy.versions.
"""

from __future__ import annotations

import functools
import re
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from offline.errors import UsageError
from offline.inputs import read_input
from offline.oci.imageref import ImageRef, LayoutRef, parse_reference
from offline.policy.attestations import (
    SEVERITIES,
    AttestationRule,
    SlsaRule,
    VulnRule,
    check_statement,
    resolve_predicate_type,
)
from offline.record import Record

if TYPE_CHECKING:  # SBOM rules are read only from a policy file that has them
    from offline.policy.sbom import BannedPackage, SbomRule
from offline.strict import StrictReader, at, describe
from offline.tlog.pinning import PinningMode
from offline.trust.keys import load_public_key_file
from offline.trust.signers import AcceptedSigners, SignerRule

__all__ = [
    "API_VERSION",
    "KIND",
    "AcceptedSigners",
    "AttestationRule",
    "ImagePolicy",
    "PolicyFile",
    "SignerRule",
    "TlogMode",
    "check_statement",
    "image_name",
    "load_policy_file",
    "parse_duration",
    "parse_policy",
]

API_VERSION = "airgap.dev/v1"
KIND = "ImagePolicy"
EVERY_IMAGE = "**"

TlogMode = Literal["required", "ignore"]
_TLOG_MODES: tuple[TlogMode, ...] = ("required", "ignore")
_PINNING_MODES: tuple[PinningMode, ...] = ("require", "warn", "off")
_DURATION = re.compile(r"([0-9]+)([smhd])")
_DURATION_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}


class ImagePolicy(Record):
    """What must hold for the images one `policies` entry matches."""

    __slots__ = (
        "attestations",
        "images",
        "max_checkpoint_age",
        "name",
        "pinning",
        "signers",
        "tlog",
    )

    def __init__(
        self,
        name: str,
        images: tuple[str, ...],
        signers: tuple[SignerRule, ...],
        attestations: tuple[AttestationRule, ...] = (),
        tlog: TlogMode = "required",
        pinning: PinningMode | None = None,
        max_checkpoint_age: timedelta | None = None,
    ) -> None:
        self.name = name
        self.images = images
        self.signers = signers
        self.attestations = attestations
        self.tlog = tlog
        # None: require pinning for the logs the checkpoint store knows (offline.tlog.pinning).
        self.pinning = pinning
        self.max_checkpoint_age = max_checkpoint_age

    def matches(self, reference: str | ImageRef | LayoutRef) -> bool:
        name = image_name(reference)
        return any(_glob(pattern).fullmatch(name) for pattern in self.images)

    @property
    def needs_trusted_root(self) -> bool:
        """Whether checking this policy needs a trusted root: a log entry to check, or a
        certificate to chain. Only keys with the log ignored need none (as in cosign)."""
        return self.tlog != "ignore" or any(rule.keyless for rule in self.signers)

    def signer_policy(self) -> AcceptedSigners:
        """The signers as bundle verification takes them (offline.sigstore.verify.SignerPolicy)."""
        return AcceptedSigners(self.signers)


class PolicyFile(Record):
    """A parsed policy file: its policies in order; the first that matches an image applies."""

    __slots__ = ("policies", "source")

    def __init__(self, source: Path | None, policies: tuple[ImagePolicy, ...]) -> None:
        self.source = source
        self.policies = policies

    def for_image(self, reference: str | ImageRef | LayoutRef) -> ImagePolicy | None:
        """The policy for `reference`, or None when no policy names it (it then fails)."""
        ref = parse_reference(reference) if isinstance(reference, str) else reference
        return next((policy for policy in self.policies if policy.matches(ref)), None)


def image_name(reference: str | ImageRef | LayoutRef) -> str:
    """The name patterns are matched against: canonical, without tag or digest."""
    ref = parse_reference(reference) if isinstance(reference, str) else reference
    if isinstance(ref, LayoutRef):
        return f"oci:{ref.path}"
    return ref.name


@functools.lru_cache(maxsize=256)
def _glob(pattern: str) -> re.Pattern[str]:
    parts: list[str] = []
    i = 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            parts.append("(?:.*/)?")  # zero or more whole segments
            i += 3
        elif pattern.startswith("**", i):
            parts.append(".*")
            i += 2
        elif pattern[i] == "*":
            parts.append("[^/]*")
            i += 1
        elif pattern[i] == "?":
            parts.append("[^/]")
            i += 1
        else:
            parts.append(re.escape(pattern[i]))
            i += 1
    return re.compile("".join(parts), re.DOTALL)


def parse_duration(text: str) -> timedelta:
    """`90s`, `30m`, `12h`, `7d`; ValueError when it is not one of these."""
    match = _DURATION.fullmatch(text.strip())
    if match is not None and int(match.group(1)) > 0:
        try:
            return timedelta(**{_DURATION_UNITS[match.group(2)]: int(match.group(1))})
        except OverflowError:
            pass  # reported below like any other unusable value
    raise ValueError(f"{text!r} is not a duration: write a positive number and s, m, h or d")


def load_policy_file(path: str | Path) -> PolicyFile:
    """Read and validate a policy file; UsageError names the file and the place in it."""
    data = read_input(path, "policy")
    try:
        text = data.decode()
    except UnicodeDecodeError as exc:
        raise UsageError(f"policy {path}: not UTF-8 text") from exc
    return parse_policy(text, Path(path))


def parse_policy(text: str, source: Path) -> PolicyFile:
    """Validate policy YAML; `source` names it in errors and anchors relative key paths."""
    from offline.yamlfile import load_yaml  # a run given no policy file never loads YAML

    return _Parser(source).policy_file(load_yaml(text, f"policy {source}"))


class _Parser(StrictReader):
    """Builds the data classes from the YAML document, failing on the first error with the
    path to it: `policy FILE: policies[0].signers[1].issuerRegExp: ...`."""

    def __init__(self, source: Path) -> None:
        super().__init__(f"policy {source}")
        self.source = source

    def policy_file(self, document: object) -> PolicyFile:
        if document is None:
            self.fail("", "the file is empty; it needs apiVersion, kind and policies")
        top = self.mapping(document, "", required=("apiVersion", "kind", "policies"))
        if top["apiVersion"] != API_VERSION:
            self.fail("apiVersion", f"expected {API_VERSION}, got {describe(top['apiVersion'])}")
        if top["kind"] != KIND:
            self.fail("kind", f"expected {KIND}, got {describe(top['kind'])}")
        policies = self.items(top["policies"], "policies", self.policy)
        names: set[str] = set()
        for index, policy in enumerate(policies):
            if policy.name in names:
                self.fail(at(at("policies", index), "name"), f"{policy.name!r} is used twice")
            names.add(policy.name)
        return PolicyFile(source=self.source, policies=tuple(policies))

    def policy(self, value: object, path: str) -> ImagePolicy:
        fields = self.mapping(
            value,
            path,
            required=("name", "images", "signers"),
            optional=("attestations", "tlog", "pinning", "maxCheckpointAge"),
        )
        # Read in the order the keys are documented, so the first error reported is the first
        # one a reader of the file meets.
        name = self.string(fields["name"], at(path, "name"))
        images = self.items(fields["images"], at(path, "images"), self.pattern)
        signers = self.items(fields["signers"], at(path, "signers"), self.signer)
        attestations: list[AttestationRule] = []
        if "attestations" in fields:
            attestations_path = at(path, "attestations")
            attestations = self.items(fields["attestations"], attestations_path, self.attestation)
            seen: set[str] = set()
            for index, rule in enumerate(attestations):
                if rule.predicate_type in seen:
                    self.fail(
                        at(at(attestations_path, index), "predicateType"),
                        f"{rule.predicate_type} is listed twice; put its conditions in one entry",
                    )
                seen.add(rule.predicate_type)
        tlog = self.choice(fields.get("tlog", "required"), at(path, "tlog"), _TLOG_MODES)
        pinning = None
        if "pinning" in fields:
            pinning = self.choice(fields["pinning"], at(path, "pinning"), _PINNING_MODES)
        max_age = None
        if "maxCheckpointAge" in fields:
            age_path = at(path, "maxCheckpointAge")
            try:
                max_age = parse_duration(self.string(fields["maxCheckpointAge"], age_path))
            except ValueError as exc:
                self.fail(age_path, str(exc))
        return ImagePolicy(
            name=name,
            images=tuple(images),
            signers=tuple(signers),
            attestations=tuple(attestations),
            tlog=tlog,
            pinning=pinning,
            max_checkpoint_age=max_age,
        )

    def pattern(self, value: object, path: str) -> str:
        pattern = self.string(value, path)
        if any(c.isspace() for c in pattern):
            self.fail(path, f"pattern {pattern!r} contains white space")
        if pattern.startswith("oci:") or pattern == EVERY_IMAGE:
            return pattern
        if "@" in pattern or ":" in pattern.rpartition("/")[2]:
            self.fail(path, f"pattern {pattern!r} has a tag or digest; patterns match names only")
        if "/" not in pattern:
            self.fail(
                path,
                f"pattern {pattern!r} can never match: images are matched by full name, "
                "e.g. docker.io/library/nginx or registry.internal:5000/team/**",
            )
        return pattern

    def signer(self, value: object, path: str) -> SignerRule:
        fields = self.mapping(
            value, path, optional=("issuer", "issuerRegExp", "subject", "subjectRegExp", "key")
        )
        if "key" in fields:
            if len(fields) > 1:
                self.fail(path, "a signer is either a key or an issuer and subject, not both")
            key_path = Path(self.string(fields["key"], at(path, "key")))
            resolved = key_path if key_path.is_absolute() else self.source.parent / key_path
            try:
                return SignerRule.for_key(load_public_key_file(resolved), key_path)
            except UsageError as exc:
                self.fail(at(path, "key"), str(exc))
        issuer, issuer_re = self.exact_or_regexp(fields, path, "issuer")
        subject, subject_re = self.exact_or_regexp(fields, path, "subject")
        return SignerRule(
            issuer=issuer, issuer_regexp=issuer_re, subject=subject, subject_regexp=subject_re
        )

    def exact_or_regexp(
        self, fields: dict[str, Any], path: str, name: str
    ) -> tuple[str | None, re.Pattern[str] | None]:
        regexp_name = f"{name}RegExp"
        if name in fields and regexp_name in fields:
            self.fail(path, f"give {name} or {regexp_name}, not both")
        if name in fields:
            return self.string(fields[name], at(path, name)), None
        if regexp_name in fields:
            return None, self.regexp(fields[regexp_name], at(path, regexp_name))
        self.fail(path, f"a signer needs a key, or {name} or {regexp_name} (and the other half)")

    def attestation(self, value: object, path: str) -> AttestationRule:
        fields = self.mapping(
            value, path, required=("predicateType",), optional=("slsa", "sbom", "vuln")
        )
        predicate_type = resolve_predicate_type(
            self.string(fields["predicateType"], at(path, "predicateType"))
        )
        slsa = self.slsa(fields["slsa"], at(path, "slsa")) if "slsa" in fields else None
        sbom = self.sbom(fields["sbom"], at(path, "sbom")) if "sbom" in fields else None
        vuln = self.vuln(fields["vuln"], at(path, "vuln")) if "vuln" in fields else None
        try:
            return AttestationRule(predicate_type, slsa=slsa, sbom=sbom, vuln=vuln)
        except ValueError as exc:
            self.fail(path, str(exc))

    def slsa(self, value: object, path: str) -> SlsaRule:
        fields = self.mapping(
            value,
            path,
            optional=("builderId", "builderIdRegExp", "buildType", "sourceRepository"),
        )
        if not fields:
            self.fail(path, "no conditions; remove slsa to require only that provenance exists")
        if "builderId" in fields and "builderIdRegExp" in fields:
            self.fail(path, "give builderId or builderIdRegExp, not both")
        strings = {
            name: self.string(fields[name], at(path, name))
            for name in ("builderId", "buildType", "sourceRepository")
            if name in fields
        }
        regexp = fields.get("builderIdRegExp")
        return SlsaRule(
            builder_id=strings.get("builderId"),
            builder_id_regexp=(
                self.regexp(regexp, at(path, "builderIdRegExp")) if regexp is not None else None
            ),
            build_type=strings.get("buildType"),
            source_repository=strings.get("sourceRepository"),
        )

    def sbom(self, value: object, path: str) -> SbomRule:
        from offline.policy.sbom import SbomRule

        fields = self.mapping(value, path, required=("bannedPackages",))
        bans = self.items(fields["bannedPackages"], at(path, "bannedPackages"), self.ban)
        return SbomRule(banned_packages=tuple(bans))

    def ban(self, value: object, path: str) -> BannedPackage:
        from offline.policy.sbom import BannedPackage, parse_purl
        from offline.policy.versions import parse_range

        fields = self.mapping(value, path, optional=("name", "purl", "versions"))
        if ("name" in fields) == ("purl" in fields):
            self.fail(path, "a banned package needs exactly one of name and purl")
        versions = None
        if "versions" in fields:
            versions_path = at(path, "versions")
            try:
                versions = parse_range(self.string(fields["versions"], versions_path))
            except ValueError as exc:
                self.fail(versions_path, str(exc))
        if "name" in fields:
            return BannedPackage(
                name=self.string(fields["name"], at(path, "name")), versions=versions
            )
        purl_path = at(path, "purl")
        try:
            purl = parse_purl(self.string(fields["purl"], purl_path))
        except ValueError as exc:
            self.fail(purl_path, str(exc))
        if purl.version is not None and versions is not None:
            self.fail(path, "the purl has a version; drop it or drop versions")
        return BannedPackage(purl=purl, versions=versions)

    def vuln(self, value: object, path: str) -> VulnRule:
        fields = self.mapping(value, path, required=("maxSeverity",))
        severity = self.choice(fields["maxSeverity"], at(path, "maxSeverity"), SEVERITIES)
        return VulnRule(max_severity=severity)
