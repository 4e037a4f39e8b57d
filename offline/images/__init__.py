"""Container images: finding every signature and attestation attached to an image, and
verifying an image (index or per platform) against a policy."""
