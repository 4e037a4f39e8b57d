"""policy-controller `ClusterImagePolicy` objects from a policy file (v0.13's v1alpha1 API).

One ClusterImagePolicy per airgap policy, named `airgap-<name>`:
- `images`: the policy's patterns as policy-controller globs (patterns.py);
- `authorities`: per signer, one for image signatures; keyless ones name the site's TrustRoot
  for the Fulcio roots and CT log keys, and every authority names it for the Rekor key unless
  the policy says `tlog: ignore`;
- required attestations: per signer and attestation, an authority that verifies that
  attestation, with a Rego policy over its content where one can be stated (rego.py), and a
  ClusterImagePolicy-level policy that needs a signature and every attestation to pass;

All in cosign's legacy format (`.sig`/`.att` tags): policy-controller v0.13.1 (through cosign
v2.5) answers Sigstore-bundle image signatures with "bundle support for image signatures is not
yet implemented", and its bundle path for attestations stores a TrustRoot's log IDs as hex text,
so no log entry is found ("not enough verified log entries"; sigstore/policy-controller#1968).
- `mode`: `warn` (admitted with a warning) unless enforcing, then `enforce`.

Everything else `airgap verify` checks and policy-controller cannot is a Note.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from cryptography.hazmat.primitives import serialization

from offline.errors import UsageError
from offline.policy.policy_file import ImagePolicy, PolicyFile
from offline.strict import at
from offline.trust.signers import SignerRule
from provisioner.admission import rego
from provisioner.admission.notes import Generated, Inexpressible
from provisioner.admission.patterns import go_regexp, policy_controller_globs

CONTROLLER = "policy-controller"
API_VERSION = "policy.sigstore.dev/v1alpha1"
NAME_PREFIX = "airgap-"
MANAGED_BY = {"app.kubernetes.io/managed-by": "airgap"}
_NOT_NAME = re.compile(r"[^a-z0-9-]+")


def cluster_image_policies(
    policies: PolicyFile,
    trust_root: str,
    fulcio_url: str,
    *,
    enforce: bool,
    generated: Generated | None = None,
) -> Generated:
    """The ClusterImagePolicy objects for every policy of `policies`, with their notes.
    `fulcio_url` only names the site's Fulcio (policy-controller would otherwise default it to
    the public one); the certificates come from the TrustRoot."""
    out = generated or Generated(CONTROLLER)
    names: set[str] = set()
    for index, policy in enumerate(policies.policies):
        name = object_name(policy.name, index, names)
        document = _policy(policy, name, (trust_root, fulcio_url), enforce, out)
        if document is not None:
            out.objects.append(document)
    _overlaps(policies.policies, out)
    return out


def object_name(policy_name: str, index: int, taken: set[str]) -> str:
    """A Kubernetes name for the policy's object: lower case, unique among `taken`."""
    base = _NOT_NAME.sub("-", policy_name.lower()).strip("-")[:50] or f"policy-{index}"
    name = f"{NAME_PREFIX}{base}"
    if name in taken:
        name = f"{name}-{index}"
    taken.add(name)
    return name


def _policy(
    policy: ImagePolicy, name: str, trust: tuple[str, str], enforce: bool, out: Generated
) -> dict[str, Any] | None:
    globs: list[str] = []
    for index, pattern in enumerate(policy.images):
        try:
            globs += policy_controller_globs(pattern)
        except Inexpressible as exc:
            out.note(
                policy.name,
                at("images", index),
                f"pattern {pattern!r} left out ({exc}); those images match no "
                "ClusterImagePolicy, and policy-controller's default no-match policy denies them",
            )
    if not globs:
        out.note(policy.name, "images", "no pattern can be written: no ClusterImagePolicy")
        return None
    signers = _signers(policy, trust, out)
    authorities = [{"name": f"sig-{index}", **authority} for index, authority in signers]
    groups = ["sig-"]
    for a_index, attestation in enumerate(policy.attestations):
        attestation_policy = _attestation_policy(policy, a_index, out)
        prefix = f"att{a_index}-"
        groups.append(prefix)
        for s_index, authority in signers:
            authorities.append(
                {
                    "name": f"{prefix}{s_index}",
                    **authority,
                    "attestations": [
                        {
                            "name": f"attestation-{a_index}",
                            "predicateType": attestation.predicate_type,
                            **({"policy": attestation_policy} if attestation_policy else {}),
                        }
                    ],
                }
            )
    if not signers:
        out.note(
            policy.name,
            "signers",
            "no signer can be written: every image of this policy is denied at admission",
        )
        authorities = [
            {
                "name": "no-signer",
                "static": {
                    "action": "fail",
                    "message": f"airgap policy {policy.name}: no signer could be expressed",
                },
            }
        ]
    spec: dict[str, Any] = {
        "images": [{"glob": glob} for glob in dict.fromkeys(globs)],
        "authorities": authorities,
        "mode": "enforce" if enforce else "warn",
    }
    if policy.attestations and signers:
        spec["policy"] = {"type": "rego", "data": rego.all_required(groups)}
    _policy_notes(policy, out)
    return {
        "apiVersion": API_VERSION,
        "kind": "ClusterImagePolicy",
        "metadata": {
            "name": name,
            "labels": MANAGED_BY,
            "annotations": {"airgap.dev/policy": policy.name},
        },
        "spec": spec,
    }


def _signers(
    policy: ImagePolicy, trust: tuple[str, str], out: Generated
) -> list[tuple[int, dict[str, Any]]]:
    """(signer index, authority without its name) for every signer that can be written."""
    trust_root, fulcio_url = trust
    tlog = {"ctlog": {"trustRootRef": trust_root}} if policy.tlog == "required" else {}
    found = []
    for index, signer in enumerate(policy.signers):
        if not signer.keyless:
            found.append((index, {"key": {"data": key_pem(signer)}, **tlog}))
            continue
        try:
            identity = identity_fields(signer)
        except Inexpressible as exc:
            out.note(policy.name, at("signers", index), f"signer left out: {exc}")
            continue
        keyless: dict[str, Any] = {
            "url": fulcio_url,
            "identities": [identity],
            "trustRootRef": trust_root,
        }
        found.append((index, {"keyless": keyless, **tlog}))
    return found


def identity_fields(signer: SignerRule) -> dict[str, str]:
    """A keyless signer's issuer and subject, by value or RE2 pattern: the same four keys in
    policy-controller's identities and Kyverno's keyless attestors."""
    identity: dict[str, str] = {}
    if signer.issuer is not None:
        identity["issuer"] = signer.issuer
    elif signer.issuer_regexp is not None:
        identity["issuerRegExp"] = go_regexp(signer.issuer_regexp)
    if signer.subject is not None:
        identity["subject"] = signer.subject
    elif signer.subject_regexp is not None:
        identity["subjectRegExp"] = go_regexp(signer.subject_regexp)
    return identity


def key_pem(signer: SignerRule) -> str:
    if signer.public_key is None:  # a key signer always has one (SignerRule.__post_init__)
        raise UsageError(f"signer {signer}: no public key")
    return signer.public_key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode("ascii")


def _attestation_policy(policy: ImagePolicy, index: int, out: Generated) -> dict[str, str] | None:
    """The Rego policy for attestation `index`'s conditions, noting what it cannot state."""
    rule = policy.attestations[index]
    where = at("attestations", index)
    data = None
    if rule.slsa is not None:
        slsa = rule.slsa
        try:
            data = rego.slsa_conditions(slsa, rule.predicate_type)
        except Inexpressible as exc:
            out.note(policy.name, at(where, "slsa.builderIdRegExp"), f"not checked: {exc}")
            data = rego.slsa_conditions(
                type(slsa)(builder_id=slsa.builder_id, build_type=slsa.build_type),
                rule.predicate_type,
            )
        if slsa.source_repository is not None:
            out.note(
                policy.name,
                at(where, "slsa.sourceRepository"),
                "not checked at admission (the provenance's source is read from several places "
                "with airgap's own matching); the attestation itself is still required",
            )
    if rule.sbom is not None:
        out.note(
            policy.name,
            at(where, "sbom"),
            "banned packages are not checked at admission (SPDX and CycloneDX package lists and "
            "version ranges); the SBOM attestation itself is still required",
        )
    if rule.vuln is not None:
        out.note(
            policy.name,
            at(where, "vuln"),
            "maxSeverity is not checked at admission; the scan attestation itself is still "
            "required",
        )
    return {"type": "rego", "data": data} if data is not None else None


def _policy_notes(policy: ImagePolicy, out: Generated) -> None:
    out.note(
        policy.name,
        "signature format",
        "signatures and attestations count only in cosign's legacy format (.sig and .att tags; "
        "cosign v3: --new-bundle-format=false): policy-controller v0.13.1 does not verify image "
        "signatures in Sigstore bundles, and its bundle path fails against a TrustRoot's logs "
        "(sigstore/policy-controller#1968)",
    )
    if policy.pinning != "off":
        out.note(
            policy.name,
            "pinning",
            "checkpoint pinning is not checked at admission: policy-controller trusts any log "
            "checkpoint signed by the site's Rekor key",
        )
    if policy.max_checkpoint_age is not None:
        out.note(policy.name, "maxCheckpointAge", "not checked at admission")


def _overlaps(policies: Sequence[ImagePolicy], out: Generated) -> None:
    """airgap applies the first policy that matches; admission applies every one that matches."""
    for later_index, later in enumerate(policies):
        for earlier in policies[:later_index]:
            if any(_could_match(earlier, pattern) for pattern in later.images) or any(
                _could_match(later, pattern) for pattern in earlier.images
            ):
                out.note(
                    later.name,
                    "images",
                    f"some images also match policy {earlier.name}: airgap verify applies only "
                    f"{earlier.name} (the first), admission requires both",
                )
                break


def _could_match(policy: ImagePolicy, pattern: str) -> bool:
    """Whether `policy` matches an image named like `pattern` (wildcards as letters)."""
    sample = pattern.replace("**", "x").replace("*", "x").replace("?", "x")
    if sample.startswith("oci:"):
        return False
    try:
        return policy.matches(sample)
    except UsageError:
        return False
