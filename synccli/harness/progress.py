"""The live progress line of a long run: one line rewritten in place on a terminal, a plain
line every few seconds elsewhere (CI logs).

A frame shows the phase (``load`` → ``heal`` → ``drain`` → ``check``), the counters and two
rates: ``applied/s`` (events applied by all clients) and ``writes/s`` (writes the server
confirmed). Live frames give the rate since the previous frame; the final frame, drawn once
the clients are done, gives the totals and the average rates over the whole run.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TextIO

PHASES = ("load", "heal", "drain", "check")


@dataclass(frozen=True, slots=True)
class Snapshot:
    """What the run looks like at ``at_s`` seconds after the load started."""

    at_s: float
    phase: str
    committed: int
    applied: int
    connected: int
    clients: int
    writes_ok: int
    writes_failed: int
    faults: tuple[str, ...] = ()

    @classmethod
    def of(
        cls,
        at_s: float,
        phase: str,
        committed: int,
        clients: int,
        counters: Mapping[str, int],
        faults: tuple[str, ...] = (),
    ) -> Snapshot:
        """A snapshot from a fleet's counters (``applied``, ``connected``, ``writes_ok``,
        ``writes_failed``; a missing counter is 0)."""
        return cls(
            at_s=at_s,
            phase=phase,
            committed=committed,
            applied=counters.get("applied", 0),
            connected=counters.get("connected", 0),
            clients=clients,
            writes_ok=counters.get("writes_ok", 0),
            writes_failed=counters.get("writes_failed", 0),
            faults=faults,
        )


class StatusText:
    """Formats successive snapshots of one run; remembers the previous one for the rates."""

    def __init__(self, duration_s: float) -> None:
        self.duration_s = duration_s
        self._previous: Snapshot | None = None

    def line(self, now: Snapshot, final: bool = False) -> str:
        """The text of one frame; ``final`` averages the rates over the whole run."""
        if final or self._previous is None:
            base = Snapshot.of(0.0, now.phase, 0, now.clients, {})
        else:
            base = self._previous
        self._previous = now
        span = now.at_s - base.at_s
        applied_rate = _rate(now.applied - base.applied, span)
        writes_rate = _rate(now.writes_ok - base.writes_ok, span)
        mean = "avg " if final else ""
        faults = ",".join(now.faults) or "-"
        return (
            f"[{now.at_s:5.1f}s/{self.duration_s:.0f}s] {now.phase:<5}"
            f" committed {now.committed}"
            f" applied {now.applied} ({mean}{applied_rate}/s)"
            f" connected {now.connected}/{now.clients}"
            f" writes ok {now.writes_ok} ({mean}{writes_rate}/s) failed {now.writes_failed}"
            f" faults {faults}"
        )


def _rate(count: int, span_s: float) -> str:
    if span_s <= 0:
        return "0"
    value = count / span_s
    return f"{value:.0f}" if value >= 100 else f"{value:.1f}"


@dataclass
class ProgressLine:
    """Renders ``status()`` (a short string) at most every ``interval`` seconds."""

    status: Callable[[], str]
    stream: TextIO = field(default_factory=lambda: sys.stderr)
    enabled: bool = True
    _last: float = 0.0
    _width: int = 0

    @property
    def live(self) -> bool:
        return self.stream.isatty()

    @property
    def interval(self) -> float:
        return 0.5 if self.live else 5.0

    def tick(self, force: bool = False) -> None:
        if not self.enabled:
            return
        now = time.monotonic()
        if not force and now - self._last < self.interval:
            return
        self._last = now
        self.show(self.status())

    def show(self, text: str) -> None:
        """Draw ``text`` as the current frame now."""
        if not self.enabled:
            return
        if self.live:
            padding = " " * max(0, self._width - len(text))
            self.stream.write("\r" + text + padding)
            self._width = len(text)
        else:
            self.stream.write(text + "\n")
        self.stream.flush()

    def finish(self) -> None:
        """End the live line so the next output starts on a fresh line."""
        if self.enabled and self.live and self._width:
            self.stream.write("\n")
            self.stream.flush()
            self._width = 0

    def say(self, message: str) -> None:
        """Print a message line without breaking the live line."""
        if not self.enabled:
            return
        self.finish()
        self.stream.write(message + "\n")
        self.stream.flush()
