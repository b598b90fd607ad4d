"""``packet_loss``: the kernel drops ``percent`` of the TCP packets around the server."""

from synccli.faults.kinds.base import Attr, FaultKind, register

KIND = register(
    FaultKind(
        "packet_loss",
        "real kernel drops around the server (docs/faults.md); `stream` picks the direction",
        target="network",
        attrs=(Attr("percent", float, unit="%", maximum=100),),
        streams=True,
        # The namespace has one loss rule at a time.
        exclusive=True,
    )
)
