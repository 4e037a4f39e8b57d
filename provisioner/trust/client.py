"""python-tuf's own client over a repository directory: what every build checks before it
publishes, and what `status` checks afterwards.

The client starts from a pinned root (roots/1.root.json: the chain from the first root is
walked, as any client pinned to it does), refreshes timestamp, snapshot and targets, and
downloads every target by its hash-prefixed name; whatever it refuses (a bad signature, an
expired role, a version going back, a target whose bytes no longer match) is a
VerificationFailure naming the repository.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

from tuf.api.exceptions import DownloadError, DownloadHTTPError, RepositoryError
from tuf.api.metadata import Metadata, Targets
from tuf.ngclient import FetcherInterface, Updater

from offline.errors import AirgapError, VerificationFailure

_BASE = "airgap-repository://local/"


class DirectoryFetcher(FetcherInterface):
    """Serves `directory` under an URL prefix, as a static web server would."""

    def __init__(self, directory: Path, base_url: str = _BASE) -> None:
        self._directory = directory.resolve()
        self._base = base_url

    def _fetch(self, url: str) -> Iterator[bytes]:
        if not url.startswith(self._base):
            raise DownloadError(f"{url} is not in the repository")
        path = (self._directory / url[len(self._base) :]).resolve()
        if not path.is_relative_to(self._directory) or not path.is_file():
            raise DownloadHTTPError(f"{url} not found", 404)
        yield path.read_bytes()


class FunctionFetcher(FetcherInterface):
    """Serves the repository through `get(path)` (a service in a cluster, say); a missing file
    is `get` raising an AirgapError, which the client sees as a 404."""

    def __init__(self, get: Callable[[str], bytes], base_url: str = _BASE) -> None:
        self._get = get
        self._base = base_url

    def _fetch(self, url: str) -> Iterator[bytes]:
        if not url.startswith(self._base):
            raise DownloadError(f"{url} is not in the repository")
        try:
            yield self._get(url[len(self._base) :])
        except AirgapError as exc:
            raise DownloadHTTPError(f"{url}: {exc}", 404) from None


def fetch_all_targets(repository: Path, pinned_root: bytes) -> dict[str, bytes]:
    """Every target of the repository, as a TUF client pinned to `pinned_root` gets it."""
    return _fetch_all(DirectoryFetcher(repository), pinned_root, str(repository))


def fetch_all_targets_with(get: Callable[[str], bytes], pinned_root: bytes) -> dict[str, bytes]:
    """The same, for a repository served through `get(path)`."""
    return _fetch_all(FunctionFetcher(get), pinned_root, "the served repository")


def _fetch_all(fetcher: FetcherInterface, pinned_root: bytes, repository: str) -> dict[str, bytes]:
    try:
        with tempfile.TemporaryDirectory(prefix="airgap-tuf-client-") as scratch:
            metadata_dir = Path(scratch) / "metadata"
            metadata_dir.mkdir()
            updater = Updater(
                metadata_dir=str(metadata_dir),
                metadata_base_url=_BASE,
                target_dir=str(Path(scratch) / "targets"),
                target_base_url=_BASE + "targets/",
                fetcher=fetcher,
                bootstrap=pinned_root,
            )
            updater.refresh()
            # The client stored the targets metadata it verified; list the targets from it.
            listed = Metadata[Targets].from_file(str(metadata_dir / "targets.json")).signed
            fetched = {}
            for name in sorted(listed.targets):
                info = updater.get_targetinfo(name)
                if info is None:
                    raise VerificationFailure(f"{repository}: target {name} vanished")
                fetched[name] = Path(updater.download_target(info)).read_bytes()
            return fetched
    except (RepositoryError, DownloadError) as exc:
        raise VerificationFailure(
            f"a TUF client refuses the repository {repository}: {type(exc).__name__}: {exc}"
        ) from None
