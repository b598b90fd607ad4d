"""The live progress line of a long run: one line rewritten in place on a terminal, a plain
line every few seconds elsewhere (CI logs)."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TextIO


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
        text = self.status()
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
