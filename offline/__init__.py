"""airgap's verifier side: everything a CD host needs to verify with no network.

Nothing here imports `provisioner`; a CD host installs this package alone. The library's front
door is `offline.verifier.Verifier`: what one run builds once, then asks about each image or bundle.
"""
