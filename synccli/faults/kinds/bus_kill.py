"""``bus_kill``: SIGKILL a cluster's Redis, restart it after ``for_s``."""

from synccli.faults.kinds.base import FaultKind, register

KIND = register(
    FaultKind(
        "bus_kill",
        "the cluster's Redis is SIGKILLed, restarted after `for_s`; the nodes serve from the"
        " database, degraded, and must reconnect by themselves",
        target="server",
        # There is one Redis.
        exclusive=True,
    )
)
