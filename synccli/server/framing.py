"""Live events' WebSocket frames, built once and written in one batch per connection.

``websockets.broadcast`` serialises the frame again for every connection (header, payload
copy) although the bytes are the same for all of them: the server never masks, and with
``compression=None`` no extension rewrites a frame. The hub hands every subscriber the same
payload object, so frames are cached by payload object and built once per event.

Connections do not write each live event at once: they collect the payloads delivered during
one event-loop iteration and ``Fanout`` flushes them at the next, one socket write per
connection however many events were published meanwhile (at saturation several commits
finish per iteration, and the write system call is the largest per-delivery cost). The
concatenation is cached too: every subscriber of a channel usually gets the same sequence.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from websockets.asyncio.server import ServerConnection
from websockets.frames import Frame, Opcode
from websockets.protocol import State


class FrameCache:
    """Complete text frames of payloads, and concatenations of them, until ``clear``."""

    __slots__ = ("_framed", "_joined")

    def __init__(self) -> None:
        # Keyed by id: the entry holds the payload, so its id cannot be reused meanwhile.
        self._framed: dict[int, tuple[bytes, bytes]] = {}
        self._joined: dict[tuple[int, ...], bytes] = {}

    def framed(self, payload: bytes) -> bytes:
        """The unmasked, unfragmented text frame carrying ``payload``."""
        entry = self._framed.get(id(payload))
        if entry is None:
            entry = self._framed[id(payload)] = (
                payload,
                Frame(Opcode.TEXT, payload).serialize(mask=False),
            )
        return entry[1]

    def joined(self, payloads: list[bytes]) -> bytes:
        """The frames of ``payloads``, in order, as one byte string."""
        if len(payloads) == 1:
            return self.framed(payloads[0])
        key = tuple(map(id, payloads))
        data = self._joined.get(key)
        if data is None:
            # ``framed`` holds every payload named in the key, so the key stays unambiguous.
            data = self._joined[key] = b"".join(map(self.framed, payloads))
        return data

    def clear(self) -> None:
        self._framed.clear()
        self._joined.clear()


class Fanout:
    """Runs the connections' pending flushes once per event-loop iteration."""

    __slots__ = ("_flushes", "frames")

    def __init__(self) -> None:
        self._flushes: list[Callable[[], None]] = []
        self.frames = FrameCache()

    def schedule(self, flush: Callable[[], None]) -> None:
        """Call ``flush`` soon, together with every other flush scheduled until then."""
        if not self._flushes:
            asyncio.get_running_loop().call_soon(self._run)
        self._flushes.append(flush)

    def _run(self) -> None:
        flushes, self._flushes = self._flushes, []
        for flush in flushes:
            flush()
        # Nothing holds a batch across iterations: the frames are garbage from here on.
        self.frames.clear()


def accepts_shared_frames(ws: ServerConnection) -> bool:
    """Whether pre-built frames are valid on ``ws``: no extension was negotiated."""
    return not ws.protocol.extensions


def write_framed(ws: ServerConnection, framed: bytes) -> None:
    """Write complete frames now, as ``broadcast`` would: only while the connection is open
    (a closing connection must not send data frames after its close frame)."""
    if ws.protocol.state is State.OPEN:
        ws.transport.write(framed)
