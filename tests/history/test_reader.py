"""Reading histories: strict in the middle, tolerant of a truncated last line."""

from __future__ import annotations

from pathlib import Path

import pytest

from synccli.errors import ConfigError
from synccli.history import Connect, RunStart, load_history, parse_history

GOOD = '{"t":0,"w":1,"c":null,"k":"run_start"}\n{"t":1,"w":2,"c":"c001","k":"connect"}\n'


def test_parses_records_in_order() -> None:
    history = parse_history(GOOD)
    assert [type(e.record) for e in history.entries] == [RunStart, Connect]
    assert [e.client for e in history.entries] == [None, "c001"]
    assert not history.truncated
    assert history.first(Connect) is history.last(Connect)


def test_truncated_last_line_is_dropped_and_reported() -> None:
    history = parse_history(GOOD + '{"t":2,"w":3,"c":"c0')
    assert history.truncated
    assert len(history.entries) == 2


def test_corrupt_line_in_the_middle_names_its_number() -> None:
    with pytest.raises(ConfigError, match=r"h\.jsonl line 2 .*corrupt"):
        parse_history(GOOD.replace('"k":"connect"}', '"k":"conn') + '{"k":"x"}\n', "h.jsonl")


def test_a_record_without_kind_is_corrupt() -> None:
    with pytest.raises(ConfigError, match="line 1"):
        parse_history('[1, 2]\n{"k":"x"}\n')


def test_blank_lines_are_ignored(tmp_path: Path) -> None:
    path = tmp_path / "history.jsonl"
    path.write_text("\n" + GOOD + "\n\n")
    assert len(load_history(path).entries) == 2


def test_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no history at"):
        load_history(tmp_path / "history.jsonl")


def test_a_record_missing_a_required_field_names_line_and_field() -> None:
    bad = GOOD + '{"t":2,"w":3,"c":"c001","k":"apply","date":"2026-11-26","epoch":"e1"}\n'
    with pytest.raises(ConfigError, match=r"line 3: history record 'apply' has no 'seq'"):
        parse_history(bad + GOOD)


def test_a_field_of_the_wrong_type_is_refused() -> None:
    bad = '{"t":2,"w":3,"c":"c001","k":"dup","date":"2026-11-26","epoch":"e1","seq":"7"}\n'
    with pytest.raises(ConfigError, match=r"'dup' has a 'seq' of the wrong type"):
        parse_history(bad + GOOD)


def test_an_unknown_kind_is_kept_as_it_was() -> None:
    history = parse_history('{"t":2,"w":3,"c":null,"k":"future_kind","x":[1]}\n')
    (entry,) = history.entries
    assert entry.record.kind == "future_kind"
    assert entry.to_json() == {"t": 2.0, "w": 3.0, "c": None, "k": "future_kind", "x": [1]}
