"""``node_pause``: SIGSTOP one node of a cluster, SIGCONT after ``for_s``."""

from synccli.faults.kinds.base import FaultKind, register
from synccli.faults.kinds.node_kill import NODE

KIND = register(
    FaultKind(
        "node_pause",
        "a cluster's node hangs (SIGSTOP; its sockets stay open, health checks time out),"
        " SIGCONT after `for_s`",
        target="server",
        attrs=(NODE,),
        exclusive=True,
    )
)
