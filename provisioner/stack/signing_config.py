"""`signing_config.v0.2.json` for the site: where Sigstore clients (cosign v3, sigstore-go,
sigstore-python) sign, so that they need no URL flags: the site's Fulcio, Rekor and TSA at the
URLs clients reach them by, each valid from when its key was made.

    document = signing_config(site, public)      # dict; bytes with signing_config_json()

It is read back with sigstore-python's model before it is returned (what we write, clients read).
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from provisioner.stack.keys import PublicMaterial
from provisioner.stack.site import Site
from provisioner.trust.targets import (
    SIGNING_CONFIG,
    SIGNING_CONFIG_MEDIA_TYPE,
    Target,
    check_content,
)


def signing_config(site: Site, public: PublicMaterial) -> dict[str, Any]:
    fulcio_start = _fulcio_start(public)
    document: dict[str, Any] = {
        "mediaType": SIGNING_CONFIG_MEDIA_TYPE,
        "caUrls": [_service(site.public_url("fulcio"), fulcio_start, site)],
        "oidcUrls": [],
        "rekorTlogUrls": [_service(site.public_url("rekor"), public.rekor_created, site)],
        "rekorTlogConfig": {"selector": "ANY"},
        "tsaUrls": [],
        "tsaConfig": {"selector": "ANY"},
    }
    if public.tsa_chain is not None:
        url = f"{site.public_url('tsa')}/api/v1/timestamp"
        document["tsaUrls"] = [_service(url, fulcio_start, site)]
    return document


def signing_config_json(site: Site, public: PublicMaterial) -> bytes:
    data = (json.dumps(signing_config(site, public), indent=2) + "\n").encode()
    check_content(Target(SIGNING_CONFIG, data))  # sigstore-python reads it
    return data


def _service(url: str, start: dt.datetime, site: Site) -> dict[str, Any]:
    return {
        "url": url,
        "majorApiVersion": 1,
        "validFor": {"start": start.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")},
        "operator": site.fulcio_ca.organization,
    }


def _fulcio_start(public: PublicMaterial) -> dt.datetime:
    from cryptography import x509

    root = x509.load_pem_x509_certificates(public.fulcio_chain)[-1]
    return root.not_valid_before_utc
