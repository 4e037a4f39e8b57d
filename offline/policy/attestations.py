"""What an attestation's content must say: SLSA provenance, SBOM bans, vulnerability scans.

The input is an in-toto Statement whose signature has already been verified; which image its
`subject` names is the pipeline's business, not this module's. `check_statement` returns the
violations as one-line reasons, so a report can show all of them at once.

SLSA provenance (https://slsa.dev/provenance/v0.2 and /v1):
- builder id: v0.2 `predicate.builder.id`, v1 `predicate.runDetails.builder.id`;
- build type: v0.2 `predicate.buildType`, v1 `predicate.buildDefinition.buildType`;
- source repository: the source the build was started from, when the provenance names one
  (v0.2 `invocation.configSource.uri`; v1 `buildDefinition.externalParameters` `source`,
  `source.uri`, `repository`, `workflow.repository` or `configSource.uri`). The dependencies
  (v0.2 `materials[].uri`, v1 `resolvedDependencies[].uri`) count only when it names none: a
  dependency fetched during a build does not show where the build came from. A URI names
  the repository when, without a `git+` prefix, it equals it, optionally followed by `.git`,
  and then by nothing or by `@`, `/`, `#` or `?` (a ref, a path, a fragment); a trailing `.git`
  or `/` in the policy's value is ignored.

Vulnerability scans (cosign's https://cosign.sigstore.dev/attestation/vuln/v1): the scanner's
own JSON sits in `predicate.scanner.result`. Read are Trivy (`Results[].Vulnerabilities[]
.Severity`) and Grype (`matches[].vulnerability.severity`). Severities rank none < low < medium
< high < critical. Trivy's UNKNOWN and Grype's Negligible and Unknown rank as low (Trivy sorts
UNKNOWN just below LOW), so they pass `low` and above but still fail `none`.
"""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Literal

from offline.errors import and_more
from offline.record import Record

if TYPE_CHECKING:  # the SBOM reader is imported only for a rule that has SBOM conditions
    from offline.policy.sbom import SbomRule

SLSA_PROVENANCE_V02 = "https://slsa.dev/provenance/v0.2"
SLSA_PROVENANCE_V1 = "https://slsa.dev/provenance/v1"
SPDX_DOCUMENT = "https://spdx.dev/Document"
CYCLONEDX_BOM = "https://cyclonedx.org/bom"
COSIGN_VULN = "https://cosign.sigstore.dev/attestation/vuln/v1"

# cosign's --type names, so a policy can say what a cosign user already types.
PREDICATE_TYPE_ALIASES: Mapping[str, str] = {
    "custom": "https://cosign.sigstore.dev/attestation/v1",
    "slsaprovenance": SLSA_PROVENANCE_V02,
    "slsaprovenance02": SLSA_PROVENANCE_V02,
    "slsaprovenance1": SLSA_PROVENANCE_V1,
    "spdx": SPDX_DOCUMENT,
    "spdxjson": SPDX_DOCUMENT,
    "cyclonedx": CYCLONEDX_BOM,
    "link": "https://in-toto.io/Link/v1",
    "vuln": COSIGN_VULN,
    "openvex": "https://openvex.dev/ns",
}
SLSA_PREDICATE_TYPES = frozenset({SLSA_PROVENANCE_V02, SLSA_PROVENANCE_V1})
STATEMENT_TYPES = frozenset(
    {"https://in-toto.io/Statement/v0.1", "https://in-toto.io/Statement/v1"}
)

Severity = Literal["none", "low", "medium", "high", "critical"]
SEVERITIES: tuple[Severity, ...] = ("none", "low", "medium", "high", "critical")
_SEVERITY_ALIASES = {"unknown": "low", "negligible": "low"}
_EXAMPLES = 3  # findings named in a reason; the rest are counted


def resolve_predicate_type(name: str) -> str:
    """A cosign alias (`slsaprovenance1`, `spdx`, ...) as its URI; anything else unchanged."""
    return PREDICATE_TYPE_ALIASES.get(name, name)


class SlsaRule(Record):
    __slots__ = ("build_type", "builder_id", "builder_id_regexp", "source_repository")

    def __init__(
        self,
        builder_id: str | None = None,
        builder_id_regexp: re.Pattern[str] | None = None,
        build_type: str | None = None,
        source_repository: str | None = None,
    ) -> None:
        self.builder_id = builder_id
        self.builder_id_regexp = builder_id_regexp
        self.build_type = build_type
        self.source_repository = source_repository


class VulnRule(Record):
    __slots__ = ("max_severity",)

    def __init__(self, max_severity: Severity) -> None:
        self.max_severity = max_severity


class AttestationRule(Record):
    """An attestation that must be present; at most one of the content conditions, matching
    the predicate type."""

    __slots__ = ("predicate_type", "sbom", "slsa", "vuln")

    def __init__(
        self,
        predicate_type: str,
        slsa: SlsaRule | None = None,
        sbom: SbomRule | None = None,
        vuln: VulnRule | None = None,
    ) -> None:
        if slsa is not None and predicate_type not in SLSA_PREDICATE_TYPES:
            raise ValueError(f"slsa conditions need a SLSA provenance type, not {predicate_type}")
        if sbom is not None and not _sbom_predicate(predicate_type):
            raise ValueError(
                f"sbom conditions need an SPDX or CycloneDX type, not {predicate_type}"
            )
        if vuln is not None and predicate_type != COSIGN_VULN:
            raise ValueError(f"vuln conditions need type {COSIGN_VULN}, not {predicate_type}")
        self.predicate_type = predicate_type
        self.slsa = slsa
        self.sbom = sbom
        self.vuln = vuln


def _sbom_predicate(predicate_type: str) -> bool:
    from offline.policy.sbom import is_sbom_predicate

    return is_sbom_predicate(predicate_type)


def check_statement(rule: AttestationRule, statement: Mapping[str, Any]) -> list[str]:
    """The ways `statement` breaks `rule`, one line each; empty when it holds."""
    statement_type = statement.get("_type")
    if statement_type not in STATEMENT_TYPES:
        return [f"attestation is not an in-toto Statement (_type {statement_type!r})"]
    predicate_type = statement.get("predicateType")
    if predicate_type != rule.predicate_type:
        return [f"attestation has predicate type {predicate_type!r}, not {rule.predicate_type}"]
    predicate = statement.get("predicate")
    if rule.sbom is not None:
        from offline.policy.sbom import check_sbom

        # cosign's `--type spdx` stores the SBOM as a string: sbom reads both shapes.
        return check_sbom(rule.sbom, rule.predicate_type, predicate)
    if rule.slsa is None and rule.vuln is None:
        return []
    if not isinstance(predicate, Mapping):
        return [f"attestation of type {rule.predicate_type} has no predicate object"]
    if rule.slsa is not None:
        return _check_slsa(rule.slsa, rule.predicate_type, predicate)
    assert rule.vuln is not None
    return _check_vuln(rule.vuln, predicate)


def _check_slsa(rule: SlsaRule, predicate_type: str, predicate: Mapping[str, Any]) -> list[str]:
    if predicate_type == SLSA_PROVENANCE_V1:
        builder_id = _get(predicate, "runDetails", "builder", "id")
        build_type = _get(predicate, "buildDefinition", "buildType")
        external = _get(predicate, "buildDefinition", "externalParameters")
        sources = [
            _get(external, *path)
            for path in (
                ("source",),
                ("source", "uri"),
                ("repository",),
                ("workflow", "repository"),
                ("configSource", "uri"),
            )
        ]
        dependencies = _get(predicate, "buildDefinition", "resolvedDependencies")
    else:
        builder_id = _get(predicate, "builder", "id")
        build_type = _get(predicate, "buildType")
        sources = [_get(predicate, "invocation", "configSource", "uri")]
        dependencies = _get(predicate, "materials")

    reasons = []
    if rule.builder_id is not None and builder_id != rule.builder_id:
        reasons.append(f"provenance builder id is {_show(builder_id)}, not {rule.builder_id}")
    if rule.builder_id_regexp is not None and not (
        isinstance(builder_id, str) and rule.builder_id_regexp.fullmatch(builder_id)
    ):
        reasons.append(
            f"provenance builder id {_show(builder_id)} does not match "
            f"{rule.builder_id_regexp.pattern!r}"
        )
    if rule.build_type is not None and build_type != rule.build_type:
        reasons.append(f"provenance build type is {_show(build_type)}, not {rule.build_type}")
    if rule.source_repository is not None:
        named = [uri for uri in sources if isinstance(uri, str) and uri]
        if not named and isinstance(dependencies, list):
            named = [
                item["uri"]
                for item in dependencies
                if isinstance(item, Mapping) and isinstance(item.get("uri"), str)
            ]
        if not any(_names_repository(uri, rule.source_repository) for uri in named):
            seen = ", ".join(named[:_EXAMPLES]) + (" ..." if len(named) > _EXAMPLES else "")
            reasons.append(
                f"provenance source {seen or '(none named)'} is not repository "
                f"{rule.source_repository}"
            )
    return reasons


def _names_repository(uri: str, repository: str) -> bool:
    uri = uri.removeprefix("git+")
    repository = repository.removeprefix("git+").rstrip("/").removesuffix(".git")
    if not repository or not uri.startswith(repository):
        return False
    rest = uri[len(repository) :].removeprefix(".git")
    # What may follow the repository: a ref, a path in it, a fragment or a query; never more
    # name (`app-fork`, `app.github.io`).
    return rest == "" or rest[0] in "@/#?"


class _Finding(Record):
    __slots__ = ("id", "package", "severity")

    def __init__(self, id: str, severity: Severity, package: str) -> None:
        self.id = id
        self.severity = severity
        self.package = package


def _check_vuln(rule: VulnRule, predicate: Mapping[str, Any]) -> list[str]:
    result = _get(predicate, "scanner", "result")
    # Some producers store the scanner's output as a JSON string rather than an object.
    if isinstance(result, str):
        with contextlib.suppress(ValueError, RecursionError):
            result = json.loads(result)
    try:
        scanner, findings = _read_scan(result)
    except ValueError as exc:
        return [f"vulnerability scan result could not be read: {exc}"]
    limit = SEVERITIES.index(rule.max_severity)
    above = [item for item in findings if SEVERITIES.index(item.severity) > limit]
    if not above:
        return []
    above.sort(key=lambda item: -SEVERITIES.index(item.severity))
    named = ", ".join(
        f"{item.id} ({item.severity}{', ' + item.package if item.package else ''})"
        for item in above[:_EXAMPLES]
    )
    more = and_more(len(above), _EXAMPLES)
    plural = "finding" if len(above) == 1 else "findings"
    return [
        f"vulnerability scan ({scanner}) lists {len(above)} {plural} above "
        f"{rule.max_severity}: {named}{more}"
    ]


def _read_scan(result: object) -> tuple[str, list[_Finding]]:
    if not isinstance(result, Mapping):
        raise ValueError("predicate.scanner.result is not a JSON object")
    findings = []
    if "matches" in result:
        for match in _list(result["matches"], "matches"):
            vulnerability = _get(match, "vulnerability")
            severity = _severity(_get(vulnerability, "severity"))
            package = " ".join(
                str(part)
                for part in (_get(match, "artifact", "name"), _get(match, "artifact", "version"))
                if part
            )
            findings.append(_Finding(_text(_get(vulnerability, "id")), severity, package))
        return "grype", findings
    if "Results" in result or "SchemaVersion" in result:
        for target in _list(result.get("Results"), "Results"):
            for vulnerability in _list(_get(target, "Vulnerabilities"), "Vulnerabilities"):
                severity = _severity(_get(vulnerability, "Severity"))
                package = " ".join(
                    str(part)
                    for part in (
                        _get(vulnerability, "PkgName"),
                        _get(vulnerability, "InstalledVersion"),
                    )
                    if part
                )
                vuln_id = _text(_get(vulnerability, "VulnerabilityID"))
                findings.append(_Finding(vuln_id, severity, package))
        return "trivy", findings
    raise ValueError(
        "expected Trivy JSON (Results[].Vulnerabilities[]) or Grype JSON (matches[].vulnerability)"
    )


def _severity(value: object) -> Severity:
    if not isinstance(value, str):
        raise ValueError(f"a finding has no severity ({value!r})")
    name = value.strip().lower()
    name = _SEVERITY_ALIASES.get(name, name)
    for severity in SEVERITIES:
        if severity == name:
            return severity
    raise ValueError(f"a finding has unknown severity {value!r}")


def _list(value: object, what: str) -> list[Mapping[str, Any]]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(item, Mapping) for item in value):
        raise ValueError(f"{what} is not a list of objects")
    return value


def _get(value: object, *path: str) -> Any:
    """The value at `path` inside nested JSON objects, or None where any step is missing."""
    for key in path:
        if not isinstance(value, Mapping):
            return None
        value = value.get(key)
    return value


def _text(value: object) -> str:
    return value if isinstance(value, str) and value else "(no id)"


def _show(value: object) -> str:
    return value if isinstance(value, str) else "(none)" if value is None else repr(value)
