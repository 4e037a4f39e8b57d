"""The policy file `airgap verify` applies: its format, its errors, and which policy an image gets.

Every bad file is refused with one line naming the file and the place in it, so an operator can
fix it without reading the source.
"""

from __future__ import annotations

import textwrap
from datetime import timedelta
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from offline.cli.signer_flags import policy_from_flags
from offline.errors import UsageError
from offline.oci.imageref import parse_reference
from offline.policy.policy_file import (
    ImagePolicy,
    PolicyFile,
    SignerRule,
    check_statement,
    image_name,
    load_policy_file,
    parse_duration,
    parse_policy,
)
from tests.offline.trust.test_signers import BUILDER, K8S_ISSUER, fulcio_cert

GOOD = """\
apiVersion: airgap.dev/v1
kind: ImagePolicy
policies:
  - name: platform-images
    images: ["registry.internal:5000/platform/**", "oci:**"]
    signers:
      - issuer: https://kubernetes.default.svc
        subject: https://kubernetes.io/namespaces/ci/serviceaccounts/builder
      - key: keys/release.pub
    attestations:
      - predicateType: https://slsa.dev/provenance/v1
        slsa:
          builderIdRegExp: https://ci\\.internal/builders/.*
          buildType: https://ci.internal/buildtypes/container/v1
          sourceRepository: https://git.internal/platform/app
      - predicateType: spdx
        sbom:
          bannedPackages:
            - {name: log4j-core, versions: "<2.17.1"}
            - {purl: "pkg:maven/org.apache.logging.log4j/log4j-core@2.14.1"}
            - {name: xz-utils, versions: ">=5.6.0,<5.6.2"}
      - predicateType: cyclonedx
        sbom:
          bannedPackages: [{name: xz-utils}]
      - predicateType: vuln
        vuln: {maxSeverity: high}
    tlog: required
    pinning: require
    maxCheckpointAge: 7d
  - name: third-party
    images: ["docker.io/library/*"]
    signers:
      - issuerRegExp: https://token\\.actions\\.githubusercontent\\.com
        subjectRegExp: https://github\\.com/acme/.*
    tlog: ignore
    pinning: off
"""


@pytest.fixture
def site(tmp_path: Path) -> Path:
    """A directory with a release key under keys/, as policies name it."""
    (tmp_path / "keys").mkdir()
    key = ec.generate_private_key(ec.SECP256R1()).public_key()
    (tmp_path / "keys" / "release.pub").write_bytes(
        key.public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)
    )
    return tmp_path


def write(site: Path, text: str) -> Path:
    path = site / "policy.yaml"
    path.write_text(textwrap.dedent(text))
    return path


def minimal(**extra: str) -> str:
    """A valid one-policy file with `extra` lines spliced into the policy."""
    lines = [
        "apiVersion: airgap.dev/v1",
        "kind: ImagePolicy",
        "policies:",
        "  - name: p",
        '    images: ["registry.internal/**"]',
        "    signers:",
        "      - {issuer: https://issuer.internal, subject: builder@internal}",
    ]
    lines += [f"    {key}: {value}" for key, value in extra.items()]
    return "\n".join(lines) + "\n"


class TestAGoodFile:
    def test_it_parses_into_policies_in_order(self, site: Path) -> None:
        policies = load_policy_file(write(site, GOOD))
        assert [p.name for p in policies.policies] == ["platform-images", "third-party"]
        platform = policies.policies[0]
        assert platform.images == ("registry.internal:5000/platform/**", "oci:**")
        assert platform.tlog == "required"
        assert platform.pinning == "require"
        assert platform.max_checkpoint_age == timedelta(days=7)

    def test_signers_are_identities_or_keys_read_relative_to_the_file(self, site: Path) -> None:
        keyless, keyed = load_policy_file(write(site, GOOD)).policies[0].signers
        assert keyless.issuer == K8S_ISSUER and keyless.subject == BUILDER
        assert keyed.key_path == Path("keys/release.pub")
        assert keyed.public_key is not None
        release = (site / "keys" / "release.pub").read_bytes()
        assert keyed.public_key.public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo) == (
            release
        )

    def test_attestation_aliases_become_predicate_type_uris(self, site: Path) -> None:
        rules = load_policy_file(write(site, GOOD)).policies[0].attestations
        assert [rule.predicate_type for rule in rules] == [
            "https://slsa.dev/provenance/v1",
            "https://spdx.dev/Document",
            "https://cyclonedx.org/bom",
            "https://cosign.sigstore.dev/attestation/vuln/v1",
        ]
        slsa = rules[0].slsa
        assert slsa is not None and slsa.builder_id_regexp is not None
        assert slsa.builder_id_regexp.pattern == r"https://ci\.internal/builders/.*"
        sbom = rules[1].sbom
        assert sbom is not None
        assert [str(ban) for ban in sbom.banned_packages] == [
            "log4j-core <2.17.1",
            "pkg:maven/org.apache.logging.log4j/log4j-core@2.14.1",
            "xz-utils >=5.6.0,<5.6.2",
        ]
        assert rules[3].vuln is not None and rules[3].vuln.max_severity == "high"

    def test_defaults_and_unquoted_off(self, site: Path) -> None:
        third_party = load_policy_file(write(site, GOOD)).policies[1]
        assert third_party.attestations == ()
        assert third_party.tlog == "ignore"
        assert third_party.pinning == "off"  # YAML 1.1 would have read `off` as false
        assert third_party.max_checkpoint_age is None
        default = parse_policy(minimal(), site / "p.yaml").policies[0]
        assert (default.tlog, default.pinning) == ("required", None)

    def test_a_policys_rules_apply_to_statements(self, site: Path) -> None:
        spdx_rule = load_policy_file(write(site, GOOD)).policies[0].attestations[1]
        statement = {
            "_type": "https://in-toto.io/Statement/v0.1",
            "subject": [],
            "predicateType": "https://spdx.dev/Document",
            "predicate": {
                "spdxVersion": "SPDX-2.3",
                "packages": [{"name": "log4j-core", "versionInfo": "2.14.1"}],
            },
        }
        # No purl in this SBOM, so only the name ban applies.
        assert check_statement(spdx_rule, statement) == [
            "SBOM lists banned package log4j-core 2.14.1 (rule: log4j-core <2.17.1)"
        ]

    def test_signers_check_real_certificates(self, site: Path) -> None:
        policy = load_policy_file(write(site, GOOD)).for_image("registry.internal:5000/platform/a")
        assert policy is not None
        assert policy.signer_policy().certificate_problem(fulcio_cert()) is None
        wrong = fulcio_cert(uris=("https://kubernetes.io/namespaces/ci/serviceaccounts/intruder",))
        problem = policy.signer_policy().certificate_problem(wrong)
        assert problem is not None and "intruder" in problem


class TestWhichPolicyAnImageGets:
    @pytest.fixture
    def policies(self, site: Path) -> PolicyFile:
        text = """\
            apiVersion: airgap.dev/v1
            kind: ImagePolicy
            policies:
              - name: critical
                images: ["registry.internal:5000/platform/payments/*"]
                signers: [{key: keys/release.pub}]
              - name: platform
                images: ["registry.internal:5000/platform/**"]
                signers: [{issuer: https://i, subject: s}]
              - name: tools
                images: ["registry.internal:5000/tools/?q", "registry.internal:5000/**/base"]
                signers: [{issuer: https://i, subject: s}]
              - name: hub
                images: ["docker.io/library/*"]
                signers: [{issuer: https://i, subject: s}]
              - name: layouts
                images: ["oci:/mnt/bundle/**"]
                signers: [{issuer: https://i, subject: s}]
            """
        return load_policy_file(write(site, text))

    @pytest.mark.parametrize(
        ("reference", "expected"),
        [
            # The first policy that matches wins, even when a later one matches too.
            ("registry.internal:5000/platform/payments/api:1.2", "critical"),
            ("registry.internal:5000/platform/payments/api@sha256:" + "a" * 64, "critical"),
            # `*` stays within a segment; `**` crosses them.
            ("registry.internal:5000/platform/payments/api/worker:1", "platform"),
            ("registry.internal:5000/platform/web", "platform"),
            ("registry.internal:5000/tools/jq", "tools"),
            ("registry.internal:5000/base", "tools"),  # `**/` also matches no segment
            ("registry.internal:5000/a/b/base:3", "tools"),
            # Names are canonical: docker.io and library/ are filled in as docker does it.
            ("nginx:1.25", "hub"),
            ("docker.io/library/nginx", "hub"),
            ("oci:/mnt/bundle/images:app", "layouts"),
            ("oci:/mnt/bundle/images@sha256:" + "b" * 64, "layouts"),
        ],
    )
    def test_first_match_wins(self, policies: PolicyFile, reference: str, expected: str) -> None:
        policy = policies.for_image(reference)
        assert policy is not None and policy.name == expected

    @pytest.mark.parametrize(
        "reference",
        [
            "registry.internal:5000/tools/jjq",  # `?` is exactly one character
            "registry.internal:5000/platform",  # `platform/**` needs something below platform/
            "registry.internal/platform/web",  # another registry (no port)
            "docker.io/acme/app",
            "oci:/mnt/other",
        ],
    )
    def test_no_match_means_no_policy(self, policies: PolicyFile, reference: str) -> None:
        assert policies.for_image(reference) is None

    def test_a_parsed_reference_works_too(self, policies: PolicyFile) -> None:
        policy = policies.for_image(parse_reference("registry.internal:5000/platform/x:1"))
        assert policy is not None and policy.name == "platform"

    def test_image_names_drop_tag_and_digest(self) -> None:
        assert image_name("nginx:1.25") == "docker.io/library/nginx"
        assert image_name("localhost:5000/app@sha256:" + "c" * 64) == "localhost:5000/app"
        assert image_name("oci:./bundle:app") == "oci:bundle"


def error(site: Path, text: str) -> str:
    path = write(site, text)
    with pytest.raises(UsageError) as caught:
        load_policy_file(path)
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith(f"policy {path}: ")
    return message[len(f"policy {path}: ") :]


class TestBadFiles:
    def test_not_yaml(self, site: Path) -> None:
        message = error(site, "policies: [unclosed\n")
        assert message.startswith("not valid YAML: ") and "line 2" in message

    def test_empty(self, site: Path) -> None:
        assert error(site, "") == "the file is empty; it needs apiVersion, kind and policies"

    def test_not_a_mapping(self, site: Path) -> None:
        assert error(site, "- a\n- b\n").startswith("expected a mapping with apiVersion")

    def test_wrong_api_version(self, site: Path) -> None:
        text = minimal().replace("airgap.dev/v1", "airgap.dev/v2")
        assert (
            error(site, text) == "apiVersion: expected airgap.dev/v1, got the text 'airgap.dev/v2'"
        )

    def test_wrong_kind(self, site: Path) -> None:
        text = minimal().replace("kind: ImagePolicy", "kind: ClusterImagePolicy")
        assert error(site, text).startswith("kind: expected ImagePolicy")

    def test_unknown_top_level_key(self, site: Path) -> None:
        assert error(site, minimal() + "metadata: {}\n") == (
            "unknown key 'metadata' (allowed: apiVersion, kind, policies)"
        )

    def test_unknown_key_deep_inside_names_its_path(self, site: Path) -> None:
        text = minimal().replace("{issuer: https://issuer.internal,", "{isuer: https://i,")
        assert error(site, text) == (
            "policies[0].signers[0]: unknown key 'isuer' "
            "(allowed: issuer, issuerRegExp, subject, subjectRegExp, key)"
        )

    def test_duplicate_keys(self, site: Path) -> None:
        message = error(site, minimal(tlog="required") + "    tlog: ignore\n")
        assert "duplicate key 'tlog'" in message and "line 9" in message

    def test_missing_required_key(self, site: Path) -> None:
        text = minimal().replace('    images: ["registry.internal/**"]\n', "")
        assert error(site, text) == "policies[0]: missing images"

    def test_empty_lists(self, site: Path) -> None:
        text = minimal().replace('["registry.internal/**"]', "[]")
        assert error(site, text) == "policies[0].images: is empty"

    def test_wrong_type(self, site: Path) -> None:
        assert error(site, minimal(tlog="[required]")) == (
            "policies[0].tlog: expected one of required, ignore; got a list"
        )

    def test_a_number_where_text_belongs_says_to_quote_it(self, site: Path) -> None:
        bans = "[{name: a, versions: 2.17}]"
        text = minimal(attestations=f"[{{predicateType: spdx, sbom: {{bannedPackages: {bans}}}}}]")
        assert error(site, text) == (
            "policies[0].attestations[0].sbom.bannedPackages[0].versions: "
            "expected text; got the number 2.17 (quote it)"
        )

    def test_duplicate_policy_names(self, site: Path) -> None:
        text = minimal() + minimal().split("policies:\n", 1)[1]
        assert error(site, text) == "policies[1].name: 'p' is used twice"

    @pytest.mark.parametrize(
        ("pattern", "message"),
        [
            ("registry.internal/app:1.0", "has a tag or digest"),
            ("registry.internal/app@sha256:abc", "has a tag or digest"),
            ("nginx", "can never match: images are matched by full name"),
            ("registry.internal/my app", "contains white space"),
        ],
    )
    def test_bad_image_patterns(self, site: Path, pattern: str, message: str) -> None:
        text = minimal().replace("registry.internal/**", pattern)
        assert message in error(site, text)


class TestBadSigners:
    def signers(self, site: Path, *entries: str) -> str:
        text = minimal().replace(
            "      - {issuer: https://issuer.internal, subject: builder@internal}\n",
            "".join(f"      - {entry}\n" for entry in entries),
        )
        return error(site, text)

    def test_exact_and_regexp_together(self, site: Path) -> None:
        message = self.signers(site, "{issuer: https://i, issuerRegExp: https://.*, subject: s}")
        assert message == "policies[0].signers[0]: give issuer or issuerRegExp, not both"

    def test_a_keyless_signer_needs_a_subject(self, site: Path) -> None:
        message = self.signers(site, "{issuer: https://i}")
        assert message.startswith("policies[0].signers[0]: a signer needs a key, or subject")

    def test_an_invalid_regular_expression(self, site: Path) -> None:
        message = self.signers(site, "{issuer: https://i, subjectRegExp: 'a(b'}")
        assert message.startswith(
            "policies[0].signers[0].subjectRegExp: not a valid regular expression"
        )

    def test_key_and_identity_together(self, site: Path) -> None:
        message = self.signers(site, "{key: keys/release.pub, issuer: https://i, subject: s}")
        assert message.endswith("a signer is either a key or an issuer and subject, not both")

    def test_a_missing_key_file(self, site: Path) -> None:
        message = self.signers(site, "{key: keys/missing.pub}")
        assert message == f"policies[0].signers[0].key: key {site}/keys/missing.pub does not exist"

    def test_a_key_file_that_is_not_a_key(self, site: Path) -> None:
        (site / "keys" / "junk.pub").write_text("hello\n")
        message = self.signers(site, "{key: keys/junk.pub}")
        assert message.endswith("not a PEM or DER public key")


class TestBadAttestations:
    def attestations(self, site: Path, value: str) -> str:
        return error(site, minimal(attestations=value))

    def test_conditions_that_do_not_fit_the_predicate_type(self, site: Path) -> None:
        message = self.attestations(site, "[{predicateType: spdx, slsa: {builderId: b}}]")
        assert message == (
            "policies[0].attestations[0]: slsa conditions need a SLSA provenance type, "
            "not https://spdx.dev/Document"
        )

    def test_a_predicate_type_twice(self, site: Path) -> None:
        message = self.attestations(
            site, "[{predicateType: spdx}, {predicateType: 'https://spdx.dev/Document'}]"
        )
        assert message.startswith("policies[0].attestations[1].predicateType: ")
        assert "listed twice" in message

    def test_empty_slsa_conditions(self, site: Path) -> None:
        message = self.attestations(site, "[{predicateType: slsaprovenance1, slsa: {}}]")
        assert message.startswith("policies[0].attestations[0].slsa: no conditions")

    def test_builder_id_and_its_regexp_together(self, site: Path) -> None:
        message = self.attestations(
            site, "[{predicateType: slsaprovenance, slsa: {builderId: a, builderIdRegExp: b}}]"
        )
        assert message.endswith("give builderId or builderIdRegExp, not both")

    @pytest.mark.parametrize(
        ("ban", "message"),
        [
            ("{name: a, purl: 'pkg:npm/a'}", "[0]: a banned package needs exactly one of name"),
            ("{versions: '<1'}", "[0]: a banned package needs exactly one of name"),
            ("{name: a, versions: '=>1'}", "[0].versions: '=>1' is not a comparison"),
            ("{purl: log4j}", "[0].purl: 'log4j' is not a package URL"),
            ("{purl: 'pkg:npm/a@1', versions: '<2'}", "[0]: the purl has a version"),
            ("{name: a, version: '<2'}", "[0]: unknown key 'version'"),
        ],
    )
    def test_bad_bans(self, site: Path, ban: str, message: str) -> None:
        full = self.attestations(
            site, f"[{{predicateType: spdx, sbom: {{bannedPackages: [{ban}]}}}}]"
        )
        assert full.startswith("policies[0].attestations[0].sbom.bannedPackages")
        assert message in full

    def test_an_unknown_severity(self, site: Path) -> None:
        message = self.attestations(site, "[{predicateType: vuln, vuln: {maxSeverity: severe}}]")
        assert message == (
            "policies[0].attestations[0].vuln.maxSeverity: expected one of none, low, medium, "
            "high, critical; got the text 'severe'"
        )


class TestOtherSettings:
    @pytest.mark.parametrize("value", ["7", "7w", "0d", "-1d", "'1d 2h'", "9999999999999d"])
    def test_bad_max_checkpoint_age(self, site: Path, value: str) -> None:
        message = error(site, minimal(maxCheckpointAge=value))
        assert message.startswith("policies[0].maxCheckpointAge: ")

    def test_bad_pinning(self, site: Path) -> None:
        assert error(site, minimal(pinning="always")) == (
            "policies[0].pinning: expected one of require, warn, off; got the text 'always'"
        )

    @pytest.mark.parametrize(
        ("text", "expected"),
        [
            ("90s", timedelta(seconds=90)),
            ("30m", timedelta(minutes=30)),
            ("12h", timedelta(hours=12)),
            ("7d", timedelta(days=7)),
        ],
    )
    def test_durations(self, text: str, expected: timedelta) -> None:
        assert parse_duration(text) == expected

    def test_a_missing_policy_file(self, tmp_path: Path) -> None:
        with pytest.raises(UsageError, match=r"policy .*nope\.yaml does not exist"):
            load_policy_file(tmp_path / "nope.yaml")

    def test_a_file_that_is_not_text(self, tmp_path: Path) -> None:
        path = tmp_path / "policy.yaml"
        path.write_bytes(b"\xff\xfe\x00")
        with pytest.raises(UsageError, match="not UTF-8"):
            load_policy_file(path)


class TestPolicyFromFlags:
    def test_identity_and_issuer(self) -> None:
        policy = policy_from_flags(certificate_identity=BUILDER, certificate_oidc_issuer=K8S_ISSUER)
        assert policy.signers == (SignerRule(issuer=K8S_ISSUER, subject=BUILDER),)
        assert policy.tlog == "required"
        assert policy.signer_policy().certificate_problem(fulcio_cert()) is None

    def test_it_matches_every_image(self) -> None:
        policy = policy_from_flags(
            certificate_identity_regexp=".*", certificate_oidc_issuer_regexp=".*"
        )
        for reference in ("nginx", "registry.internal:5000/a/b/c:1", "oci:/mnt/x:app"):
            assert policy.matches(reference)

    def test_regexps_match_the_whole_value(self) -> None:
        policy = policy_from_flags(
            certificate_identity_regexp="https://kubernetes.io/namespaces/ci/.*",
            certificate_oidc_issuer_regexp=r"https://kubernetes\.default\.svc",
        )
        assert policy.signer_policy().certificate_problem(fulcio_cert()) is None
        narrower = policy_from_flags(
            certificate_identity_regexp="namespaces/ci", certificate_oidc_issuer=K8S_ISSUER
        )
        assert narrower.signer_policy().certificate_problem(fulcio_cert()) is not None

    def test_a_key(self, site: Path) -> None:
        policy = policy_from_flags(key=site / "keys" / "release.pub", insecure_ignore_tlog=True)
        [signer] = policy.signers
        assert not signer.keyless and signer.public_key is not None
        assert policy.signer_policy().accepted_keys() == (signer.public_key,)
        assert policy.tlog == "ignore"

    def test_pinning_and_age_pass_through(self) -> None:
        policy = policy_from_flags(
            certificate_identity="s",
            certificate_oidc_issuer="https://i",
            pinning="warn",
            max_checkpoint_age=timedelta(hours=1),
        )
        assert (policy.pinning, policy.max_checkpoint_age) == ("warn", timedelta(hours=1))

    @pytest.mark.parametrize(
        ("flags", "message"),
        [
            ({}, "say who must have signed: --key FILE, or --certificate-identity"),
            ({"certificate_identity": "s"}, "say who must have signed"),
            (
                {"certificate_identity": "s", "certificate_identity_regexp": "s.*"},
                "give --certificate-identity or --certificate-identity-regexp, not both",
            ),
            (
                {"certificate_oidc_issuer": "https://i", "certificate_identity_regexp": "("},
                "--certificate-identity-regexp: not a valid regular expression",
            ),
            (
                {"key": "k.pub", "certificate_identity": "s"},
                "give --key or the --certificate-identity/--certificate-oidc-issuer flags",
            ),
            ({"key": "/nonexistent/k.pub"}, "key /nonexistent/k.pub does not exist"),
        ],
    )
    def test_bad_flags(self, flags: dict[str, str], message: str) -> None:
        with pytest.raises(UsageError) as caught:
            policy_from_flags(**flags)  # type: ignore[arg-type]
        assert message in str(caught.value)


def test_an_image_policy_is_a_plain_value() -> None:
    signer = SignerRule(issuer="https://i", subject="s")
    policy = ImagePolicy(name="x", images=("**",), signers=(signer,))
    assert policy == ImagePolicy(name="x", images=("**",), signers=(signer,))
    assert hash(policy) == hash(ImagePolicy(name="x", images=("**",), signers=(signer,)))
