"""Reading a run's ``history.jsonl`` (format: docs/history.md): the one reader.

Strict in the middle, lenient at the end: a corrupt line anywhere but the last means the
history cannot be trusted (``ConfigError`` naming the line), while a truncated last line is
what a killed run leaves behind, so it is dropped and reported (``History.truncated``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, TypeVar, overload

from synccli.errors import ConfigError
from synccli.history.records import Apply, Record, record_from_json
from synccli.history.writer import REF_WINDOW

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
    """The entries of one run, in file order. ``truncated``: the last line was cut off.

    ``entries`` is a list for a parsed text, a ``HistoryFile`` (read again from disk on every
    pass, never held in memory) for a loaded file."""

    entries: Sequence[Entry[Record]]
    truncated: bool = False

    def first(self, kind: type[R]) -> Entry[R] | None:
        """The first entry whose record is a ``kind`` (e.g. ``RunStart``), if any."""
        if isinstance(self.entries, HistoryFile):
            return self.entries.first_of(kind)
        for entry in self.entries:
            if isinstance(entry.record, kind):
                return entry  # type: ignore[return-value]
        return None

    def last(self, kind: type[R]) -> Entry[R] | None:
        """The last entry whose record is a ``kind`` (e.g. ``RunEnd``), if any."""
        if isinstance(self.entries, HistoryFile):
            return self.entries.last_of(kind)
        for entry in reversed(self.entries):
            if isinstance(entry.record, kind):
                return entry  # type: ignore[return-value]
        return None


def entry_from_json(data: dict[str, Any], record: Record | None = None) -> Entry[Record]:
    """The entry of one parsed line (of ``record``, if given, instead of the line's own);
    a missing or malformed field is a ``ConfigError``."""
    t, w, client = data.get("t", 0.0), data.get("w", 0.0), data.get("c")
    if type(t) not in (int, float) or type(w) not in (int, float):
        raise ConfigError("a history record has no numeric 't' and 'w'")
    if client is not None and not isinstance(client, str):
        raise ConfigError(f"a history record has a client id that is not a string: {client!r}")
    return Entry(float(t), float(w), client, record or record_from_json(data))


def _parse(line: str) -> dict[str, Any] | None:
    try:
        data = json.loads(line)
    except ValueError:
        return None
    if not isinstance(data, dict) or not isinstance(data.get("k"), str):
        return None
    return data


_SKELETON = [",", "k", ":", "apply", ",", "ref", ":"]


def _reference(line: str) -> tuple[float, float, str | None, str] | None:
    """``t``, ``w``, client and ``ref`` of a reference line as the writer writes it, read
    without the JSON parser (the bulk of a long run's lines, three times faster so); None for
    any other line, which takes the general path and means the same."""
    p = line.split('"')
    n = len(p)
    if n == 17:  # {"t":T,"w":W,"c":"C","k":"apply","ref":"R"}
        if p[6] != ":" or "\\" in p[7]:
            return None
        client: str | None = p[7]
    elif n == 15:  # {"t":T,"w":W,"c":null,"k":"apply","ref":"R"}
        if p[6] != ":null,":
            return None
        client = None
    else:
        return None
    t, w, ref = p[2], p[4], p[n - 2]
    skeleton = p[8:15] == _SKELETON if n == 17 else p[7:13] == _SKELETON[1:]
    if not skeleton or p[:2] != ["{", "t"] or p[3] != "w" or p[5] != "c":
        return None
    if p[n - 1].rstrip() != "}":
        return None
    if t[0] != ":" or t[-1] != "," or w[0] != ":" or w[-1] != "," or "\\" in ref:
        return None
    try:
        return float(t[1:-1]), float(w[1:-1]), client, ref
    except ValueError:
        return None


class _Decoder:
    """Lines to entries, resolving the compact ``apply`` references (docs/history.md).

    Keeps, per writer namespace, only the last ``REF_WINDOW`` definitions: the writer never
    refers further back, so memory stays bounded however long the run."""

    def __init__(self) -> None:
        self.defs: dict[str, Record] = {}

    def reference(self, t: float, w: float, client: str | None, ref: str) -> Entry[Record]:
        record = self.defs.get(ref)
        if record is None:
            raise ConfigError(f"a history apply refers to {ref!r}, defined nowhere before")
        return Entry(t, w, client, record)

    def entry(self, data: dict[str, Any]) -> Entry[Record]:
        ref = data.get("ref")
        if ref is None or data["k"] != "apply":
            return entry_from_json(data)
        if len(data) == 5:  # t, w, c, k, ref: a reference to an earlier definition
            record = self.defs.get(ref) if isinstance(ref, str) else None
            if record is None:
                raise ConfigError(f"a history apply refers to {ref!r}, defined nowhere before")
            return entry_from_json(data, record)
        namespace, _, number = ref.rpartition(".") if isinstance(ref, str) else ("", "", "")
        if not namespace or not number.isdigit():
            raise ConfigError(f"a history apply has a malformed 'ref' ({ref!r})")
        entry = entry_from_json(data)
        self.defs[ref] = entry.record
        self.defs.pop(f"{namespace}.{int(number) - REF_WINDOW}", None)
        return entry


def _decode(lines: Iterable[str], source: str) -> Iterator[Entry[Record] | int]:
    """The entries of ``lines``, then the number of a cut-off last line if there was one
    (a line that does not parse followed by blank lines only)."""
    decoder = _Decoder()
    bad = 0
    for number, line in enumerate(lines, start=1):
        match = _reference(line)
        if match is None and not line.strip():
            continue
        if bad:
            raise ConfigError(
                f"{source} line {bad} is not a history record (JSON object with a 'k'): "
                "the history is corrupt and cannot be checked"
            )
        try:
            if match is not None:
                yield decoder.reference(*match)
                continue
            data = _parse(line)
            if data is None:
                bad = number
                continue
            yield decoder.entry(data)
        except ConfigError as exc:
            raise ConfigError(f"{source} line {number}: {exc}") from None
    if bad:
        yield bad


def parse_history(text: str, source: str = "history.jsonl") -> History:
    """Parse the JSONL ``text`` into a list of entries; ``source`` names it in errors."""
    entries: list[Entry[Record]] = []
    truncated = False
    for item in _decode(text.splitlines(), source):
        if isinstance(item, int):
            truncated = True
        else:
            entries.append(item)
    return History(entries, truncated)


class HistoryFile(Sequence[Entry[Record]]):
    """The entries of a history file, parsed again on every pass so that a run of any length
    is checked in bounded memory. Opening it reads the file once: corruption is reported
    then, and the count, the last entry and the first and last entry of every kind are
    kept (``first_of``, ``last_of``). Indexing other than ``[0]`` and ``[-1]`` reads the
    file up to that entry."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.truncated = False
        self._first: dict[type[Record], Entry[Record]] = {}
        self._last: dict[type[Record], Entry[Record]] = {}
        self._count = 0
        self._final: Entry[Record] | None = None
        for item in self._items():
            if isinstance(item, int):
                self.truncated = True
                continue
            self._count += 1
            kind = type(item.record)
            self._first.setdefault(kind, item)
            self._last[kind] = item
            self._final = item

    def _items(self) -> Iterator[Entry[Record] | int]:
        try:
            with open(self.path, encoding="utf-8", errors="replace") as lines:
                yield from _decode(lines, str(self.path))
        except FileNotFoundError:
            raise ConfigError(
                f"no history at {self.path}: pass the folder of a run made by `synccli simulate`"
            ) from None
        except OSError as exc:
            raise ConfigError(f"cannot read {self.path}: {exc.strerror}") from None

    def __iter__(self) -> Iterator[Entry[Record]]:
        # The file was checked when opened: this pass only decodes, reference lines first.
        decoder = _Decoder()
        defs = decoder.defs
        with open(self.path, encoding="utf-8", errors="replace") as lines:
            for line in lines:
                fields = _reference(line)
                if fields is not None:
                    record = defs.get(fields[3])
                    if record is None:
                        raise ConfigError(f"{self.path} changed while it was being checked")
                    yield Entry(fields[0], fields[1], fields[2], record)
                    continue
                data = _parse(line) if line.strip() else None
                if data is not None:  # None: blank, or the cut-off last line
                    yield decoder.entry(data)

    def of_kinds(self, *kinds: type[Record]) -> Iterator[Entry[Record]]:
        """Only the entries of ``kinds``, skipping other lines before parsing them (a line
        of a kind names it): much faster for rare kinds. Not for ``Apply`` (whose compact
        lines refer to earlier ones): that is a plain pass."""
        if Apply in kinds:
            yield from (e for e in self if isinstance(e.record, kinds))
            return
        names = {k.KIND for k in kinds}
        named = re.compile("|".join(re.escape(name) for name in sorted(names))).search
        with open(self.path, encoding="utf-8", errors="replace") as lines:
            for number, line in enumerate(lines, start=1):
                if named(line) is None:
                    continue
                data = _parse(line)
                if data is None or data["k"] not in names:
                    continue  # a cut-off last line, or a line naming the kind elsewhere
                try:
                    yield entry_from_json(data)
                except ConfigError as exc:
                    raise ConfigError(f"{self.path} line {number}: {exc}") from None

    def __len__(self) -> int:
        return self._count

    @overload
    def __getitem__(self, index: int) -> Entry[Record]: ...
    @overload
    def __getitem__(self, index: slice) -> Sequence[Entry[Record]]: ...
    def __getitem__(self, index: int | slice) -> Entry[Record] | Sequence[Entry[Record]]:
        if isinstance(index, slice):
            return list(self)[index]
        position = index + self._count if index < 0 else index
        if not 0 <= position < self._count:
            raise IndexError("history index out of range")
        if position == self._count - 1 and self._final is not None:
            return self._final
        for i, entry in enumerate(self):
            if i == position:
                return entry
        raise IndexError("history index out of range")  # the file shrank

    def __reversed__(self) -> Iterator[Entry[Record]]:
        return reversed(list(self))

    def first_of(self, kind: type[R]) -> Entry[R] | None:
        return self._first.get(kind)  # type: ignore[return-value]

    def last_of(self, kind: type[R]) -> Entry[R] | None:
        return self._last.get(kind)  # type: ignore[return-value]


def load_history(path: Path | str) -> History:
    """The history at ``path``, read lazily (``HistoryFile``); a missing, unreadable or
    corrupt file raises ``ConfigError``."""
    entries = HistoryFile(Path(path))
    return History(entries, entries.truncated)
