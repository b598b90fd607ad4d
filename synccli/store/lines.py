"""Decoding the log lines the database writes as JSON text (``select_log_lines``): with
msgspec when it is installed (straight into typed values: no dict per payload), with the
standard library's ``json`` otherwise (``synccli.history.fast_json``), to the same lines."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from synccli.audit.entries import LogLine
from synccli.history import fast_json

try:
    import msgspec
except ImportError:  # pragma: no cover - the stdlib path is tested by forcing it
    msgspec = None  # type: ignore[assignment]

_decode: Any = None
if msgspec is not None:

    class _After(msgspec.Struct, gc=False):
        """What a line shows of the stored payload (its other fields are skipped)."""

        patient: str
        state: str
        version: int

    class _Nested(msgspec.Struct, array_like=True, gc=False):
        """``seq, committed_at, appointment_id, from_state, actor, request_id, payload``."""

        seq: int
        committed_at: str
        appointment_id: str
        from_state: str | None
        actor: str | None
        request_id: str | None
        after: _After

    _decode = msgspec.json.Decoder(list[_Nested]).decode


def lines_of(rows: Sequence[Sequence[Any]]) -> list[LogLine]:
    """``LogLine`` values from rows of one text each (NULL: none) as ``select_log_lines``
    returns them: JSON arrays separated by commas, each of ``seq, committed_at,
    appointment_id, from_state, actor, request_id`` and the payload object. One decode."""
    text = "[" + ",".join([text for (text,) in rows if text is not None]) + "]"
    if _decode is not None and fast_json.DECODER == "msgspec":
        return [
            LogLine(
                v.seq,
                v.committed_at,
                v.appointment_id,
                v.after.patient,
                v.from_state,
                v.after.state,
                v.after.version,
                v.actor,
                v.request_id,
            )
            for v in _decode(text)
        ]
    return [
        LogLine(seq, at, appointment, p["patient"], before, p["state"], p["version"], who, rid)
        for seq, at, appointment, before, who, rid, p in fast_json.loads(text)
    ]
