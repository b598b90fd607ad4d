"""``reset_peer``: on the first chunk, wait ``timeout`` ms, drop it and close the link.

The link sets ``SO_LINGER`` 0 on both sockets when this toxic is already in the chain at
accept, so the close is a TCP RST; added to an open connection it closes with a FIN.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from synccli.faults.proxy.toxics.base import Stub, Toxic, register


@register
@dataclass(frozen=True)
class ResetPeerToxic(Toxic):
    """Reset the connection once data flows."""

    TYPE = "reset_peer"
    GO_NAME = "ResetToxic"
    GO_TYPES = {"timeout": "int64"}

    timeout: int = 0

    async def pipe(self, stub: Stub) -> None:
        """Wait for data (or the end), wait ``timeout`` ms, then close without forwarding."""
        item = await stub.get()
        try:
            await asyncio.sleep(max(0.0, self.timeout / 1000))
        except asyncio.CancelledError:
            # Updated or removed while waiting: the chunk is not ours to drop any more.
            stub.input.unget(item)
            raise
        stub.close()
