"""Ctrl+C and SIGTERM for a long-running command: the first asks for a clean stop, a second
one forces exit. One helper, so the server, the harness and the proxy behave alike."""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import Callable, Iterator
from contextlib import contextmanager

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
#: The exit status after a forced stop: 128 + SIGINT, what a shell reports for Ctrl+C.
FORCED_EXIT = 130


def _nothing() -> None:
    return None


@contextmanager
def stop_on_signals(
    stop: asyncio.Event,
    on_stop: Callable[[], None] = _nothing,
    on_force: Callable[[], None] = _nothing,
) -> Iterator[None]:
    """While inside, SIGINT/SIGTERM set ``stop`` (then ``on_stop()`` says so); a signal that
    arrives once ``stop`` is set calls ``on_force()`` and exits at once with status 130.
    Must run in the event loop's thread; the handlers are removed on the way out."""
    loop = asyncio.get_running_loop()

    def on_signal() -> None:
        if stop.is_set():
            on_force()
            # Shutdown itself is stuck: skip every clean-up, as the user asked twice.
            os._exit(FORCED_EXIT)
        stop.set()
        on_stop()

    for signum in STOP_SIGNALS:
        loop.add_signal_handler(signum, on_signal)
    try:
        yield
    finally:
        for signum in STOP_SIGNALS:
            loop.remove_signal_handler(signum)
