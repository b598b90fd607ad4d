"""``down``: the targeted groups' proxies are disabled, so those clients are offline."""

from synccli.faults.kinds.base import FaultKind, register

KIND = register(
    FaultKind("down", "the groups' proxies are disabled: those clients are offline", target="proxy")
)
