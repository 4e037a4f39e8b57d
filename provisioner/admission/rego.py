"""The Rego policies policy-controller evaluates (cosign's rego package: `package sigstore`,
the rule `isCompliant`, Rego v0 syntax).

- `all_required`: the ClusterImagePolicy-level policy. policy-controller admits an image when
  any one authority passes; airgap wants a signature by one of the signers *and* each required
  attestation by one of them. Authorities are named by what they stand for (`sig-...`,
  `att<N>-...`), and this policy requires one passing authority of each group among the
  `authorityMatches` policy-controller hands it.
- `slsa_conditions`: an attestation's policy, over the in-toto Statement, for the SLSA
  conditions that can be stated as equality or an anchored RE2 match (builder id, build type).
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from offline.policy.attestations import SLSA_PROVENANCE_V1, SlsaRule
from provisioner.admission.patterns import go_regexp

_HEADER = "package sigstore\n\ndefault isCompliant = false\n"


def all_required(groups: Sequence[str]) -> str:
    """isCompliant when, for each prefix in `groups`, an authority so named passed."""
    rules = []
    names = []
    for index, prefix in enumerate(groups):
        name = f"group_{index}"
        names.append(name)
        rules.append(
            f"{name} {{\n"
            f"  some authority\n"
            f"  input.authorityMatches[authority]\n"
            f"  startswith(authority, {json.dumps(prefix)})\n"
            f"}}\n"
        )
    body = "\n".join(rules)
    return f"{_HEADER}\n{body}\nisCompliant {{\n" + "".join(f"  {n}\n" for n in names) + "}\n"


def slsa_conditions(rule: SlsaRule, predicate_type: str) -> str | None:
    """The Rego for `rule`'s builder id and build type (None when it sets neither); raises
    Inexpressible for a builder id pattern RE2 cannot run."""
    if predicate_type == SLSA_PROVENANCE_V1:
        builder = "input.predicate.runDetails.builder.id"
        build_type = "input.predicate.buildDefinition.buildType"
    else:
        builder, build_type = "input.predicate.builder.id", "input.predicate.buildType"
    conditions = []
    if rule.builder_id is not None:
        conditions.append(f"{builder} == {json.dumps(rule.builder_id)}")
    if rule.builder_id_regexp is not None:
        pattern = go_regexp(rule.builder_id_regexp)
        conditions.append(f"is_string({builder})")
        conditions.append(f"regex.match({json.dumps(pattern)}, {builder})")
    if rule.build_type is not None:
        conditions.append(f"{build_type} == {json.dumps(rule.build_type)}")
    if not conditions:
        return None
    return f"{_HEADER}\nisCompliant {{\n" + "".join(f"  {c}\n" for c in conditions) + "}\n"
