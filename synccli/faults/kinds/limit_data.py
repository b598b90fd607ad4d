"""``limit_data``: the connection closes after ``bytes`` bytes, mid-message."""

from synccli.faults.kinds.base import Attr, register, toxic

KIND = register(
    toxic(
        "limit_data",
        "closes the connection after that many bytes (mid-message)",
        Attr("bytes", int, unit="bytes"),
    )
)
