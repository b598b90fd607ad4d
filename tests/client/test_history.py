"""``synccli.harness.history``: batched appends, tolerant reading, merging worker parts.

(Here rather than in tests/harness because the client engineer owns the writer.)"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from synccli.errors import SynccliError
from synccli.harness.history import HistoryWriter, read_history


def lines(path: Path) -> list[str]:
    return path.read_text().splitlines()


def test_records_are_buffered_and_written_in_batches(tmp_path: Path) -> None:
    path = tmp_path / "h.jsonl"
    history = HistoryWriter(path, time.monotonic(), flush_every=100, flush_interval=3600)
    for n in range(250):
        history.record("c001", "apply", seq=n)
    assert len(lines(path)) == 200  # two full batches, 50 still buffered
    history.close()
    history.close()  # idempotent
    records, truncated = read_history(path)
    assert not truncated
    assert [r["seq"] for r in records] == list(range(250))


def test_every_record_has_t_w_c_k_and_t_is_relative_to_t0(tmp_path: Path) -> None:
    path = tmp_path / "h.jsonl"
    t0 = time.monotonic() - 10
    history = HistoryWriter(path, t0)
    history.record(None, "run_start", seed=3)
    history.record_dict("c002", {"k": "connect", "attempt": 1})
    history.close()
    (first, second), _ = read_history(path)
    assert first["c"] is None and first["k"] == "run_start" and first["seed"] == 3
    assert 10 <= first["t"] < 20 and abs(first["w"] - time.time()) < 60
    assert second["c"] == "c002" and second["attempt"] == 1 and second["t"] >= first["t"]


def test_an_elapsed_interval_flushes_without_a_full_batch(tmp_path: Path) -> None:
    path = tmp_path / "h.jsonl"
    history = HistoryWriter(path, time.monotonic(), flush_every=1000, flush_interval=0.0)
    history.record("c", "dup", seq=1)
    assert len(lines(path)) == 1
    history.close()


def test_truncated_last_line_is_reported_and_dropped(tmp_path: Path) -> None:
    path = tmp_path / "h.jsonl"
    path.write_text('{"t":0,"k":"run_start"}\n{"t":1,"k":"apply","se')
    records, truncated = read_history(path)
    assert truncated
    assert records == [{"t": 0, "k": "run_start"}]


def test_broken_line_in_the_middle_is_corruption(tmp_path: Path) -> None:
    path = tmp_path / "h.jsonl"
    path.write_text('{"t":0,"k":"a"}\nnot json\n{"t":1,"k":"b"}\n')
    with pytest.raises(SynccliError, match=r"h\.jsonl:2"):
        read_history(path)


def test_merge_in_orders_worker_parts_by_t_and_keeps_appending(tmp_path: Path) -> None:
    path = tmp_path / "h.jsonl"
    history = HistoryWriter(path, time.monotonic())
    history.record(None, "run_start")
    parts = []
    for n, ts in enumerate([[0.5, 2.5], [1.5, 3.5, 4.5]]):
        part = tmp_path / f"h.jsonl.part{n}"
        part.write_text(
            "".join(json.dumps({"t": t, "k": "apply", "c": f"w{n}"}) + "\n" for t in ts)
        )
        parts.append(part)
    history.merge_in(parts)
    history.record(None, "run_end")
    history.close()
    records, _ = read_history(path)
    assert records[0]["k"] == "run_start"
    assert [r["t"] for r in records[1:-1]] == sorted(r["t"] for r in records[1:-1])
    assert len(records) == 7 and records[-1]["k"] == "run_end"
    assert not any(p.exists() for p in parts)
