"""``reset_peer``: the connection is reset (TCP RST) after ``timeout`` ms."""

from synccli.faults.kinds.base import Attr, register, toxic

KIND = register(toxic("reset_peer", "TCP RST", Attr("timeout", int, 0, unit="ms")))
