"""pytest fixtures for the private Sigstore stack (registered in tests/conftest.py).

`sigstore_stack` starts the stack once per session and returns the `SigstoreStack`. A test that
uses it and fails gets the tail of every server's log in its report ("sigstore stack logs").
A missing Go program fails the test with the ToolMissing message (never a skip).
"""

from __future__ import annotations

from collections.abc import Generator, Iterator

import pytest

from tests.stack.procs import StackError
from tests.stack.services import SigstoreStack

_stacks: list[SigstoreStack] = []


@pytest.fixture(scope="session")
def sigstore_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SigstoreStack]:
    stack = SigstoreStack(tmp_path_factory.mktemp("sigstore-stack"))
    _stacks.append(stack)
    stack.start()
    try:
        yield stack
    finally:
        stack.close()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    if (
        not report.failed
        or not _stacks
        or "sigstore_stack" not in getattr(item, "fixturenames", ())
    ):
        return report
    if call.excinfo is not None and isinstance(call.excinfo.value, StackError):
        return report  # its message already carries the log tails
    report.sections.append(("sigstore stack logs (tails)", _stacks[-1].log_tails()))
    return report
