"""Airgap bundles: the spec, the signed manifest, operator and keyless signing, detached
signatures, sequences, and the check of a bundle directory."""
