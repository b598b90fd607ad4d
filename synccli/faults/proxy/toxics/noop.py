"""``noop``: passes data through unchanged; the hidden head of every link."""

from __future__ import annotations

from dataclasses import dataclass

from synccli.faults.proxy.toxics.base import Stub, Toxic, register


@register
@dataclass(frozen=True)
class NoopToxic(Toxic):
    """Pass every chunk on as it is."""

    TYPE = "noop"
    GO_NAME = "NoopToxic"

    async def pipe(self, stub: Stub) -> None:
        """Forward chunks until the source closes."""
        while (chunk := await stub.get()) is not None:
            stub.send(chunk)
        stub.close()
