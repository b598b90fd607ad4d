"""Where a server process's log goes: stderr, one line per record."""

from __future__ import annotations

import logging
import sys

LEVELS = ("debug", "info", "warning", "error")


def configure_logging(level: str) -> None:
    """Log at ``level`` (one of ``LEVELS``) to stderr."""
    logging.basicConfig(
        level=level.upper(),
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if level != "debug":
        # websockets logs every HTTP probe and connection at INFO: noise for operators.
        logging.getLogger("websockets").setLevel(logging.WARNING)
