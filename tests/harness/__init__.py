"""LRSweep's test cluster: a Kubernetes API server fake plus a kubelet stand-in.

    python -m tests.harness --kubeconfig PATH      # foreground, until SIGTERM
    Harness(...)                                   # on your event loop
    ThreadedHarness(...)                           # from synchronous code
    tests.harness.pytest_plugin                    # the pytest fixtures

See tests/harness/README.md for what is emulated and what is not.
"""

from tests.harness.faults import Faults
from tests.harness.kubelet import NodeConfig
from tests.harness.server import DEFAULT_EVICTION_MESSAGE, Harness
from tests.harness.threaded import ThreadedHarness

__all__ = ["DEFAULT_EVICTION_MESSAGE", "Faults", "Harness", "NodeConfig", "ThreadedHarness"]
