"""Shared frames: the bytes websockets would send, built once per payload."""

from __future__ import annotations

from websockets.frames import Frame, Opcode

from synccli.server.framing import FrameCache


def test_frame_is_what_websockets_would_send_for_every_length() -> None:
    cache = FrameCache()
    for size in (0, 125, 126, 65535, 65536):  # the three header forms and their edges
        payload = b"x" * size
        assert cache.framed(payload) == Frame(Opcode.TEXT, payload).serialize(mask=False)


def test_frame_is_built_once_per_payload_object() -> None:
    cache = FrameCache()
    payload = b'{"type":"appointments_updated"}'
    first = cache.framed(payload)
    assert cache.framed(payload) is first
    other = bytes(bytearray(payload))  # equal, but another event's payload
    assert cache.framed(other) is not first
    assert cache.framed(other) == first
