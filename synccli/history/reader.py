"""Reading a run's ``history.jsonl`` (format: docs/history.md): the one reader.

Strict in the middle, lenient at the end: a corrupt line anywhere but the last means the
history cannot be trusted (``ConfigError`` naming the line), while a truncated last line is
what a killed run leaves behind, so it is dropped and reported (``History.truncated``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, TypeVar

from synccli.errors import ConfigError
from synccli.history.records import Record, record_from_json

R = TypeVar("R", bound=Record)


@dataclass(frozen=True, slots=True)
class Entry(Generic[R]):
    """One line: when (``t`` run seconds, ``w`` wall clock), who (``client``; None for the
    harness), and the record."""

    t: float
    w: float
    client: str | None
    record: R

    def to_json(self) -> dict[str, Any]:
        return {"t": self.t, "w": self.w, "c": self.client, **self.record.to_json()}


@dataclass(frozen=True, slots=True)
class History:
    """The entries of one run, in file order. ``truncated``: the last line was cut off."""

    entries: list[Entry[Record]]
    truncated: bool = False

    def first(self, kind: type[R]) -> Entry[R] | None:
        """The first entry whose record is a ``kind`` (e.g. ``RunStart``), if any."""
        for entry in self.entries:
            if isinstance(entry.record, kind):
                return entry  # type: ignore[return-value]
        return None

    def last(self, kind: type[R]) -> Entry[R] | None:
        """The last entry whose record is a ``kind`` (e.g. ``RunEnd``), if any."""
        for entry in reversed(self.entries):
            if isinstance(entry.record, kind):
                return entry  # type: ignore[return-value]
        return None


def entry_from_json(data: dict[str, Any]) -> Entry[Record]:
    """The entry of one parsed line; a missing or malformed field is a ``ConfigError``."""
    t, w, client = data.get("t", 0.0), data.get("w", 0.0), data.get("c")
    if type(t) not in (int, float) or type(w) not in (int, float):
        raise ConfigError("a history record has no numeric 't' and 'w'")
    if client is not None and not isinstance(client, str):
        raise ConfigError(f"a history record has a client id that is not a string: {client!r}")
    return Entry(float(t), float(w), client, record_from_json(data))


def _parse(line: str) -> dict[str, Any] | None:
    try:
        data = json.loads(line)
    except ValueError:
        return None
    if not isinstance(data, dict) or not isinstance(data.get("k"), str):
        return None
    return data


def parse_history(text: str, source: str = "history.jsonl") -> History:
    """Parse the JSONL ``text``; ``source`` names it in errors."""
    lines = text.splitlines()
    while lines and not lines[-1].strip():
        lines.pop()
    entries: list[Entry[Record]] = []
    truncated = False
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        data = _parse(line)
        if data is None:
            if number == len(lines):
                truncated = True
                break
            raise ConfigError(
                f"{source} line {number} is not a history record (JSON object with a 'k'): "
                "the history is corrupt and cannot be checked"
            )
        try:
            entries.append(entry_from_json(data))
        except ConfigError as exc:
            raise ConfigError(f"{source} line {number}: {exc}") from None
    return History(entries, truncated)


def load_history(path: Path | str) -> History:
    """Read the history at ``path``; a missing or unreadable file raises ``ConfigError``."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        raise ConfigError(
            f"no history at {path}: pass the folder of a run made by `synccli simulate`"
        ) from None
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}") from None
    return parse_history(text, str(path))
