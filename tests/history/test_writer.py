"""``HistoryWriter``: batched appends, the envelope, merging worker parts."""

from __future__ import annotations

import json
import time
from pathlib import Path

from synccli.history import Connect, Dup, HistoryWriter, RunEnd, RunStart, load_history


def lines(path: Path) -> list[str]:
    return path.read_text().splitlines()


def test_records_are_buffered_and_written_in_batches(tmp_path: Path) -> None:
    path = tmp_path / "h.jsonl"
    history = HistoryWriter(path, time.monotonic(), flush_every=100, flush_interval=3600)
    for n in range(250):
        history.write("c001", Dup("2026-11-26", "e1", n))
    assert len(lines(path)) == 200  # two full batches, 50 still buffered
    history.close()
    history.close()  # idempotent
    read = load_history(path)
    assert not read.truncated
    assert [e.record.seq for e in read.entries if isinstance(e.record, Dup)] == list(range(250))


def test_every_line_has_t_w_c_k_and_t_is_relative_to_t0(tmp_path: Path) -> None:
    path = tmp_path / "h.jsonl"
    t0 = time.monotonic() - 10
    history = HistoryWriter(path, t0)
    history.write(None, RunStart(seed=3))
    history.write("c002", Connect(1))
    history.close()
    first, second = (json.loads(line) for line in lines(path))
    assert first["c"] is None and first["k"] == "run_start" and first["seed"] == 3
    assert 10 <= first["t"] < 20 and abs(first["w"] - time.time()) < 60
    assert second == {"t": second["t"], "w": second["w"], "c": "c002", "k": "connect", "attempt": 1}
    assert second["t"] >= first["t"]


def test_the_same_record_object_is_serialised_once_and_written_each_time(tmp_path: Path) -> None:
    path = tmp_path / "h.jsonl"
    history = HistoryWriter(path, time.monotonic())
    shared = Dup("2026-11-26", "e1", 4)
    for client in ("c001", "c002"):
        history.write(client, shared)
    history.close()
    read = load_history(path).entries
    assert [(e.client, e.record) for e in read] == [("c001", shared), ("c002", shared)]


def test_an_elapsed_interval_flushes_without_a_full_batch(tmp_path: Path) -> None:
    path = tmp_path / "h.jsonl"
    history = HistoryWriter(path, time.monotonic(), flush_every=1000, flush_interval=0.0)
    history.write("c", Dup("2026-11-26", "e1", 1))
    assert len(lines(path)) == 1
    history.close()


def test_merge_in_orders_worker_parts_by_t_and_keeps_appending(tmp_path: Path) -> None:
    path = tmp_path / "h.jsonl"
    history = HistoryWriter(path, time.monotonic())
    history.write(None, RunStart())
    parts = []
    for n, ts in enumerate([[0.5, 2.5], [1.5, 3.5, 4.5]]):
        part = tmp_path / f"h.jsonl.part{n}"
        dup = {"k": "dup", "date": "2026-11-26", "epoch": "e1", "seq": 1}
        part.write_text(
            "".join(json.dumps({"t": t, "w": t, "c": f"w{n}", **dup}) + "\n" for t in ts)
        )
        parts.append(part)
    history.merge_in(parts)
    history.write(None, RunEnd())
    history.close()
    entries = load_history(path).entries
    assert isinstance(entries[0].record, RunStart)
    assert [e.t for e in entries[1:-1]] == [0.5, 1.5, 2.5, 3.5, 4.5]
    assert len(entries) == 7 and isinstance(entries[-1].record, RunEnd)
    assert not any(p.exists() for p in parts)
