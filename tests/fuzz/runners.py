"""One fuzz target per input kind: `generate` picks a seed and mutates it (every choice through
a `Draw`), `check` runs the project's parser or verifier on the result and asserts the
properties. Hypothesis (tests/fuzz/test_fuzz_*.py) and the explorer (tests/fuzz/explore.py)
share them.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.fuzz import targets
from tests.fuzz.mutations import (
    Draw,
    mutate_binary,
    mutate_json,
    mutate_lines,
    only_deletions,
    pick,
)


@dataclass(frozen=True)
class Target:
    generate: Callable[[Draw], Any]
    check: Callable[[Any, Path], bool]


def _dumps(document: Any) -> bytes:
    # A JSON file may hold NaN or Infinity, which json.loads reads back.
    return json.dumps(document).encode()


# ------------------------------------------------------------------------------ bundles
def _generate_bundle(draw: Draw) -> tuple[str, Any]:
    case: targets.BundleCase = pick(draw, targets.bundle_cases())
    return case.name, mutate_json(draw, case.bundle)


def check_bundle(value: tuple[str, Any], site: Path) -> bool:
    """Only the project's errors; never a pass for a `_fail` case, nor for a change to a field
    the verification must depend on."""
    name, mutated = value
    case = targets.bundle_case(name)
    passed = targets.outcome(lambda: case.verify(bundle=mutated))
    if passed:
        seed, final = targets.as_verified(case.bundle), targets.as_verified(mutated)
        # Deleting can repair a consistency check (a wrong messageDigest hint, a root
        # certificate the bundle should not carry); any other change must not.
        assert case.should_pass or only_deletions(final, seed), (
            f"{case.name}: a mutated `_fail` case passed"
        )
        assert not targets.security_fields_changed(seed, final), (
            f"{case.name}: passed with a security-relevant field changed"
        )
    return passed


def _generate_bundle_bytes(draw: Draw) -> tuple[str, Any]:
    case: targets.BundleCase = pick(draw, targets.bundle_cases())
    return case.name, mutate_binary(draw, case.bundle)


def _generate_trusted_root_bytes(draw: Draw) -> tuple[str, Any]:
    case: targets.BundleCase = pick(draw, targets.passing_cases())
    return case.name, mutate_binary(draw, case.root)


def _generate_trusted_root(draw: Draw) -> tuple[str, Any]:
    case: targets.BundleCase = pick(draw, targets.passing_cases())
    return case.name, mutate_json(draw, case.root)


def check_trusted_root(value: tuple[str, Any], site: Path) -> bool:
    """A mutated trusted root with a good bundle: only the project's errors."""
    name, mutated = value
    case = targets.bundle_case(name)
    return targets.outcome(lambda: case.verify(root=mutated))


# -------------------------------------------------------------------- checkpoints, notes
def _generate_checkpoint(draw: Draw) -> tuple[str, str | bytes]:
    seed: targets.CheckpointSeed = pick(draw, targets.checkpoint_seeds())
    text = mutate_lines(draw, seed.note)
    if draw(4) == 0:
        return seed.name, text.encode("utf-8", errors="surrogateescape")
    return seed.name, text


def check_checkpoint(value: tuple[str, str | bytes], site: Path) -> bool:
    """Only the project's errors, and never a pass once the signed text (origin, size, root
    hash, extensions) is not the one the log signed."""
    from offline.tlog.checkpoint import find_log_for_checkpoint
    from offline.tlog.witness import parse_witness_policy
    from offline.trust.root import parse_trusted_root

    name, data = value
    seed = targets.checkpoint_seed(name)
    root = parse_trusted_root(json.dumps(seed.root))
    policy = parse_witness_policy(seed.witness_policy) if seed.witness_policy else None
    passed = targets.outcome(lambda: find_log_for_checkpoint(data, root, policy))
    if passed:
        assert seed.valid, f"{seed.name}: a mutated invalid checkpoint verified"
        text = data.decode(errors="replace") if isinstance(data, bytes) else data
        assert text.split("\n\n")[0] == seed.note.split("\n\n")[0], (
            f"{seed.name}: a checkpoint with changed signed text verified"
        )
    return passed


def _generate_note(draw: Draw) -> tuple[str, str]:
    from tests.tlog_fixture import Witness

    if draw(3) == 0:
        return "vkey", mutate_lines(draw, Witness("w.example").vkey)
    if draw(3) == 0:
        witnesses = [Witness("w.example"), Witness("w2.example")]
        return "witness-policy", mutate_lines(draw, targets.witness_policy(witnesses))
    seed: targets.CheckpointSeed = pick(draw, targets.checkpoint_seeds())
    return "note", mutate_lines(draw, seed.note)


def check_note(value: tuple[str, str], site: Path) -> bool:
    """Signed notes, witness keys and witness policies, parsed alone: only the project's
    errors."""
    from offline.tlog.note import parse_note, parse_vkey
    from offline.tlog.witness import parse_witness_policy

    kind, text = value
    parsers: dict[str, Callable[[str], object]] = {
        "vkey": parse_vkey,
        "witness-policy": parse_witness_policy,
    }
    parse = parsers.get(kind, parse_note)
    return targets.outcome(lambda: parse(text))


# ------------------------------------------------------------------ operator documents
def _generate_policy(draw: Draw) -> str:
    import yaml

    seed = targets.POLICY_SEED
    if draw(3) == 0:
        return mutate_lines(draw, seed)
    return yaml.safe_dump(mutate_json(draw, yaml.safe_load(seed)), allow_unicode=True)


def check_policy(text: str, site: Path) -> bool:
    """A mutated policy file (as YAML, and as text): only the project's errors."""
    from offline.policy.policy_file import parse_policy

    targets.write_policy_keys(site)
    return targets.outcome(lambda: parse_policy(text, site / "p.yaml"))


def _generate_bundle_manifest(draw: Draw) -> bytes:
    return _dumps(mutate_json(draw, targets.bundle_manifest_seed()))


def check_bundle_manifest(data: bytes, site: Path) -> bool:
    """Only the project's errors; what parses serializes back to the same manifest."""
    from provisioner.bundle.manifest import BundleManifest

    def run() -> None:
        manifest = BundleManifest.from_bytes(data)
        assert BundleManifest.from_bytes(manifest.to_bytes()) == manifest, "no round trip"

    return targets.outcome(run)


def _generate_parts_list(draw: Draw) -> bytes:
    return _dumps(mutate_json(draw, targets.parts_list_seed()))


def check_parts_list(data: bytes, site: Path) -> bool:
    """Only the project's errors."""
    from provisioner.archive.parts_list import PartsList

    return targets.outcome(lambda: PartsList.from_bytes(data, "parts list"))


def _generate_oci_manifest(draw: Draw) -> tuple[bytes, str | None]:
    raw = _dumps(mutate_json(draw, pick(draw, targets.oci_seeds())))
    return raw, pick(draw, [None, "application/vnd.oci.image.index.v1+json", "text/plain"])


def check_oci_manifest(value: tuple[bytes, str | None], site: Path) -> bool:
    """A mutated manifest or index, read as the verifier reads what a store serves."""
    from offline.oci.digests import sha256_digest
    from offline.oci.manifest import check_manifest, referrer_descriptor

    raw, declared = value

    def run() -> None:
        manifest = check_manifest(raw, sha256_digest(raw), "fuzz", declared)
        manifest.children()
        manifest.subject()
        referrer_descriptor(manifest)

    return targets.outcome(run)


TARGETS: dict[str, Target] = {
    "bundle": Target(_generate_bundle, check_bundle),
    "bundle_bytes": Target(_generate_bundle_bytes, check_bundle),
    "trusted_root": Target(_generate_trusted_root, check_trusted_root),
    "trusted_root_bytes": Target(_generate_trusted_root_bytes, check_trusted_root),
    "checkpoint": Target(_generate_checkpoint, check_checkpoint),
    "note": Target(_generate_note, check_note),
    "policy": Target(_generate_policy, check_policy),
    "bundle_manifest": Target(_generate_bundle_manifest, check_bundle_manifest),
    "parts_list": Target(_generate_parts_list, check_parts_list),
    "oci_manifest": Target(_generate_oci_manifest, check_oci_manifest),
}
