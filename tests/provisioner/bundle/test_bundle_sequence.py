"""Bundle sequences and what a target imported: an older bundle cannot move tags back.

What must hold:
- every `bundle create` of a name gets a larger sequence than the last, even with the clock set
  back or two creates in one millisecond; an explicit one is used as given;
- a target refuses a bundle older than the newest of its name it imported, and another bundle
  with the same sequence; the same bundle again (a rerun) passes; `allow_rollback` lets an
  older one through, and the record keeps the highest;
- the record lives outside any bundle: in the user state directory by target, and for a layout
  also in the layout; a damaged record is refused, never read as "nothing imported".
"""

from __future__ import annotations

import json
import os
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from offline.errors import UsageError
from provisioner.bundle.manifest import BundleManifest, FileEntry
from provisioner.bundle.sequence import next_sequence, state_dir
from provisioner.copy.inventory import parse_target
from provisioner.importer.record import (
    LAYOUT_RECORD,
    ImportRecords,
    RollbackRefused,
    record_path,
)

LAYOUT = (FileEntry("oci/index.json", "b" * 64, 3), FileEntry("oci/oci-layout", "c" * 64, 3))


def manifest(sequence: int, name: str = "site") -> tuple[BundleManifest, str]:
    """A manifest of `name` at `sequence`, and a SHA-256 standing for its bytes."""
    made = BundleManifest(
        created=datetime(2026, 1, 2, tzinfo=UTC), name=name, sequence=sequence, layout=LAYOUT
    )
    return made, f"{sequence:064x}"


# ------------------------------------------------------------------------ create side
def test_sequences_grow_even_when_the_clock_goes_back(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = {"ns": 1_800_000_000_000 * 1_000_000}
    monkeypatch.setattr(time, "time_ns", lambda: clock["ns"])
    first = next_sequence("site")
    assert first == 1_800_000_000_000  # milliseconds since the epoch
    assert next_sequence("site") == first + 1  # the same millisecond
    clock["ns"] -= 3_600 * 10**9  # an hour back
    assert next_sequence("site") == first + 2
    assert next_sequence("other") == first - 3_600_000  # names are numbered apart


def test_an_explicit_sequence_is_used_and_the_next_default_is_above_it() -> None:
    assert next_sequence("site", explicit=5) == 5
    far = 4_000_000_000_000_000
    assert next_sequence("site", explicit=far) == far
    assert next_sequence("site") == far + 1
    assert next_sequence("site", explicit=7) == 7  # as asked; the target will judge it
    with pytest.raises(UsageError, match="is not an integer from 1"):
        next_sequence("site", explicit=0)


def test_a_damaged_sequence_record_is_refused() -> None:
    next_sequence("site")
    (state_dir() / "bundle-sequences" / "site").write_text("soon\n")
    with pytest.raises(UsageError, match="does not hold a bundle sequence"):
        next_sequence("site")


# ------------------------------------------------------------------------ import side
@pytest.fixture(params=["registry", "layout"])
def records(request: pytest.FixtureRequest, tmp_path: Path) -> ImportRecords:
    text = "registry.internal:5000/mirror" if request.param == "registry" else f"oci:{tmp_path}"
    return ImportRecords(parse_target(text))


def test_an_older_bundle_is_refused_and_the_same_one_again_passes(records: ImportRecords) -> None:
    new, new_sha = manifest(200)
    old, old_sha = manifest(100)
    records.check(new, new_sha, allow_rollback=False)  # nothing imported yet
    records.remember(new, new_sha)
    records.check(new, new_sha, allow_rollback=False)  # a rerun
    with pytest.raises(RollbackRefused, match="sequence 100 is older than sequence 200") as caught:
        records.check(old, old_sha, allow_rollback=False)
    assert caught.value.exit_code == 1
    assert "--allow-rollback" not in str(caught.value)  # the command line names its flag
    records.check(*manifest(201), allow_rollback=False)
    records.check(*manifest(50, name="other"), allow_rollback=False)  # another name


def test_another_bundle_with_the_same_sequence_is_refused(records: ImportRecords) -> None:
    first, first_sha = manifest(200)
    records.remember(first, first_sha)
    with pytest.raises(RollbackRefused, match="two bundles claim one version"):
        records.check(first, "f" * 64, allow_rollback=False)


def test_allow_rollback_lets_an_older_one_in_and_the_record_keeps_the_highest(
    records: ImportRecords,
) -> None:
    new, new_sha = manifest(200)
    old, old_sha = manifest(100)
    records.remember(new, new_sha)
    records.check(old, old_sha, allow_rollback=True)
    records.remember(old, old_sha)
    known = records.highest("site")
    assert known is not None and (known.sequence, known.manifest_sha256) == (200, new_sha)
    with pytest.raises(RollbackRefused):
        records.check(old, old_sha, allow_rollback=False)


def test_the_record_is_kept_by_target_in_the_state_directory(tmp_path: Path) -> None:
    mirror = ImportRecords(parse_target("registry.internal:5000/mirror"))
    mirror.remember(*manifest(200))
    path = record_path(mirror.target)
    assert path.is_relative_to(state_dir())
    document = json.loads(path.read_text())
    assert document["target"] == "registry.internal:5000/mirror"
    assert document["bundles"]["site"]["sequence"] == 200
    # Another prefix holds other tags: an old bundle there moves nothing back.
    ImportRecords(parse_target("registry.internal:5000/other")).check(
        *manifest(100), allow_rollback=False
    )


def test_a_layout_keeps_its_record_with_it(tmp_path: Path) -> None:
    """A layout copied elsewhere (another host, another path) still refuses older bundles."""
    layout = tmp_path / "layout"
    layout.mkdir()
    ImportRecords(parse_target(f"oci:{layout}")).remember(*manifest(200))
    assert json.loads((layout / LAYOUT_RECORD).read_text())["target"] == "layout"
    moved = tmp_path / "moved"
    layout.rename(moved)
    with pytest.raises(RollbackRefused):
        ImportRecords(parse_target(f"oci:{moved}")).check(*manifest(100), allow_rollback=False)


@pytest.mark.parametrize(
    "content",
    [
        b"",
        b"{",
        b"[]",
        b'{"format":"airgap-imported/v1","target":"registry.internal:5000/mirror"}',
        b'{"format":"airgap-imported/v1","target":"elsewhere","bundles":{}}',
        b'{"format":"airgap-imported/v1","target":"registry.internal:5000/mirror",'
        b'"bundles":{"site":{"sequence":0,"manifestSha256":"' + b"a" * 64 + b'","imported":"x"}}}',
    ],
)
def test_a_damaged_record_is_refused_not_taken_as_empty(content: bytes) -> None:
    records = ImportRecords(parse_target("registry.internal:5000/mirror"))
    records.remember(*manifest(200))
    record_path(records.target).write_bytes(content)
    with pytest.raises(UsageError, match=r"import record .* is damaged") as caught:
        records.check(*manifest(100), allow_rollback=False)
    assert caught.value.exit_code == 2
    with pytest.raises(UsageError):
        records.remember(*manifest(300))


def test_a_fifo_in_place_of_the_record_is_refused_not_waited_on(tmp_path: Path) -> None:
    layout = tmp_path / "layout"
    layout.mkdir()
    os.mkfifo(layout / LAYOUT_RECORD)
    with pytest.raises(UsageError, match="not a regular file"):
        ImportRecords(parse_target(f"oci:{layout}")).check(*manifest(1), allow_rollback=False)


@pytest.mark.parametrize("dangling", [False, True], ids=["to a record", "dangling"])
def test_a_link_in_place_of_the_record_is_refused_not_followed(
    tmp_path: Path, dangling: bool
) -> None:
    """A link could point the record at any file (or at none, to read as nothing imported)."""
    layout = tmp_path / "layout"
    layout.mkdir()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    ImportRecords(parse_target(f"oci:{elsewhere}")).remember(*manifest(200))
    target = tmp_path / "absent" if dangling else elsewhere / LAYOUT_RECORD
    (layout / LAYOUT_RECORD).symlink_to(target)
    with pytest.raises(UsageError, match=r"import record .* is not a regular file") as caught:
        ImportRecords(parse_target(f"oci:{layout}")).check(*manifest(100), allow_rollback=False)
    assert caught.value.exit_code == 2
