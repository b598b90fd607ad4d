"""The checker: every client's history against what the database committed. Pure.

Per (client, date), walking the client's records in order:

- **expected**: the committed events of the final epoch from the client's first subscribe
  position + 1 to the final head (0 when it first subscribed in an older epoch);
- **delivered**: applied, or covered by a snapshot (a ``subscribed`` with ``recovered:
  false`` or a ``snapshot`` at seq S covers every event <= S of its epoch);
- **lost**: expected but not delivered;
- **duplicate**: an (epoch, seq) applied again with no snapshot in between;
- **out_of_order**: an apply whose seq is not position + 1 (position = highest seq applied
  or snapshot position in that epoch);
- **phantom**: an applied event the database never committed — past the head, another
  id/appointment/version/state than the committed event at that seq, or of an epoch nobody
  was ever told about;
- **epoch_mixup**: an event of one epoch applied on top of state of another without a
  snapshot in between (two histories silently mixed);
- **not_converged**: the client's ``final`` rows, epoch or seq differ from the database.

Events of older epochs cannot be compared with the log of the final one: they count for
ordering, duplicates and mix-ups, not for delivery or phantoms (events pruned from the log
likewise cannot be compared).

The records are read in one pass (plus one over the rare ``subscribed``/``snapshot``
records, for the epochs announced) and every (client, date) keeps only compact state: the
applied seqs as a contiguous run plus the exceptions, and the first apply time per seq in a
float array. Given its ``Accounting`` (the fault windows, read first), a walk counts its
pairs as they settle and keeps the apply times of a few hundred seqs only; the latency
samples go to a temporary file (``samples.Spill``). So a ``HistoryFile`` of any length is
checked in bounded memory (without it, every pair is counted at the end, from about 8
bytes per expected pair). Anomalies are kept per (client, date) and listed in
(client, date) order, as if each channel had been walked on its own.
"""

from __future__ import annotations

import contextlib
import gc
import math
import operator
from array import array
from bisect import bisect_right
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from synccli.history import Apply, Entry, Final, Record, SnapshotTaken, Subscribed
from synccli.history.reader import HistoryFile, Row
from synccli.report.metrics import TRACE_GRACE_S, BinnedLatencies, DeliveryStats, FaultWindow
from synccli.report.recovery import note_catch_up
from synccli.report.samples import Spill
from synccli.report.truth import ChannelTruth, Truth, iso_to_w

ANOMALY_KINDS = ("lost", "duplicate", "out_of_order", "phantom", "epoch_mixup", "not_converged")
_CHANNEL_KINDS = (Subscribed, SnapshotTaken, Apply, Final)
ChannelRecord = Subscribed | SnapshotTaken | Apply | Final


@dataclass(frozen=True, slots=True)
class Anomaly:
    """One thing that went wrong, with enough detail to find it in the history."""

    kind: str
    client: str
    date: str
    seq: int | None
    detail: str
    #: When it happened (wall clock): the record that showed it, the commit of a lost event.
    w: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "client": self.client,
            "date": self.date,
            "seq": self.seq,
            "detail": self.detail,
        }


@dataclass(frozen=True, slots=True)
class ChannelCheck:
    """The outcome for one (client, date)."""

    client: str
    date: str
    expected: int
    delivered: int
    converged: bool


@dataclass(slots=True)
class CheckResult:
    """Everything the checker found. ``anomalies`` holds the first ``max_anomalies``;
    ``counts`` counts all of them by kind."""

    clients: list[str]
    channels: list[ChannelCheck]
    overall: DeliveryStats
    anomalies: list[Anomaly] = field(default_factory=list)
    counts: Counter[str] = field(default_factory=Counter)

    @property
    def converged_clients(self) -> int:
        by_client: dict[str, bool] = {}
        for check in self.channels:
            by_client[check.client] = by_client.get(check.client, True) and check.converged
        return sum(by_client.values())


@dataclass(slots=True)
class _Collector:
    limit: int
    anomalies: list[Anomaly] = field(default_factory=list)
    counts: Counter[str] = field(default_factory=Counter)
    #: The time of the record being checked, set by the walk so the rules need not pass it.
    at: float | None = None

    def add(self, kind: str, client: str, date: str, seq: int | None, detail: str) -> None:
        self.counts[kind] += 1
        if len(self.anomalies) < self.limit:
            self.anomalies.append(Anomaly(kind, client, date, seq, detail, self.at))


class _SeqSet:
    """A set of seqs as sorted disjoint ranges ``[starts[i], ends[i]]``: a client applies in
    order, so its set stays a few integers whatever the run's length (one range per hole)."""

    __slots__ = ("ends", "starts")

    def __init__(self) -> None:
        self.starts: list[int] = []
        self.ends: list[int] = []

    def __contains__(self, seq: int) -> bool:
        starts, ends = self.starts, self.ends
        if not ends:
            return False
        if seq >= starts[-1]:
            return seq <= ends[-1]
        i = bisect_right(starts, seq) - 1
        return i >= 0 and seq <= ends[i]

    def add(self, seq: int) -> None:
        starts, ends = self.starts, self.ends
        if ends and seq == ends[-1] + 1:  # the common case: the next seq in order
            ends[-1] = seq
            return
        if seq in self:
            return
        i = bisect_right(starts, seq) - 1
        joins_next = i + 1 < len(starts) and starts[i + 1] == seq + 1
        if i >= 0 and ends[i] == seq - 1:
            ends[i] = seq
            if joins_next:
                ends[i] = ends[i + 1]
                del starts[i + 1], ends[i + 1]
        elif joins_next:
            starts[i + 1] = seq
        else:
            starts.insert(i + 1, seq)
            ends.insert(i + 1, seq)


#: A walk counts its settled pairs once this many have settled, and keeps room for this
#: many apply times past the last seq applied: a few KB a walk, whatever the run's length.
_SETTLE = 256
_ROOM = 512
#: The pairs ``_account`` tries to count at once (``_account_applied``).
_STRETCH = 128
_NANS = array("d", [math.nan])
_NAN_BYTES = _NANS.tobytes()


@dataclass(slots=True)
class Accounting:
    """Where the expected pairs of a check are counted: the run's ``overall`` stats and its
    fault ``windows`` (read before the records, ``scan.read_faults``), with the on-time
    deadline. Given to ``Checker``, a walk counts its pairs while the records are read, as
    they settle (delivered, and every earlier one too), so it keeps the apply times of a
    few hundred seqs, not of the run's."""

    overall: DeliveryStats
    windows: Sequence[FaultWindow] = ()
    #: Whether a window healed, so that clients' catch-up times are noted.
    catch_up: bool = field(init=False)

    def __post_init__(self) -> None:
        self.catch_up = any(w.end_w is not None and w.error is None for w in self.windows)

    @property
    def on_time_s(self) -> float:
        return self.overall.on_time_s

    @classmethod
    def spilled(cls, on_time_s: float, windows: Sequence[FaultWindow], w0: float) -> Accounting:
        """Counting into stats whose latency samples (the run's and each window's) go by
        second from ``w0`` to one temporary file (``samples.Spill``): the timeline's bins
        are whole seconds from the run's start."""
        spill = Spill()
        for window in windows:
            window.stats.binned = BinnedLatencies(w0, 1.0, spill)
        return cls(DeliveryStats(on_time_s, binned=BinnedLatencies(w0, 1.0, spill)), windows)


def commit_times(channel: ChannelTruth) -> array[float]:
    """The commit time of each event of ``channel`` (Unix seconds), indexed by seq up to
    the head; NaN where unknown (pruned, not in the log, or malformed): 8 bytes an event,
    where a dict of floats takes about ten times that."""
    known = [(seq, w) for seq, w in channel.commit_seconds() if seq >= 0]
    times = array("d", [math.nan]) * (max(channel.head, known[-1][0] if known else 0) + 1)
    for seq, w in known:
        if w is not None:
            times[seq] = w
    return times


def _phantom_reason(ch: ChannelTruth | None, r: Apply, seq: int) -> str | None:
    if ch is None:
        return "the database has no channel for this date"
    if seq < 1 or seq > ch.head:
        return f"seq {seq} was never committed in epoch {ch.epoch} (head {ch.head})"
    event = ch.events.get(seq)
    if event is None:
        # Pruned from the log (or never returned by the server): cannot be compared.
        return None if seq < ch.min_seq else f"seq {seq} is missing from the database log"
    got = (r.message_id or event.event_id, r.appointment_id, r.version, r.state)
    want = (event.event_id, event.appointment_id, event.version, event.state)
    if got != want:
        return f"applied {got} but the database committed {want}"
    return None


@dataclass(slots=True)
class _ChannelWalk:
    """The state of one (client, date) while its records are replayed."""

    client: str
    date: str
    truth: ChannelTruth | None
    #: Whether the server announced an epoch for this date anywhere in the run.
    announced: Callable[[str, str], bool]
    sink: _Collector
    epoch: str | None = None
    #: The commit time per seq of the final epoch (NaN: unknown), indexed by seq.
    commit_w: array[float] = field(default_factory=lambda: array("d"))
    position: int = 0
    applied: _SeqSet = field(default_factory=_SeqSet)
    start: int | None = None
    #: Where the walk's pairs are counted as soon as they are settled; None: all at the end.
    accounting: Accounting | None = None
    #: The first apply time per seq (NaN: none) from seq ``base`` on (index ``seq - base``),
    #: up to ``limit``; grown on demand and, with ``accounting``, cut as pairs settle.
    applied_w: array[float] = field(default_factory=lambda: array("d"))
    base: int = 0
    limit: int = 0
    #: The pairs up to this seq are counted (None: none yet); those between it and
    #: ``scanned`` were all delivered.
    settled: int | None = None
    scanned: int = 0
    #: The highest seq a snapshot of the final epoch covered.
    covered_to: int = 0
    #: Settled seqs a snapshot delivered before any apply, and those applied since.
    covered_only: _SeqSet = field(default_factory=_SeqSet)
    applied_late: set[int] = field(default_factory=set)
    expected: int = 0
    delivered: int = 0
    record_commit_at: dict[int, object] = field(default_factory=dict)
    #: The last apply checked against the database and the answer, shared by the walks of
    #: one date: the clients of a process record the very same object for an event.
    last_checked: list[Any] = field(default_factory=lambda: [None, None])
    covers: list[tuple[int, float]] = field(default_factory=list)
    final: Final | None = None
    final_w: float | None = None
    final_epoch: str | None = field(init=False)

    def __post_init__(self) -> None:
        self.final_epoch = self.truth.epoch if self.truth else None

    def position_record(self, w: float, r: Subscribed | SnapshotTaken) -> None:
        epoch, seq = r.epoch, r.seq
        if isinstance(r, SnapshotTaken) or not r.recovered:
            covering, recovered_from = True, seq
        else:
            covering, recovered_from = False, max(0, seq - r.events)
        if self.start is None:
            self.start = recovered_from if epoch == self.final_epoch else 0
        if covering:
            self.epoch, self.position, self.applied = epoch, seq, _SeqSet()
            if epoch == self.final_epoch:
                self.covers.append((seq, w))
                self.covered_to = max(self.covered_to, seq)
        elif self.epoch is None:
            self.epoch, self.position = epoch, recovered_from

    def apply(self, w: float, r: Apply) -> None:
        seq = r.seq
        if r.epoch == self.epoch and seq == self.position + 1:
            # The common case, kept short: runs can hold millions of applies. Every seq
            # applied in this epoch is <= position, so this one is new.
            ends = self.applied.ends
            if ends and ends[-1] == seq - 1:
                ends[-1] = seq
            else:
                self.applied.add(seq)
            self.position = seq
            if self.epoch == self.final_epoch:
                last = self.last_checked
                if last[0] is r and last[1] is None and self.base <= seq < self.limit:
                    # The same shared record as the previous client's, committed as applied.
                    applied_w, i = self.applied_w, seq - self.base
                    first = applied_w[i]
                    if first != first:  # NaN: the first apply of seq
                        applied_w[i] = w
                        committed = self.commit_w[seq]
                        if committed != committed:  # NaN: not in the log
                            self.record_commit_at[seq] = r.committed_at
                else:
                    self._deliver(w, r, seq)
            return
        self._apply_unusual(w, r, r.epoch, seq)

    def _apply_unusual(self, w: float, r: Apply, epoch: str, seq: int) -> None:
        self.sink.at = w
        add = self.sink.add
        if epoch != self.final_epoch and not self.announced(self.date, epoch):
            add("phantom", self.client, self.date, seq, f"epoch {epoch} never existed")
            return
        if self.epoch is None:
            # No subscribe answer recorded before this apply: take it as the starting point.
            self.epoch, self.position = epoch, seq - 1
        if epoch != self.epoch:
            add(
                "epoch_mixup",
                self.client,
                self.date,
                seq,
                f"applied an event of epoch {epoch} on top of epoch {self.epoch} state",
            )
            return
        if seq in self.applied:
            add("duplicate", self.client, self.date, seq, f"seq {seq} of {epoch} applied again")
            return
        if seq != self.position + 1:
            add(
                "out_of_order",
                self.client,
                self.date,
                seq,
                f"applied seq {seq} at position {self.position}",
            )
        self.applied.add(seq)
        self.position = max(self.position, seq)
        if epoch == self.final_epoch:
            self._deliver(w, r, seq)

    def _deliver(self, w: float, r: Apply, seq: int) -> None:
        """An apply in the final epoch: a delivery, unless the database never committed it."""
        self.sink.at = w
        last = self.last_checked
        if last[0] is r:  # the same shared record as the previous client's: same answer
            reason = last[1]
        else:
            reason = _phantom_reason(self.truth, r, seq)
            last[:] = [r, reason]
        if reason is not None:
            self.sink.add("phantom", self.client, self.date, seq, reason)
            return
        if seq < self.base:
            self._apply_settled(w, r, seq)
            return
        if seq >= self.limit:
            self._make_room(seq)
        applied_w, i = self.applied_w, seq - self.base
        if math.isnan(applied_w[i]):
            applied_w[i] = w
            if math.isnan(self.commit_w[seq]):
                # Only needed when the log no longer has the event; parsed then, not here.
                self.record_commit_at[seq] = r.committed_at

    def _make_room(self, seq: int) -> None:
        """Room in ``applied_w`` for ``seq`` (<= head): without accounting, for every seq at
        once; with it, for a few hundred more, once the settled pairs are counted."""
        head = self.truth.head if self.truth else 0
        accounting = self.accounting
        if accounting is None:
            top = head + 1
        else:
            if self.start is not None:
                self._settle(accounting)
            top = min(head + 1, seq + _ROOM)
        self.applied_w.extend(_NANS * (top - self.limit))
        self.limit = top

    def _settle(self, accounting: Accounting) -> None:
        """Count the pairs from ``settled`` up to the first seq not delivered yet, when
        there are enough of them, and drop their apply times. A delivered pair is final:
        its first apply, or the first snapshot covering it, cannot come earlier later."""
        lo = self.start if self.settled is None else self.settled
        assert lo is not None
        base, applied_w = self.base, self.applied_w
        scanned = max(lo, self.scanned, min(self.covered_to, self.limit - 1))
        if scanned < self.limit - 1:
            tail = applied_w[scanned + 1 - base :].tobytes()
            at = tail.find(_NAN_BYTES)
            while at > 0 and at % 8:  # a match across two floats
                at = tail.find(_NAN_BYTES, at + 1)
            scanned = self.limit - 1 if at < 0 else scanned + at // 8
        self.scanned = scanned
        if scanned - lo < _SETTLE:
            return
        _account(self, lo, scanned, accounting)
        del applied_w[: scanned + 1 - base]
        self.base = self.settled = scanned
        self.base += 1
        if self.record_commit_at:
            for seq in [s for s in self.record_commit_at if s <= scanned]:
                del self.record_commit_at[seq]

    def _apply_settled(self, w: float, r: Apply, seq: int) -> None:
        """The first apply of a seq counted already: a latency sample, if a snapshot had
        delivered it before; nothing otherwise (it was applied before)."""
        if seq not in self.covered_only or seq in self.applied_late:
            return
        self.applied_late.add(seq)
        committed: float | None = self.commit_w[seq]
        if committed != committed:
            committed = iso_to_w(r.committed_at)
        accounting = self.accounting
        if committed is None or accounting is None:
            return
        ms = (w - committed) * 1000.0
        accounting.overall.sampler()(w, ms)
        for window in accounting.windows:
            if window.contains(committed):
                window.stats.sampler()(w, ms)

    def converged(self) -> bool:
        final, truth = self.final, self.truth
        if final is None:
            self.sink.add("not_converged", self.client, self.date, None, "no final record")
            return False
        head = truth.head if truth else 0
        if final.epoch != self.final_epoch or final.seq != head:
            self.sink.add(
                "not_converged",
                self.client,
                self.date,
                final.seq,
                f"ended at {final.epoch}:{final.seq}, the database at {self.final_epoch}:{head}",
            )
            return False
        want = truth.rows if truth else {}
        try:
            got = {str(a): (int(v), str(s)) for a, (v, s) in (final.rows or {}).items()}
        except (TypeError, ValueError, AttributeError):
            self.sink.add("not_converged", self.client, self.date, None, "malformed final rows")
            return False
        if got == want:
            return True
        differ = sorted(a for a in set(got) | set(want) if got.get(a) != want.get(a))
        self.sink.add(
            "not_converged",
            self.client,
            self.date,
            None,
            f"{len(differ)} appointment(s) differ, e.g. {differ[0]}: client "
            f"{got.get(differ[0])}, database {want.get(differ[0])}",
        )
        return False


@contextlib.contextmanager
def collector_paused() -> Iterator[None]:
    """No cyclic garbage collection inside: a pass allocates a row per line (millions), none
    of them in a reference cycle, and the collector would otherwise walk the young ones
    again and again (about a tenth of a pass)."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def row_batches(entries: Iterable[Entry[Record]]) -> Iterator[list[Row]]:
    """The ``(t, w, client, record)`` rows of ``entries`` (a ``HistoryFile`` or a list), a
    batch at a time."""
    if isinstance(entries, HistoryFile):
        yield from entries.batches()
        return
    rows: list[Row] = []
    for e in entries:
        rows.append((e.t, e.w, e.client, e.record))
        if len(rows) >= 10_000:
            yield rows
            rows = []
    if rows:
        yield rows


def known_epochs(entries: Iterable[Entry[Record]]) -> dict[str, set[str]]:
    """Epochs the server announced per date (in ``subscribed``/``snapshot`` answers)."""
    if isinstance(entries, HistoryFile):
        entries = entries.of_kinds(Subscribed, SnapshotTaken)
    known: dict[str, set[str]] = {}
    for e in entries:
        r = e.record
        if isinstance(r, Subscribed | SnapshotTaken):
            known.setdefault(r.date, set()).add(r.epoch)
    return known


class Checker:
    """The check fed one record at a time, in history order (``feed``; ``apply`` for an
    ``Apply``, the bulk of a run), then judged by ``result``.

    ``all_epochs`` gives the epochs announced anywhere in the run (``known_epochs``): it is
    called only if a client applies an event of an epoch that is not the final one and was
    not announced before that apply (rare), so the records are usually read once."""

    def __init__(
        self,
        truth: Truth,
        *,
        all_epochs: Callable[[], dict[str, set[str]]],
        max_anomalies: int = 100,
        accounting: Accounting | None = None,
    ) -> None:
        self.truth = truth
        self.accounting = accounting
        self.max_anomalies = max_anomalies
        self.clients: set[str] = set()
        self._all_epochs = all_epochs
        self._announced: dict[str, set[str]] = {}
        self._complete = False
        #: Per (client, date); ``walk`` makes a missing one.
        self.walks: dict[tuple[str, str], _ChannelWalk] = {}
        self._last_checked: dict[str, list[Any]] = {}
        self._commit_w = {date: commit_times(ch) for date, ch in truth.channels.items()}

    def _is_announced(self, date: str, epoch: str) -> bool:
        if epoch in self._announced.get(date, ()):
            return True
        if not self._complete:
            self._complete = True
            for day, epochs in self._all_epochs().items():
                self._announced.setdefault(day, set()).update(epochs)
        return epoch in self._announced.get(date, ())

    def walk(self, client: str, date: str) -> _ChannelWalk:
        walk = self.walks[client, date] = _ChannelWalk(
            client,
            date,
            self.truth.channels.get(date),
            self._is_announced,
            _Collector(self.max_anomalies),
            accounting=self.accounting,
            commit_w=self._commit_w.get(date, array("d")),
            last_checked=self._last_checked.setdefault(date, [None, None]),
        )
        self.clients.add(client)
        return walk

    def apply(self, w: float, client: str, r: Apply) -> None:
        """``feed`` for an ``Apply`` of a client (inline it in a loop over millions: get
        ``walks[client, r.date]`` or ``walk(client, r.date)`` and call its ``apply``)."""
        (self.walks.get((client, r.date)) or self.walk(client, r.date)).apply(w, r)

    def feed(self, w: float, client: str | None, r: Record) -> None:
        if client is None:
            return
        self.clients.add(client)
        if isinstance(r, _CHANNEL_KINDS):
            walk = self.walks.get((client, r.date)) or self.walk(client, r.date)
            if isinstance(r, Apply):
                walk.apply(w, r)
                return
            walk.sink.at = w
            if isinstance(r, Final):
                walk.final, walk.final_w = r, w
            else:
                self._announced.setdefault(r.date, set()).add(r.epoch)
                walk.position_record(w, r)

    def result(
        self,
        *,
        on_time_s: float,
        windows: Sequence[FaultWindow] = (),
        dates: Iterable[str] = (),
        overall: DeliveryStats | None = None,
    ) -> CheckResult:
        """The outcome; fills the delivery stats of ``windows`` with the pairs whose event
        was committed inside them. ``dates``: the dates every client was meant to follow
        (beyond those in its own records). Call it once, after the last record. A checker
        given its ``accounting`` counts into that (``windows``, ``overall`` and
        ``on_time_s`` must be left out)."""
        accounting = self.accounting
        if accounting is None:
            accounting = Accounting(overall or DeliveryStats(on_time_s), windows)
        elif windows or overall is not None:
            raise ValueError("this checker counts into the accounting it was given")
        with collector_paused():
            return self._result(accounting, dates)

    def _result(self, accounting: Accounting, dates: Iterable[str]) -> CheckResult:
        for window in accounting.windows:
            window.events_committed = sum(
                1 for ws in self._commit_w.values() for w in ws if window.contains(w)
            )
        clients = self.clients
        result = CheckResult(sorted(clients), [], accounting.overall)
        sink = _Collector(self.max_anomalies)
        walks = self.walks
        for date in set(dates):
            for client in clients:
                if (client, date) not in walks:
                    self.walk(client, date)
        for client, date in sorted(walks):
            walk = walks.pop((client, date))
            lo = walk.settled if walk.settled is not None else walk.start or 0
            _account(walk, lo, walk.truth.head if walk.truth else 0, accounting)
            walk.sink.at = walk.final_w
            result.channels.append(
                ChannelCheck(client, date, walk.expected, walk.delivered, walk.converged())
            )
            sink.counts.update(walk.sink.counts)
            room = sink.limit - len(sink.anomalies)
            sink.anomalies.extend(walk.sink.anomalies[:room])
        result.anomalies, result.counts = sink.anomalies, sink.counts
        return result


def check_records(
    entries: Iterable[Entry[Record]],
    truth: Truth,
    *,
    on_time_s: float,
    windows: Sequence[FaultWindow] = (),
    dates: Iterable[str] = (),
    max_anomalies: int = 100,
) -> CheckResult:
    """Check every client of ``entries`` (a list or a ``HistoryFile``: read once, rarely
    twice) against ``truth``, in bounded memory (``Accounting.spilled``: the latency
    samples by second from the first record). ``dates`` are the dates every client was
    meant to follow (beyond those in its own records). Fills the delivery stats of
    ``windows`` with the pairs whose event was committed inside them."""
    checker = Checker(truth, all_epochs=lambda: known_epochs(entries), max_anomalies=max_anomalies)
    walks, walk, feed = checker.walks, checker.walk, checker.feed
    with collector_paused():
        for rows in row_batches(entries):
            if checker.accounting is None:
                checker.accounting = Accounting.spilled(on_time_s, windows, rows[0][1])
            for _, w, client, r in rows:
                if type(r) is Apply and client is not None:
                    (walks.get((client, r.date)) or walk(client, r.date)).apply(w, r)
                else:
                    feed(w, client, r)
        if checker.accounting is None:  # no records
            return checker.result(on_time_s=on_time_s, windows=windows, dates=dates)
        return checker.result(on_time_s=on_time_s, dates=dates)


def _account(walk: _ChannelWalk, lo: int, hi: int, accounting: Accounting) -> None:
    """Count the expected pairs ``lo < seq <= hi`` of one walk into the stats; report the
    lost ones."""
    covered: dict[int, float] = {}
    reached = walk.start or 0
    for seq, w in walk.covers:
        for s in range(max(reached, lo) + 1, min(seq, hi) + 1):
            covered[s] = w
        reached = max(reached, seq)
    if covered:
        _account_each(walk, lo, hi, accounting, covered)
        return
    # A stretch at a time where it can be (counted in seq order either way).
    for start in range(lo, hi, _STRETCH):
        stop = min(hi, start + _STRETCH)
        if not _account_applied(walk, start, stop, accounting):
            _account_each(walk, start, stop, accounting, covered)


def _account_applied(walk: _ChannelWalk, lo: int, hi: int, accounting: Accounting) -> bool:
    """``_account_each`` for the pairs of a stretch that all went the usual way, at once:
    every seq applied, its commit time in the log, and no fault near any of them (then each
    pair is steady and delivered when applied). False, having counted nothing, if not so.
    Nearly every stretch of a run is such a one."""
    n = hi - lo
    applied = walk.applied_w[lo + 1 - walk.base : hi + 1 - walk.base]
    committed = walk.commit_w[lo + 1 : hi + 1]
    if n <= 0 or len(applied) != n or len(committed) != n:
        return False
    total = sum(applied) + sum(committed)
    if total != total:  # NaN: a seq not applied, or a commit time not in the log
        return False
    overall, windows = accounting.overall, accounting.windows
    on_time_s = float(overall.on_time_s)
    if windows:
        first, last = min(committed), max(committed)
        for window in windows:
            # Every pair before the window and its in-flight margin, or after its grace.
            before = last < window.start_w - on_time_s
            if not before and (window.end_w is None or first <= window.end_w + TRACE_GRACE_S):
                return False
    latencies = list(map(operator.sub, applied, committed))
    on_time = sum(map(on_time_s.__ge__, latencies))
    overall.extender()(applied, [s * 1000.0 for s in latencies])
    _add_counts(walk, overall, n, n, n, on_time)
    pairs = list(zip(committed, applied, strict=True)) if accounting.catch_up else []
    note_catch_up(walk.client, pairs, windows)
    return True


def _account_each(
    walk: _ChannelWalk, lo: int, hi: int, accounting: Accounting, covered: dict[int, float]
) -> None:
    """``_account`` pair by pair, ``covered``: the seqs a snapshot delivered, and when.
    (``DeliveryStats.add`` written out: this runs once per expected pair.)"""
    # Slices of the per-seq arrays, read in step with the seqs (faster than indexing).
    seqs = range(lo + 1, hi + 1)
    applied_w = walk.applied_w[lo + 1 - walk.base : hi + 1 - walk.base]
    if len(applied_w) < len(seqs):  # never applied so far
        applied_w.extend(_NANS * (len(seqs) - len(applied_w)))
    overall, windows = accounting.overall, accounting.windows
    on_time_s = overall.on_time_s
    sample = overall.sampler()
    catch_up = accounting.catch_up
    pairs: list[tuple[float | None, float | None]] = []
    steady_n = on_time = delivered = 0
    steady = True
    for seq, first, known in zip(seqs, applied_w, walk.commit_w[lo + 1 : hi + 1], strict=True):
        applied = None if first != first else first  # NaN: never applied
        cover = covered.get(seq) if covered else None
        when = cover if applied is None else applied if cover is None else min(applied, cover)
        committed: float | None = known
        if known != known:  # NaN: not in the log
            committed = iso_to_w(walk.record_commit_at.get(seq))
        if windows:
            steady = _steady(committed, when, windows, on_time_s)
            for window in windows:
                if committed is not None and window.contains(committed):
                    window.stats.add(committed, when, applied)
            if catch_up:
                pairs.append((committed, when))
        steady_n += steady
        if when is None:
            walk.sink.at = committed
            walk.sink.add("lost", walk.client, walk.date, seq, f"seq {seq} never delivered")
            continue
        delivered += 1
        if steady and (committed is None or when - committed <= on_time_s):
            on_time += 1
        if applied is not None and committed is not None:
            sample(applied, (applied - committed) * 1000.0)
        elif applied is None:
            walk.covered_only.add(seq)
    _add_counts(walk, overall, len(seqs), delivered, steady_n, on_time)
    note_catch_up(walk.client, pairs, windows)


def _add_counts(
    walk: _ChannelWalk,
    overall: DeliveryStats,
    expected: int,
    delivered: int,
    steady: int,
    on_time: int,
) -> None:
    """A stretch's pair counts, into the run's stats and the walk's."""
    overall.expected += expected
    overall.delivered += delivered
    overall.steady += steady
    overall.on_time += on_time
    walk.expected += expected
    walk.delivered += delivered


def _steady(
    committed: float | None,
    delivered: float | None,
    windows: Sequence[FaultWindow],
    on_time_s: float,
) -> bool:
    """Whether a pair counts for the on-time rate: no fault touched it. A fault touches the
    pairs committed inside its window or while clients recover from it (``TRACE_GRACE_S``
    after it), and those still in flight when it began: committed less than ``on_time_s``
    before it and not yet delivered (one already late before the fault stays counted)."""
    if committed is None:
        return True
    for window in windows:
        if window.contains(committed, TRACE_GRACE_S):
            return False
        in_flight = delivered is None or delivered > window.start_w
        if in_flight and window.start_w - on_time_s <= committed < window.start_w:
            return False
    return True
