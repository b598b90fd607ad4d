"""``timeout``: data stops; the connection closes after ``timeout`` ms (0: never)."""

from synccli.faults.kinds.base import Attr, register, toxic

KIND = register(
    toxic(
        "timeout",
        "data stops, the connection closes after `timeout` (0: never)",
        Attr("timeout", int, unit="ms"),
    )
)
