"""Small builders for fixture histories and truths: a run with one date, events committed
every 0.1 s, and clients whose records are written one call at a time."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from synccli.domain.values import iso_ms, message_id
from synccli.history import History, entry_from_json
from synccli.report.summary import Summary, summarize
from synccli.report.thresholds import Threshold
from synccli.report.truth import ChannelTruth, CommittedEvent, Truth, write_truth

DATE = "2026-11-26"
BASE_W = 1_800_000_000.0
STATES = ("Present", "Seated", "Dismissed", "Seated")


@dataclass
class Run:
    """A run being written: committed events (the truth) and history records."""

    epoch: str = "E1"
    date: str = DATE
    appointments: int = 3
    events: dict[int, CommittedEvent] = field(default_factory=dict)
    commit_w: dict[int, float] = field(default_factory=dict)
    rows: dict[str, tuple[int, str]] = field(default_factory=dict)
    records: list[dict[str, Any]] = field(default_factory=list)
    config: dict[str, Any] = field(default_factory=dict)
    min_seq: int | None = None

    def __post_init__(self) -> None:
        for i in range(1, self.appointments + 1):
            self.rows[f"{self.date}-{i:04d}"] = (1, "Scheduled")

    # ---------------------------------------------------------------- the database

    def commit(self, count: int = 1) -> None:
        """Commit ``count`` events, 0.1 s apart."""
        for _ in range(count):
            seq = len(self.events) + 1
            aid = f"{self.date}-{(seq - 1) % self.appointments + 1:04d}"
            version, _state = self.rows[aid]
            state = STATES[(version - 1) % len(STATES)]
            w = BASE_W + seq * 0.1
            at = iso_ms(datetime.fromtimestamp(w, UTC))
            self.events[seq] = CommittedEvent(
                seq, message_id(self.date, self.epoch, seq), aid, version + 1, state, at
            )
            self.commit_w[seq] = w
            self.rows[aid] = (version + 1, state)

    @property
    def head(self) -> int:
        return len(self.events)

    def truth(self) -> Truth:
        events = {s: e for s, e in self.events.items() if s >= (self.min_seq or 1)}
        channel = ChannelTruth(
            self.date, self.epoch, self.head, self.min_seq or 1, events, dict(self.rows)
        )
        return Truth({self.date: channel}, "fixture")

    # ---------------------------------------------------------------- the history

    def rec(self, client: str | None, k: str, w: float, **fields: Any) -> None:
        self.records.append({"t": round(w - BASE_W, 3), "w": w, "c": client, "k": k, **fields})

    def fault(
        self, phase: str, w: float, *, name: str = "f1", kind: str = "down", **extra: Any
    ) -> None:
        fields: dict[str, Any] = {"target": 1.0, "attrs": {}, "error": None} | extra
        self.rec(None, "fault", w, phase=phase, kind=kind, name=name, **fields)

    def subscribed(
        self,
        client: str,
        seq: int,
        *,
        w: float | None = None,
        epoch: str | None = None,
        recovered: bool = False,
        events: int = 0,
    ) -> None:
        when = BASE_W + seq * 0.1 + 0.01 if w is None else w
        self.rec(
            client,
            "subscribed",
            when,
            date=self.date,
            epoch=epoch or self.epoch,
            seq=seq,
            recovered=recovered,
            events=events,
        )

    def snapshot(self, client: str, seq: int, *, w: float | None = None) -> None:
        when = BASE_W + seq * 0.1 + 0.01 if w is None else w
        self.rec(client, "snapshot", when, date=self.date, epoch=self.epoch, seq=seq)

    def apply(self, client: str, *seqs: int, delay: float = 0.05, **changes: Any) -> None:
        """Apply committed events (``changes`` overrides fields, e.g. to forge a phantom)."""
        for seq in seqs:
            event = self.events.get(seq)
            fields: dict[str, Any] = {
                "date": self.date,
                "epoch": self.epoch,
                "seq": seq,
                "id": event.event_id if event else message_id(self.date, self.epoch, seq),
                "committedAt": event.committed_at if event else iso_ms(datetime.now(UTC)),
                "replay": False,
                "appointmentId": event.appointment_id if event else "nobody",
                "version": event.version if event else 99,
                "state": event.state if event else "Seated",
            }
            fields.update(changes)
            w = self.commit_w.get(seq, BASE_W + seq * 0.1) + delay
            self.rec(client, "apply", w, **fields)

    def final(
        self,
        client: str,
        *,
        rows: dict[str, tuple[int, str]] | None = None,
        seq: int | None = None,
        epoch: str | None = None,
    ) -> None:
        final_rows = self.rows if rows is None else rows
        self.rec(
            client,
            "final",
            self.end_w,
            date=self.date,
            epoch=epoch or self.epoch,
            seq=self.head if seq is None else seq,
            rows={aid: [v, s] for aid, (v, s) in final_rows.items()},
            status="synced",
        )

    def connect(self, client: str, w: float) -> None:
        self.rec(client, "connect", w, attempt=1)

    @property
    def end_w(self) -> float:
        return BASE_W + self.head * 0.1 + 1.0

    def clean_client(self, client: str) -> None:
        """A client that subscribed at 0, applied everything and converged."""
        self.connect(client, BASE_W)
        self.subscribed(client, 0, w=BASE_W + 0.01)
        self.apply(client, *range(1, self.head + 1))
        self.final(client)

    def history(self, *, start: bool = True, end: bool = True) -> History:
        records = list(self.records)
        if start:
            records.insert(
                0,
                {
                    "t": 0.0,
                    "w": BASE_W,
                    "c": None,
                    "k": "run_start",
                    "seed": 7,
                    "run_id": "fixture",
                    "config": self.config,
                    "db": None,
                    "url": None,
                },
            )
        if end:
            records.append(
                {
                    "t": self.end_w - BASE_W + 1,
                    "w": self.end_w + 1,
                    "c": None,
                    "k": "run_end",
                    "interrupted": False,
                    "drained": True,
                }
            )
        return History([entry_from_json(r) for r in sorted(records, key=lambda r: r["w"])])

    def summary(self, *, overrides: list[Threshold] | None = None, **kwargs: Any) -> Summary:
        return summarize(self.history(**kwargs), self.truth(), overrides=overrides or ())

    def write(self, folder: Path, *, truth: bool = True, **kwargs: Any) -> Path:
        """Write ``history.jsonl`` (and ``truth.json``) into ``folder``."""
        folder.mkdir(parents=True, exist_ok=True)
        lines = [json.dumps(e.to_json()) for e in self.history(**kwargs).entries]
        (folder / "history.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
        if truth:
            write_truth(folder / "truth.json", self.truth())
        return folder


def clean_run(clients: int = 2, events: int = 5) -> Run:
    """A run where everything went right."""
    run = Run()
    run.commit(events)
    for i in range(1, clients + 1):
        run.clean_client(f"c{i:03d}")
    return run
