"""``bandwidth``: the link carries at most ``rate`` KB/s."""

from synccli.faults.kinds.base import Attr, register, toxic

KIND = register(toxic("bandwidth", "a slow link", Attr("rate", int, unit="KB/s")))
