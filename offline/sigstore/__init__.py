"""Sigstore bundles: the bundle model, its verification against an artifact and a trusted root,
log entry bodies, cosign's legacy signature format, and proof completion."""
