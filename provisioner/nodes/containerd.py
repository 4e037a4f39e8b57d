"""containerd's configuration for the internal registry (containerd 1.5+ with
`registry.config_path` set to the site's `containerdCertsDir`): `<certs dir>/<host>/hosts.toml`
sends pulls of `<host>/...` to that registry only, trusting the site's CA, which sits beside it
as `ca.crt`. containerd reads the directory at every pull: no restart.

No fallback: `server` is the registry itself, so a pull never goes anywhere else.
"""

from __future__ import annotations

from pathlib import PurePosixPath

from provisioner.stack.site import Site

HOSTS_TOML = "hosts.toml"
CA_FILE = "ca.crt"


def registry_dir(site: Site) -> PurePosixPath:
    """The registry's directory on the node (site.py allows only plain host names and paths,
    so nothing here needs quoting)."""
    assert site.nodes is not None
    return site.nodes.containerd_certs_dir / site.registry.host


def hosts_toml(site: Site, with_ca: bool) -> bytes:
    server = f"https://{site.registry.host}"
    lines = [
        "# Written by airgap nodes apply: pulls from this registry go to it only.",
        f'server = "{server}"',
        "",
        f'[host."{server}"]',
        '  capabilities = ["pull", "resolve"]',
    ]
    if with_ca:
        lines.append(f'  ca = "{registry_dir(site) / CA_FILE}"')
    return ("\n".join(lines) + "\n").encode()
