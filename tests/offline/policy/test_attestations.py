"""Attestation content: SLSA provenance, vulnerability scans, and the Statement around them."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from offline.policy.attestations import (
    COSIGN_VULN,
    SLSA_PROVENANCE_V02,
    SLSA_PROVENANCE_V1,
    AttestationRule,
    SlsaRule,
    VulnRule,
    check_statement,
    resolve_predicate_type,
)
from offline.policy.sbom import BannedPackage, SbomRule

BUILDER = (
    "https://github.com/slsa-framework/slsa-github-generator/.github/workflows/"
    "builder.yml@refs/tags/v1.9.0"
)
BUILD_TYPE_V1 = "https://slsa-framework.github.io/github-actions-buildtypes/workflow/v1"
REPO = "https://github.com/acme/app"


def statement(predicate_type: str, predicate: object) -> dict[str, Any]:
    return {
        "_type": "https://in-toto.io/Statement/v1",
        "subject": [{"name": "registry.internal/app", "digest": {"sha256": "ab" * 32}}],
        "predicateType": predicate_type,
        "predicate": predicate,
    }


def provenance_v02(
    builder: str = BUILDER,
    config_uri: str | None = f"git+{REPO}@refs/heads/main",
    materials: tuple[str, ...] = (f"git+{REPO}@refs/heads/main",),
) -> dict[str, Any]:
    invocation: dict[str, Any] = {"parameters": {}}
    if config_uri is not None:
        invocation["configSource"] = {"uri": config_uri, "entryPoint": ".github/workflows/b.yml"}
    return statement(
        SLSA_PROVENANCE_V02,
        {
            "builder": {"id": builder},
            "buildType": "https://github.com/slsa-framework/slsa-github-generator/generic@v1",
            "invocation": invocation,
            "materials": [{"uri": uri, "digest": {"sha1": "0" * 40}} for uri in materials],
        },
    )


def provenance_v1(
    builder: str = BUILDER,
    external: dict[str, Any] | None = None,
    dependencies: tuple[str, ...] = (),
) -> dict[str, Any]:
    return statement(
        SLSA_PROVENANCE_V1,
        {
            "buildDefinition": {
                "buildType": BUILD_TYPE_V1,
                "externalParameters": external
                if external is not None
                else {"workflow": {"ref": "refs/heads/main", "repository": REPO, "path": "b.yml"}},
                "resolvedDependencies": [{"uri": uri} for uri in dependencies],
            },
            "runDetails": {"builder": {"id": builder}},
        },
    )


def slsa(predicate_type: str = SLSA_PROVENANCE_V1, **conditions: Any) -> AttestationRule:
    return AttestationRule(predicate_type, slsa=SlsaRule(**conditions))


class TestStatement:
    def test_a_rule_without_conditions_needs_only_the_right_statement(self) -> None:
        assert check_statement(AttestationRule(SLSA_PROVENANCE_V1), provenance_v1()) == []

    def test_without_conditions_any_predicate_shape_will_do(self) -> None:
        spdx_as_text = statement("https://spdx.dev/Document", "SPDXVersion: SPDX-2.3\n")
        assert check_statement(AttestationRule("https://spdx.dev/Document"), spdx_as_text) == []

    def test_conditions_need_a_predicate_object(self) -> None:
        [reason] = check_statement(slsa(builder_id=BUILDER), statement(SLSA_PROVENANCE_V1, None))
        assert reason == f"attestation of type {SLSA_PROVENANCE_V1} has no predicate object"

    def test_the_predicate_type_must_be_the_rules(self) -> None:
        [reason] = check_statement(AttestationRule(SLSA_PROVENANCE_V1), provenance_v02())
        assert "predicate type" in reason and SLSA_PROVENANCE_V02 in reason

    def test_it_must_be_an_in_toto_statement(self) -> None:
        not_a_statement = provenance_v1() | {"_type": "https://example.com/Other"}
        [reason] = check_statement(AttestationRule(SLSA_PROVENANCE_V1), not_a_statement)
        assert "not an in-toto Statement" in reason

    def test_cosign_aliases_name_the_usual_types(self) -> None:
        assert resolve_predicate_type("slsaprovenance") == SLSA_PROVENANCE_V02
        assert resolve_predicate_type("slsaprovenance02") == SLSA_PROVENANCE_V02
        assert resolve_predicate_type("slsaprovenance1") == SLSA_PROVENANCE_V1
        assert resolve_predicate_type("spdx") == "https://spdx.dev/Document"
        assert resolve_predicate_type("cyclonedx") == "https://cyclonedx.org/bom"
        assert resolve_predicate_type("vuln") == COSIGN_VULN
        assert resolve_predicate_type("https://example.com/x") == "https://example.com/x"

    def test_conditions_must_fit_the_predicate_type(self) -> None:
        with pytest.raises(ValueError, match="SLSA provenance"):
            AttestationRule("https://spdx.dev/Document", slsa=SlsaRule(builder_id="x"))
        with pytest.raises(ValueError, match="SPDX or CycloneDX"):
            AttestationRule(COSIGN_VULN, sbom=SbomRule((BannedPackage(name="x"),)))
        with pytest.raises(ValueError, match="vuln conditions"):
            AttestationRule(SLSA_PROVENANCE_V1, vuln=VulnRule("high"))


class TestSlsaV02:
    def test_builder_id_exact(self) -> None:
        assert (
            check_statement(slsa(SLSA_PROVENANCE_V02, builder_id=BUILDER), provenance_v02()) == []
        )

    def test_wrong_builder_id_says_which_it_was(self) -> None:
        rule = slsa(SLSA_PROVENANCE_V02, builder_id="https://ci.internal/builder")
        assert check_statement(rule, provenance_v02()) == [
            f"provenance builder id is {BUILDER}, not https://ci.internal/builder"
        ]

    def test_builder_id_regexp_must_match_all_of_it(self) -> None:
        good = re.compile(r"https://github\.com/slsa-framework/.*@refs/tags/v1\.\d+\.\d+")
        assert (
            check_statement(slsa(SLSA_PROVENANCE_V02, builder_id_regexp=good), provenance_v02())
            == []
        )
        partial = re.compile(r"slsa-github-generator")
        [reason] = check_statement(
            slsa(SLSA_PROVENANCE_V02, builder_id_regexp=partial), provenance_v02()
        )
        assert "does not match 'slsa-github-generator'" in reason

    def test_build_type(self) -> None:
        rule = slsa(SLSA_PROVENANCE_V02, build_type="https://tekton.dev/chains/v2")
        [reason] = check_statement(rule, provenance_v02())
        assert "build type" in reason and "generic@v1" in reason

    def test_source_repository_from_the_config_source(self) -> None:
        rule = slsa(SLSA_PROVENANCE_V02, source_repository=REPO)
        assert check_statement(rule, provenance_v02()) == []

    def test_a_repository_with_a_longer_name_is_another_repository(self) -> None:
        rule = slsa(SLSA_PROVENANCE_V02, source_repository=REPO)
        other = provenance_v02(config_uri=f"git+{REPO}-fork@refs/heads/main")
        [reason] = check_statement(rule, other)
        assert (
            reason == f"provenance source git+{REPO}-fork@refs/heads/main is not repository {REPO}"
        )

    @pytest.mark.parametrize("suffix", ["-fork", ".github.io", ".gitx", "2"])
    def test_more_name_after_the_repository_is_not_the_repository(self, suffix: str) -> None:
        rule = slsa(SLSA_PROVENANCE_V02, source_repository=REPO)
        assert check_statement(rule, provenance_v02(config_uri=f"{REPO}{suffix}@main")) != []

    def test_materials_count_only_when_no_config_source_is_named(self) -> None:
        rule = slsa(SLSA_PROVENANCE_V02, source_repository=REPO)
        from_materials = provenance_v02(config_uri=None, materials=("https://x/dep", f"{REPO}.git"))
        assert check_statement(rule, from_materials) == []
        # A dependency of a build from elsewhere does not make it a build of this repository.
        elsewhere = provenance_v02(config_uri="git+https://github.com/evil/app@refs/heads/main")
        assert check_statement(rule, elsewhere) != []

    def test_nothing_named_at_all(self) -> None:
        rule = slsa(SLSA_PROVENANCE_V02, source_repository=REPO)
        [reason] = check_statement(rule, provenance_v02(config_uri=None, materials=()))
        assert "(none named)" in reason


class TestSlsaV1:
    def test_builder_and_build_type(self) -> None:
        rule = slsa(builder_id=BUILDER, build_type=BUILD_TYPE_V1)
        assert check_statement(rule, provenance_v1()) == []

    def test_missing_builder(self) -> None:
        document = provenance_v1()
        del document["predicate"]["runDetails"]
        assert check_statement(slsa(builder_id=BUILDER), document) == [
            f"provenance builder id is (none), not {BUILDER}"
        ]

    @pytest.mark.parametrize(
        "external",
        [
            {"workflow": {"repository": REPO}},
            {"source": f"git+{REPO}@refs/tags/v1.0"},
            {"source": {"uri": f"{REPO}.git"}},
            {"repository": f"{REPO}/"},
            {"configSource": {"uri": f"{REPO}.git#refs/heads/main"}},
        ],
    )
    def test_source_repository_from_external_parameters(self, external: dict[str, Any]) -> None:
        rule = slsa(source_repository=REPO)
        assert check_statement(rule, provenance_v1(external=external)) == []

    def test_source_repository_from_resolved_dependencies(self) -> None:
        rule = slsa(source_repository=f"{REPO}.git")
        document = provenance_v1(external={}, dependencies=(f"git+{REPO}@refs/heads/main",))
        assert check_statement(rule, document) == []

    def test_every_failed_condition_is_reported(self) -> None:
        rule = slsa(builder_id="b", build_type="t", source_repository="https://github.com/x/y")
        assert len(check_statement(rule, provenance_v1())) == 3


def trivy(*severities: str) -> dict[str, Any]:
    return {
        "SchemaVersion": 2,
        "ArtifactName": "registry.internal/app",
        "Results": [
            {"Target": "app (debian 12.5)", "Class": "os-pkgs"},
            {
                "Target": "Java",
                "Class": "lang-pkgs",
                "Vulnerabilities": [
                    {
                        "VulnerabilityID": f"CVE-2024-{index:04d}",
                        "PkgName": "log4j-core",
                        "InstalledVersion": "2.14.1",
                        "Severity": severity,
                    }
                    for index, severity in enumerate(severities)
                ],
            },
        ],
    }


def grype(*severities: str) -> dict[str, Any]:
    return {
        "matches": [
            {
                "vulnerability": {"id": f"GHSA-{index}", "severity": severity},
                "artifact": {"name": "xz-utils", "version": "5.6.0-0.2"},
            }
            for index, severity in enumerate(severities)
        ],
        "source": {"type": "image"},
    }


def vuln_statement(result: object) -> dict[str, Any]:
    return statement(
        COSIGN_VULN,
        {
            "invocation": {"uri": "", "event_id": "", "builder.id": ""},
            "scanner": {"uri": "pkg:github/aquasecurity/trivy@0.50.0", "result": result},
            "metadata": {"scanStartedOn": "2024-04-01T00:00:00Z"},
        },
    )


def max_severity(level: Any) -> AttestationRule:
    return AttestationRule(COSIGN_VULN, vuln=VulnRule(level))


class TestVulnerabilityScans:
    def test_trivy_findings_at_or_below_the_maximum_hold(self) -> None:
        assert check_statement(max_severity("high"), vuln_statement(trivy("LOW", "HIGH"))) == []

    def test_trivy_findings_above_the_maximum_fail_and_are_named(self) -> None:
        [reason] = check_statement(
            max_severity("medium"), vuln_statement(trivy("LOW", "CRITICAL", "HIGH"))
        )
        assert reason == (
            "vulnerability scan (trivy) lists 2 findings above medium: CVE-2024-0001 "
            "(critical, log4j-core 2.14.1), CVE-2024-0002 (high, log4j-core 2.14.1)"
        )

    def test_grype_shape(self) -> None:
        assert check_statement(max_severity("high"), vuln_statement(grype("Medium"))) == []
        [reason] = check_statement(max_severity("high"), vuln_statement(grype("Critical")))
        assert reason.startswith("vulnerability scan (grype) lists 1 finding above high: GHSA-0")
        assert "xz-utils 5.6.0-0.2" in reason

    def test_none_means_no_finding_at_all(self) -> None:
        assert check_statement(max_severity("none"), vuln_statement(trivy())) == []
        assert check_statement(max_severity("none"), vuln_statement(grype("Negligible"))) != []
        assert check_statement(max_severity("low"), vuln_statement(trivy("UNKNOWN"))) == []

    def test_many_findings_are_counted_not_all_listed(self) -> None:
        [reason] = check_statement(max_severity("low"), vuln_statement(trivy(*["HIGH"] * 7)))
        assert reason.endswith("(and 4 more)")

    def test_a_result_stored_as_a_json_string_is_read(self) -> None:
        text = json.dumps(grype("High"))
        assert check_statement(max_severity("medium"), vuln_statement(text)) != []

    @pytest.mark.parametrize(
        "result",
        [
            {"runs": [{"tool": "sarif"}]},
            None,
            "not json",
            {"matches": "nope"},
            {"Results": [{"Vulnerabilities": [{"VulnerabilityID": "x", "Severity": "SEVERE"}]}]},
        ],
    )
    def test_an_unreadable_result_is_a_violation(self, result: object) -> None:
        [reason] = check_statement(max_severity("critical"), vuln_statement(result))
        assert reason.startswith("vulnerability scan result could not be read")
