"""Helm releases of the stack's charts, through pyhelm3: installed once, upgraded only when the
chart or its values changed, so a rerun touches nothing that did not change.

    releases = Releases(helm=None, kubeconfig=Path("kubeconfig"))
    outcome = releases.ensure("rekor", Path("bundle/charts/rekor-1.8.4.tgz"), "rekor-system",
                              values, timeout=300)
    outcome.action   # "installed", "upgraded" or "unchanged"

Helm does not wait here: the installer waits on each workload itself (provisioner/stack/kube.py),
which can say why one is not ready. A helm failure is one line naming the release and helm's
first line of complaint.
"""

from __future__ import annotations

import asyncio
import subprocess
from collections.abc import Coroutine, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from offline.errors import AirgapError, EnvironmentFailure, UsageError
from provisioner.create.charts import resolve_helm

T = TypeVar("T")


class ReleaseFailed(AirgapError):
    """helm refused or failed to apply a release (bad values, a conflicting object, ...)."""


@dataclass(frozen=True)
class ReleaseOutcome:
    name: str
    namespace: str
    action: str  # installed, upgraded or unchanged
    revision: int
    chart: str  # name-version


def _command(executable: str, kubeconfig: Path | None, context: str | None) -> Any:
    """pyhelm3's helm runner, tolerant of a helm built from source: without release ldflags it
    reports its version as `v3.21`, which pyhelm3's strict SemVer parse refuses."""
    import semver
    from pyhelm3.command import Command

    class LenientVersionCommand(Command):  # type: ignore[misc]
        def client_version(self) -> semver.Version:
            try:
                version: semver.Version = super().client_version()
                return version
            except ValueError:
                shown = subprocess.run(
                    [executable, "version", "--template", "{{ .Version }}"],
                    capture_output=True,
                    text=True,
                    check=True,
                ).stdout
                parts = [int(p) for p in shown.strip().removeprefix("v").split(".")[:3]]
                return semver.Version(*[*parts, 0, 0][:3])

    return LenientVersionCommand(
        executable=executable,
        kubeconfig=kubeconfig,
        kubecontext=context,
        history_max_revisions=5,
    )


class Releases:
    def __init__(
        self, helm: str | None, kubeconfig: Path | None, context: str | None = None
    ) -> None:
        from pyhelm3 import Client

        executable = resolve_helm(helm)
        self._client = Client(_command(executable, kubeconfig, context), executable=executable)

    def ensure(
        self,
        name: str,
        chart: Path,
        namespace: str,
        values: Mapping[str, Any],
        *,
        timeout: int = 300,
    ) -> ReleaseOutcome:
        """Install `chart` as release `name`, or upgrade it when its chart or values differ
        from the deployed revision; otherwise leave it as it is."""
        return self._run(self._ensure(name, chart, namespace, dict(values), timeout), name)

    async def _ensure(
        self, name: str, archive: Path, namespace: str, values: dict[str, Any], timeout: int
    ) -> ReleaseOutcome:
        chart = await self._client.get_chart(archive)
        current = await self._client.get_proceedable_revision(
            name, namespace=namespace, timeout=f"{timeout}s"
        )
        label = f"{chart.metadata.name}-{chart.metadata.version}"
        if not await self._client.should_install_or_upgrade_release(current, chart, values):
            return ReleaseOutcome(name, namespace, "unchanged", current.revision, label)
        revision = await self._client.install_or_upgrade_release(
            name,
            chart,
            values,
            namespace=namespace,
            create_namespace=False,  # the installer made it, with what it needs
            timeout=f"{timeout}s",
            wait=False,
        )
        action = "installed" if current is None else "upgraded"
        return ReleaseOutcome(name, namespace, action, revision.revision, label)

    def revision(self, name: str, namespace: str) -> int | None:
        """The deployed revision of `name`, or None when there is no such release."""
        return self._run(self._revision(name, namespace), name)

    async def _revision(self, name: str, namespace: str) -> int | None:
        from pyhelm3.errors import ReleaseNotFoundError

        try:
            current = await self._client.get_current_revision(name, namespace=namespace)
        except ReleaseNotFoundError:
            return None
        return int(current.revision)

    def uninstall(self, name: str, namespace: str, *, timeout: int = 300) -> bool:
        """Remove the release; False when there was none."""
        return self._run(self._uninstall(name, namespace, timeout), name)

    async def _uninstall(self, name: str, namespace: str, timeout: int) -> bool:
        if await self._revision(name, namespace) is None:
            return False
        await self._client.uninstall_release(
            name, namespace=namespace, timeout=f"{timeout}s", wait=True
        )
        return True

    def _run(self, work: Coroutine[Any, Any, T], name: str) -> T:
        from pyhelm3 import errors

        try:
            return asyncio.run(work)
        except errors.ConnectionError as exc:
            raise EnvironmentFailure(f"release {name}: {_summary(exc)}") from exc
        except errors.ChartNotFoundError as exc:
            raise UsageError(f"release {name}: {_summary(exc)}") from exc
        except errors.Error as exc:
            raise ReleaseFailed(f"release {name}: {_summary(exc)}") from exc


def _summary(exc: Exception, limit: int = 500) -> str:
    """helm's complaint on one line: a schema error spreads the field over several lines."""
    lines = [line.strip().removeprefix("Error: ") for line in str(exc).splitlines()]
    text = " ".join(line for line in lines if line)
    if not text:
        return f"helm exited with status {getattr(exc, 'returncode', '?')}"
    return text if len(text) <= limit else text[: limit - 1] + "…"
