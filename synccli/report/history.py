"""Reading a run's ``history.jsonl`` (format: docs/history.md) for the checker.

The reader is strict in the middle and lenient at the end: a corrupt line anywhere but the
last means the history cannot be trusted (``ConfigError`` naming the line), while a
truncated last line is what a killed run leaves behind, so it is dropped and reported.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from synccli.errors import ConfigError

Record = dict[str, Any]


@dataclass(frozen=True, slots=True)
class History:
    """The records of one run, in file order. ``truncated``: the last line was cut off."""

    records: list[Record]
    truncated: bool = False

    def first(self, kind: str) -> Record | None:
        """The first record of ``kind`` (e.g. ``run_start``), if any."""
        return next((r for r in self.records if r["k"] == kind), None)

    def last(self, kind: str) -> Record | None:
        """The last record of ``kind`` (e.g. ``run_end``, ``server_metrics``), if any."""
        return next((r for r in reversed(self.records) if r["k"] == kind), None)


def _parse(line: str) -> Record | None:
    try:
        record = json.loads(line)
    except ValueError:
        return None
    if not isinstance(record, dict) or not isinstance(record.get("k"), str):
        return None
    return record


def parse_history(text: str, source: str = "history.jsonl") -> History:
    """Parse the JSONL ``text``; ``source`` names it in errors."""
    lines = text.splitlines()
    while lines and not lines[-1].strip():
        lines.pop()
    records: list[Record] = []
    truncated = False
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        record = _parse(line)
        if record is None:
            if number == len(lines):
                truncated = True
                break
            raise ConfigError(
                f"{source} line {number} is not a history record (JSON object with a 'k'): "
                "the history is corrupt and cannot be checked"
            )
        records.append(record)
    return History(records, truncated)


def load_history(path: Path) -> History:
    """Read the history at ``path``; a missing or unreadable file raises ``ConfigError``."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        raise ConfigError(
            f"no history at {path}: pass the folder of a run made by `synccli simulate`"
        ) from None
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}") from None
    return parse_history(text, str(path))
