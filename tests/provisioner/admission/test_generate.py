"""`airgap policy generate`: from the policy file `airgap verify` reads, policy-controller's
TrustRoot and ClusterImagePolicy objects and a Kyverno ClusterPolicy; every rule a controller
cannot state is a note naming the policy and the rule, and never dropped in silence."""

from __future__ import annotations

import base64
import gzip
import io
import json
import subprocess
import sys
import tarfile
from pathlib import Path
from typing import Any

import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from provisioner.admission.generate import GeneratedFiles, GenerateRequest, generate
from provisioner.admission.patterns import kyverno_globs, policy_controller_globs
from provisioner.trust.build import build
from provisioner.trust.ceremony import init_repository
from provisioner.trust.layout import RepoLayout, pinned_root
from tests.provisioner.stack.sites import site_document
from tests.provisioner.trust.material import stack_targets
from tests.stack import pki

ISSUER = "https://kubernetes.default.svc.cluster.local"
SUBJECT = "https://kubernetes.io/namespaces/ci/serviceaccounts/builder"
REGISTRY = "registry.lab:5000"


@pytest.fixture(scope="module")
def trust_repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("trust") / "repo"
    init_repository(path, threshold=1, keys=1)
    build(path, stack_targets())
    return path


@pytest.fixture
def site(tmp_path: Path) -> Path:
    path = tmp_path / "site" / "site.yaml"
    path.parent.mkdir()
    path.write_text(yaml.safe_dump(site_document()))
    return path


def policy_file(directory: Path, *policies: dict[str, Any]) -> Path:
    path = directory / "images.yaml"
    document = {"apiVersion": "airgap.dev/v1", "kind": "ImagePolicy", "policies": list(policies)}
    path.write_text(yaml.safe_dump(document))
    return path


def keyless(**extra: Any) -> dict[str, Any]:
    return {"issuer": ISSUER, "subject": SUBJECT, **extra}


def platform(**extra: Any) -> dict[str, Any]:
    return {"name": "platform", "images": [f"{REGISTRY}/platform/**"], "signers": [keyless()],
            **extra}  # fmt: skip


def run(
    tmp_path: Path, site: Path, repo: Path, *policies: dict[str, Any], **options: Any
) -> GeneratedFiles:
    policy = policy_file(tmp_path, *policies)
    return generate(GenerateRequest(site, policy, repo, **options))


def cips(files: GeneratedFiles) -> dict[str, dict[str, Any]]:
    return {
        o["metadata"]["annotations"]["airgap.dev/policy"]: o
        for o in files.documents("policy-controller")
        if o["kind"] == "ClusterImagePolicy"
    }


def notes(files: GeneratedFiles, controller: str = "policy-controller") -> dict[str, str]:
    return {f"{n.policy}:{n.rule}": n.text for n in files.notes if n.controller == controller}


def authorities(cip: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {a["name"]: a for a in cip["spec"]["authorities"]}


# -- policy-controller: signers ------------------------------------------------------------------


def test_a_keyless_signer_is_an_authority_checked_against_the_sites_trust_root(
    tmp_path: Path, site: Path, trust_repo: Path
) -> None:
    files = run(tmp_path, site, trust_repo, platform())
    cip = cips(files)["platform"]
    assert cip["metadata"]["name"] == "airgap-platform"
    assert cip["spec"]["mode"] == "warn"
    (authority,) = cip["spec"]["authorities"]
    assert authority["name"] == "sig-0"
    assert authority["keyless"] == {
        "url": "http://fulcio.internal",  # the site's, not policy-controller's default
        "identities": [{"issuer": ISSUER, "subject": SUBJECT}],
        "trustRootRef": "airgap",
    }
    assert authority["ctlog"] == {"trustRootRef": "airgap"}  # the site's Rekor key
    # policy-controller v0.13.1 verifies cosign's legacy format only.
    assert "signatureFormat" not in authority
    assert "--new-bundle-format=false" in notes(files)["platform:signature format"]
    assert "policy" not in cip["spec"]  # one passing authority is enough


def test_enforce_denies_what_fails(tmp_path: Path, site: Path, trust_repo: Path) -> None:
    files = run(tmp_path, site, trust_repo, platform(), enforce=True)
    assert cips(files)["platform"]["spec"]["mode"] == "enforce"
    assert "*:mode" not in notes(files)


def test_regular_expressions_are_anchored_as_airgap_matches_the_whole_value(
    tmp_path: Path, site: Path, trust_repo: Path
) -> None:
    signer = {"issuerRegExp": "https://kubernetes\\.default\\.svc.*",
              "subjectRegExp": "https://kubernetes.io/namespaces/ci/.*"}  # fmt: skip
    files = run(tmp_path, site, trust_repo, platform(signers=[signer]))
    (identity,) = authorities(cips(files)["platform"])["sig-0"]["keyless"]["identities"]
    assert identity == {
        "issuerRegExp": "^(?:https://kubernetes\\.default\\.svc.*)$",
        "subjectRegExp": "^(?:https://kubernetes.io/namespaces/ci/.*)$",
    }


def test_a_signer_whose_expression_go_cannot_run_is_left_out_with_a_note(
    tmp_path: Path, site: Path, trust_repo: Path
) -> None:
    lookahead = {"issuer": ISSUER, "subjectRegExp": "(?!.*evil).*"}
    files = run(tmp_path, site, trust_repo, platform(signers=[lookahead, keyless()]))
    assert set(authorities(cips(files)["platform"])) == {"sig-1"}
    assert "lookaround" in notes(files)["platform:signers[0]"]


def test_with_no_signer_left_every_image_of_the_policy_is_denied(
    tmp_path: Path, site: Path, trust_repo: Path
) -> None:
    backreference = {"issuer": ISSUER, "subjectRegExp": "(a)\\1"}
    files = run(tmp_path, site, trust_repo, platform(signers=[backreference]))
    (authority,) = cips(files)["platform"]["spec"]["authorities"]
    assert authority["static"]["action"] == "fail"
    assert "denied" in notes(files)["platform:signers"]


def test_a_key_signer_is_its_public_key(tmp_path: Path, site: Path, trust_repo: Path) -> None:
    key = pki.ec_key()
    (tmp_path / "release.pub").write_bytes(pki.public_pem(key))
    files = run(tmp_path, site, trust_repo, platform(signers=[{"key": "release.pub"}]))
    (authority,) = cips(files)["platform"]["spec"]["authorities"]
    loaded = serialization.load_pem_public_key(authority["key"]["data"].encode())
    assert loaded.public_numbers() == key.public_key().public_numbers()  # type: ignore[union-attr]
    assert authority["ctlog"] == {"trustRootRef": "airgap"}


def test_tlog_ignore_drops_the_log(tmp_path: Path, site: Path, trust_repo: Path) -> None:
    files = run(tmp_path, site, trust_repo, platform(tlog="ignore"))
    assert "ctlog" not in authorities(cips(files)["platform"])["sig-0"]


# -- policy-controller: attestations -------------------------------------------------------------


def test_required_attestations_need_a_signature_and_each_attestation_to_pass(
    tmp_path: Path, site: Path, trust_repo: Path
) -> None:
    attestations = [
        {"predicateType": "slsaprovenance1",
         "slsa": {"builderId": "https://ci.internal/builder", "buildType": "https://ci/t"}},
        {"predicateType": "spdx", "sbom": {"bannedPackages": [{"name": "log4j-core"}]}},
    ]  # fmt: skip
    files = run(tmp_path, site, trust_repo, platform(attestations=attestations))
    cip = cips(files)["platform"]
    found = authorities(cip)
    assert set(found) == {"sig-0", "att0-0", "att1-0"}
    (provenance,) = found["att0-0"]["attestations"]
    assert provenance["predicateType"] == "https://slsa.dev/provenance/v1"
    assert found["att0-0"]["keyless"] == found["sig-0"]["keyless"]
    checks = provenance["policy"]["data"]
    assert provenance["policy"]["type"] == "rego"
    assert 'input.predicate.runDetails.builder.id == "https://ci.internal/builder"' in checks
    assert 'input.predicate.buildDefinition.buildType == "https://ci/t"' in checks
    (sbom,) = found["att1-0"]["attestations"]
    assert sbom["predicateType"] == "https://spdx.dev/Document" and "policy" not in sbom
    assert "banned packages" in notes(files)["platform:attestations[1].sbom"]
    everything = cip["spec"]["policy"]
    assert everything["type"] == "rego"
    for prefix in ('"sig-"', '"att0-"', '"att1-"'):
        assert f"startswith(authority, {prefix})" in everything["data"]


def test_slsa_v02_conditions_read_the_v02_fields(
    tmp_path: Path, site: Path, trust_repo: Path
) -> None:
    rule = {"predicateType": "slsaprovenance", "slsa": {"builderIdRegExp": "https://ci/.*"}}
    files = run(tmp_path, site, trust_repo, platform(attestations=[rule]))
    (provenance,) = authorities(cips(files)["platform"])["att0-0"]["attestations"]
    assert (
        'regex.match("^(?:https://ci/.*)$", input.predicate.builder.id)'
        in (provenance["policy"]["data"])
    )


def test_what_admission_cannot_check_in_an_attestation_is_a_note(
    tmp_path: Path, site: Path, trust_repo: Path
) -> None:
    attestations = [
        {"predicateType": "slsaprovenance1", "slsa": {"sourceRepository": "https://git/app"}},
        {"predicateType": "vuln", "vuln": {"maxSeverity": "high"}},
    ]
    files = run(tmp_path, site, trust_repo, platform(attestations=attestations))
    found = notes(files)
    assert "still required" in found["platform:attestations[0].slsa.sourceRepository"]
    assert "maxSeverity" in found["platform:attestations[1].vuln"]
    (provenance,) = authorities(cips(files)["platform"])["att0-0"]["attestations"]
    assert "policy" not in provenance  # nothing left it could check


def test_pinning_is_noted_on_every_policy_that_pins(
    tmp_path: Path, site: Path, trust_repo: Path
) -> None:
    off = {**platform(pinning="off"), "name": "unpinned", "images": [f"{REGISTRY}/x/*"]}
    files = run(tmp_path, site, trust_repo, platform(maxCheckpointAge="7d"), off)
    found = notes(files)
    assert "pinning" in found["platform:pinning"]
    assert found["platform:maxCheckpointAge"] == "not checked at admission"
    assert "unpinned:pinning" not in found


# -- images ------------------------------------------------------------------------------------


def test_patterns_become_globs_over_the_reference_with_its_tag_or_digest() -> None:
    assert policy_controller_globs("registry.lab:5000/app") == [
        "registry.lab:5000/app:**", "registry.lab:5000/app@**",
    ]  # fmt: skip
    assert policy_controller_globs("registry.lab:5000/team/**") == ["registry.lab:5000/team/**"]
    assert policy_controller_globs("docker.io/library/nginx")[0] == (
        "index.docker.io/library/nginx:**"
    )
    # `**/` is also zero segments in airgap: both globs.
    assert policy_controller_globs("r.lab/a/**/app") == [
        "r.lab/a/**/app:**", "r.lab/a/**/app@**", "r.lab/a/app:**", "r.lab/a/app@**",
    ]  # fmt: skip
    assert policy_controller_globs("**") == ["**"]
    assert kyverno_globs("r.lab/a/**/app") == [
        "r.lab/a/*/app:*", "r.lab/a/*/app@*", "r.lab/a/app:*", "r.lab/a/app@*",
    ]  # fmt: skip
    assert kyverno_globs("r.lab/team/*") == ["r.lab/team/*"]


def test_patterns_admission_cannot_match_are_left_out_with_a_note(
    tmp_path: Path, site: Path, trust_repo: Path
) -> None:
    images = ["oci:**", f"{REGISTRY}/app-?", f"{REGISTRY}/ok/*"]
    files = run(tmp_path, site, trust_repo, platform(images=images))
    globs = [g["glob"] for g in cips(files)["platform"]["spec"]["images"]]
    assert globs == [f"{REGISTRY}/ok/*:**", f"{REGISTRY}/ok/*@**"]
    found = notes(files)
    assert "oci:" in found["platform:images[0]"]
    assert "'?'" in found["platform:images[1]"]
    assert "denies them" in found["platform:images[1]"]


def test_a_policy_with_no_pattern_left_makes_no_object(
    tmp_path: Path, site: Path, trust_repo: Path
) -> None:
    files = run(tmp_path, site, trust_repo, platform(images=["oci:**"]))
    assert cips(files) == {}
    assert "no ClusterImagePolicy" in notes(files)["platform:images"]


def test_overlapping_policies_are_noted_since_admission_applies_every_match(
    tmp_path: Path, site: Path, trust_repo: Path
) -> None:
    narrow = {**platform(), "name": "api", "images": [f"{REGISTRY}/platform/api"]}
    files = run(tmp_path, site, trust_repo, platform(), narrow)
    assert "airgap verify applies only platform" in notes(files)["api:images"]


# -- the TrustRoot -------------------------------------------------------------------------------


def test_the_trust_root_inlines_the_published_repository_and_the_root_to_pin(
    tmp_path: Path, site: Path, trust_repo: Path
) -> None:
    files = run(tmp_path, site, trust_repo, platform())
    (trust,) = [o for o in files.documents("policy-controller") if o["kind"] == "TrustRoot"]
    assert trust["metadata"]["name"] == "airgap"
    repository = trust["spec"]["repository"]
    generation = RepoLayout(trust_repo).current_generation()
    assert generation is not None
    assert base64.b64decode(repository["root"]) == pinned_root(generation).read_bytes()
    archive = gzip.decompress(base64.b64decode(repository["mirrorFS"]))
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        names = tar.getnames()
    assert "repository/timestamp.json" in names
    assert any(n.startswith("repository/targets/") and n.endswith(".trusted_root.json")
               for n in names)  # fmt: skip
    assert "expires" in notes(files)["*:TrustRoot"]


def test_remote_names_the_in_cluster_tuf_service(
    tmp_path: Path, site: Path, trust_repo: Path
) -> None:
    files = run(tmp_path, site, trust_repo, platform(), tuf="remote")
    (trust,) = [o for o in files.documents("policy-controller") if o["kind"] == "TrustRoot"]
    assert trust["spec"]["remote"]["mirror"] == "http://tuf-server.tuf-system.svc"
    assert "*:TrustRoot" not in notes(files)


# -- Kyverno ------------------------------------------------------------------------------------


def trusted_root(repo: Path) -> dict[str, Any]:
    generation = RepoLayout(repo).current_generation()
    assert generation is not None
    (path,) = (generation / "repository" / "targets").glob("*.trusted_root.json")
    document: dict[str, Any] = json.loads(path.read_bytes())
    return document


def test_kyverno_verifies_with_the_sites_own_rekor_ct_log_and_fulcio(
    tmp_path: Path, site: Path, trust_repo: Path
) -> None:
    rule = {"predicateType": "slsaprovenance1", "slsa": {"builderId": "https://ci/b"}}
    files = run(tmp_path, site, trust_repo, platform(attestations=[rule]))
    (policy,) = files.documents("kyverno")
    assert policy["kind"] == "ClusterPolicy"
    (rule_,) = policy["spec"]["rules"]
    (verify,) = rule_["verifyImages"]
    assert verify["imageReferences"] == [f"{REGISTRY}/platform/*"]
    assert verify["failureAction"] == "Audit"
    (attestor,) = verify["attestors"]
    (entry,) = attestor["entries"]
    keyless_ = entry["keyless"]
    assert (keyless_["issuer"], keyless_["subject"]) == (ISSUER, SUBJECT)
    root = trusted_root(trust_repo)
    (tlog,) = root["tlogs"]
    assert keyless_["rekor"]["url"] == tlog["baseUrl"]
    assert _der(keyless_["rekor"]["pubkey"]) == base64.b64decode(tlog["publicKey"]["rawBytes"])
    (ctlog,) = root["ctlogs"]
    assert _der(keyless_["ctlog"]["pubkey"]) == base64.b64decode(ctlog["publicKey"]["rawBytes"])
    roots = x509.load_pem_x509_certificates(keyless_["roots"].encode())
    (authority,) = root["certificateAuthorities"]
    assert [c.public_bytes(serialization.Encoding.DER) for c in roots] == [
        base64.b64decode(c["rawBytes"]) for c in authority["certChain"]["certificates"]
    ]
    (attestation,) = verify["attestations"]
    assert attestation["conditions"] == [
        {"all": [{"key": "{{ runDetails.builder.id }}", "operator": "Equals",
                  "value": "https://ci/b"}]}
    ]  # fmt: skip
    assert "legacy format" in notes(files, "kyverno")["platform:signers"]


def test_kyverno_enforces_with_enforce(tmp_path: Path, site: Path, trust_repo: Path) -> None:
    files = run(tmp_path, site, trust_repo, platform(), enforce=True)
    (policy,) = files.documents("kyverno")
    assert policy["spec"]["rules"][0]["verifyImages"][0]["failureAction"] == "Enforce"


def _der(pem: str) -> bytes:
    key = serialization.load_pem_public_key(pem.encode())
    return key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


# -- the command ---------------------------------------------------------------------------------


def airgap(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "provisioner.cli", *args], capture_output=True, text=True
    )


def test_the_command_writes_both_files_and_prints_each_note(
    tmp_path: Path, site: Path, trust_repo: Path
) -> None:
    policy = policy_file(tmp_path, platform(images=["oci:**", f"{REGISTRY}/platform/**"]))
    out = tmp_path / "out"
    done = airgap("policy", "generate", "--site", str(site), "--policy", str(policy),
                  "--trust", str(trust_repo), "-o", str(out), "--enforce")  # fmt: skip
    assert done.returncode == 0, done.stderr
    documents = list(yaml.safe_load_all((out / "policy-controller.yaml").read_text()))
    assert [d["kind"] for d in documents] == ["TrustRoot", "ClusterImagePolicy"]
    assert documents[1]["spec"]["mode"] == "enforce"
    (kyverno,) = yaml.safe_load_all((out / "kyverno.yaml").read_text())
    assert kyverno["kind"] == "ClusterPolicy"
    assert "note: policy-controller: policy platform: images[0]: pattern 'oci:**'" in done.stderr


def test_the_command_reports_json(tmp_path: Path, site: Path, trust_repo: Path) -> None:
    policy = policy_file(tmp_path, platform())
    done = airgap("policy", "generate", "--site", str(site), "--policy", str(policy),
                  "--trust", str(trust_repo), "--output", "json")  # fmt: skip
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert summary["objects"]["policy-controller"] == [
        "TrustRoot/airgap", "ClusterImagePolicy/airgap-platform",
    ]  # fmt: skip
    assert Path(summary["files"]["kyverno"]).parent == site.parent / "admission"
    assert any(n["rule"] == "pinning" for n in summary["notes"])


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ("policy", "policies[0].signers[0]: a signer needs"),
        ("site", "kind: expected 'Site'"),
        ("trust", "nothing is published yet"),
    ],
)
def test_bad_input_is_one_line_and_exit_2_and_writes_nothing(
    tmp_path: Path, site: Path, trust_repo: Path, change: str, expected: str
) -> None:
    policy = policy_file(tmp_path, platform())
    repo = trust_repo
    if change == "policy":
        policy = policy_file(tmp_path, platform(signers=[{"issuer": ISSUER}]))
    elif change == "site":
        site.write_text(yaml.safe_dump({**site_document(), "kind": "Place"}))
    else:
        repo = tmp_path / "fresh"
        init_repository(repo, threshold=1, keys=1)
    out = tmp_path / "out"
    done = airgap("policy", "generate", "--site", str(site), "--policy", str(policy),
                  "--trust", str(repo), "-o", str(out))  # fmt: skip
    assert done.returncode == 2
    assert len(done.stderr.strip().splitlines()) == 1
    assert expected in done.stderr
    assert not out.exists()
