"""The connected side, on the host's loopback: images in a registry that stands for the public
ones (reached through `bundle create --registry-mirror`, so the images keep their upstream
names), and the upstream sigstore charts served as a chart repository, so `bundle create` pulls
them through helm as it does in production. Nothing here is reachable from the cluster: the
only way across is a bundle, as at a real site.

- `runnable_image`: an OCI image (config, gzipped layers, manifest) made from tar layers in
  memory, deterministic, ready to push to any `ImageSink`;
- `package_sigstore_charts`: `helm package` of the upstream charts, with the charts they depend
  on (rekor → trillian 0.3.16, fulcio → ctlog 0.2.66) vendored first, as a site must ship them;
- `sigstore_chart_repo`: a session fixture serving those packages on loopback.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import shutil
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

from offline.oci.manifest import Descriptor
from offline.oci.store import ImageSink
from tests.chart_servers import ChartRepo, package_chart, serve_chart_repo
from tests.conftest import SHARED
from tests.tools import go_tool

UPSTREAM_CHARTS = SHARED / "upstream" / "sigstore-helm-charts"
# Charts that name another as a dependency, and the directory holding that dependency.
DEPENDENCIES = {"rekor": ("trillian",), "fulcio": ("ctlog-0.2.66",)}
CHARTS = ("trillian", "ctlog-0.2.66", "ctlog", "rekor", "fulcio", "tuf", "tsa", "policy-controller")

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"


@dataclass(frozen=True)
class Blob:
    media_type: str
    data: bytes

    @property
    def digest(self) -> str:
        return "sha256:" + hashlib.sha256(self.data).hexdigest()

    def descriptor(self) -> dict[str, object]:
        return {"mediaType": self.media_type, "digest": self.digest, "size": len(self.data)}


@dataclass(frozen=True)
class RunnableImage:
    config: Blob
    layers: tuple[Blob, ...]
    manifest: Blob

    @property
    def digest(self) -> str:
        return self.manifest.digest

    def push(self, sink: ImageSink, tag: str) -> Descriptor:
        for blob in (*self.layers, self.config):
            sink.push_blob(blob.data, blob.digest, len(blob.data))
        return sink.push_manifest(self.manifest.data, OCI_MANIFEST, tag)


def runnable_image(layers: Sequence[bytes], entrypoint: Sequence[str]) -> RunnableImage:
    """An image for linux/amd64 from uncompressed tar `layers`, bottom first."""
    compressed = tuple(
        Blob(OCI_LAYER_GZIP, gzip.compress(layer, compresslevel=6, mtime=0)) for layer in layers
    )
    config = Blob(
        OCI_CONFIG,
        _canonical(
            {
                "architecture": "amd64",
                "os": "linux",
                "config": {"Entrypoint": list(entrypoint), "Env": ["PATH=/usr/local/bin:/bin"]},
                "rootfs": {
                    "type": "layers",
                    "diff_ids": ["sha256:" + hashlib.sha256(x).hexdigest() for x in layers],
                },
            }
        ),
    )
    manifest = Blob(
        OCI_MANIFEST,
        _canonical(
            {
                "schemaVersion": 2,
                "mediaType": OCI_MANIFEST,
                "config": config.descriptor(),
                "layers": [layer.descriptor() for layer in compressed],
            }
        ),
    )
    return RunnableImage(config, compressed, manifest)


def _canonical(document: object) -> bytes:
    return json.dumps(document, sort_keys=True, separators=(",", ":")).encode()


def package_sigstore_charts(destination: Path, home: Path) -> list[Path]:
    """Every upstream chart packaged into `destination`, dependencies vendored; the archives."""
    helm = go_tool("helm")
    work = destination.parent / "chart-sources"
    shutil.rmtree(work, ignore_errors=True)
    packaged: dict[str, Path] = {}
    for name in CHARTS:
        source = work / name
        shutil.copytree(UPSTREAM_CHARTS / name, source)
        for dependency in DEPENDENCIES.get(name, ()):
            (source / "charts").mkdir(exist_ok=True)
            shutil.copy(packaged[dependency], source / "charts")
        packaged[name] = package_chart(helm, source, destination, home)
    return list(packaged.values())


@pytest.fixture(scope="session")
def sigstore_chart_repo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ChartRepo]:
    """The upstream sigstore charts as a chart repository on http://127.0.0.1:PORT/."""
    root = tmp_path_factory.mktemp("sigstore-charts")
    archives = package_sigstore_charts(root / "packages", root / "home")
    with serve_chart_repo(go_tool("helm"), archives, root / "repo") as repo:
        yield repo
