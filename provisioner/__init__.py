"""airgap's operator side: bundles, the private Sigstore stack, trust distribution.

Installed with the `provisioner` extra; it may import `offline`, never the other way round.
"""
