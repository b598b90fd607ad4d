"""The in-memory checker as it was before it streamed, kept as the reference the streaming
checker must agree with (tests/report/test_checker_streaming.py). Do not change it.

The checker: every client's history against what the database committed. Pure.

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
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from synccli.domain.values import parse_iso_ms
from synccli.history import Apply, Entry, Final, Record, SnapshotTaken, Subscribed
from synccli.report.metrics import TRACE_GRACE_S, DeliveryStats, FaultWindow
from synccli.report.recovery import note_catch_up
from synccli.report.truth import ChannelTruth, Truth

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


def iso_to_w(text: object) -> float | None:
    """An ISO ``committedAt`` as Unix seconds, None when absent or malformed."""
    if not isinstance(text, str):
        return None
    try:
        return parse_iso_ms(text).timestamp()
    except ValueError:
        return None


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
    known_epochs: set[str]
    sink: _Collector
    epoch: str | None = None
    position: int = 0
    applied: set[int] = field(default_factory=set)
    start: int | None = None
    applied_w: dict[int, float] = field(default_factory=dict)
    record_commit_at: dict[int, object] = field(default_factory=dict)
    covers: list[tuple[int, float]] = field(default_factory=list)
    final: Final | None = None
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
            self.epoch, self.position, self.applied = epoch, seq, set()
            if epoch == self.final_epoch:
                self.covers.append((seq, w))
        elif self.epoch is None:
            self.epoch, self.position = epoch, recovered_from

    def apply(self, w: float, r: Apply) -> None:
        epoch, seq = r.epoch, r.seq
        if epoch == self.epoch and seq == self.position + 1 and seq not in self.applied:
            # The common case, kept short: runs can hold millions of applies.
            self.applied.add(seq)
            self.position = seq
            if epoch == self.final_epoch:
                self._deliver(w, r, seq)
            return
        self._apply_unusual(w, r, epoch, seq)

    def _apply_unusual(self, w: float, r: Apply, epoch: str, seq: int) -> None:
        add = self.sink.add
        if epoch != self.final_epoch and epoch not in self.known_epochs:
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
        reason = _phantom_reason(self.truth, r, seq)
        if reason is not None:
            self.sink.add("phantom", self.client, self.date, seq, reason)
            return
        if seq not in self.applied_w:
            self.applied_w[seq] = w
            # Only needed when the log no longer has the event; parsed then, not here.
            self.record_commit_at[seq] = r.committed_at

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


def _known_epochs(entries: Iterable[Entry[Record]]) -> dict[str, set[str]]:
    """Epochs the server announced per date (in ``subscribed``/``snapshot`` answers)."""
    known: dict[str, set[str]] = {}
    for e in entries:
        r = e.record
        if isinstance(r, Subscribed | SnapshotTaken):
            known.setdefault(r.date, set()).add(r.epoch)
    return known


def check_records(
    entries: Sequence[Entry[Record]],
    truth: Truth,
    *,
    on_time_s: float,
    windows: Sequence[FaultWindow] = (),
    dates: Iterable[str] = (),
    max_anomalies: int = 100,
) -> CheckResult:
    """Check every client of ``entries`` against ``truth``. ``dates`` are the dates every
    client was meant to follow (beyond those in its own records). Fills the delivery stats of
    ``windows`` with the pairs whose event was committed inside them."""
    sink = _Collector(max_anomalies)
    known = _known_epochs(entries)
    per_client: dict[str, dict[str, list[tuple[float, ChannelRecord]]]] = {}
    for e in entries:
        if e.client is None:
            continue
        channels = per_client.setdefault(e.client, {})
        r = e.record
        if isinstance(r, _CHANNEL_KINDS):
            channels.setdefault(r.date, []).append((e.w, r))
    commit_w = {
        date: {seq: iso_to_w(e.committed_at) for seq, e in ch.events.items()}
        for date, ch in truth.channels.items()
    }
    for window in windows:
        window.events_committed = sum(
            1
            for ws in commit_w.values()
            for w in ws.values()
            if w is not None and window.contains(w)
        )
    result = CheckResult(sorted(per_client), [], DeliveryStats(on_time_s))
    for client in result.clients:
        channels = per_client[client]
        for date in sorted(set(channels) | set(dates)):
            walk = _ChannelWalk(
                client, date, truth.channels.get(date), known.get(date, set()), sink
            )
            final_w = None
            for w, r in channels.get(date, []):
                sink.at = w
                if isinstance(r, Apply):
                    walk.apply(w, r)
                elif isinstance(r, Final):
                    walk.final, final_w = r, w
                else:
                    walk.position_record(w, r)
            expected, delivered = _account(walk, commit_w.get(date, {}), result.overall, windows)
            sink.at = final_w
            result.channels.append(
                ChannelCheck(client, date, expected, delivered, walk.converged())
            )
    result.anomalies, result.counts = sink.anomalies, sink.counts
    return result


def _account(
    walk: _ChannelWalk,
    commit_w: dict[int, float | None],
    overall: DeliveryStats,
    windows: Sequence[FaultWindow],
) -> tuple[int, int]:
    """Count the expected pairs of one walk into the stats; report the lost ones."""
    head = walk.truth.head if walk.truth else 0
    start = walk.start or 0
    covered: dict[int, float] = {}
    reached = start
    for seq, w in walk.covers:
        for s in range(reached + 1, min(seq, head) + 1):
            covered[s] = w
        reached = max(reached, seq)
    delivered = 0
    pairs: list[tuple[float | None, float | None]] = []
    for seq in range(start + 1, head + 1):
        applied = walk.applied_w.get(seq)
        cover = covered.get(seq)
        when = cover if applied is None else applied if cover is None else min(applied, cover)
        committed = commit_w.get(seq)
        if committed is None:
            committed = iso_to_w(walk.record_commit_at.get(seq))
        inside = [w for w in windows if committed is not None and w.contains(committed)]
        steady = _steady(committed, when, windows, overall.on_time_s)
        overall.add(committed, when, applied, steady=steady)
        pairs.append((committed, when))
        for window in inside:
            window.stats.add(committed, when, applied)
        if when is None:
            walk.sink.at = committed
            walk.sink.add("lost", walk.client, walk.date, seq, f"seq {seq} never delivered")
        else:
            delivered += 1
    note_catch_up(walk.client, pairs, windows)
    return max(0, head - start), delivered


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
