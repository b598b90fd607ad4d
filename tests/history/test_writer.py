"""``HistoryWriter``: batched appends, the envelope, merging worker parts."""

from __future__ import annotations

import json
import time
from pathlib import Path

from synccli.history import Apply, Connect, Dup, HistoryWriter, RunEnd, RunStart, load_history
from synccli.history.writer import REF_WINDOW


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


def _apply(seq: int) -> Apply:
    return Apply(
        "2026-11-26", "e1", seq, f"m{seq}", "2026-11-26T10:00:00.000Z", False, "a1", seq, "Seated"
    )


def test_a_shared_apply_is_written_in_full_once_then_as_short_references(
    tmp_path: Path,
) -> None:
    path = tmp_path / "h.jsonl"
    history = HistoryWriter(path, time.monotonic() - 600)
    shared = _apply(12345)
    for n in range(100):
        history.write(f"c{n:03d}", shared)
    history.close()
    first, *rest = lines(path)
    assert json.loads(first)["appointmentId"] == "a1" and "ref" in json.loads(first)
    assert {tuple(json.loads(line)) for line in rest} == {("t", "w", "c", "k", "ref")}
    assert max(len(line) + 1 for line in rest) <= 100
    read = load_history(path).entries
    assert [(e.client, e.record) for e in read] == [(f"c{n:03d}", shared) for n in range(100)]


def test_references_stay_within_the_window_and_old_applies_are_defined_again(
    tmp_path: Path,
) -> None:
    path = tmp_path / "h.jsonl"
    history = HistoryWriter(path, time.monotonic())
    applies = [_apply(seq) for seq in range(REF_WINDOW + 10)]
    for record in [*applies, *applies[:20], applies[-1]]:
        history.write("c001", record)
    history.close()
    written = [json.loads(line) for line in lines(path)]
    # The first 20 had left the window, so they are defined again; the last one had not.
    assert [n for n, d in enumerate(written) if len(d) == 5] == [len(written) - 1]
    assert [e.record for e in load_history(path).entries] == [*applies, *applies[:20], applies[-1]]


def test_worker_parts_with_references_merge_and_resolve(tmp_path: Path) -> None:
    path = tmp_path / "h.jsonl"
    history = HistoryWriter(path, time.monotonic())
    history.write(None, RunStart())
    parts = []
    for n in range(2):
        part = HistoryWriter(tmp_path / f"h.jsonl.part{n}", history.t0)
        record = _apply(n)
        for client in ("c1", "c2", "c3"):
            part.write(f"{client}-{n}", record)
        part.close()
        parts.append(part.path)
    history.merge_in(parts)
    history.close()
    entries = load_history(path).entries
    assert sorted((e.client, e.record.seq) for e in entries if isinstance(e.record, Apply)) == [
        (f"{c}-{n}", n) for c in ("c1", "c2", "c3") for n in range(2)
    ]
