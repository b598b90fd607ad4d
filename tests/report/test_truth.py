"""Building the truth from a real SQLite store, from protocol data, and from truth.json."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from synccli.domain.channels import WriteRequest
from synccli.domain.values import Event, Row
from synccli.errors import ConfigError
from synccli.report import truth as truth_module
from synccli.report.truth import (
    channel_from_protocol,
    load_truth,
    truth_from_data,
    truth_from_store,
    write_truth,
)
from synccli.store import Store, open_store

DATE = "2026-11-26"
FLOW = ("Present", "Seated", "Dismissed", "Seated")


def _store_with_events(path: Path, count: int) -> Store:
    store = open_store(f"sqlite:///{path}")
    store.init_schema()
    store.seed(DATE, 2)
    now = datetime(2026, 11, 26, 9, 0, tzinfo=UTC)
    for i in range(count):
        aid = f"{DATE}-{i % 2 + 1:04d}"
        state = FLOW[(i // 2) % len(FLOW)]
        store.write(WriteRequest(f"r{i}", aid, state), now + timedelta(seconds=i))
    return store


def test_truth_from_store_reads_every_event_in_pages(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(truth_module, "_PAGE", 3)
    store = _store_with_events(tmp_path / "db.sqlite", 8)
    try:
        truth = truth_from_store(store)
        channel = truth.channels[DATE]
        assert (channel.head, channel.min_seq, sorted(channel.events)) == (8, 1, list(range(1, 9)))
        assert channel.rows == {f"{DATE}-0001": (5, "Seated"), f"{DATE}-0002": (5, "Seated")}
        assert channel.events[8].event_id == f"{DATE}:{channel.epoch}:8"
        assert truth.events_committed == 8
        # Pruned events are gone from the log but still counted by the head.
        store.prune(datetime(2026, 11, 26, 9, 0, 5, tzinfo=UTC))
        pruned = truth_from_store(store, [DATE]).channels[DATE]
        assert (pruned.head, pruned.min_seq) == (8, 6)
    finally:
        store.close()


def test_write_and_load_round_trip(tmp_path: Path) -> None:
    store = _store_with_events(tmp_path / "db.sqlite", 4)
    try:
        truth = truth_from_store(store)
    finally:
        store.close()
    write_truth(tmp_path / "truth.json", truth)
    assert load_truth(tmp_path / "truth.json") == truth


def test_truth_from_protocol_data_ignores_other_epochs_and_events_past_the_head() -> None:
    row = Row(f"{DATE}-0001", DATE, "P", "Present", None, 2, "2026-11-26T09:00:00.000Z")
    events = [
        Event(DATE, "E1", 1, row, "r1", "2026-11-26T09:00:00.000Z"),
        Event(DATE, "OLD", 2, row, "r2", "2026-11-26T09:00:00.000Z"),
        Event(DATE, "E1", 3, row, "r3", "2026-11-26T09:00:00.000Z"),
    ]
    channel = channel_from_protocol(DATE, "E1", 2, events, [row])
    assert sorted(channel.events) == [1]
    assert channel.rows == {f"{DATE}-0001": (2, "Present")}
    truth = truth_from_data({DATE: {"epoch": "E1", "head": 2, "events": events, "rows": [row]}})
    assert truth.channels[DATE] == channel and truth.source == "server"


def test_missing_truth_file_says_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="pass --db URL"):
        load_truth(tmp_path / "truth.json")


@pytest.mark.parametrize(
    "content",
    ["not json", "[]", json.dumps({"schema": "other/9", "channels": {}}),
     json.dumps({"schema": "synccli.truth/1", "channels": {"d": {"epoch": "e"}}})],
)  # fmt: skip
def test_malformed_truth_file_is_a_config_error(tmp_path: Path, content: str) -> None:
    path = tmp_path / "truth.json"
    path.write_text(content)
    with pytest.raises(ConfigError, match=r"truth\.json"):
        load_truth(path)


def test_committed_events_are_the_mapping_they_replace() -> None:
    """The columns give back every event as it was given, in or out of seq order (the last
    of a repeated seq wins, as in a dict), with event ids of any form."""
    from synccli.report.truth import CommittedEvent, CommittedEvents, iso_to_w

    def event(seq: int, event_id: str | None = None) -> CommittedEvent:
        at = f"2026-11-26T09:00:{seq:02d}.000Z"
        return CommittedEvent(seq, event_id or f"{DATE}:E1:{seq}", f"a{seq % 2}", seq, "Seated", at)

    given = [event(1), event(2, "other-id"), event(4), event(7), event(3), event(4, "again")]
    # Commit times kept as milliseconds, and texts of other forms as they are.
    odd = [
        "2026-11-26T09:00:09.5Z",
        "2026-11-26T09:00:09+00:00",
        "not a time",
        "1969-07-20T20:17:40.001Z",
    ]
    given += [replace(event(10 + i), committed_at=text) for i, text in enumerate(odd)]
    table = CommittedEvents(DATE, "E1", given)
    plain = {e.seq: e for e in given}
    assert table == plain and dict(table) == plain
    assert list(table) == [1, 2, 3, 4, 7, 10, 11, 12, 13] and len(table) == 9
    assert table[4].event_id == "again" and table.get(5) is None and 6 not in table
    seconds = [(s, iso_to_w(plain[s].committed_at)) for s in sorted(plain)]
    assert list(table.commit_seconds()) == seconds and seconds[-2][1] is None
    with pytest.raises(KeyError):
        table[0]
