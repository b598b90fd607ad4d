"""Which packet-loss link this machine allows: a veth namespace as root
(``netns.PacketLossNamespace``), else an unprivileged user namespace
(``userns.UserNamespaceLink``), or one sentence saying why neither."""

from __future__ import annotations

import socket
from typing import Protocol

from synccli.faults import netns, userns
from synccli.faults.netns import Direction


class LossLink(Protocol):
    """What a run needs of a packet-loss link: ``PacketLossNamespace`` (root, a veth) or
    ``userns.UserNamespaceLink`` (no root, a relay across a user namespace's loopback)."""

    @property
    def front(self) -> tuple[str, int]:
        """Where clients reach the server across the lossy link."""
        ...

    def listener(self) -> socket.socket:
        """A new listening socket for the server process, made inside the namespace."""
        ...

    def create(self) -> None: ...
    def destroy(self) -> None: ...
    def tune_rto(self, min_ms: int) -> None: ...
    def set_loss(self, percent: float, direction: Direction = "both") -> None: ...
    def clear_loss(self) -> None: ...
    def dropped(self) -> int: ...


def check_available() -> str | None:
    """None if packet loss can be done here (as root, or in a user namespace), else the
    reason it cannot (one sentence)."""
    if not netns.has_capabilities():
        return userns.check_unprivileged()
    return netns.check_root()


def open_link(run_id: str) -> LossLink:
    """The packet-loss link for run ``run_id``, not yet created: a veth namespace as root,
    else a user namespace (call ``check_available`` first)."""
    if netns.has_capabilities():
        return netns.PacketLossNamespace.for_run(run_id)
    return userns.UserNamespaceLink()
