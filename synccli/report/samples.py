"""Latency samples in bounded memory, for exact nearest-rank percentiles over a run of any
length.

A ``SampleStore`` keeps its samples by integer key (a time bin), each in a small buffer of
8-byte floats. A full buffer goes to the store's ``Spill``: a temporary file shared by the
stores of one report, written a batch of buffers at a time (those of one key merged and
sorted into one run, and one run of all of a store's samples). ``Ranked`` then picks the
k-th smallest of a key's runs, or of all, by a binary search over values, which reads a few
samples of each run: the memory a report needs does not grow with the run.
"""

from __future__ import annotations

import bisect
import math
import os
import struct
import tempfile
from array import array
from collections.abc import Callable, Iterable, Sequence
from typing import IO, Protocol


class Ordered(Protocol):
    """Samples in ascending order, by position (a sorted list, or ``Ranked``)."""

    def __len__(self) -> int: ...
    def __getitem__(self, index: int, /) -> float: ...


#: Above this many samples ``Ranked`` keeps sorted chunks of 8-byte floats.
_CHUNK = 1 << 20
_SIGN = 1 << 63


def _order_key(x: float) -> int:
    """An integer in the order of the finite floats, for a binary search over values: a
    float's bits read as an integer are in order for positive floats and in reverse order
    for negative ones. (-0.0 and 0.0 share 0; a latency is never -0.0: ``a - c`` of equal
    floats is 0.0.)"""
    bits = int.from_bytes(struct.pack("<d", x), "little")
    return bits if bits < _SIGN else -(bits - _SIGN)


def _from_order_key(key: int) -> float:
    (x,) = struct.unpack("<d", struct.pack("<Q", key if key >= 0 else _SIGN - key))
    return float(x)


class Ranked:
    """``sorted(samples)`` for nearest-rank picks in little memory: a sorted list when there
    are few samples, else sorted chunks of 8-byte floats (a sorted list of a long run's
    samples takes 32 bytes each), the k-th smallest found by a binary search over values
    (``of_sorted``: chunks already sorted, such as a ``SampleStore``'s runs)."""

    def __init__(self, samples: Sequence[float]) -> None:
        n = len(samples)
        if n <= _CHUNK:
            self._set([sorted(samples)])
        else:
            self._set([array("d", sorted(samples[i : i + _CHUNK])) for i in range(0, n, _CHUNK)])

    @classmethod
    def of_sorted(cls, chunks: Iterable[Ordered]) -> Ranked:
        """The samples of ``chunks``, each in ascending order."""
        ranked = cls.__new__(cls)
        ranked._set([chunk for chunk in chunks if len(chunk)])
        return ranked

    def _set(self, chunks: list[Ordered]) -> None:
        self._chunks = chunks
        self._n = sum(len(chunk) for chunk in chunks)

    def __len__(self) -> int:
        return self._n

    def __getitem__(self, index: int, /) -> float:
        k = index + self._n if index < 0 else index
        if not 0 <= k < self._n:
            raise IndexError("sample rank out of range")
        chunks = self._chunks
        if len(chunks) == 1:
            return chunks[0][k]
        if k == self._n - 1:
            return max(chunk[-1] for chunk in chunks)
        # The k-th smallest is the least value with at least k + 1 samples <= it. It lies
        # between the least and the greatest of each chunk's sample at its share of k:
        # at most k samples are below the least, at least k + 1 up to the greatest.
        n = self._n
        guesses = [chunk[min(len(chunk) - 1, k * len(chunk) // n)] for chunk in chunks]
        least, greatest = min(guesses), max(guesses)
        # Per chunk, the samples between the two (read into memory from a file's run,
        # unless there are many): (samples, how many come before them, first, end).
        spans: list[tuple[Ordered, int, int, int]] = []
        for chunk in chunks:
            first = bisect.bisect_left(chunk, least)
            end = bisect.bisect_right(chunk, greatest)
            if isinstance(chunk, FileRun) and end - first <= _SPAN:
                spans.append((chunk.read(first, end), first, 0, end - first))
            else:
                spans.append((chunk, 0, first, end))
        # A binary search over the floats between the two (at most 64 steps of one
        # bisection of each span), which lands on a sample.
        lo, hi = _order_key(least), _order_key(greatest)
        while lo < hi:
            mid = (lo + hi) // 2
            value = _from_order_key(mid)
            below = sum(
                before + bisect.bisect_right(samples, value, first, end)
                for samples, before, first, end in spans
            )
            if below > k:
                hi = mid
            else:
                lo = mid + 1
        return _from_order_key(lo)


#: ``Ranked`` reads at most this many samples of a ``FileRun`` into memory at once.
_SPAN = 1 << 16


class FileRun:
    """A sorted run of 8-byte floats in a file, read a sample (or a span) at a time:
    picking a rank reads a few dozen of them, not the run."""

    __slots__ = ("_fd", "_n", "_offset")

    def __init__(self, fd: int, offset: int, n: int) -> None:
        self._fd, self._offset, self._n = fd, offset, n

    def __len__(self) -> int:
        return self._n

    def __getitem__(self, index: int) -> float:
        k = index + self._n if index < 0 else index
        if not 0 <= k < self._n:
            raise IndexError("sample index out of range")
        (x,) = struct.unpack("<d", os.pread(self._fd, 8, (self._offset + k) * 8))
        return float(x)

    def read(self, first: int, end: int) -> array[float]:
        """Samples ``first`` to ``end`` (excluded), in memory."""
        out = array("d")
        out.frombytes(os.pread(self._fd, (end - first) * 8, (self._offset + first) * 8))
        return out


#: Samples a report holds in memory, over all its stores, before writing them out (4 MB;
#: sorting what one store wrote makes them float objects for a moment, about 16 MB).
DEFAULT_BUDGET = 1 << 19
#: A key's buffer handed to the spill when it is this full.
_BUFFER = 4096


class Spill:
    """The temporary file of sorted runs shared by the ``SampleStore``s of one report, and
    the memory budget they share: once the buffers could hold ``budget`` samples (full ones
    waiting, and those still filling), they are all written out. Each write-out adds, per
    store, a sorted run of each key's samples and one of all its samples: a key's runs are
    read into memory when asked for (a time bin holds a second's samples), the runs of all
    samples are left there (``FileRun``: a pick reads a few dozen samples of each)."""

    def __init__(self, budget: int | None = None) -> None:
        self.budget = DEFAULT_BUDGET if budget is None else budget
        self._stores: list[SampleStore] = []
        self._full: list[tuple[SampleStore, int, array[float]]] = []
        self._waiting = 0
        #: Buffers being filled, over every store.
        self._open = 0
        self._file: IO[bytes] | None = None
        self._written = 0

    def opened(self) -> None:
        """A store began a buffer: everything is written out if the budget is reached."""
        self._open += 1
        if self._open * _BUFFER + self._waiting >= self.budget:
            self.flush(everything=True)

    def take(self, store: SampleStore, key: int, buffer: array[float]) -> None:
        """A full buffer of ``store``'s ``key``."""
        self._full.append((store, key, buffer))
        self._waiting += len(buffer)
        self._open -= 1
        if self._waiting >= self.budget:
            self.flush()

    def flush(self, *, everything: bool = False) -> None:
        """Write the full buffers out (``everything``: and those being filled)."""
        if everything:
            for store in self._stores:
                self._full.extend((store, key, b) for key, b in store.drain() if len(b))
            self._open = 0
        by_store: dict[int, tuple[SampleStore, dict[int, array[float]]]] = {}
        for store, key, buffer in self._full:
            keys = by_store.setdefault(id(store), (store, {}))[1]
            if key in keys:
                keys[key].extend(buffer)
            else:
                keys[key] = buffer
        self._full, self._waiting = [], 0
        while by_store:
            _, (store, keys) = by_store.popitem()
            every = array("d")
            for key, samples in keys.items():
                run = array("d", sorted(samples))
                store.ran(key, self._write(run), len(run))
                every.extend(run)
            keys.clear()
            every = array("d", sorted(every))
            store.ran(None, self._write(every), len(every), math.fsum(every))

    def _write(self, run: array[float]) -> int:
        """Append ``run``; where it starts, in samples."""
        if self._file is None:
            # Open for the report's life; gone from the disk once closed (or dropped).
            self._file = tempfile.TemporaryFile(prefix="synccli-samples-")  # noqa: SIM115
        self._file.write(run.tobytes())
        offset, self._written = self._written, self._written + len(run)
        return offset

    def read(self, offset: int, n: int) -> array[float]:
        """The ``n`` samples written at ``offset``, read into memory."""
        return self.run(offset, n).read(0, n)

    def run(self, offset: int, n: int) -> FileRun:
        """The ``n`` samples written at ``offset``, left in the file."""
        assert self._file is not None, "no run was written"
        self._file.flush()
        return FileRun(self._file.fileno(), offset, n)


class SampleStore:
    """Latency samples by integer key, in bounded memory (``Spill``). ``adder`` gives the
    function that keeps one; ``ordered`` the samples of some keys, or all, in ascending
    order (after which no sample may be added)."""

    def __init__(self, spill: Spill) -> None:
        self.spill = spill
        spill._stores.append(self)
        self._buffers: dict[int, array[float]] = {}
        #: Per key (None: all keys), its runs in the spill: (offset, count).
        self._runs: dict[int | None, list[tuple[int, int]]] = {}
        #: The sum of each run of all keys.
        self._spilled_sums: list[float] = []
        self._sorted = False

    def adder(self, w0: float, bin_s: float) -> Callable[[float, float], None]:
        """A function of ``(applied_w, ms)`` keeping ``ms`` under the time bin of
        ``applied_w``: ``(applied_w - w0) // bin_s``."""
        buffers, take, opened = self._buffers, self.spill.take, self.spill.opened
        get = buffers.get
        store = self

        def add(applied_w: float, ms: float) -> None:
            key = int((applied_w - w0) // bin_s)
            buffer = get(key)
            if buffer is None:
                opened()  # which may write every buffer out, so before this one
                buffer = buffers[key] = array("d")
            buffer.append(ms)
            if len(buffer) >= _BUFFER:
                del buffers[key]
                take(store, key, buffer)

        return add

    def extender(
        self, w0: float, bin_s: float
    ) -> Callable[[Sequence[float], Sequence[float]], None]:
        """``adder`` for many samples at once: a function of ``(applied_ws, mss)`` that keeps
        the same samples in the same order as calling the adder on each pair would (the same
        buffers handed to the spill at the same points). Applied times in ascending order,
        as a walk's usually are, go a time bin at a time; others one by one."""
        add = self.adder(w0, bin_s)
        buffers, take, opened = self._buffers, self.spill.take, self.spill.opened
        get = buffers.get
        store = self

        def bin_of(applied_w: float) -> int:
            return int((applied_w - w0) // bin_s)

        def extend(applied_ws: Sequence[float], mss: Sequence[float]) -> None:
            n = len(applied_ws)
            ascending = list(applied_ws)
            if ascending != sorted(ascending):
                for applied_w, ms in zip(applied_ws, mss, strict=True):
                    add(applied_w, ms)
                return
            i = 0
            while i < n:
                key = bin_of(ascending[i])
                j = bisect.bisect_right(ascending, key, i, key=bin_of)  # the bin's end
                while i < j:
                    buffer = get(key)
                    if buffer is None:
                        opened()  # which may write every buffer out, so before this one
                        buffer = buffers[key] = array("d")
                    stop = min(j, i + _BUFFER - len(buffer))
                    buffer.extend(mss[i:stop])
                    i = stop
                    if len(buffer) >= _BUFFER:
                        del buffers[key]
                        take(store, key, buffer)

        return extend

    def drain(self) -> list[tuple[int, array[float]]]:
        """The buffers being filled, taken out (``Spill.flush``)."""
        drained = list(self._buffers.items())
        self._buffers.clear()
        return drained

    def ran(self, key: int | None, offset: int, n: int, total: float = 0.0) -> None:
        """``Spill``'s report: ``n`` samples of ``key`` (None: of every key, adding up to
        ``total``) were written at ``offset``."""
        self._runs.setdefault(key, []).append((offset, n))
        if key is None:
            self._spilled_sums.append(total)

    def _done(self) -> None:
        """No more samples: the full buffers written out, those being filled sorted."""
        self.spill.flush()
        if not self._sorted:
            for buffer in self._buffers.values():
                buffer[:] = array("d", sorted(buffer))
            self._sorted = True

    def __len__(self) -> int:
        waiting = sum(len(b) for s, _, b in self.spill._full if s is self)
        spilled = sum(n for _, n in self._runs.get(None, ()))
        return spilled + waiting + sum(len(b) for b in self._buffers.values())

    def mean(self) -> float | None:
        """The samples' mean (None: no samples)."""
        self._done()
        n = len(self)
        if not n:
            return None
        sums = [*self._spilled_sums, *(math.fsum(b) for b in self._buffers.values())]
        return math.fsum(sums) / n

    def bin_keys(self) -> list[int]:
        """The keys with samples, in ascending order."""
        self._done()
        keys = {k for k in self._runs if k is not None}
        return sorted(keys | {k for k, b in self._buffers.items() if len(b)})

    def ordered(self, keys: Iterable[int] | None = None) -> Ordered:
        """The samples of ``keys`` (default: all) in ascending order."""
        self._done()
        spill = self.spill
        chunks: list[Ordered]
        if keys is None:
            chunks = [spill.run(offset, n) for offset, n in self._runs.get(None, ())]
            chunks += [b for b in self._buffers.values() if b]
        else:
            chunks = []
            for key in keys:
                chunks += [spill.read(offset, n) for offset, n in self._runs.get(key, ())]
                waiting = self._buffers.get(key)
                if waiting:
                    chunks.append(waiting)
        if len(chunks) == 1:
            return chunks[0]
        return Ranked.of_sorted(chunks)
