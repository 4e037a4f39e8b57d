"""The verifier's wheelhouse: the airgap wheel and its dependencies (the verifier's only, not
the provisioner extra), which CD hosts install with no index.

On the connected side `build_wheelhouse` runs `pip wheel` on airgap's source and writes a
bundle spec carrying every wheel under files/wheelhouse/ with its SHA-256, so the wheels cross
the gap signed and checked like everything else:

    airgap hosts wheelhouse -o verifier/
    airgap bundle create verifier/verifier-bundle.yaml -o verifier-bundle --sign-key op.key

Inside the gap, `bundle_wheelhouse` verifies the bundle and returns its wheelhouse directory.
The wheels are built for the Python and platform `pip wheel` runs on: build them with the
Python the CD hosts run.
"""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from offline.errors import UsageError
from provisioner.hosts.material import Wheelhouse

WHEELHOUSE = "wheelhouse"
SPEC = "verifier-bundle.yaml"
# airgap-0.1.0-py3-none-any.whl (PEP 427: name, version, optional build tag, tags).
_AIRGAP_WHEEL = re.compile(r"airgap-([^-]+)-(?:[0-9][^-]*-)?[^-]+-[^-]+-[^-]+\.whl")
_CHECKOUT = Path(__file__).resolve().parents[2]


def find_wheelhouse(directory: Path) -> Wheelhouse:
    """The directory's airgap wheel (exactly one) and its version."""
    if not directory.is_dir():
        raise UsageError(f"wheelhouse {directory} does not exist or is not a directory")
    versions = {}
    for wheel in directory.glob("airgap-*.whl"):
        match = _AIRGAP_WHEEL.fullmatch(wheel.name)
        if match:
            versions[wheel.name] = match.group(1)
    if not versions:
        raise UsageError(
            f"wheelhouse {directory} has no airgap wheel: build one with airgap hosts wheelhouse"
        )
    if len(versions) > 1:
        raise UsageError(
            f"wheelhouse {directory} has {len(versions)} airgap wheels "
            f"({', '.join(sorted(versions))}): keep one"
        )
    return Wheelhouse(directory.resolve(), next(iter(versions.values())))


def bundle_wheelhouse(bundle: Path, key: Path) -> Wheelhouse:
    """The wheelhouse a bundle carries, after the whole bundle is verified with `key`."""
    from provisioner.bundle.check import verify_bundle_dir
    from provisioner.bundle.signing import load_public_key

    verify_bundle_dir(bundle, load_public_key(key)).raise_for_failure()
    return find_wheelhouse(bundle / "files" / WHEELHOUSE)


def default_source() -> Path:
    if not (_CHECKOUT / "pyproject.toml").is_file():
        raise UsageError("airgap's source is not beside this install: give --source DIR")
    return _CHECKOUT


def build_wheelhouse(out: Path, source: Path, pip_args: Sequence[str] = ()) -> Wheelhouse:
    """`pip wheel` airgap from `source` with its dependencies into OUT/wheelhouse, and the bundle
    spec OUT/verifier-bundle.yaml that carries them."""
    if not (source / "pyproject.toml").is_file():
        raise UsageError(f"{source} is not airgap's source (no pyproject.toml)")
    directory = out / WHEELHOUSE
    directory.mkdir(parents=True, exist_ok=True)
    for old in directory.glob("airgap-*.whl"):
        old.unlink()  # one airgap wheel: the one built now
    command = [sys.executable, "-m", "pip", "wheel", "--quiet", "--disable-pip-version-check"]
    command += ["--wheel-dir", str(directory), *pip_args, str(source)]
    result = subprocess.run(
        command, capture_output=True, text=True, stdin=subprocess.DEVNULL, check=False
    )
    if result.returncode != 0:
        lines = [line for line in result.stderr.splitlines() if line.strip()]
        reason = lines[-1].strip() if lines else f"exit status {result.returncode}"
        raise UsageError(f"pip wheel {source} failed: {reason}")
    wheelhouse = find_wheelhouse(directory)
    write_spec(out / SPEC, directory)
    return wheelhouse


def write_spec(spec: Path, directory: Path) -> None:
    """A bundle spec with every wheel of `directory` under files/wheelhouse/ (JSON is YAML)."""
    files = [
        {
            "path": f"{WHEELHOUSE}/{wheel.name}",
            "source": str(wheel.resolve().relative_to(spec.parent.resolve())),
            "sha256": hashlib.sha256(wheel.read_bytes()).hexdigest(),
        }
        for wheel in sorted(directory.glob("*.whl"))
    ]
    document = {
        "apiVersion": "airgap.dev/v1",
        "kind": "BundleSpec",
        "name": "airgap-verifier",
        "files": files,
    }
    spec.write_text(
        "# The airgap verifier's wheels for CD hosts (airgap hosts apply --bundle).\n"
        + json.dumps(document, indent=2)
        + "\n"
    )
