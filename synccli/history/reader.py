"""Reading a run's ``history.jsonl`` (format: docs/history.md): the one reader.

Strict in the middle, lenient at the end: a corrupt line anywhere but the last means the
history cannot be trusted (``ConfigError`` naming the line), while a truncated last line is
what a killed run leaves behind, so it is dropped and reported (``History.truncated``).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Generic, TypeVar, overload

from synccli.errors import ConfigError
from synccli.history import fast_json
from synccli.history.records import Apply, Record, record_from_json
from synccli.history.writer import REF_WINDOW

R = TypeVar("R", bound=Record)
#: (t, w, client, record): one line of a pass, lighter than an ``Entry``.
Row = tuple[float, float, str | None, Record]


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
    pass, never held in memory) for a loaded file; ``truncated`` is then the file's."""

    entries: Sequence[Entry[Record]]
    parsed_truncated: bool = False

    @property
    def truncated(self) -> bool:
        if isinstance(self.entries, HistoryFile):
            return self.entries.truncated
        return self.parsed_truncated

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
    return Entry(*row_from_json(data, record))


def row_from_json(data: dict[str, Any], record: Record | None = None) -> Row:
    """``entry_from_json`` as a ``Row``."""
    t, w, client = data.get("t", 0.0), data.get("w", 0.0), data.get("c")
    if type(t) not in (int, float) or type(w) not in (int, float):
        raise ConfigError("a history record has no numeric 't' and 'w'")
    if client is not None and not isinstance(client, str):
        raise ConfigError(f"a history record has a client id that is not a string: {client!r}")
    return float(t), float(w), client, record or record_from_json(data)


def _unreadable(path: Path, exc: OSError) -> ConfigError:
    """What to say of a history that cannot be read."""
    if isinstance(exc, FileNotFoundError):
        return ConfigError(
            f"no history at {path}: pass the folder of a run made by `synccli simulate`"
        )
    return ConfigError(f"cannot read {path}: {exc.strerror}")


def _parse(line: str) -> dict[str, Any] | None:
    try:
        data = fast_json.loads(line)
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
        return Entry(*self.row(data))

    def row(self, data: dict[str, Any]) -> Row:
        ref = data.get("ref")
        if ref is None or data["k"] != "apply":
            return row_from_json(data)
        if len(data) == 5:  # t, w, c, k, ref: a reference to an earlier definition
            record = self.defs.get(ref) if isinstance(ref, str) else None
            if record is None:
                raise ConfigError(f"a history apply refers to {ref!r}, defined nowhere before")
            return row_from_json(data, record)
        if not isinstance(ref, str) or not self.define(ref, None):
            raise ConfigError(f"a history apply has a malformed 'ref' ({ref!r})")
        row = row_from_json(data)
        self.define(ref, row[3])
        return row

    def define(self, ref: str, record: Record | None) -> bool:
        """Keep ``record`` as ``ref`` (forgetting the one that left the window); with None
        only check the form of ``ref``. False when ``ref`` is malformed."""
        namespace, _, number = ref.rpartition(".")
        if not namespace or not number.isdigit():
            return False
        if record is not None:
            self.defs[ref] = record
            self.defs.pop(f"{namespace}.{int(number) - REF_WINDOW}", None)
        return True


def _decode(
    lines: Iterable[str], source: str, decoder: _Decoder | None = None, start: int = 1, bad: int = 0
) -> Iterator[Entry[Record] | int]:
    """The entries of ``lines``, then the number of a cut-off last line if there was one
    (a line that does not parse followed by blank lines only). ``start``, ``decoder`` and
    ``bad`` carry on from an earlier piece of the same file."""
    decoder = decoder or _Decoder()
    for number, line in enumerate(lines, start=start):
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


#: Lines decoded at once on the fast path (about 1 MB).
_BATCH_BYTES = 1 << 20
#: How much of a file ``of_kinds`` searches at once.
_SCAN_BYTES = 1 << 20


class _Pass:
    """One pass over a history file as rows, checking it as it goes (strict in the middle,
    lenient at the end) and noting the count, the last row, the first and last row of every
    kind, and whether the last line was cut off."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.source = str(path)
        self.decoder = _Decoder()
        self.truncated = False
        self.count = 0
        self.first: dict[type[Record], Row] = {}
        self.last: dict[type[Record], Row] = {}
        self.final: Row | None = None

    def batches(self) -> Iterator[list[Row]]:
        """The rows, a batch of lines at a time (per-row generators cost more than the
        rest of a pass over reference lines)."""
        try:
            with open(self.path, encoding="utf-8", errors="replace") as lines:
                yield from self._batches(lines)
        except OSError as exc:
            raise _unreadable(self.path, exc) from None

    def _batches(self, lines: IO[str]) -> Iterator[list[Row]]:
        number = 1  # of the batch's first line
        bad = 0
        first, last = self.first, self.last
        while batch := lines.readlines(_BATCH_BYTES):
            heads = None if bad else fast_json.decode_heads(batch)
            if heads is None:
                rows: list[Row] = []
                for item in self._slow(batch, number, bad):
                    if isinstance(item, int):
                        bad = item
                        continue
                    kind = type(item[3])
                    if kind not in first:
                        first[kind] = item
                    last[kind] = item
                    rows.append(item)
            else:
                rows = self._fast(batch, heads, number)
            number += len(batch)
            if rows:
                self.count += len(rows)
                self.final = rows[-1]
                yield rows
        self.truncated = bad > 0

    def _slow(self, batch: list[str], number: int, bad: int) -> Iterator[Row | int]:
        """Line by line (no msgspec, or a batch with a blank, odd or corrupt line); ``bad``:
        the number of an earlier line that did not parse."""
        for item in _decode(batch, self.source, self.decoder, number, bad):
            if isinstance(item, int):
                yield item
            else:
                yield item.t, item.w, item.client, item.record

    def _fast(self, batch: list[str], heads: list[Any], number: int) -> list[Row]:
        """A batch whose every line is a JSON object with a kind and the envelope and apply
        fields of the right types (``fast_json.decode_heads``)."""
        defs = self.decoder.defs
        first, last = self.first, self.last
        rows: list[Row] = []
        append = rows.append
        last_ref: Row | None = None  # the last reference row after the batch's last other apply
        row: Row
        for i, (line, h) in enumerate(zip(batch, heads, strict=True)):
            if h.k == "apply":
                if h.seq is None:
                    # Exactly a reference's five fields: t, w, c, k and ref are there, and with
                    # four commas in the line there is no other (a comma in a string takes the
                    # general path below, which reads the line as it always did).
                    record = defs.get(h.ref)
                    if record is not None and line.count(",") == 4:
                        last_ref = h.t, h.w, h.c, record
                        append(last_ref)
                        continue
                elif h.date is not None and h.epoch is not None:
                    record = Apply(
                        h.date,
                        h.epoch,
                        h.seq,
                        h.id,
                        h.committedAt,
                        h.replay,
                        h.appointmentId,
                        h.version,
                        h.state,
                    )
                    if h.ref is None or self.decoder.define(h.ref, record):
                        row = h.t, h.w, h.c, record
                        append(row)
                        first.setdefault(Apply, row)
                        last[Apply], last_ref = row, None
                        continue
            # Any other line, or an apply that is not right: the general path, which reads
            # it as it always did (and names what is wrong with it).
            data = _parse(line)
            assert data is not None, "decode_heads accepted a line _parse does not"
            try:
                row = self.decoder.row(data)
            except ConfigError as exc:
                raise ConfigError(f"{self.source} line {number + i}: {exc}") from None
            append(row)
            kind = type(row[3])
            if kind not in first:
                first[kind] = row
            last[kind] = row
            if kind is Apply:
                last_ref = None
        if last_ref is not None:
            last[Apply] = last_ref
        return rows


class HistoryFile(Sequence[Entry[Record]]):
    """The entries of a history file, parsed again on every pass so that a run of any length
    is checked in bounded memory. The first whole pass checks the file (corruption is a
    ``ConfigError`` naming the line) and keeps the count, the last entry and the first and
    last entry of every kind (``first_of``, ``last_of``); ``HistoryFile(path)`` makes that
    pass when opened, ``HistoryFile(path, lazy=True)`` on the first use (so a one-pass
    consumer reads the file once). Indexing other than ``[0]`` and ``[-1]`` reads the file
    up to that entry."""

    def __init__(self, path: Path, *, lazy: bool = False) -> None:
        self.path = path
        self._index: _Pass | None = None
        if not lazy:
            self._indexed()

    def _indexed(self) -> _Pass:
        if self._index is None:
            scan = _Pass(self.path)
            for _ in scan.batches():
                pass
            self._index = scan
        return self._index

    @property
    def truncated(self) -> bool:
        """Whether the last line was cut off (a killed run)."""
        return self._indexed().truncated

    def rows(self) -> Iterator[Row]:
        """The entries as ``(t, w, client, record)``: a pass without building ``Entry``
        objects, for passes over millions of lines."""
        return itertools.chain.from_iterable(self.batches())

    def batches(self) -> Iterator[list[Row]]:
        """``rows`` a batch at a time: the fastest pass."""
        scan = _Pass(self.path)
        yield from scan.batches()
        if self._index is None:
            self._index = scan

    def __iter__(self) -> Iterator[Entry[Record]]:
        for t, w, client, record in self.rows():
            yield Entry(t, w, client, record)

    def of_kinds(self, *kinds: type[Record]) -> Iterator[Entry[Record]]:
        """Only the entries of ``kinds``, skipping other lines before parsing them (a line
        of a kind names it): much faster for rare kinds. Not for ``Apply`` (whose compact
        lines refer to earlier ones): that is a plain pass."""
        if Apply in kinds:
            yield from (e for e in self if isinstance(e.record, kinds))
            return
        names = {k.KIND for k in kinds}
        # A line of a kind names it: found by searching the file for the names (as bytes,
        # a block at a time), not by looking at each line.
        named = [f'"{name}"'.encode() for name in sorted(names)]
        try:
            with open(self.path, "rb") as file:
                number, rest = 1, b""
                while block := file.read(_SCAN_BYTES):
                    # Whole lines only: the last, cut by the block, waits for the next one.
                    cut = block.rfind(b"\n") + 1
                    data, rest = rest + block[:cut], block[cut:] if cut else rest + block
                    if not cut:
                        continue
                    yield from self._named_entries(named, names, data, number)
                    number += data.count(b"\n")
                yield from self._named_entries(named, names, rest, number)
        except OSError as exc:
            raise _unreadable(self.path, exc) from None

    def _named_entries(
        self, named: list[bytes], names: set[str], data: bytes, number: int
    ) -> Iterator[Entry[Record]]:
        """The entries of the lines of ``data`` (whole lines, the first one ``number``)
        that hold one of ``named``, in order."""
        begins: set[int] = set()
        for name in named:
            at = data.find(name)
            while at >= 0:
                begin = data.rfind(b"\n", 0, at) + 1
                begins.add(begin)
                end = data.find(b"\n", at)
                at = -1 if end < 0 else data.find(name, end)
        for begin in sorted(begins):
            end = data.find(b"\n", begin)
            parsed = _parse(data[begin : len(data) if end < 0 else end].decode("utf-8", "replace"))
            if parsed is None or parsed["k"] not in names:
                continue  # a cut-off last line, or a line naming the kind elsewhere
            try:
                yield entry_from_json(parsed)
            except ConfigError as exc:
                line = number + data.count(b"\n", 0, begin)
                raise ConfigError(f"{self.path} line {line}: {exc}") from None

    def __len__(self) -> int:
        return self._indexed().count

    @overload
    def __getitem__(self, index: int) -> Entry[Record]: ...
    @overload
    def __getitem__(self, index: slice) -> Sequence[Entry[Record]]: ...
    def __getitem__(self, index: int | slice) -> Entry[Record] | Sequence[Entry[Record]]:
        if isinstance(index, slice):
            return list(self)[index]
        scan = self._indexed()
        position = index + scan.count if index < 0 else index
        if not 0 <= position < scan.count:
            raise IndexError("history index out of range")
        if position == scan.count - 1 and scan.final is not None:
            return Entry(*scan.final)
        for i, entry in enumerate(self):
            if i == position:
                return entry
        raise IndexError("history index out of range")  # the file shrank

    def __reversed__(self) -> Iterator[Entry[Record]]:
        return reversed(list(self))

    def first_of(self, kind: type[R]) -> Entry[R] | None:
        row = self._indexed().first.get(kind)
        return None if row is None else Entry(*row)  # type: ignore[arg-type]

    def last_of(self, kind: type[R]) -> Entry[R] | None:
        row = self._indexed().last.get(kind)
        return None if row is None else Entry(*row)  # type: ignore[arg-type]


def load_history(path: Path | str, *, lazy: bool = False) -> History:
    """The history at ``path``, read from disk on each pass (``HistoryFile``); a missing,
    unreadable or corrupt file raises ``ConfigError``: when opened, or with ``lazy`` on the
    first pass (for a consumer that reads the run in one pass, such as ``summarize``)."""
    return History(HistoryFile(Path(path), lazy=lazy))
