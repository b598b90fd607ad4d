"""``bus_partition``: cut one node's link to the cluster's Redis for ``for_s``."""

from synccli.faults.kinds.base import Attr, FaultKind, register
from synccli.faults.kinds.node_kill import NODE

#: ``down`` refuses and resets the link; ``silent`` holds its bytes (nothing is reset).
MODES = ("down", "silent")

KIND = register(
    FaultKind(
        "bus_partition",
        "one node's Redis link is refused (`down`) or held (`silent`); the node serves on,"
        " degraded, and catches up when it is mended",
        target="server",
        attrs=(NODE, Attr("mode", str, "down", choices=MODES)),
        exclusive=True,
    )
)
