"""``HistoryWriter``: records appended to ``history.jsonl`` in batches (docs/history.md).

The writer buffers serialised records and writes them with one ``write`` call per batch
(every ``flush_every`` records, or when ``flush_interval`` has passed since the last flush,
checked on every record and by ``flush_if_due``), and on ``close``. Each line gets ``t``
(monotonic seconds since ``t0``), ``w`` (``time.time()``), ``c`` (client id or None) and the
record's JSON form (``k`` and its fields).

An ``Apply`` is usually one object shared by every client of a process (``protocol.channel``
shares it), so its body is written in full once, with a ``ref`` (``"<namespace>.<n>"``, the
namespace unique to this writer), and every later apply of the same object is a short
reference line ``{"t":…,"w":…,"c":…,"k":"apply","ref":…}`` (docs/history.md). A reference
always names one of the writer's last ``REF_WINDOW`` definitions, so a reader keeps no more.

Threads may share one writer (a lock guards the buffer). Processes may not: each worker
process writes its own part file with the same ``t0`` (``time.monotonic`` is system-wide on
Linux) and the parent merges the parts with ``merge_in``, ordered by ``t``.
"""

from __future__ import annotations

import heapq
import itertools
import json
import os
import threading
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO

from synccli.history.records import Apply, Record

BODY_CACHE_SIZE = 4096
#: A reference names one of the last ``REF_WINDOW`` applies defined by its writer.
REF_WINDOW = BODY_CACHE_SIZE
_WRITERS = itertools.count()


class HistoryWriter:
    """Append-only, batched JSONL history."""

    def __init__(
        self,
        path: Path | str,
        t0: float,
        *,
        flush_every: int = 1000,
        flush_interval: float = 0.1,
    ) -> None:
        self.path = Path(path)
        self.t0 = t0
        self.flush_every = flush_every
        self.flush_interval = flush_interval
        self._file: IO[str] | None = open(self.path, "a", encoding="utf-8")  # noqa: SIM115
        self._buffer: list[str] = []
        self._last_flush = time.monotonic()
        self._lock = threading.Lock()
        self._bodies: dict[int, tuple[Record, str]] = {}
        self._refs: dict[int, tuple[Apply, str]] = {}
        self._namespace = f"{os.getpid():x}.{next(_WRITERS)}"
        self._next_ref = 0
        self.count = 0

    def write(self, client_id: str | None, record: Record) -> None:
        """Append ``record`` for ``client_id`` (None: the harness itself)."""
        now = time.monotonic()
        head = f'{{"t":{round(now - self.t0, 6)!r},"w":{time.time()!r},"c":{json.dumps(client_id)},'
        with self._lock:
            # Under the lock: a reference must never reach the file before its definition.
            body = self._apply_body(record) if type(record) is Apply else self._body(record)
            self._buffer.append(head + body)
            self.count += 1
            due = (
                len(self._buffer) >= self.flush_every
                or now - self._last_flush >= self.flush_interval
            )
        if due:
            self.flush()

    def _body(self, record: Record) -> str:
        """``record`` as JSON without its opening brace, serialised once per object.

        Hundreds of clients in one process record the very same ``Apply`` for an event
        (``protocol.channel`` shares it), so this saves most of the history's cost."""
        cached = self._bodies.get(id(record))
        if cached is not None and cached[0] is record:
            return cached[1]
        body = json.dumps(record.to_json(), separators=(",", ":"), default=str)[1:]
        if len(self._bodies) >= BODY_CACHE_SIZE:
            del self._bodies[next(iter(self._bodies))]
        # Keeping a reference to the record keeps its id from being reused while cached.
        self._bodies[id(record)] = (record, body)
        return body

    def _apply_body(self, record: Apply) -> str:
        """The full body with a new ``ref`` the first time, a reference line after that."""
        cached = self._refs.get(id(record))
        if cached is not None and cached[0] is record:
            return f'"k":"apply","ref":"{cached[1]}"}}'
        ref = f"{self._namespace}.{self._next_ref}"
        self._next_ref += 1
        if len(self._refs) >= REF_WINDOW:
            del self._refs[next(iter(self._refs))]
        self._refs[id(record)] = (record, ref)
        body = json.dumps(record.to_json(), separators=(",", ":"), default=str)
        return f'{body[1:-1]},"ref":"{ref}"}}'

    def flush_if_due(self) -> None:
        """Flush when the interval has passed; call it from a periodic task when idle."""
        if self._buffer and time.monotonic() - self._last_flush >= self.flush_interval:
            self.flush()

    def flush(self) -> None:
        with self._lock:
            if self._file is None:
                return
            if self._buffer:
                self._file.write("\n".join(self._buffer) + "\n")
                self._buffer.clear()
            self._file.flush()
            self._last_flush = time.monotonic()

    def close(self) -> None:
        """Flush and close; idempotent."""
        self.flush()
        with self._lock:
            if self._file is not None:
                self._file.close()
                self._file = None

    def merge_in(self, parts: list[Path]) -> None:
        """Merge the part files of worker processes into this history, ordered by ``t``,
        then delete them. Each part, like this file, is already in ``t`` order."""
        self.flush()
        with self._lock:
            assert self._file is not None, "merge_in after close"
            self._file.close()
            merged = self.path.with_name(self.path.name + ".merging")
            sources = [self.path, *parts]
            files = [open(p, encoding="utf-8") for p in sources]  # noqa: SIM115
            try:
                with open(merged, "w", encoding="utf-8") as out:
                    streams = [_keyed_lines(f) for f in files]
                    out.writelines(line for _, line in heapq.merge(*streams))
            finally:
                for f in files:
                    f.close()
            os.replace(merged, self.path)
            for part in parts:
                part.unlink(missing_ok=True)
            self._file = open(self.path, "a", encoding="utf-8")  # noqa: SIM115


def _keyed_lines(lines: Iterable[str]) -> Iterator[tuple[float, str]]:
    for line in lines:
        if not line.strip():
            continue
        if not line.endswith("\n"):
            line += "\n"
        try:
            t = float(json.loads(line)["t"])
        except (ValueError, KeyError, TypeError):
            # A torn line from a killed worker sorts last instead of breaking the merge.
            t = float("inf")
        yield t, line
