"""The ground truth a run is checked against: what the database committed.

Per channel (a date): its final epoch and head, the oldest event still in the log
(``min_seq``; older ones were pruned and cannot be compared), the committed events in order
and the final appointment rows ``{appointmentId: (version, state)}``.

Three ways to build one: from a ``Store`` (``truth_from_store``), from what a server sent
through the protocol (``channel_from_protocol``: a ``get_snapshot`` answer plus
``request_missed_events`` from 0), or from the ``truth.json`` the harness writes into every
run folder (``load_truth``), so a run can be re-checked offline.
"""

from __future__ import annotations

import itertools
import json
import re
import sys
from array import array
from bisect import bisect_left
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from synccli.domain.values import Event, Row, iso_ms, message_id, parse_iso_ms
from synccli.errors import ConfigError
from synccli.store.base import Store

TRUTH_SCHEMA = "synccli.truth/1"
# Events are read from a store in pages of this size so a long log never loads at once twice.
_PAGE = 10_000
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MS = timedelta(milliseconds=1)
#: The form ``iso_ms`` writes, which ``committed_ms`` turns into a number and back.
_ISO_MS = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")


def committed_ms(text: str) -> int | None:
    """A ``committedAt`` in the form ``iso_ms`` writes as milliseconds since 1970 (``iso_ms``
    of that instant is ``text`` again); None for any other text."""
    if _ISO_MS.fullmatch(text) is None:
        return None
    try:
        return (parse_iso_ms(text) - _EPOCH) // _MS
    except ValueError:
        return None


@dataclass(frozen=True, slots=True)
class CommittedEvent:
    """One committed event, reduced to what a client's ``apply`` record can be compared with."""

    seq: int
    event_id: str
    appointment_id: str
    version: int
    state: str
    committed_at: str

    @classmethod
    def of(cls, event: Event) -> CommittedEvent:
        return cls(
            event.seq,
            event.message_id,
            event.row.appointment_id,
            event.row.version,
            event.row.state,
            event.committed_at,
        )


class CommittedEvents(Mapping[int, CommittedEvent]):
    """A channel's committed events by seq, in columns: a long run's truth holds one
    ``CommittedEvent`` object per event otherwise (about 600 bytes each with its strings),
    this about 50. An event is built when it is looked up. Appointment ids and states are
    interned (a few distinct values repeated), an event id is kept only when it is not the
    usual ``"<date>:<epoch>:<seq>"``, and a commit time as milliseconds (its text only when
    not in ``iso_ms`` form). No string of a parsed ``truth.json`` is kept but the interned
    ones, so the memory of the parse goes back once it is read."""

    __slots__ = (
        "_aids",
        "_at",
        "_at_text",
        "_date",
        "_epoch",
        "_ids",
        "_seqs",
        "_states",
        "_versions",
    )

    def __init__(self, date: str, epoch: str, events: Iterable[CommittedEvent] = ()) -> None:
        self._date, self._epoch = date, epoch
        self._fill(events)

    def _fill(self, events: Iterable[CommittedEvent]) -> None:
        self._seqs: array[int] = array("q")
        self._ids: dict[int, str] = {}
        self._aids: list[str] = []
        self._versions: array[int] = array("q")
        self._states: list[str] = []
        self._at: array[int] = array("q")
        self._at_text: dict[int, str] = {}
        # In one go when in seq order (as a log is read and ``truth.json`` written), so
        # that a long log is never held as objects; else sorted (the last of a repeated
        # seq wins, as in a dict).
        items = iter(events)
        for event in items:
            if self._seqs and event.seq <= self._seqs[-1]:
                rest = {e.seq: e for e in itertools.chain(self.values(), [event], items)}
                self._fill(rest[seq] for seq in sorted(rest))
                return
            self._append(event)

    def _append(self, e: CommittedEvent) -> None:
        if e.event_id != message_id(self._date, self._epoch, e.seq):
            self._ids[e.seq] = e.event_id
        self._seqs.append(e.seq)
        self._aids.append(sys.intern(e.appointment_id))
        self._versions.append(e.version)
        self._states.append(sys.intern(e.state))
        ms = committed_ms(e.committed_at)
        if ms is None:
            self._at_text[e.seq] = e.committed_at
        self._at.append(0 if ms is None else ms)

    def _index(self, seq: int) -> int | None:
        seqs = self._seqs
        if not seqs:
            return None
        i = seq - seqs[0]  # the usual log: contiguous seqs
        if not 0 <= i < len(seqs) or seqs[i] != seq:
            i = bisect_left(seqs, seq)
            if i == len(seqs) or seqs[i] != seq:
                return None
        return i

    def _event(self, i: int) -> CommittedEvent:
        seq = self._seqs[i]
        event_id = self._ids.get(seq) or message_id(self._date, self._epoch, seq)
        return CommittedEvent(
            seq, event_id, self._aids[i], self._versions[i], self._states[i], self._text_at(i)
        )

    def _text_at(self, i: int) -> str:
        text = self._at_text.get(self._seqs[i])
        return text if text is not None else iso_ms(_EPOCH + self._at[i] * _MS)

    def __getitem__(self, seq: int) -> CommittedEvent:
        i = self._index(seq)
        if i is None:
            raise KeyError(seq)
        return self._event(i)

    def __contains__(self, seq: object) -> bool:
        return isinstance(seq, int) and self._index(seq) is not None

    def __iter__(self) -> Iterator[int]:
        return iter(self._seqs)

    def __len__(self) -> int:
        return len(self._seqs)

    def commit_seconds(self) -> Iterator[tuple[int, float | None]]:
        """``(seq, commit time)`` in seq order as Unix seconds (what ``parse_iso_ms(...)
        .timestamp()`` gives: ``ms / 1000``, correctly rounded like it), None where the
        text is not a time."""
        texts = self._at_text
        for seq, ms in zip(self._seqs, self._at, strict=True):
            yield seq, (ms / 1000 if seq not in texts else iso_to_w(texts[seq]))


@dataclass(frozen=True, slots=True)
class ChannelTruth:
    """The committed history of one date in its final epoch (``events``: any mapping; the
    loaders make a compact ``CommittedEvents``)."""

    date: str
    epoch: str
    head: int
    min_seq: int
    events: Mapping[int, CommittedEvent]
    rows: dict[str, tuple[int, str]]

    def commit_seconds(self) -> Iterator[tuple[int, float | None]]:
        """``(seq, commit time)`` of every event in seq order, as Unix seconds (None: not
        a time)."""
        if isinstance(self.events, CommittedEvents):
            return self.events.commit_seconds()
        events = self.events
        return ((seq, iso_to_w(events[seq].committed_at)) for seq in sorted(events))


def iso_to_w(text: object) -> float | None:
    """An ISO ``committedAt`` as Unix seconds, None when absent or malformed."""
    if not isinstance(text, str):
        return None
    try:
        return parse_iso_ms(text).timestamp()
    except ValueError:
        return None


@dataclass(frozen=True, slots=True)
class Truth:
    """Every channel's committed history; ``source`` says where it was read from."""

    channels: dict[str, ChannelTruth] = field(default_factory=dict)
    source: str = "memory"

    @property
    def events_committed(self) -> int:
        """Events committed in the final epochs (pruned ones included: ``head`` counts them)."""
        return sum(channel.head for channel in self.channels.values())


def _channel(
    date: str, epoch: str, head: int, events: Iterable[Event], rows: Iterable[Row]
) -> ChannelTruth:
    committed = {e.seq: CommittedEvent.of(e) for e in events if e.epoch == epoch and e.seq <= head}
    return ChannelTruth(
        date=date,
        epoch=epoch,
        head=head,
        min_seq=min(committed, default=head + 1),
        events=CommittedEvents(date, epoch, committed.values()),
        rows={row.appointment_id: (row.version, row.state) for row in rows},
    )


def channel_from_protocol(
    date: str, epoch: str, head: int, events: list[Event], rows: list[Row]
) -> ChannelTruth:
    """A channel's truth from protocol answers: the ``snapshot`` (epoch, head ``sequenceNum``,
    rows) and the events of ``request_missed_events`` from 0. Events of another epoch or past
    the head are ignored; the oldest event given is taken as ``min_seq``."""
    return _channel(date, epoch, head, events, rows)


def truth_from_protocol(channels: Iterable[ChannelTruth], source: str) -> Truth:
    """A ``Truth`` from channels built with ``channel_from_protocol``."""
    return Truth({channel.date: channel for channel in channels}, source)


def truth_from_data(data: Mapping[str, Mapping[str, Any]], source: str = "server") -> Truth:
    """A ``Truth`` from plain protocol data: ``{date: {"epoch", "head", "events": [Event],
    "rows": [Row]}}`` (what ``get_snapshot`` + ``request_missed_events`` from 0 returned)."""
    return truth_from_protocol(
        (
            channel_from_protocol(
                date, ch["epoch"], ch["head"], list(ch["events"]), list(ch["rows"])
            )
            for date, ch in data.items()
        ),
        source,
    )


def truth_from_store(store: Store, dates: Iterable[str] | None = None) -> Truth:
    """Read the truth of ``dates`` (default: every channel) from ``store``. Call it after the
    run has stopped writing: heads, events and rows are read one channel at a time."""
    wanted = sorted(store.heads()) if dates is None else sorted(set(dates))
    channels: dict[str, ChannelTruth] = {}
    for date in wanted:
        position, rows = store.snapshot(date)
        events: list[Event] = []
        after = 0
        while True:
            page = store.events_since(date, after, _PAGE)
            events.extend(page)
            if len(page) < _PAGE:
                break
            after = page[-1].seq
        channels[date] = _channel(date, position.epoch, position.head_seq, events, rows)
    return Truth(channels, store.url)


def truth_to_dict(truth: Truth) -> dict[str, Any]:
    """The JSON form written to ``truth.json`` (schema ``synccli.truth/1``)."""
    return {
        "schema": TRUTH_SCHEMA,
        "source": truth.source,
        "channels": {
            date: {
                "epoch": ch.epoch,
                "head": ch.head,
                "min_seq": ch.min_seq,
                "events": [
                    [e.seq, e.event_id, e.appointment_id, e.version, e.state, e.committed_at]
                    for e in sorted(ch.events.values(), key=lambda e: e.seq)
                ],
                "rows": {aid: [version, state] for aid, (version, state) in ch.rows.items()},
            }
            for date, ch in sorted(truth.channels.items())
        },
    }


def truth_from_dict(data: Any, source: str) -> Truth:
    """Inverse of ``truth_to_dict``; raises ``ConfigError`` naming ``source`` when malformed."""
    try:
        if data["schema"] != TRUTH_SCHEMA:
            raise ConfigError(
                f"{source} has schema {data['schema']!r}, expected {TRUTH_SCHEMA!r}: "
                "re-create it with this version of synccli or pass --db URL"
            )
        channels: dict[str, ChannelTruth] = {}
        for date, ch in data["channels"].items():
            epoch = str(ch["epoch"])
            events = (
                CommittedEvent(int(seq), str(eid), str(aid), int(ver), str(st), str(at))
                for seq, eid, aid, ver, st, at in ch["events"]
            )
            channels[date] = ChannelTruth(
                date=date,
                epoch=epoch,
                head=int(ch["head"]),
                min_seq=int(ch["min_seq"]),
                events=CommittedEvents(date, epoch, events),
                rows={str(aid): (int(v), str(s)) for aid, (v, s) in ch["rows"].items()},
            )
        return Truth(channels, str(data.get("source", source)))
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise ConfigError(
            f"{source} is not a valid truth file ({type(exc).__name__}: {exc}): "
            "re-create it or pass --db URL"
        ) from None


def write_truth(path: Path, truth: Truth) -> None:
    """Write ``truth`` to ``path`` as JSON (atomically: a reader never sees half a file)."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(truth_to_dict(truth), separators=(",", ":")), encoding="utf-8")
    tmp.replace(path)


def load_truth(path: Path) -> Truth:
    """Read a ``truth.json``; a missing or malformed file raises ``ConfigError``."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(
            f"no truth file at {path}: pass --db URL to read the truth from the database"
        ) from None
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}") from None
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise ConfigError(
            f"{path} is not valid JSON ({exc}): re-create it or pass --db URL"
        ) from None
    return truth_from_dict(data, str(path))
