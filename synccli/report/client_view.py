"""What one client saw, step by step, beside what the database committed (time travel
through a run: ``synccli report RUN_DIR --client ID [--around SEQ]``).

Each of the client's history records that touches a channel or its connection becomes a
step. An ``apply`` is set against the committed event of its sequence number: ``ok`` (same
appointment, version and state), ``phantom`` (the database committed something else there,
shown beside it, or nothing at all: the checker's phantom), ``old epoch`` or ``pruned``.
Committed events the client neither applied nor covered by a later snapshot or subscribe
position are listed as ``missed`` at the end. The HTML report shows the same steps around
each anomaly (``near``).
"""

from __future__ import annotations

from dataclasses import dataclass

from synccli.errors import ConfigError
from synccli.history import records as rec
from synccli.history.reader import Entry, History
from synccli.report.truth import ChannelTruth, CommittedEvent, Truth

#: Sequence numbers shown either side of ``--around``.
SPAN = 10
COLUMNS = ("t s", "date", "seq", "the client saw", "the database committed", "check")


@dataclass(frozen=True, slots=True)
class Step:
    t: float | None
    date: str | None
    seq: int | None
    saw: str
    committed: str
    check: str

    def cells(self) -> tuple[str, ...]:
        return (
            "" if self.t is None else f"{self.t:.3f}",
            self.date or "",
            "" if self.seq is None else str(self.seq),
            self.saw,
            self.committed,
            self.check,
        )


def _event_text(event: CommittedEvent) -> str:
    return f"{event.appointment_id} {event.state} v{event.version}"


def _apply_step(t: float, record: rec.Apply, channel: ChannelTruth | None) -> Step:
    saw = f"apply {record.appointment_id} {record.state} v{record.version}"
    if record.replay:
        saw += " (replay)"
    event = None if channel is None else channel.events.get(record.seq)
    if channel is None or record.epoch != channel.epoch:
        return Step(t, record.date, record.seq, saw, "", "old epoch")
    if event is None:
        check = "pruned" if record.seq < channel.min_seq else "phantom"
        return Step(t, record.date, record.seq, saw, "", check)
    same = (event.appointment_id, event.version, event.state) == (
        record.appointment_id,
        record.version,
        record.state,
    )
    return Step(t, record.date, record.seq, saw, _event_text(event), "ok" if same else "phantom")


def _step(t: float, record: rec.Record, truth: Truth) -> Step | None:
    if isinstance(record, rec.Apply):
        return _apply_step(t, record, truth.channels.get(record.date))
    if isinstance(record, rec.Subscribed):
        how = "recovered" if record.recovered else "snapshot"
        return Step(t, record.date, record.seq, f"subscribed ({how})", "", "")
    if isinstance(record, rec.SnapshotTaken):
        return Step(t, record.date, record.seq, "snapshot", "", "")
    if isinstance(record, rec.Dup):
        return Step(t, record.date, record.seq, "duplicate, not applied", "", "")
    if isinstance(record, rec.Gap):
        return Step(t, record.date, record.got, f"gap: had {record.have}", "", "")
    if isinstance(record, rec.GapRecovered):
        return Step(t, record.date, record.seq, "gap filled", "", "")
    if isinstance(record, rec.Resync):
        return Step(t, record.date, None, f"resync ({record.reason})", "", "")
    if isinstance(record, rec.Connect):
        return Step(t, None, None, f"connected (attempt {record.attempt})", "", "")
    if isinstance(record, rec.Disconnect):
        return Step(t, None, None, f"disconnected ({record.code})", "", "")
    return None


def client_steps(
    history: History, truth: Truth, client: str, around: int | None = None, span: int = SPAN
) -> list[Step]:
    """The steps of ``client`` (``ConfigError`` if the run has no such client), only those
    within ``span`` sequence numbers of ``around`` (and the connection steps between them)
    when it is given."""
    mine = [e for e in history.entries if e.client == client]
    if not mine:
        known = sorted({e.client for e in history.entries if e.client is not None})
        raise ConfigError(
            f"the run has no client {client!r}; its clients: {', '.join(known) or 'none'}"
        )
    steps = steps_of(mine, truth)
    return steps if around is None else near(steps, around, span)


def steps_of(entries: list[Entry[rec.Record]], truth: Truth) -> list[Step]:
    """Every step of one client's history ``entries`` (in order), the missed ones last."""
    steps = [s for e in entries if (s := _step(e.t, e.record, truth)) is not None]
    return steps + _missed(steps, truth)


def near(steps: list[Step], around: int, span: int = SPAN) -> list[Step]:
    """The steps within ``span`` sequence numbers of ``around``, and the connection steps
    between the first and the last of them."""
    close = [s for s in steps if s.seq is not None and abs(s.seq - around) <= span]
    timed = [s.t for s in close if s.t is not None]
    if not timed:
        return close
    first, last = min(timed), max(timed)
    return [
        s
        for s in steps
        if (s.seq is not None and abs(s.seq - around) <= span)
        or (s.seq is None and s.t is not None and first <= s.t <= last)
    ]


def _missed(steps: list[Step], truth: Truth) -> list[Step]:
    """Committed events of a date the client subscribed to that it neither applied nor
    covered by a snapshot or subscribe position."""
    out: list[Step] = []
    for date, channel in sorted(truth.channels.items()):
        positions = [
            s.seq
            for s in steps
            if s.date == date and s.seq is not None and s.saw.startswith(("sub", "snap"))
        ]
        if not positions:
            continue
        covered = max(positions)
        applied = {s.seq for s in steps if s.date == date and s.check in ("ok", "phantom")}
        for seq, event in sorted(channel.events.items()):
            if seq > covered and seq not in applied:
                out.append(Step(None, date, seq, "", _event_text(event), "missed"))
    return out
