"""Log floods, limited: at most one line per second per kind, with the count of the rest.

A kind is the logger and the message template (not its arguments), so a burst of asyncio's
``socket.accept() out of system resource`` (EMFILE) or of one failing handler is one line a
second, the next saying how many were suppressed. ``install`` puts the filter on the root
logger's handlers (``synccli serve`` calls it after configuring logging).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass(slots=True)
class Suppressed:
    """How many lines the flood limit dropped since the process started."""

    total: int = 0


SUPPRESSED = Suppressed()


@dataclass(slots=True)
class FloodFilter(logging.Filter):
    """A ``logging.Filter``: one record per ``interval`` seconds per kind passes."""

    interval: float = 1.0
    clock: Callable[[], float] = time.monotonic
    counter: Suppressed = field(default_factory=lambda: SUPPRESSED)
    _kinds: dict[tuple[str, str], tuple[float, int]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        logging.Filter.__init__(self)

    def filter(self, record: logging.LogRecord) -> bool:
        kind = (record.name, str(record.msg))
        now = self.clock()
        seen = self._kinds.get(kind)
        if seen is not None and now - seen[0] < self.interval:
            self._kinds[kind] = (seen[0], seen[1] + 1)
            self.counter.total += 1
            return False
        if seen is not None and seen[1]:
            record.msg = f"{record.msg} ({seen[1]} similar lines suppressed)"
        if len(self._kinds) > 10_000:
            self._kinds.clear()  # bounded: kinds are templates, this is a safety net
        self._kinds[kind] = (now, 0)
        return True


def install(interval: float = 1.0) -> FloodFilter:
    """Limit floods on every handler of the root logger."""
    flood = FloodFilter(interval)
    for handler in logging.getLogger().handlers:
        handler.addFilter(flood)
    return flood
