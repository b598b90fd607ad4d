"""Reading histories: strict in the middle, tolerant of a truncated last line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from synccli.errors import ConfigError
from synccli.history import Apply, Connect, RunStart, load_history, parse_history, reader
from synccli.history.reader import HistoryFile

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


APPLY = (
    '{"t":1,"w":2,"c":"c001","k":"apply","date":"2026-11-26","epoch":"e1","seq":1,'
    '"committedAt":"2026-11-26T10:00:00.000Z","appointmentId":"a1","version":2,'
    '"state":"Seated","ref":"7.0.0"}\n'
)


def test_a_reference_resolves_to_the_apply_it_names() -> None:
    history = parse_history(GOOD + APPLY + '{"t":3,"w":4,"c":"c002","k":"apply","ref":"7.0.0"}\n')
    first, second = history.entries[2:]
    assert second.record is first.record and second.client == "c002" and second.w == 4.0


@pytest.mark.parametrize("ref", ['"7.0.1"', '"8.0.0"', '"7.0.x"', "7", '"nodot"'])
def test_a_reference_to_no_earlier_apply_is_corrupt(ref: str) -> None:
    bad = APPLY + f'{{"t":3,"w":4,"c":"c002","k":"apply","ref":{ref}}}\n'
    with pytest.raises(ConfigError, match=r"line 2: .*'ref'|line 2: .*defined nowhere"):
        parse_history(bad + GOOD)


def test_a_reference_before_its_definition_is_corrupt() -> None:
    bad = '{"t":0,"w":1,"c":"c002","k":"apply","ref":"7.0.0"}\n' + APPLY
    with pytest.raises(ConfigError, match=r"line 1: .*defined nowhere before"):
        parse_history(bad)


def test_a_loaded_file_is_read_again_on_each_pass_with_first_and_last_kept(
    tmp_path: Path,
) -> None:
    path = tmp_path / "history.jsonl"
    ref = '{"t":3,"w":4,"c":"c002","k":"apply","ref":"7.0.0"}\n'
    path.write_text(GOOD + APPLY + ref + GOOD + '{"t":9,"w":9,"c":"c0')
    history = load_history(path)
    assert isinstance(history.entries, HistoryFile) and history.truncated
    assert len(history.entries) == 6 == len(list(history.entries)) == len(list(history.entries))
    assert history.entries[-1].t == 1.0 and history.entries[2].client == "c001"
    assert history.first(Connect) is not history.last(Connect)
    assert history.last(Connect) == history.entries[5] and history.first(RunStart) is not None
    assert [e.t for e in history.entries.of_kinds(Connect)] == [1.0, 1.0]
    assert [e.client for e in history.entries.of_kinds(Apply)] == ["c001", "c002"]
    assert list(reversed(history.entries)) == list(history.entries)[::-1]


@pytest.mark.parametrize("block", [7, 64, 1 << 23])
def test_lines_of_kinds_are_found_across_blocks(
    block: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``of_kinds`` searches the file a block at a time: lines cut by a block, a kind named
    elsewhere in a line, spaces around the "k", a last line without its newline and a bad
    line (named by its number) are all read as a pass over every line reads them."""
    monkeypatch.setattr(reader, "_SCAN_BYTES", block)
    path = tmp_path / "history.jsonl"
    lines = [
        '{"t":0,"w":1,"c":null,"k":"run_start","note":"connect"}',
        '{"t": 1, "w": 2, "c": "c001", "k": "connect", "attempt": 1}',
        APPLY.strip(),
        '{"t":2,"w":3,"c":"c002","k":"connect","attempt":2}',
    ]
    path.write_text("\n".join(lines))
    history = load_history(path)
    assert isinstance(history.entries, HistoryFile)
    assert [e.t for e in history.entries.of_kinds(Connect)] == [1.0, 2.0]
    assert [e.w for e in history.entries.of_kinds(RunStart, Connect)] == [1.0, 2.0, 3.0]
    path.write_text("\n".join([*lines[:3], lines[3].replace('"attempt":2', '"attempt":"x"')]))
    with pytest.raises(ConfigError, match=r"history\.jsonl line 4: "):
        list(HistoryFile(path, lazy=True).of_kinds(Connect))
    with pytest.raises(ConfigError, match="no history at"):
        list(HistoryFile(tmp_path / "missing.jsonl", lazy=True).of_kinds(Connect))


def test_a_corrupt_line_in_a_loaded_file_is_reported_when_it_is_opened(tmp_path: Path) -> None:
    path = tmp_path / "history.jsonl"
    path.write_text(GOOD + "not json\n" + GOOD)
    with pytest.raises(ConfigError, match=r"history\.jsonl line 3 .*corrupt"):
        load_history(path)


@pytest.mark.parametrize(
    "line",
    [
        '{"t":3,"w":4,"c":"c002","k":"apply","ref":"7.0.0"}',
        '{"t":3.5e-3,"w":-4,"c":null,"k":"apply","ref":"7.0.0"}',
        '{"t": 3, "w": 4, "c": "c002", "k": "apply", "ref": "7.0.0"}',
        '{"t":3,"w":4,"c":"c\\u0030\\"2","k":"apply","ref":"7.0.0"}',
        '{"w":4,"t":3,"c":"c002","k":"apply","ref":"7.0.0"}',
        '{"t":3,"w":4,"c":"c,2","k":"apply","ref":"7.0.0"}',
    ],
)
def test_reference_lines_mean_the_same_however_they_are_spelled(line: str, tmp_path: Path) -> None:
    """The writer's own spelling is read without the JSON parser; any other takes the
    general path: both give what the JSON says."""
    data = json.loads(line)
    want = (float(data["t"]), float(data["w"]), data["c"])
    history = parse_history(APPLY + line + "\n")
    path = tmp_path / "history.jsonl"
    path.write_text(APPLY + line + "\n")
    for entries in (history.entries, list(load_history(path).entries)):
        entry = entries[1]
        assert (entry.t, entry.w, entry.client) == want
        assert entry.record is entries[0].record


@pytest.mark.parametrize(
    "line",
    [
        '{"t":3,"w":4,"c":"c002","k":"apply","ref":"7.0.0","extra":1}',
        '{"t":3,"w":4,"c":"c002","k":"apply","ref":"7.0.0","state":"Present"}',
        '{"t":3,"w":4,"c":"c002","k":"apply","ref":"7.0.0","replay":true}',
        '{"w":4,"c":"c002","k":"apply","ref":"7.0.0"}',
        '{"t":3,"w":4,"k":"apply","ref":"7.0.0"}',
        '{"t":3,"w":4,"c":"c002","k":"apply","ref":"7.0.0","date":null}',
        '{"t":3,"w":4,"c":"c002","k":"apply","ref":"7.0.0","x":{"y":1}}',
        '{"t":3,"w":4,"c":"c002","k":"apply","ref":"7.0.0","x":"a,b"}',
    ],
)
def test_a_reference_line_with_a_field_more_or_less_is_corrupt_on_every_path(
    line: str, tmp_path: Path
) -> None:
    """A reference is exactly the envelope and ``ref``: anything else with a ``ref`` and no
    ``date`` is an apply missing its fields, whichever decoder reads the file."""
    path = tmp_path / "history.jsonl"
    path.write_text(APPLY + line + "\n" + GOOD)
    with pytest.raises(ConfigError, match=r"line 2: history record 'apply' has (no|a) 'date'") as a:
        parse_history(APPLY + line + "\n" + GOOD)
    with pytest.raises(ConfigError) as b:
        load_history(path)  # in batches, msgspec's where it is installed
    assert str(b.value) == f"{path} {str(a.value).removeprefix('history.jsonl ')}"


@pytest.mark.parametrize(
    "line",
    [
        '{"w":2,"c":"c001","k":"connect","attempt":1}',
        '{"t":1,"c":"c001","k":"connect","attempt":1}',
        '{"t":1,"w":2,"k":"connect","attempt":1}',
        APPLY.strip().replace('"c":"c001",', ""),
    ],
)
def test_a_line_without_part_of_its_envelope_reads_the_same_on_every_path(
    line: str, tmp_path: Path
) -> None:
    """The batched decoder wants the whole envelope (``t``, ``w``, ``c``); a batch with a line
    without it is read line by line, which gives the missing ``t`` or ``w`` 0.0 and the missing
    client None, as it always did."""
    path = tmp_path / "history.jsonl"
    path.write_text(GOOD + line + "\n" + GOOD)
    want = parse_history(GOOD + line + "\n" + GOOD).entries
    assert list(load_history(path).entries) == list(want)
    data = json.loads(line)
    entry = want[2]
    assert (entry.t, entry.w, entry.client) == (
        data.get("t", 0.0),
        data.get("w", 0.0),
        data.get("c"),
    )
