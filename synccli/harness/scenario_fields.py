"""Reading a TOML table with errors that point into the file: ``source:line: field: problem``.

tomllib gives no positions for values, so ``key_lines`` scans the text for table headers
and keys (a ``[[faults]]`` array is counted, so the second one is ``("faults", 1)``), and an
error on a key path reports the line of the longest prefix it found.
"""

from __future__ import annotations

import re
from typing import Any

from synccli.errors import ConfigError

#: Marks a required key in ``Table.get``.
MISSING: Any = object()
KeyPath = tuple[str | int, ...]


class Located:
    """The file being validated: turns a key path into ``source:line: field: problem``."""

    def __init__(self, source: str, text: str) -> None:
        self.source = source
        self.lines = key_lines(text)

    def error(self, path: KeyPath, problem: str) -> ConfigError:
        """The error for the key at ``path``, located at the nearest line found."""
        shown = "".join(f"[{p + 1}]" if isinstance(p, int) else f".{p}" for p in path)
        where = self.source
        for cut in range(len(path), 0, -1):
            if path[:cut] in self.lines:
                where += f":{self.lines[path[:cut]]}"
                break
        return ConfigError(f"{where}: {shown.lstrip('.')}: {problem}")


class Table:
    """Typed reads from one TOML table; ``done()`` rejects the keys nobody read."""

    def __init__(self, ctx: Located, data: Any, path: KeyPath) -> None:
        if not isinstance(data, dict):
            raise ctx.error(path, "must be a table")
        self.ctx, self.data, self.path, self.read = ctx, data, path, set[str]()

    def get(self, key: str, kind: type, default: Any = MISSING, minimum: float = 0) -> Any:
        """``key`` as ``kind`` (an int is accepted as a float), at least ``minimum`` if a
        number; ``default`` when absent, an error if there is none."""
        self.read.add(key)
        if key not in self.data:
            if default is MISSING:
                raise self.ctx.error((*self.path, key), "is missing")
            return default
        value = self.data[key]
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        names = {int: "an integer", float: "a number", str: "a string", bool: "true or false"}
        if not _has_type(value, kind):
            raise self.error(key, f"must be {names[kind]}, not {value!r}")
        if kind in (int, float) and float(value) < minimum:
            raise self.error(key, f"must be at least {minimum:g}, not {value!r}")
        return value

    def error(self, key: str, problem: str) -> ConfigError:
        """The error for ``key`` of this table."""
        return self.ctx.error((*self.path, key), problem)

    def done(self) -> None:
        """Reject the first key that was never read: it is unknown."""
        for key in self.data:
            if key not in self.read:
                raise self.error(key, f"unknown key (known: {', '.join(sorted(self.read))})")


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


def _has_type(value: Any, kind: type) -> bool:
    # bool is an int subclass, but `clients = true` is a mistake, not 1.
    return isinstance(value, kind) and (kind is bool or not isinstance(value, bool))


def _key_parts(key: str) -> list[str]:
    return [p.strip("\"'") for p in re.findall(r""""[^"]*"|'[^']*'|[\w-]+""", key)]
