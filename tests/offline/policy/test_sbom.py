"""SBOM bans: which packages an SPDX or CycloneDX attestation lists, and which are banned."""

from __future__ import annotations

import json
from typing import Any

import pytest

from offline.policy.sbom import (
    BannedPackage,
    SbomRule,
    check_sbom,
    parse_purl,
    read_packages,
)
from offline.policy.versions import parse_range

SPDX = "https://spdx.dev/Document"
CYCLONEDX = "https://cyclonedx.org/bom"
LOG4J_PURL = "pkg:maven/org.apache.logging.log4j/log4j-core@2.14.1"


def name_ban(name: str, versions: str | None = None) -> BannedPackage:
    return BannedPackage(name=name, versions=parse_range(versions) if versions else None)


def purl_ban(purl: str, versions: str | None = None) -> BannedPackage:
    return BannedPackage(
        purl=parse_purl(purl), versions=parse_range(versions) if versions else None
    )


def rule(*bans: BannedPackage) -> SbomRule:
    return SbomRule(banned_packages=bans)


def spdx2(*packages: tuple[str, str | None, str | None]) -> dict[str, Any]:
    entries = []
    for name, version, purl in packages:
        entry: dict[str, Any] = {"SPDXID": f"SPDXRef-{name}", "name": name}
        if version is not None:
            entry["versionInfo"] = version
        if purl is not None:
            entry["externalRefs"] = [
                {
                    "referenceCategory": "PACKAGE-MANAGER",
                    "referenceType": "purl",
                    "referenceLocator": purl,
                }
            ]
        entries.append(entry)
    return {"spdxVersion": "SPDX-2.3", "SPDXID": "SPDXRef-DOCUMENT", "packages": entries}


SPDX_WITH_LOG4J = spdx2(
    ("log4j-core", "2.14.1", LOG4J_PURL),
    ("xz-utils", "5.6.0-0.2", "pkg:deb/debian/xz-utils@5.6.0-0.2?arch=amd64&distro=debian-12"),
    ("openssl", "3.0.13-1~deb12u1", "pkg:deb/debian/openssl@3.0.13-1~deb12u1"),
)


def cyclonedx(components: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "bomFormat": "CycloneDX",
        "specVersion": "1.5",
        "metadata": {"component": {"type": "container", "name": "registry.internal/app"}},
        "components": components,
    }


class TestSpdx2:
    def test_a_package_banned_by_name_in_any_version(self) -> None:
        assert check_sbom(rule(name_ban("log4j-core")), SPDX, SPDX_WITH_LOG4J) == [
            "SBOM lists banned package log4j-core 2.14.1 (rule: log4j-core)"
        ]

    def test_a_package_banned_by_name_and_version_range(self) -> None:
        assert check_sbom(rule(name_ban("log4j-core", "<2.17.1")), SPDX, SPDX_WITH_LOG4J) == [
            "SBOM lists banned package log4j-core 2.14.1 (rule: log4j-core <2.17.1)"
        ]

    def test_a_version_outside_the_range_is_not_banned(self) -> None:
        fixed = spdx2(("log4j-core", "2.17.10", None))
        assert check_sbom(rule(name_ban("log4j-core", "<2.17.1")), SPDX, fixed) == []

    def test_a_debian_revision_inside_a_range(self) -> None:
        reasons = check_sbom(rule(name_ban("xz-utils", ">=5.6.0,<5.6.2")), SPDX, SPDX_WITH_LOG4J)
        assert reasons == [
            "SBOM lists banned package xz-utils 5.6.0-0.2 (rule: xz-utils >=5.6.0,<5.6.2)"
        ]

    def test_a_package_banned_by_purl_with_version(self) -> None:
        assert check_sbom(rule(purl_ban(LOG4J_PURL)), SPDX, SPDX_WITH_LOG4J) == [
            f"SBOM lists banned package log4j-core 2.14.1 (rule: {LOG4J_PURL})"
        ]

    def test_a_purl_ban_with_another_version_does_not_match(self) -> None:
        ban = purl_ban("pkg:maven/org.apache.logging.log4j/log4j-core@2.15.0")
        assert check_sbom(rule(ban), SPDX, SPDX_WITH_LOG4J) == []

    def test_a_purl_ban_ignores_qualifiers_and_may_carry_a_range(self) -> None:
        ban = purl_ban("pkg:deb/debian/xz-utils?arch=arm64", ">=5.6.0,<5.6.2")
        assert len(check_sbom(rule(ban), SPDX, SPDX_WITH_LOG4J)) == 1

    def test_a_purl_ban_needs_the_same_namespace(self) -> None:
        ban = purl_ban("pkg:maven/org.example/log4j-core")
        assert check_sbom(rule(ban), SPDX, SPDX_WITH_LOG4J) == []

    def test_a_name_ban_may_name_the_purl_namespace_as_group(self) -> None:
        ban = name_ban("org.apache.logging.log4j:log4j-core")
        assert len(check_sbom(rule(ban), SPDX, SPDX_WITH_LOG4J)) == 1

    def test_names_match_regardless_of_case(self) -> None:
        assert len(check_sbom(rule(name_ban("Log4J-Core")), SPDX, SPDX_WITH_LOG4J)) == 1

    def test_every_banned_package_is_reported_once(self) -> None:
        doubled = spdx2(("log4j-core", "2.14.1", None), ("log4j-core", "2.14.1", None))
        bans = rule(name_ban("log4j-core"), name_ban("openssl"))
        assert len(check_sbom(bans, SPDX, doubled)) == 1

    def test_no_version_with_a_version_condition_is_reported(self) -> None:
        unknown = spdx2(("log4j-core", "NOASSERTION", None))
        [reason] = check_sbom(rule(name_ban("log4j-core", "<2.17.1")), SPDX, unknown)
        assert "log4j-core with no version" in reason

    def test_the_version_may_come_from_the_purl(self) -> None:
        versionless = spdx2(("log4j-core", None, LOG4J_PURL))
        assert len(check_sbom(rule(name_ban("log4j-core", "<2.17.1")), SPDX, versionless)) == 1

    def test_cosign_type_spdx_stores_the_document_as_a_json_string(self) -> None:
        as_text = json.dumps(SPDX_WITH_LOG4J)
        assert len(check_sbom(rule(name_ban("log4j-core")), SPDX, as_text)) == 1


class TestSpdxOtherForms:
    def test_tag_value(self) -> None:
        document = "\n".join(
            [
                "SPDXVersion: SPDX-2.3",
                "DocumentComment: <text>PackageName: not-a-package",
                "</text>",
                "PackageName: log4j-core",
                "PackageVersion: 2.14.1",
                f"ExternalRef: PACKAGE-MANAGER purl {LOG4J_PURL}",
                "PackageName: zlib",
                "PackageVersion: 1.3",
            ]
        )
        packages = read_packages(SPDX, document)
        assert [str(p) for p in packages] == ["log4j-core 2.14.1", "zlib 1.3"]
        assert check_sbom(rule(purl_ban(LOG4J_PURL)), SPDX, document) != []

    def test_spdx3_json_ld(self) -> None:
        document = {
            "@context": "https://spdx.org/rdf/3.0.1/spdx-context.jsonld",
            "@graph": [
                {"type": "CreationInfo", "@id": "_:creationinfo"},
                {
                    "type": "software_Package",
                    "spdxId": "urn:pkg-log4j",
                    "name": "log4j-core",
                    "software_packageVersion": "2.14.1",
                    "externalIdentifier": [
                        {
                            "type": "ExternalIdentifier",
                            "externalIdentifierType": "packageUrl",
                            "identifier": LOG4J_PURL,
                        }
                    ],
                },
            ],
        }
        assert check_sbom(rule(name_ban("log4j-core", "<2.17.1")), SPDX, document) != []
        assert check_sbom(rule(purl_ban(LOG4J_PURL)), SPDX, document) != []


class TestCycloneDx:
    def test_a_nested_component_is_found(self) -> None:
        document = cyclonedx(
            [
                {
                    "type": "application",
                    "name": "app.jar",
                    "version": "1.0",
                    "components": [
                        {
                            "type": "library",
                            "group": "org.apache.logging.log4j",
                            "name": "log4j-core",
                            "version": "2.14.1",
                            "purl": LOG4J_PURL,
                        }
                    ],
                }
            ]
        )
        assert check_sbom(rule(name_ban("log4j-core", "<2.17.1")), CYCLONEDX, document) == [
            "SBOM lists banned package log4j-core 2.14.1 (rule: log4j-core <2.17.1)"
        ]
        assert len(check_sbom(rule(purl_ban(LOG4J_PURL)), CYCLONEDX, document)) == 1

    def test_group_and_name_together(self) -> None:
        document = cyclonedx([{"group": "@angular", "name": "core", "version": "11.0.0"}])
        assert len(check_sbom(rule(name_ban("@angular/core", "<11.0.5")), CYCLONEDX, document)) == 1
        assert check_sbom(rule(name_ban("@other/core")), CYCLONEDX, document) == []

    def test_a_clean_sbom_holds(self) -> None:
        document = cyclonedx([{"name": "zlib", "version": "1.3"}])
        assert check_sbom(rule(name_ban("log4j-core")), CYCLONEDX, document) == []


class TestUnreadableSboms:
    @pytest.mark.parametrize(
        ("predicate_type", "predicate", "message"),
        [
            (SPDX, {"hello": "world"}, "SPDX SBOM could not be read"),
            (SPDX, ["a list"], "not a JSON object"),
            (SPDX, {"spdxVersion": "SPDX-2.3", "packages": "many"}, "packages is not a list"),
            (CYCLONEDX, "<bom xmlns='http://cyclonedx.org/schema/bom/1.5'/>", "not JSON"),
            (CYCLONEDX, {"bomFormat": "SPDX"}, "CycloneDX SBOM could not be read"),
            ("https://example.com/other", {}, "not an SPDX or CycloneDX SBOM"),
        ],
    )
    def test_an_unreadable_sbom_is_a_violation(
        self, predicate_type: str, predicate: object, message: str
    ) -> None:
        [reason] = check_sbom(rule(name_ban("log4j-core")), predicate_type, predicate)
        assert message in reason


class TestPurls:
    def test_parts_are_decoded(self) -> None:
        purl = parse_purl("pkg:npm/%40angular/core@11.0.0?vcs_url=x#sub/path")
        assert (purl.type, purl.namespace, purl.name, purl.version) == (
            "npm",
            "@angular",
            "core",
            "11.0.0",
        )

    def test_case_insensitive_types_are_normalised(self) -> None:
        assert parse_purl("pkg:PyPI/Django_REST.framework@3.0").name == "django-rest-framework"
        assert parse_purl("pkg:github/Package-URL/Purl-Spec").same_package(
            parse_purl("pkg:github/package-url/purl-spec@244fd47")
        )

    def test_case_sensitive_types_are_kept(self) -> None:
        assert not parse_purl("pkg:maven/org.Example/Lib").same_package(
            parse_purl("pkg:maven/org.example/lib")
        )

    @pytest.mark.parametrize("text", ["log4j-core", "pkg:maven", "pkg:/"])
    def test_malformed(self, text: str) -> None:
        with pytest.raises(ValueError):
            parse_purl(text)

    def test_a_ban_has_exactly_one_of_name_and_purl(self) -> None:
        with pytest.raises(ValueError):
            BannedPackage()
        with pytest.raises(ValueError):
            BannedPackage(name="a", purl=parse_purl("pkg:npm/a"))
