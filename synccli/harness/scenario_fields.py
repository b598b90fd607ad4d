"""Reading a TOML table with errors that point into the file: ``source:line: field: problem``.

Validation does not stop at the first mistake: every problem is collected (``Located.report``)
and ``Located.check`` raises them all at once, sorted by line, as one ``ScenarioError``. A
read that fails gives ``None``, so later checks that need the value skip it instead of
piling a second error on the first.

tomllib gives no positions for values, so ``key_lines`` scans the text for table headers
and keys (a ``[[faults]]`` array is counted, so the second one is ``("faults", 1)``), and an
error on a key path reports the line of the longest prefix it found.
"""

from __future__ import annotations

import re
from typing import Any

from synccli.errors import ConfigError
from synccli.faults.kinds import check_value

#: Marks a required key in ``Table.get``.
MISSING: Any = object()
KeyPath = tuple[str | int, ...]

_UNITS = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}
_DURATION = re.compile(
    r"(?:(?P<h>[\d.]+)h)?(?:(?P<m>[\d.]+)m)?(?:(?P<s>[\d.]+)s)?(?:(?P<ms>[\d.]+)ms)?"
)
DURATION_HINT = 'seconds (15) or a duration like "30s", "2m", "1m30s"'


class Seconds(float):
    """Marks a duration in ``Table.get``: a number of seconds or a string like ``"1m30s"``."""


def parse_duration(text: str) -> float:
    """Seconds in ``text``: a bare number (``"15"``, ``"2.5"``) or k6/Locust style units in
    the order h, m, s, ms (``"30s"``, ``"2m"``, ``"1m30s"``, ``"1h"``, ``"500ms"``).
    ``ValueError`` with one sentence otherwise."""
    value = text.strip()
    try:
        return float(value) if re.fullmatch(r"\d+(\.\d+)?", value) else _with_units(value)
    except ValueError:
        raise ValueError(f"{text!r} is not a duration: use {DURATION_HINT}") from None


def _with_units(value: str) -> float:
    match = _DURATION.fullmatch(value)
    if not value or match is None:
        raise ValueError(value)
    parts = {unit: amount for unit, amount in match.groupdict().items() if amount is not None}
    if not all(re.fullmatch(r"\d+(\.\d+)?", amount) for amount in parts.values()):
        raise ValueError(value)
    return sum(float(amount) * _UNITS[unit] for unit, amount in parts.items())


class ScenarioError(ConfigError):
    """Every problem of one scenario, one ``source:line: field: problem`` per line."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


class Located:
    """The file being validated: turns a key path into ``source:line: field: problem`` and
    collects the problems found."""

    def __init__(self, source: str, text: str, overridden: frozenset[str] = frozenset()) -> None:
        self.source = source
        self.lines = key_lines(text)
        #: Top-level keys whose value came from the command line, not from the text.
        self.overridden = overridden
        self._problems: list[tuple[int, str]] = []

    def message(self, path: KeyPath, problem: str) -> tuple[int, str]:
        """The line of the key at ``path`` (0 if none was found) and the full message."""
        shown = "".join(f"[{p + 1}]" if isinstance(p, int) else f".{p}" for p in path)
        if path and path[0] in self.overridden:
            return 0, f"command line: {shown.lstrip('.')}: {problem}"
        where, line = self.source, 0
        for cut in range(len(path), 0, -1):
            if path[:cut] in self.lines:
                line = self.lines[path[:cut]]
                where += f":{line}"
                break
        return line, f"{where}: {shown.lstrip('.')}: {problem}"

    def report(self, path: KeyPath, problem: str) -> None:
        """Note a problem with the key at ``path``; validation goes on."""
        self._problems.append(self.message(path, problem))

    @property
    def failed(self) -> int:
        """How many problems were reported so far."""
        return len(self._problems)

    def check(self) -> None:
        """Raise every problem reported, by line (file-level ones first), if there is one."""
        if self._problems:
            ordered = sorted(self._problems, key=lambda item: item[0])
            raise ScenarioError([text for _, text in ordered])


class Table:
    """Typed reads from one TOML table; ``done()`` reports the keys nobody read."""

    def __init__(self, ctx: Located, data: Any, path: KeyPath) -> None:
        self.ctx, self.path, self.read = ctx, path, set[str]()
        self.data: dict[str, Any] = data if isinstance(data, dict) else {}
        if not isinstance(data, dict):
            ctx.report(path, "must be a table")
        self._failed_before = ctx.failed

    @property
    def failed(self) -> bool:
        """Whether a problem was reported since this table was opened."""
        return self.ctx.failed > self._failed_before

    def get(
        self,
        key: str,
        kind: type,
        default: Any = MISSING,
        minimum: float = 0,
        maximum: float | None = None,
        choices: tuple[str, ...] = (),
    ) -> Any:
        """``key`` as ``kind`` (an int is accepted as a float; ``Seconds`` also takes
        ``"1m30s"``), within the bounds if a number; ``default`` when absent. ``None``, with
        the problem reported, when it is missing without a default or invalid."""
        self.read.add(key)
        if key not in self.data:
            if default is MISSING:
                self.report(key, "is missing")
                return None
            return default
        value = self.data[key]
        if kind is Seconds:
            kind = float
            if isinstance(value, str):
                try:
                    value = parse_duration(value)
                except ValueError as exc:
                    self.report(key, str(exc))
                    return None
        value, problem = check_value(value, kind, minimum, maximum, choices)
        if problem is not None:
            self.report(key, problem)
            return None
        return value

    def report(self, key: str, problem: str) -> None:
        """Note a problem with ``key`` of this table."""
        self.ctx.report((*self.path, key), problem)

    def done(self) -> None:
        """Report every key that was never read: it is unknown."""
        for key in self.data:
            if key not in self.read:
                self.report(key, f"unknown key (known: {', '.join(sorted(self.read))})")


def key_lines(text: str) -> dict[KeyPath, int]:
    """Line number of every table header and key in ``text``, by key path (first wins)."""
    lines: dict[KeyPath, int] = {}
    table: KeyPath = ()
    arrays: dict[KeyPath, int] = {}
    in_string = False
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        quotes = line.count('"""') + line.count("'''")
        if in_string or not line or line.startswith("#"):
            in_string ^= quotes % 2 == 1
            continue
        if line.startswith("[["):
            name = tuple(_key_parts(line[2:].split("]]")[0]))
            arrays[name] = arrays.get(name, -1) + 1
            table = (*name, arrays[name])
        elif line.startswith("["):
            table = tuple(_key_parts(line[1:].split("]")[0]))
        else:
            match = re.match(r"""^((?:"[^"]*"|'[^']*'|[\w.\s-])+?)\s*=""", line)
            if match:
                lines.setdefault((*table, *_key_parts(match[1])), number)
            in_string = quotes % 2 == 1
            continue
        lines.setdefault(table, number)
    return lines


def _key_parts(key: str) -> list[str]:
    return [p.strip("\"'") for p in re.findall(r""""[^"]*"|'[^']*'|[\w-]+""", key)]
