"""``latency``: every chunk is held ``latency`` ms, ± ``jitter`` ms."""

from synccli.faults.kinds.base import Attr, register, toxic

KIND = register(
    toxic(
        "latency",
        "data arrives late",
        Attr("latency", int, unit="ms"),
        Attr("jitter", int, 0, unit="ms"),
    )
)
