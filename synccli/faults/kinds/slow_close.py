"""``slow_close``: a closed connection is closed on the other side ``delay`` ms later."""

from synccli.faults.kinds.base import Attr, register, toxic

KIND = register(
    toxic("slow_close", "closes reach the other side late", Attr("delay", int, unit="ms"))
)
