"""How domain values are stored: result rows to ``Row``/``Channel``/``Event``, and the
idempotency record of a committed write."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from synccli.audit.entries import LogEntry
from synccli.domain.channels import Channel, WriteOutcome, WriteRequest
from synccli.domain.values import Event, Row
from synccli.errors import WriteRejected

#: The compact encoder, built once: ``json.dumps`` with arguments builds a new one per call,
#: and the write path serialises on every check-in.
_encode = json.JSONEncoder(separators=(",", ":")).encode


def row_of(values: Sequence[Any]) -> Row:
    """A ``Row`` from ``appointment_id, date, patient, state, state_time, version,
    updated_at``."""
    return Row(
        str(values[0]),
        str(values[1]),
        str(values[2]),
        str(values[3]),
        None if values[4] is None else str(values[4]),
        int(values[5]),
        str(values[6]),
    )


def channel_of(values: Sequence[Any]) -> Channel:
    """A ``Channel`` from ``date, epoch, head_seq, min_seq``."""
    return Channel(str(values[0]), str(values[1]), int(values[2]), int(values[3]))


def event_of(date: str, values: Sequence[Any]) -> Event:
    """An ``Event`` from ``event_id, seq, request_id, payload, committed_at``. The epoch is
    the middle of the event id (``date:epoch:seq``), so no join with channels is needed."""
    epoch = str(values[0]).split(":")[1]
    row = Row.from_wire(json.loads(values[3]))
    action = None if values[2] is None else str(values[2])
    return Event(date, epoch, int(values[1]), row, action, str(values[4]))


def entries_of(rows: Sequence[Sequence[Any]]) -> list[LogEntry]:
    """``LogEntry`` values from rows of ``seq, event_id, appointment_id, request_id,
    payload, committed_at, actor, from_state, from_state_time, from_updated_at`` (the
    fields' order: each row becomes an entry as it is; both drivers return ``int`` for
    the sequence number and ``str`` for text)."""
    return list(map(LogEntry._make, rows))


def payload_of(row: Row) -> str:
    """The stored form of an event's row: its wire JSON."""
    return _encode(row.to_wire())


def payload_parts(appointment_id: str, state: str, stamp: str) -> tuple[str, str, str, str]:
    """``payload_of`` of the row a write stores, in the four pieces around the values only
    the database knows (the row's date, patient and version): ``head + date + to_patient +
    patient + to_version + version + tail``, the text values as JSON strings. The
    one-round-trip write assembles the payload from these in SQL."""
    return (
        f'{{"appointmentId":{_encode(appointment_id)},"date":',
        ',"patient":',
        f',"state":{_encode(state)},"stateTime":{_encode(stamp)},"version":',
        f',"updatedAt":{_encode(stamp)}}}',
    )


def result_parts(request: WriteRequest) -> tuple[str, str]:
    """``result_of`` in the pieces around its sequence number and payload:
    ``head + seq + mid + payload + "}"``."""
    actor = "" if request.actor is None else f',"actor":{_encode(request.actor)}'
    return f'{{"fingerprint":{_encode(request.fingerprint())},"seq":', f'{actor},"row":'


def result_of(request: WriteRequest, seq: int, payload: str) -> str:
    """The idempotency record of a committed write: its outcome and the request's
    fingerprint, so a reused id with other content can be told apart. ``payload`` is the
    row's stored form (``payload_of``), spliced in as is: the row is serialised once per
    write, for the event and for this record. The request's ``actor`` is kept with it (the
    event records it too, for the audit trail)."""
    head, mid = result_parts(request)
    return f"{head}{seq}{mid}{payload}}}"


def replay(request: WriteRequest, stored: str) -> WriteOutcome:
    """The stored outcome of ``request``'s id, or ``request_id_reused`` if that id was used
    for other content."""
    record = json.loads(stored)
    if record.get("fingerprint") != request.fingerprint():
        raise WriteRejected(
            "request_id_reused",
            f"requestId {request.request_id!r} was already used for a different write; "
            "use a new requestId",
        )
    return WriteOutcome(
        request.request_id, Row.from_wire(record["row"]), int(record["seq"]), None, replayed=True
    )
