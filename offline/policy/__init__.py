"""Policies: the policy file, attestation rules (SLSA), SBOMs and version ranges."""
