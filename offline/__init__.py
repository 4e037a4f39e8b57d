"""airgap's verifier side: everything a CD host needs to verify with no network.

Nothing here imports `provisioner`; a CD host installs this package alone.
"""
