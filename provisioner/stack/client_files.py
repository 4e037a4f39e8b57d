"""The files clients read, as `airgap install` writes them beside the site (`<site dir>/trust/`)
and `airgap nodes apply` puts them on every node: the trusted root, the signing config, and the
public keys and certificate chains under the names cosign and sigstore-go know."""

from __future__ import annotations

from provisioner.stack.keys import PublicMaterial

TRUSTED_ROOT = "trusted_root.json"
SIGNING_CONFIG = "signing_config.v0.2.json"
REKOR_KEY = "rekor.pub"
CTLOG_KEY = "ctfe.pub"
FULCIO_CHAIN = "fulcio_v1.crt.pem"
TSA_CHAIN = "tsa.certchain.pem"
NAMES = (TRUSTED_ROOT, SIGNING_CONFIG, REKOR_KEY, CTLOG_KEY, FULCIO_CHAIN, TSA_CHAIN)


def client_files(
    trusted_root: bytes, signing_config: bytes, public: PublicMaterial
) -> dict[str, bytes]:
    """File name -> content (the TSA chain only when the site has a TSA)."""
    files = {
        TRUSTED_ROOT: trusted_root,
        SIGNING_CONFIG: signing_config,
        REKOR_KEY: public.rekor,
        CTLOG_KEY: public.ctlog,
        FULCIO_CHAIN: public.fulcio_chain,
    }
    if public.tsa_chain is not None:
        files[TSA_CHAIN] = public.tsa_chain
    return files
