"""An event's WebSocket frame, built once and written to every subscriber's socket.

``websockets.broadcast`` serialises the frame again for every connection (header, payload
copy) although the bytes are the same for all of them: the server never masks, and with
``compression=None`` no extension rewrites a frame. The hub hands every subscriber the same
payload object, so a one-entry cache keyed on that object builds the frame once per event.
"""

from __future__ import annotations

from websockets.asyncio.server import ServerConnection
from websockets.frames import Frame, Opcode
from websockets.protocol import State


class FrameCache:
    """The complete text frame of the last payload asked for."""

    __slots__ = ("_framed", "_payload")

    def __init__(self) -> None:
        self._payload = b""
        self._framed = Frame(Opcode.TEXT, b"").serialize(mask=False)

    def framed(self, payload: bytes) -> bytes:
        """The unmasked, unfragmented text frame carrying ``payload``."""
        if payload is not self._payload:
            # Identity, not equality: the cache holds the payload, so its id cannot be reused.
            self._payload = payload
            self._framed = Frame(Opcode.TEXT, payload).serialize(mask=False)
        return self._framed


def accepts_shared_frames(ws: ServerConnection) -> bool:
    """Whether pre-built frames are valid on ``ws``: no extension was negotiated."""
    return not ws.protocol.extensions


def write_framed(ws: ServerConnection, framed: bytes) -> None:
    """Write a complete frame now, as ``broadcast`` would: only while the connection is open
    (a closing connection must not send data frames after its close frame)."""
    if ws.protocol.state is State.OPEN:
        ws.transport.write(framed)
