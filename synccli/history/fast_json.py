"""Decoding history lines fast: msgspec when it is installed (``pip install
'synccli[fast]'``), the standard library's ``json`` otherwise, with the same results.

``loads`` parses one line into plain data. ``decode_heads`` parses a whole batch of lines in
one call into ``Head`` objects holding only the envelope and the fields of an ``apply``
(every other field is skipped without being built): about ten times ``json.loads`` per line.
It returns None when msgspec is missing or when any line of the batch is not a valid line
of that shape (not JSON, blank, no envelope, a field of an unexpected type): the caller
then takes the line-by-line path, which reports the problem exactly as before.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any

try:
    import msgspec
except ImportError:  # pragma: no cover - the stdlib path is tested by forcing it
    msgspec = None  # type: ignore[assignment]

#: Which decoder is in use: "msgspec" or "json".
DECODER = "msgspec" if msgspec is not None else "json"


def _json_loads(text: str) -> Any:
    return json.loads(text)


if msgspec is not None:

    class Head(msgspec.Struct, kw_only=True, gc=False):
        """A line's envelope and, for an ``apply``, its fields (``seq`` None: a reference).
        The envelope is required: the writer writes it on every line, and a batch with a
        line without it is read line by line (which gives it the defaults it always did)."""

        t: float
        w: float
        c: str | None
        k: str
        ref: str | None = None
        date: str | None = None
        epoch: str | None = None
        seq: int | None = None
        id: str | None = None
        committedAt: str | None = None  # the JSON name
        replay: bool = False
        appointmentId: str | None = None  # the JSON name
        version: int | None = None
        state: str | None = None

    _heads = msgspec.json.Decoder(list[Head])
    _plain = msgspec.json.Decoder()

    def _msgspec_loads(text: str) -> Any:
        try:
            return _plain.decode(text)
        except msgspec.DecodeError:
            return json.loads(text)  # raises the standard ValueError, or reads what it allows

    def _decode_heads(lines: Sequence[str]) -> list[Any] | None:
        try:
            return _heads.decode("[" + ",".join(lines) + "]")
        except msgspec.DecodeError:  # ValidationError is one too
            return None

    loads: Callable[[str], Any] = _msgspec_loads
    decode_heads: Callable[[Sequence[str]], list[Any] | None] = _decode_heads
else:  # pragma: no cover
    loads = _json_loads

    def decode_heads(lines: Sequence[str]) -> list[Any] | None:
        return None


def use_stdlib(on: bool = True) -> None:
    """Decode with the standard library only (``on``), or with msgspec again if installed:
    for tests and the benchmark, which compare the two."""
    global loads, decode_heads, DECODER
    if on or msgspec is None:
        loads, DECODER = _json_loads, "json"
        decode_heads = _no_heads
    else:
        loads, decode_heads, DECODER = _msgspec_loads, _decode_heads, "msgspec"


def _no_heads(lines: Sequence[str]) -> list[Any] | None:
    return None
