"""The protocol test vectors, tests/vectors/*.json (``python -m tests.vectors.generate``).

A vector is a client script: ``config`` (client id, dates, timeouts) and ``steps``. Each step
does one thing at time ``at`` (seconds) and says what must come out of it:

* ``{"connect": true}``, ``{"disconnect": true}``, ``{"tick": true}``, ``{"flushAcks": true}``
* ``{"receive": <server message, wire form>}``, ``{"frame": "<raw text>"}`` (maybe malformed)
* ``{"write": {"appointmentId", "state", "requestId"}}``

``expect`` keys: ``send`` (the wire messages sent, exactly, in order; checked always, so a
step that must send nothing says nothing), ``records`` (history records, each compared on
the keys given, same count), ``status`` / ``position`` (per date), ``view`` (the state a user
sees per appointment), ``rows`` (``[version, state]`` stored per appointment), ``pending``
(request ids in flight). Both the Python core (``tests/protocol/test_vectors.py``) and the
JS client (``tests/js/vectors.test.mjs``) run every vector; this file only spells the
messages out, the expectations are written here by hand.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

HERE = Path(__file__).parent
D = "2026-11-26"
D2 = "2026-11-27"
E = "e1"
E2 = "e2"
T0 = "2026-11-26T08:00:00.000Z"

Msg = dict[str, Any]


def aid(n: int, date: str = D) -> str:
    return f"{date}-{n:04d}"


def row(n: int, state: str = "Scheduled", version: int = 1, date: str = D) -> Msg:
    return {
        "appointmentId": aid(n, date),
        "date": date,
        "patient": f"Patient {n}",
        "state": state,
        "stateTime": None if state == "Scheduled" else T0,
        "version": version,
        "updatedAt": T0,
    }


def ev(
    seq: int,
    n: int = 1,
    state: str = "Present",
    *,
    version: int | None = None,
    epoch: str = E,
    replay: bool = False,
    action: str | None = None,
    date: str = D,
) -> Msg:
    return {
        "type": "appointments_updated",
        "id": f"{date}:{epoch}:{seq}",
        "date": date,
        "epoch": epoch,
        "sequenceNum": seq,
        "requiresAck": True,
        "actionId": action,
        "appointment": row(n, state, version if version is not None else seq + 1, date),
        "committedAt": f"2026-11-26T08:00:{seq % 60:02d}.000Z",
        "replay": replay,
    }


def answer(kind: str, seq: int, epoch: str = E, date: str = D, **fields: Any) -> Msg:
    """A server message that states a position: ``subscribed``, ``missed_events``."""
    return {"type": kind, "date": date, "epoch": epoch, "sequenceNum": seq, **fields}


def replayed(events: list[Msg]) -> list[Msg]:
    return [{**e, "replay": True} for e in events]


def snap(seq: int, rows: list[Msg], epoch: str = E, date: str = D) -> Msg:
    return answer("subscribed", seq, epoch, date, recovered=False, snapshot=rows)


def recovered(seq: int, events: list[Msg], epoch: str = E) -> Msg:
    return answer("subscribed", seq, epoch, recovered=True, events=replayed(events))


def missed(seq: int, events: list[Msg], epoch: str = E) -> Msg:
    return answer("missed_events", seq, epoch, events=replayed(events))


def heartbeat(seq: int, epoch: str = E) -> Msg:
    return {"type": "heartbeat", "positions": {D: {"epoch": epoch, "sequenceNum": seq}}}


def subscribe(since: tuple[str, int] | None = None, date: str = D) -> Msg:
    out: Msg = {"type": "subscribe", "date": date}
    if since is not None:
        out["since"] = {"epoch": since[0], "sequenceNum": since[1]}
    return out


def ack(seq: int, epoch: str = E, date: str = D) -> Msg:
    return {"type": "ack", "date": date, "sequenceNum": seq, "epoch": epoch}


def rme(last: int, epoch: str = E) -> Msg:
    return {"type": "request_missed_events", "date": D, "lastSequenceNum": last, "epoch": epoch}


def update(rid: str, n: int, state: str) -> Msg:
    return {
        "type": "update_appointment_state",
        "requestId": rid,
        "appointmentId": aid(n),
        "state": state,
    }


def result_ok(rid: str, appointment: Msg, seq: int) -> Msg:
    return {
        "type": "result",
        "requestId": rid,
        "ok": True,
        "appointment": appointment,
        "sequenceNum": seq,
    }


def applied(*seqs: int) -> list[Msg]:
    return [{"k": "apply", "seq": s} for s in seqs]


ROWS = [row(1), row(2), row(3)]
# Connected and synced at position (E, 0) with three Scheduled rows.
START: list[Msg] = [
    {"at": 0, "connect": True, "expect": {"send": [subscribe()], "status": {D: "syncing"}}},
    {
        "at": 0,
        "receive": snap(0, ROWS),
        "expect": {
            "records": [{"k": "subscribed", "recovered": False}],
            "status": {D: "synced"},
            "position": {D: [E, 0]},
        },
    },
]
CONFIG = {"clientId": "t", "dates": [D], "gapTimeout": 2.0, "writeTimeout": 5.0}


def vector(description: str, steps: list[Msg], config: Msg | None = None) -> Msg:
    return {"description": description, "config": config or CONFIG, "steps": steps}


VECTORS: dict[str, Msg] = {
    "fresh_subscribe_and_apply": vector(
        "A fresh subscribe gets a snapshot; the next events are applied in order.",
        [
            *START,
            {
                "at": 1,
                "receive": ev(1, 1),
                "expect": {"records": applied(1), "rows": {aid(1): [2, "Present"]}},
            },
            {
                "at": 1,
                "receive": ev(2, 2),
                "expect": {"records": applied(2), "position": {D: [E, 2]}},
            },
        ],
    ),
    "duplicates_acked_and_ignored": vector(
        "An event at or below the position is a duplicate: acked again, never applied twice.",
        [
            *START,
            {"at": 1, "receive": ev(1, 1), "expect": {"records": applied(1)}},
            {"at": 1, "receive": ev(2, 1, "Seated"), "expect": {"records": applied(2)}},
            {"at": 1, "flushAcks": True, "expect": {"send": [ack(2)]}},
            {
                "at": 2,
                "receive": ev(1, 1),
                "expect": {"records": [{"k": "dup", "seq": 1}], "rows": {aid(1): [3, "Seated"]}},
            },
            {
                "at": 2,
                "receive": ev(2, 1, "Seated"),
                "expect": {"records": [{"k": "dup", "seq": 2}]},
            },
            {"at": 2, "flushAcks": True, "expect": {"send": [ack(2)]}},
            {"at": 2, "flushAcks": True, "expect": {"send": []}},
        ],
    ),
    "reorder_buffered": vector(
        "An event past a gap is held and the gap asked for once; the late event fills it.",
        [
            *START,
            {
                "at": 1,
                "receive": ev(2, 2),
                "expect": {
                    "send": [rme(0)],
                    "records": [{"k": "gap", "have": 0, "got": 2}],
                    "status": {D: "syncing"},
                    "position": {D: [E, 0]},
                },
            },
            {"at": 1.1, "receive": ev(3, 3), "expect": {"records": []}},
            {
                "at": 1.2,
                "receive": ev(1, 1),
                "expect": {
                    "records": [*applied(1, 2, 3), {"k": "gap_recovered", "seq": 3}],
                    "status": {D: "synced"},
                    "position": {D: [E, 3]},
                },
            },
            {
                "at": 1.3,
                "receive": missed(3, [ev(1, 1), ev(2, 2), ev(3, 3)]),
                "expect": {"records": [{"k": "dup", "seq": s} for s in (1, 2, 3)]},
            },
            {"at": 1.3, "flushAcks": True, "expect": {"send": [ack(3)]}},
            {"at": 5, "tick": True, "expect": {"send": []}},
        ],
    ),
    "gap_filled_by_missed_events": vector(
        "A gap is asked for once (not once per held event); the replay fills it in order.",
        [
            *START,
            {"at": 1, "receive": ev(1, 1), "expect": {"records": applied(1)}},
            {
                "at": 1,
                "receive": ev(4, 2),
                "expect": {"send": [rme(1)], "records": [{"k": "gap", "have": 1, "got": 4}]},
            },
            {"at": 1.5, "receive": ev(5, 3), "expect": {"records": [], "status": {D: "syncing"}}},
            {
                "at": 1.6,
                "receive": missed(
                    5, [ev(2, 2, "Cancelled"), ev(3, 3, "NoShow"), ev(4, 2), ev(5, 3)]
                ),
                "expect": {
                    "records": [
                        *applied(2, 3, 4, 5),
                        {"k": "gap_recovered", "seq": 5},
                        {"k": "dup", "seq": 4},
                        {"k": "dup", "seq": 5},
                    ],
                    "status": {D: "synced"},
                    "rows": {aid(2): [5, "Present"], aid(3): [6, "Present"]},
                },
            },
        ],
    ),
    "gap_timeout_then_resync": vector(
        "An unanswered gap is re-asked only after gapTimeout; after 3 requests from one "
        "position the channel resyncs from a snapshot.",
        [
            *START,
            {"at": 1, "receive": ev(1, 1), "expect": {"records": applied(1)}},
            {"at": 1, "receive": ev(3, 3), "expect": {"send": [rme(1)]}},
            {"at": 2.9, "tick": True, "expect": {"send": []}},
            {"at": 3, "tick": True, "expect": {"send": [rme(1)]}},
            {"at": 3.5, "receive": missed(3, []), "expect": {"send": [], "status": {D: "syncing"}}},
            {"at": 5, "tick": True, "expect": {"send": [rme(1)]}},
            {
                "at": 7,
                "tick": True,
                "expect": {
                    "send": [subscribe()],
                    "records": [{"k": "resync", "reason": "gap_unfilled"}],
                    "status": {D: "out_of_sync"},
                },
            },
            {
                "at": 7.1,
                "receive": snap(3, [row(1, "Present", 2), row(2), row(3, "Present", 4)]),
                "expect": {
                    "status": {D: "synced"},
                    "position": {D: [E, 3]},
                    "rows": {aid(3): [4, "Present"]},
                },
            },
        ],
    ),
    "epoch_change_resyncs": vector(
        "An event, heartbeat or replay of another epoch means the log was reset: resubscribe "
        "without `since`; the new epoch's snapshot replaces the rows.",
        [
            *START,
            {"at": 1, "receive": ev(1, 1), "expect": {"records": applied(1)}},
            {
                "at": 2,
                "receive": ev(1, 2, epoch=E2),
                "expect": {
                    "send": [subscribe()],
                    "records": [{"k": "resync", "reason": "epoch_changed"}],
                    "status": {D: "out_of_sync"},
                    "position": {D: [E, 1]},
                },
            },
            {"at": 2.1, "receive": ev(2, 3, epoch=E2), "expect": {"records": []}},
            {
                "at": 2.2,
                "receive": snap(1, [row(1), row(2, "Present", 2), row(3)], epoch=E2),
                "expect": {
                    "records": [{"k": "subscribed"}, {"k": "apply", "seq": 2, "epoch": E2}],
                    "status": {D: "synced"},
                    "position": {D: [E2, 2]},
                    "rows": {aid(1): [1, "Scheduled"], aid(3): [3, "Present"]},
                },
            },
            {
                "at": 3,
                "receive": heartbeat(9, epoch="e3"),
                "expect": {
                    "send": [subscribe()],
                    "records": [{"k": "resync", "reason": "epoch_changed"}],
                    "status": {D: "out_of_sync"},
                },
            },
        ],
    ),
    "resync_required_resubscribes": vector(
        "`resync_required` (history truncated) is answered with a fresh subscribe.",
        [
            *START,
            {"at": 1, "receive": ev(1, 1), "expect": {"send": []}},
            {"at": 1, "receive": ev(5, 1), "expect": {"send": [rme(1)]}},
            {
                "at": 1.2,
                "receive": {"type": "resync_required", "date": D, "reason": "history_truncated"},
                "expect": {
                    "send": [subscribe()],
                    "records": [{"k": "resync", "reason": "history_truncated"}],
                    "status": {D: "out_of_sync"},
                },
            },
            {"at": 1.3, "tick": True, "expect": {"send": []}},
            {
                "at": 1.4,
                "receive": snap(5, [row(1, "Seated", 6), row(2), row(3)]),
                "expect": {"status": {D: "synced"}, "position": {D: [E, 5]}},
            },
        ],
    ),
    "heartbeat_notices_missed_last_event": vector(
        "A heartbeat head past the position shows a lost last event: it is asked for.",
        [
            *START,
            {"at": 1, "receive": ev(1, 1), "expect": {"records": applied(1)}},
            {"at": 5, "receive": heartbeat(1), "expect": {"send": [], "records": []}},
            {
                "at": 10,
                "receive": heartbeat(2),
                "expect": {
                    "send": [rme(1)],
                    "records": [{"k": "gap", "have": 1, "got": 2, "via": "heartbeat"}],
                    "status": {D: "syncing"},
                },
            },
            {
                "at": 10.1,
                "receive": missed(2, [ev(2, 2)]),
                "expect": {
                    "records": [*applied(2), {"k": "gap_recovered", "seq": 2}],
                    "status": {D: "synced"},
                },
            },
        ],
    ),
    "cumulative_acks": vector(
        "Acks are cumulative and batched: one per date, covering every event applied since.",
        [
            {"at": 0, "connect": True, "expect": {"send": [subscribe(), subscribe(date=D2)]}},
            {"at": 0, "receive": snap(0, ROWS), "expect": {}},
            {"at": 0, "receive": snap(0, [row(1, date=D2)], date=D2), "expect": {}},
            {"at": 0, "flushAcks": True, "expect": {"send": []}},
            *[
                {"at": 1, "receive": ev(s, s % 3 + 1), "expect": {"records": applied(s)}}
                for s in range(1, 6)
            ],
            {"at": 1, "receive": ev(1, 1, date=D2), "expect": {"records": applied(1)}},
            {"at": 1.05, "flushAcks": True, "expect": {"send": [ack(5), ack(1, date=D2)]}},
            {"at": 1.1, "flushAcks": True, "expect": {"send": []}},
            {"at": 2, "receive": ev(6, 1), "expect": {}},
            {"at": 2.05, "flushAcks": True, "expect": {"send": [ack(6)]}},
        ],
        config={**CONFIG, "dates": [D, D2]},
    ),
    "subscribe_resumes_with_since": vector(
        "After a reconnect the subscribe carries `since`; a recovered answer's events go "
        "through the same rules, and a head beyond them is a gap.",
        [
            *START,
            {"at": 1, "receive": ev(1, 1), "expect": {}},
            {"at": 1, "receive": ev(2, 2), "expect": {}},
            {
                "at": 2,
                "disconnect": True,
                "expect": {"status": {D: "synced"}, "position": {D: [E, 2]}},
            },
            {
                "at": 3,
                "connect": True,
                "expect": {"send": [subscribe((E, 2))], "status": {D: "syncing"}},
            },
            {"at": 3, "receive": ev(4, 3), "expect": {"records": []}},
            {
                "at": 3.1,
                "receive": recovered(4, [ev(3, 1, "Seated")]),
                "expect": {
                    "records": [
                        {"k": "subscribed", "recovered": True, "events": 1},
                        {"k": "apply", "seq": 3, "replay": True},
                        {"k": "apply", "seq": 4, "replay": False},
                    ],
                    "status": {D: "synced"},
                    "position": {D: [E, 4]},
                },
            },
            {"at": 4, "disconnect": True, "expect": {}},
            {"at": 5, "connect": True, "expect": {"send": [subscribe((E, 4))]}},
            {
                "at": 5.1,
                "receive": recovered(6, [ev(5, 2, "Seated")]),
                "expect": {
                    "send": [rme(5)],
                    "records": [
                        {"k": "subscribed"},
                        {"k": "apply", "seq": 5},
                        {"k": "gap", "have": 5, "got": 6, "via": "subscribed"},
                    ],
                    "status": {D: "syncing"},
                },
            },
            {
                "at": 5.2,
                "receive": missed(6, [ev(6, 3, "Seated")]),
                "expect": {"status": {D: "synced"}},
            },
            {"at": 6, "disconnect": True, "expect": {}},
            {"at": 7, "connect": True, "expect": {"send": [subscribe((E, 6))]}},
            {
                "at": 7.1,
                "receive": snap(9, [row(1, "Dismissed", 10), row(2), row(3)]),
                "expect": {
                    "records": [{"k": "subscribed", "recovered": False}],
                    "position": {D: [E, 9]},
                    "rows": {aid(1): [10, "Dismissed"], aid(2): [1, "Scheduled"]},
                },
            },
        ],
    ),
    "write_confirmed": vector(
        "A write shows at once (processing); `result` ok confirms it and the event lands.",
        [
            *START,
            {
                "at": 1,
                "write": {"appointmentId": aid(1), "state": "Present", "requestId": "t-1"},
                "expect": {
                    "send": [update("t-1", 1, "Present")],
                    "records": [{"k": "write", "requestId": "t-1", "attempt": 1}],
                    "view": {aid(1): "Present"},
                    "rows": {aid(1): [1, "Scheduled"]},
                    "pending": ["t-1"],
                },
            },
            {
                "at": 1.1,
                "receive": result_ok("t-1", row(1, "Present", 2), 1),
                "expect": {
                    "records": [{"k": "write_result", "requestId": "t-1", "ok": True, "seq": 1}],
                    "view": {aid(1): "Present"},
                    "pending": [],
                },
            },
            {
                "at": 1.2,
                "receive": ev(1, 1, action="t-1"),
                "expect": {
                    "records": applied(1),
                    "rows": {aid(1): [2, "Present"]},
                    "view": {aid(1): "Present"},
                },
            },
        ],
    ),
    "write_retried_same_request_id": vector(
        "An unanswered write is re-sent with the SAME requestId after writeTimeout and after "
        "a reconnect; the server's answer to the retry confirms it once.",
        [
            *START,
            {
                "at": 1,
                "write": {"appointmentId": aid(2), "state": "Cancelled", "requestId": "t-7"},
                "expect": {"send": [update("t-7", 2, "Cancelled")]},
            },
            {"at": 5.9, "tick": True, "expect": {"send": []}},
            {
                "at": 6,
                "tick": True,
                "expect": {
                    "send": [update("t-7", 2, "Cancelled")],
                    "records": [{"k": "write", "requestId": "t-7", "attempt": 2}],
                },
            },
            {
                "at": 7,
                "disconnect": True,
                "expect": {"view": {aid(2): "Cancelled"}, "pending": ["t-7"]},
            },
            {
                "at": 8,
                "connect": True,
                "expect": {
                    "send": [subscribe((E, 0)), update("t-7", 2, "Cancelled")],
                    "records": [{"k": "write", "requestId": "t-7", "attempt": 3}],
                },
            },
            {
                "at": 8.1,
                "receive": recovered(1, [ev(1, 2, "Cancelled", action="t-7")]),
                "expect": {
                    "records": [
                        {"k": "subscribed"},
                        {"k": "apply", "seq": 1, "state": "Cancelled"},
                    ],
                    "view": {aid(2): "Cancelled"},
                },
            },
            {
                "at": 8.2,
                "receive": result_ok("t-7", row(2, "Cancelled", 2), 1),
                "expect": {"records": [{"k": "write_result", "ok": True}], "pending": []},
            },
            {
                "at": 8.3,
                "receive": result_ok("t-7", row(2, "Cancelled", 2), 1),
                "expect": {"records": []},
            },
        ],
    ),
    "write_rolled_back": vector(
        "A refused write (`ok: false`) is rolled back: the user sees the stored state again.",
        [
            *START,
            {
                "at": 1,
                "write": {"appointmentId": aid(3), "state": "Seated", "requestId": "t-2"},
                "expect": {"send": [update("t-2", 3, "Seated")], "view": {aid(3): "Seated"}},
            },
            {
                "at": 1.1,
                "receive": {
                    "type": "result",
                    "requestId": "t-2",
                    "ok": False,
                    "error": {"code": "invalid_transition", "message": "cannot move"},
                },
                "expect": {
                    "records": [
                        {
                            "k": "write_result",
                            "requestId": "t-2",
                            "ok": False,
                            "code": "invalid_transition",
                        },
                        {"k": "rollback", "requestId": "t-2", "appointmentId": aid(3)},
                    ],
                    "view": {aid(3): "Scheduled"},
                    "pending": [],
                    "status": {D: "synced"},
                },
            },
        ],
    ),
    "write_gives_up": vector(
        "A write never answered is given up after 5 attempts (`write_result` code timeout) "
        "and rolled back.",
        [
            *START,
            {
                "at": 0,
                "write": {"appointmentId": aid(1), "state": "NoShow", "requestId": "t-3"},
                "expect": {"send": [update("t-3", 1, "NoShow")]},
            },
            *[
                {"at": 5 * n, "tick": True, "expect": {"send": [update("t-3", 1, "NoShow")]}}
                for n in range(1, 5)
            ],
            {
                "at": 25,
                "tick": True,
                "expect": {
                    "send": [],
                    "records": [
                        {"k": "write_result", "ok": False, "code": "timeout"},
                        {"k": "rollback", "requestId": "t-3"},
                    ],
                    "view": {aid(1): "Scheduled"},
                    "pending": [],
                },
            },
        ],
    ),
    "malformed_frame_resyncs": vector(
        "A malformed server frame is reported (an `error` record) and never throws; what it "
        "carried is lost, so the dates it names resync from a snapshot (every date when it "
        "names none); a `result` or `error` frame carries no channel state and resyncs none.",
        [
            {
                "at": 0,
                "connect": True,
                "expect": {"send": [subscribe(), subscribe(date=D2)]},
            },
            {"at": 0, "receive": snap(0, ROWS), "expect": {"records": [{"k": "subscribed"}]}},
            {
                "at": 0,
                "receive": snap(0, [row(1, date=D2)], date=D2),
                "expect": {"status": {D: "synced", D2: "synced"}},
            },
            {
                "at": 1,
                "frame": "{not json",
                "expect": {
                    "send": [subscribe(), subscribe(date=D2)],
                    "records": [
                        {"k": "error", "code": "bad_json"},
                        {"k": "resync", "date": D, "reason": "malformed_frame"},
                        {"k": "resync", "date": D2, "reason": "malformed_frame"},
                    ],
                    "status": {D: "out_of_sync", D2: "out_of_sync"},
                },
            },
            {"at": 1.1, "receive": snap(0, ROWS), "expect": {"status": {D: "synced"}}},
            {
                "at": 1.1,
                "receive": snap(0, [row(1, date=D2)], date=D2),
                "expect": {"status": {D2: "synced"}},
            },
            {
                "at": 2,
                "frame": json.dumps({k: v for k, v in ev(1, 1).items() if k != "appointment"}),
                "expect": {
                    "send": [subscribe()],
                    "records": [
                        {"k": "error", "code": "bad_message"},
                        {"k": "resync", "date": D, "reason": "malformed_frame"},
                    ],
                    "status": {D: "out_of_sync", D2: "synced"},
                    "position": {D: [E, 0]},
                },
            },
            {
                "at": 2.1,
                "receive": snap(1, [row(1, "Present", 2), row(2), row(3)]),
                "expect": {
                    "records": [{"k": "subscribed", "recovered": False}],
                    "status": {D: "synced"},
                    "position": {D: [E, 1]},
                    "rows": {aid(1): [2, "Present"]},
                },
            },
            {
                "at": 3,
                "frame": json.dumps(
                    {"type": "heartbeat", "positions": {D2: {"epoch": "", "sequenceNum": 0}}}
                ),
                "expect": {
                    "send": [subscribe(date=D2)],
                    "records": [
                        {"k": "error", "code": "bad_message"},
                        {"k": "resync", "date": D2, "reason": "malformed_frame"},
                    ],
                    "status": {D: "synced", D2: "out_of_sync"},
                },
            },
            {
                "at": 3.1,
                "receive": snap(0, [row(1, date=D2)], date=D2),
                "expect": {"status": {D2: "synced"}},
            },
            {
                "at": 4,
                "frame": json.dumps({"type": "result", "requestId": "t-1", "ok": True}),
                "expect": {
                    "records": [{"k": "error", "code": "bad_message"}],
                    "status": {D: "synced", D2: "synced"},
                },
            },
            {
                "at": 4,
                "frame": '{"type":"surprise","date":"2026-12-01"}',
                "expect": {
                    "send": [subscribe(), subscribe(date=D2)],
                    "records": [
                        {"k": "error", "code": "unknown_type"},
                        {"k": "resync", "date": D, "reason": "malformed_frame"},
                        {"k": "resync", "date": D2, "reason": "malformed_frame"},
                    ],
                },
            },
            {
                "at": 4.1,
                "receive": snap(1, [row(1, "Present", 2), row(2), row(3)]),
                "expect": {"status": {D: "synced"}},
            },
            {
                "at": 4.1,
                "receive": snap(0, [row(1, date=D2)], date=D2),
                "expect": {"status": {D2: "synced"}},
            },
            {
                "at": 5,
                "frame": "[1,2]",
                "expect": {
                    "send": [subscribe(), subscribe(date=D2)],
                    "records": [
                        {"k": "error", "code": "bad_message"},
                        {"k": "resync", "date": D},
                        {"k": "resync", "date": D2},
                    ],
                },
            },
            {
                "at": 5.1,
                "receive": {"type": "error", "code": "bad_message", "message": "you sent junk"},
                "expect": {"records": [{"k": "error", "code": "bad_message"}]},
            },
        ],
        {**CONFIG, "dates": [D, D2]},
    ),
    "events_held_until_subscribed": vector(
        "Live events that arrive before the subscribe answer are held; the answer decides.",
        [
            {"at": 0, "connect": True, "expect": {"send": [subscribe()]}},
            {"at": 0.1, "receive": ev(2, 2), "expect": {"records": [], "send": []}},
            {"at": 0.1, "receive": ev(3, 3), "expect": {"records": []}},
            {
                "at": 0.2,
                "receive": snap(2, [row(1, "Present", 2), row(2, "Present", 3), row(3)]),
                "expect": {
                    "records": [{"k": "subscribed"}, *applied(3)],
                    "position": {D: [E, 3]},
                    "rows": {aid(3): [4, "Present"]},
                    "status": {D: "synced"},
                },
            },
        ],
    ),
}


def main() -> None:
    for path in HERE.glob("*.json"):
        path.unlink()
    for name, body in VECTORS.items():
        (HERE / f"{name}.json").write_text(json.dumps(body, indent=1) + "\n")


if __name__ == "__main__":
    main()
