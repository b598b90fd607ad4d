"""Reading histories: strict in the middle, tolerant of a truncated last line."""

from __future__ import annotations

from pathlib import Path

import pytest

from synccli.errors import ConfigError
from synccli.report.history import load_history, parse_history

GOOD = '{"t":0,"w":1,"c":null,"k":"run_start"}\n{"t":1,"w":2,"c":"c001","k":"connect"}\n'


def test_parses_records_in_order() -> None:
    history = parse_history(GOOD)
    assert [r["k"] for r in history.records] == ["run_start", "connect"]
    assert not history.truncated
    assert history.first("connect") is history.last("connect")


def test_truncated_last_line_is_dropped_and_reported() -> None:
    history = parse_history(GOOD + '{"t":2,"w":3,"c":"c0')
    assert history.truncated
    assert len(history.records) == 2


def test_corrupt_line_in_the_middle_names_its_number() -> None:
    with pytest.raises(ConfigError, match=r"h\.jsonl line 2 .*corrupt"):
        parse_history(GOOD.replace('"k":"connect"}', '"k":"conn') + '{"k":"x"}\n', "h.jsonl")


def test_a_record_without_kind_is_corrupt() -> None:
    with pytest.raises(ConfigError, match="line 1"):
        parse_history('[1, 2]\n{"k":"x"}\n')


def test_blank_lines_are_ignored(tmp_path: Path) -> None:
    path = tmp_path / "history.jsonl"
    path.write_text("\n" + GOOD + "\n\n")
    assert len(load_history(path).records) == 2


def test_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no history at"):
        load_history(tmp_path / "history.jsonl")
