"""Admission policies generated from the policy file `airgap verify` uses, so the cluster refuses
what the verifier refuses: policy-controller's `TrustRoot` and `ClusterImagePolicy` objects, and
a Kyverno `ClusterPolicy` for sites that run Kyverno (`airgap policy generate`).

What an admission controller cannot express is never dropped in silence: each such rule gives
a `Note` naming the policy and the rule, printed by the command. Where a translation has to
differ, it errs on the side of refusing (a pattern that cannot be written matches nothing, so
policy-controller's default no-match policy denies those images; a signer that cannot be
written is left out, so fewer signatures pass).
"""
