"""The store interface (offline.oci.store): which store has which capability.

Copying and importing ask a store what it can do, never which class it is; this pins what each
store answers, so a store that lost a method (or gained one under a capability's name) shows.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from offline.oci.layout import OCILayout
from offline.oci.manifest import OCI_INDEX
from offline.oci.registry import Registry
from offline.oci.store import (
    AbsentBlobPusher,
    BlobMounter,
    ImageSink,
    ImageSource,
    IndexedStore,
    ManifestChecker,
    ReferrersProber,
    Store,
)
from provisioner.copy.layout import RepositoryView
from provisioner.importer.stores import AbsentLayout

CAPABILITIES = (BlobMounter, AbsentBlobPusher, ReferrersProber, IndexedStore)


@pytest.fixture
def stores(tmp_path: Path) -> dict[str, object]:
    layout = OCILayout.create(tmp_path / "layout")
    return {
        "registry": Registry("registry.invalid").repository("team/app"),
        "layout": layout,
        "view": RepositoryView(layout, "team/app"),
        "dry-run": AbsentLayout(f"oci:{tmp_path / 'missing'} (team/app)"),
    }


def test_every_store_reads_writes_and_checks_manifests(stores: dict[str, object]) -> None:
    for name, store in stores.items():
        for protocol in (ImageSource, ImageSink, ManifestChecker, Store):
            assert isinstance(store, protocol), (name, protocol.__name__)


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("registry", {BlobMounter, AbsentBlobPusher, ReferrersProber}),
        ("layout", {IndexedStore}),
        ("view", set()),
        ("dry-run", set()),
    ],
)
def test_optional_capabilities(stores: dict[str, object], name: str, expected: set[type]) -> None:
    store = stores[name]
    assert {c for c in CAPABILITIES if isinstance(store, c)} == expected


def test_a_layout_holds_a_manifest_as_a_blob(tmp_path: Path) -> None:
    layout = OCILayout.create(tmp_path / "layout")
    raw = b'{"schemaVersion":2,"mediaType":"%s","manifests":[]}' % OCI_INDEX.encode()
    descriptor = layout.push_manifest(raw, OCI_INDEX)
    assert layout.manifest_exists(descriptor.digest)
    assert layout.entries() == []  # held, not listed: IndexedStore tells the two apart
    assert not layout.manifest_exists("sha256:" + "0" * 64)
