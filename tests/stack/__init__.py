"""A private Sigstore stack for integration tests: real servers on loopback (see services.py),
a process manager with readiness checks and log tails (procs.py), and pytest fixtures
(fixtures.py)."""

from tests.stack.oidc import OIDCIssuer, kubernetes_identity
from tests.stack.procs import ProcessManager, StackError, free_port
from tests.stack.services import SigstoreStack

__all__ = [
    "OIDCIssuer",
    "ProcessManager",
    "SigstoreStack",
    "StackError",
    "free_port",
    "kubernetes_identity",
]
