"""``epoch_reset``: the first date's channel log is reset; its subscribers must resync."""

from synccli.faults.kinds.base import FaultKind, register

KIND = register(
    FaultKind(
        "epoch_reset",
        "the channel log is reset; clients must resync (instant: `for_s` may be left out)",
        target="server",
        span=False,
    )
)
