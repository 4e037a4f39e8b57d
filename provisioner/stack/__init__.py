"""The private Sigstore stack: the trusted root assembled from its keys (install comes next)."""
