"""Fuzzing every structured input the verifier and the bundle tools read, from real seeds.

Each test mutates real inputs (tests/fuzz/targets.py) and asserts what must hold for any input:
only the project's own one-line errors (offline.errors), never a pass for a `_fail` conformance
case, never a pass once a field the verification depends on has changed. The `ci` profile runs
a bounded number of examples with every `pytest`; `HYPOTHESIS_PROFILE=nightly` runs many more
(tests/fuzz/conftest.py).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from hypothesis import given

from tests.fuzz import runners, targets
from tests.fuzz.strategies import mutated


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("site")


@pytest.mark.parametrize("case", targets.bundle_cases(), ids=lambda c: c.name)
def test_every_seed_bundle_gives_its_expected_result(case: targets.BundleCase) -> None:
    assert targets.outcome(case.verify) == case.should_pass


@pytest.mark.parametrize("seed", targets.checkpoint_seeds(), ids=lambda s: s.name)
def test_every_seed_checkpoint_gives_its_expected_result(
    seed: targets.CheckpointSeed, site: Path
) -> None:
    assert runners.check_checkpoint((seed.name, seed.note), site) == seed.valid


def test_the_operator_seeds_parse(site: Path) -> None:
    assert runners.check_policy(targets.POLICY_SEED, site)
    assert runners.check_bundle_manifest(runners._dumps(targets.bundle_manifest_seed()), site)
    assert runners.check_parts_list(runners._dumps(targets.parts_list_seed()), site)
    for seed in targets.oci_seeds():
        assert runners.check_oci_manifest((runners._dumps(seed), None), site)


@given(mutated("bundle"))
def test_a_mutated_bundle(site: Path, value: Any) -> None:
    runners.check_bundle(value, site)


@given(mutated("bundle_bytes"))
def test_a_bundle_with_edited_bytes_in_a_certificate_signature_or_timestamp(
    site: Path, value: Any
) -> None:
    runners.check_bundle(value, site)


@given(mutated("trusted_root_bytes"))
def test_a_trusted_root_with_edited_bytes_in_a_key_or_certificate(site: Path, value: Any) -> None:
    runners.check_trusted_root(value, site)


@given(mutated("trusted_root"))
def test_a_mutated_trusted_root(site: Path, value: Any) -> None:
    runners.check_trusted_root(value, site)


@given(mutated("checkpoint"))
def test_a_mutated_checkpoint(site: Path, value: Any) -> None:
    runners.check_checkpoint(value, site)


@given(mutated("note"))
def test_a_mutated_signed_note_witness_key_or_witness_policy(site: Path, value: Any) -> None:
    runners.check_note(value, site)


@given(mutated("policy"))
def test_a_mutated_policy(site: Path, value: Any) -> None:
    runners.check_policy(value, site)


@given(mutated("bundle_manifest"))
def test_a_mutated_bundle_manifest(site: Path, value: Any) -> None:
    runners.check_bundle_manifest(value, site)


@given(mutated("parts_list"))
def test_a_mutated_parts_list(site: Path, value: Any) -> None:
    runners.check_parts_list(value, site)


@given(mutated("oci_manifest"))
def test_a_mutated_oci_manifest(site: Path, value: Any) -> None:
    runners.check_oci_manifest(value, site)
