"""Where a server process's log goes (stderr, one line per record), with floods limited:
at most one line per second per kind, with the count of the rest.

A kind is the logger and the message template (not its arguments), so a burst of asyncio's
``socket.accept() out of system resource`` (EMFILE) or of one failing handler is one line a
second, the next saying how many were suppressed. Debug records are never limited
(``--log-level debug`` asks for every line). ``configure_logging`` (``synccli serve``) sets
up the stderr handler with the filter, unless logging is configured already (by a test
runner or an application embedding the server), whose handlers it leaves alone. The
handler it makes is synccli's own (``own_handlers``): the filters ``serve`` adds later (the
redaction of secrets, ``auth.install_redaction``) go on it and on no one else's.
"""

from __future__ import annotations

import logging
import sys
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
    # The last record and the decision on it: a filter on several handlers decides once.
    _last: tuple[logging.LogRecord, bool] | None = None

    def __post_init__(self) -> None:
        logging.Filter.__init__(self)

    def filter(self, record: logging.LogRecord) -> bool:
        if self._last is not None and self._last[0] is record:
            return self._last[1]
        passed = self._decide(record)
        self._last = (record, passed)
        return passed

    def _decide(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.INFO:
            return True  # debug output is asked for line by line: never thinned
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


LEVELS = ("debug", "info", "warning", "error")
#: The name of the handler ``configure_logging`` makes (``logging.Handler.name``).
HANDLER_NAME = "synccli"
FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def configure_logging(level: str, interval: float = 1.0) -> FloodFilter | None:
    """Log at ``level`` (one of ``LEVELS``) to stderr with floods limited, like
    ``logging.basicConfig``: when the root logger has handlers already, add none (and return
    None, and leave every logger's level as that configuration set it)."""
    root = logging.getLogger()
    if root.handlers:
        return None
    if level != "debug":
        # websockets logs every HTTP probe and connection at INFO: noise for operators.
        logging.getLogger("websockets").setLevel(logging.WARNING)
    flood = FloodFilter(interval)
    handler = logging.StreamHandler(sys.stderr)
    handler.set_name(HANDLER_NAME)
    handler.setFormatter(logging.Formatter(FORMAT))
    handler.addFilter(flood)
    root.addHandler(handler)
    root.setLevel(level.upper())
    return flood


def own_handlers() -> list[logging.Handler]:
    """The root logger's handlers that ``configure_logging`` made: none when logging was
    configured by someone else."""
    return [h for h in logging.getLogger().handlers if h.get_name() == HANDLER_NAME]
