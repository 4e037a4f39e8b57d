"""A Kyverno `ClusterPolicy` (kyverno.io/v1, as Kyverno 1.13 defines it) from a policy file.

One `verifyImages` rule per airgap policy, over Pods: its patterns as `imageReferences`
(patterns.py), one attestor entry per signer (any one suffices, `count: 1`), each naming the
site's private trust explicitly, since Kyverno has no TrustRoot object: the Fulcio roots, the
Rekor URL and public key, and the CT log's public key, all from the trusted root the site's TUF
repository publishes. Required attestations get the same attestors and, for SLSA builder id and
build type, `conditions` over the predicate. `failureAction` is `Audit` unless enforcing.
"""

from __future__ import annotations

import base64
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from offline.errors import UsageError
from offline.policy.attestations import SLSA_PROVENANCE_V1
from offline.policy.policy_file import ImagePolicy, PolicyFile
from offline.strict import at
from provisioner.admission.notes import Generated, Inexpressible
from provisioner.admission.patterns import go_regexp, kyverno_globs
from provisioner.admission.policy_controller import (
    MANAGED_BY,
    identity_fields,
    key_pem,
    object_name,
)

CONTROLLER = "kyverno"
POLICY_NAME = "airgap-images"


class SiteKeys:
    """The site's trust as Kyverno's attestors take it: PEM text and the Rekor URL."""

    def __init__(self, trusted_root: dict[str, Any]) -> None:
        def public_pem(entry: dict[str, Any]) -> str:
            der = base64.b64decode(entry["publicKey"]["rawBytes"])
            key = serialization.load_der_public_key(der)
            return key.public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            ).decode("ascii")

        tlogs = trusted_root.get("tlogs") or []
        ctlogs = trusted_root.get("ctlogs") or []
        authorities = trusted_root.get("certificateAuthorities") or []
        if not tlogs or not authorities:
            raise UsageError("the site's trusted root names no transparency log or no CA")
        self.rekor = [(str(t["baseUrl"]), public_pem(t)) for t in tlogs]
        self.ctlogs = [public_pem(c) for c in ctlogs]
        certificates = [
            x509.load_der_x509_certificate(base64.b64decode(cert["rawBytes"]))
            for authority in authorities
            for cert in authority["certChain"]["certificates"]
        ]
        self.fulcio_roots = "".join(
            cert.public_bytes(serialization.Encoding.PEM).decode("ascii") for cert in certificates
        )


def cluster_policy(policies: PolicyFile, keys: SiteKeys, *, enforce: bool) -> Generated:
    """The ClusterPolicy (one rule per policy) and its notes."""
    out = Generated(CONTROLLER)
    action = "Enforce" if enforce else "Audit"
    rules = []
    names: set[str] = set()
    for index, policy in enumerate(policies.policies):
        rule = _rule(policy, object_name(policy.name, index, names), keys, action, out)
        if rule is not None:
            rules.append(rule)
    if len(keys.rekor) > 1 or len(keys.ctlogs) > 1:
        out.note(
            "*",
            "signers",
            "Kyverno takes one Rekor and one CT log key per attestor: only the trusted root's "
            "first of each is used, so entries in the others are refused",
        )
    if rules:
        out.objects.append(
            {
                "apiVersion": "kyverno.io/v1",
                "kind": "ClusterPolicy",
                "metadata": {"name": POLICY_NAME, "labels": MANAGED_BY},
                "spec": {"background": False, "webhookTimeoutSeconds": 30, "rules": rules},
            }
        )
    return out


def _rule(
    policy: ImagePolicy, name: str, keys: SiteKeys, action: str, out: Generated
) -> dict[str, Any] | None:
    references: list[str] = []
    for index, pattern in enumerate(policy.images):
        try:
            references += kyverno_globs(pattern)
        except Inexpressible as exc:
            out.note(policy.name, at("images", index), f"pattern {pattern!r} left out ({exc})")
    if not references:
        out.note(policy.name, "images", "no pattern can be written: no rule")
        return None
    entries = _entries(policy, keys, out)
    if not entries:
        out.note(policy.name, "signers", "no signer can be written: no rule")
        return None
    attestors = [{"count": 1, "entries": entries}]
    verify: dict[str, Any] = {
        "imageReferences": list(dict.fromkeys(references)),
        "failureAction": action,
        "required": True,
        "verifyDigest": True,
        "attestors": attestors,
    }
    attestations = [
        _attestation(policy, i, attestors, out) for i in range(len(policy.attestations))
    ]
    if attestations:
        verify["attestations"] = attestations
    out.note(
        policy.name,
        "signers",
        "written for cosign's legacy format (.sig and .att tags; cosign v3: "
        "--new-bundle-format=false); checked against Kyverno 1.13's schema, not run against "
        "Kyverno here",
    )
    if policy.pinning != "off":
        out.note(policy.name, "pinning", "checkpoint pinning is not checked at admission")
    return {
        "name": name.removeprefix("airgap-"),
        "match": {"any": [{"resources": {"kinds": ["Pod"]}}]},
        "verifyImages": [verify],
    }


def _entries(policy: ImagePolicy, keys: SiteKeys, out: Generated) -> list[dict[str, Any]]:
    rekor_url, rekor_key = keys.rekor[0]
    if policy.tlog == "ignore":
        rekor: dict[str, Any] = {"ignoreTlog": True, "url": rekor_url}
    else:
        rekor = {"url": rekor_url, "pubkey": rekor_key}
    entries = []
    for index, signer in enumerate(policy.signers):
        if not signer.keyless:
            entries.append({"keys": {"publicKeys": key_pem(signer), "rekor": rekor,
                                     "ctlog": {"ignoreSCT": True}}})  # fmt: skip
            continue
        keyless: dict[str, Any] = {"roots": keys.fulcio_roots, "rekor": rekor}
        if keys.ctlogs:
            keyless["ctlog"] = {"pubkey": keys.ctlogs[0]}
        try:
            keyless.update(identity_fields(signer))
        except Inexpressible as exc:
            out.note(policy.name, at("signers", index), f"signer left out: {exc}")
            continue
        entries.append({"keyless": keyless})
    return entries


def _attestation(
    policy: ImagePolicy, index: int, attestors: list[dict[str, Any]], out: Generated
) -> dict[str, Any]:
    rule = policy.attestations[index]
    where = at("attestations", index)
    attestation: dict[str, Any] = {"predicateType": rule.predicate_type, "attestors": attestors}
    conditions = []
    if rule.slsa is not None:
        v1 = rule.predicate_type == SLSA_PROVENANCE_V1
        builder = "runDetails.builder.id" if v1 else "builder.id"
        build_type = "buildDefinition.buildType" if v1 else "buildType"
        if rule.slsa.builder_id is not None:
            conditions.append(_equals(builder, rule.slsa.builder_id))
        if rule.slsa.builder_id_regexp is not None:
            try:
                pattern = go_regexp(rule.slsa.builder_id_regexp).replace("'", "\\'")
                key = f"{{{{ regex_match('{pattern}', {builder}) }}}}"
                conditions.append({"key": key, "operator": "Equals", "value": True})
            except Inexpressible as exc:
                out.note(policy.name, at(where, "slsa.builderIdRegExp"), f"not checked: {exc}")
        if rule.slsa.build_type is not None:
            conditions.append(_equals(build_type, rule.slsa.build_type))
        if rule.slsa.source_repository is not None:
            out.note(policy.name, at(where, "slsa.sourceRepository"), "not checked at admission")
    if rule.sbom is not None:
        out.note(policy.name, at(where, "sbom"), "banned packages are not checked at admission")
    if rule.vuln is not None:
        out.note(policy.name, at(where, "vuln"), "maxSeverity is not checked at admission")
    if conditions:
        attestation["conditions"] = [{"all": conditions}]
    return attestation


def _equals(path: str, value: str) -> dict[str, Any]:
    return {"key": f"{{{{ {path} }}}}", "operator": "Equals", "value": value}
