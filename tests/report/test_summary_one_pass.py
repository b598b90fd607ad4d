"""The one-pass summary against the summary as it was made before (``summary_reference``:
each part reading the records on its own, the timeline holding every client's records, the
in-memory checker): the same ``summary.json`` and the same timeline, on random fixture
histories (in a list, and in a compact file read lazily) and on the recorded runs; with
msgspec and with the standard library's decoder."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from synccli.errors import ConfigError
from synccli.history import fast_json, load_history, parse_history
from synccli.report import check_run, checker, load_truth, samples
from synccli.report.summary import Summary, summarize
from synccli.report.timeline import Timeline
from tests.report import summary_reference
from tests.report.test_checker_streaming import FIXTURES, _random_run, _write_compact


@pytest.fixture(params=["msgspec", "json"])
def decoder(request: pytest.FixtureRequest) -> Iterator[str]:
    if request.param == "msgspec":
        pytest.importorskip("msgspec")
    fast_json.use_stdlib(request.param == "json")
    yield request.param
    fast_json.use_stdlib(False)


def _excerpts(timeline: Timeline) -> list[tuple[Any, ...]]:
    # The reference checker has an Anomaly class of its own: compare what it holds.
    return [(x.anomaly.to_dict(), x.anomaly.w, x.t, x.records, x.steps) for x in timeline.excerpts]


def _same(new: Summary, old: Summary) -> None:
    assert new.to_dict() == old.to_dict()
    assert new.timeline is not None and old.timeline is not None
    assert replace(new.timeline, excerpts=[]) == replace(old.timeline, excerpts=[])
    assert _excerpts(new.timeline) == _excerpts(old.timeline)


def _matches_in_a_list_and_in_a_file(
    seed: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run = _random_run(seed)
    history = run.history()
    old = summary_reference.summarize(history, run.truth())
    _same(summarize(history, run.truth()), old)
    compact = tmp_path / "compact.jsonl"
    _write_compact(history.entries, compact, monkeypatch)
    # The writer rounds t to the microsecond, which only run durations show.
    expected = summary_reference.summarize(load_history(compact), run.truth())
    _same(summarize(load_history(compact, lazy=True), run.truth()), expected)


@pytest.mark.parametrize("seed", range(60))
def test_one_pass_summary_matches_the_one_it_replaced(
    seed: int, decoder: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _matches_in_a_list_and_in_a_file(seed, tmp_path, monkeypatch)


@pytest.fixture
def tiny_steps(monkeypatch: pytest.MonkeyPatch) -> None:
    """The checker counts a walk's pairs as soon as one settles, with room for one more
    apply time, and every few latency samples go through the temporary file: each path
    that bounds a long run's memory is taken on runs of a few hundred records."""
    monkeypatch.setattr(checker, "_SETTLE", 1)
    monkeypatch.setattr(checker, "_ROOM", 1)
    monkeypatch.setattr(samples, "_BUFFER", 2)
    monkeypatch.setattr(samples, "DEFAULT_BUDGET", 3)


@pytest.mark.parametrize("seed", range(60))
def test_counting_while_reading_matches_in_tiny_steps(
    seed: int, tiny_steps: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _matches_in_a_list_and_in_a_file(seed, tmp_path, monkeypatch)


@pytest.mark.parametrize("name", sorted(p.name for p in FIXTURES.iterdir()))
def test_recorded_runs_match_in_tiny_steps(name: str, tiny_steps: None) -> None:
    test_recorded_runs_summary_and_timeline_match(name, "msgspec")


def test_the_random_runs_have_excerpts_of_both_kinds() -> None:
    """Anomalies with a time (records around it) and without (the client's last ones)."""
    timed = untimed = 0
    for seed in range(60):
        run = _random_run(seed)
        timeline = summary_reference.summarize(run.history(), run.truth()).timeline
        assert timeline is not None
        timed += sum(1 for x in timeline.excerpts if x.t is not None and x.records)
        untimed += sum(1 for x in timeline.excerpts if x.t is None and x.records)
    assert timed and untimed


def test_the_random_runs_have_excerpts_with_steps() -> None:
    """The excerpts' client steps (from the truth) are compared too: some runs have them."""
    with_steps = 0
    for seed in range(60):
        run = _random_run(seed)
        timeline = summarize(run.history(), run.truth()).timeline
        assert timeline is not None
        with_steps += sum(1 for x in timeline.excerpts if x.steps)
    assert with_steps


@pytest.mark.parametrize("name", sorted(p.name for p in FIXTURES.iterdir()))
def test_recorded_runs_summary_and_timeline_match(name: str, decoder: str) -> None:
    run = FIXTURES / name
    text = (run / "history.jsonl").read_text(encoding="utf-8")
    old = summary_reference.summarize(parse_history(text), load_truth(run / "truth.json"))
    _same(check_run(run), old)


def test_a_lazily_read_corrupt_history_fails_the_check(tmp_path: Path, decoder: str) -> None:
    """The one pass checks the file as the opening pass did: a bad line in the middle of a
    long history is an error naming it, not a partial summary."""
    run = FIXTURES / sorted(p.name for p in FIXTURES.iterdir())[0]
    lines = (run / "history.jsonl").read_text(encoding="utf-8").splitlines(keepends=True)
    broken = tmp_path / "run"
    broken.mkdir()
    (broken / "truth.json").write_text((run / "truth.json").read_text())
    middle = len(lines) // 2
    (broken / "history.jsonl").write_text(
        "".join([*lines[:middle], "{not json\n", *lines[middle:]])
    )
    with pytest.raises(ConfigError, match=rf"line {middle + 1} is not a history record"):
        check_run(broken)
    assert not (broken / "summary.json").exists()


def test_a_cut_off_last_line_is_dropped_and_reported(tmp_path: Path, decoder: str) -> None:
    run = FIXTURES / sorted(p.name for p in FIXTURES.iterdir())[0]
    text = (run / "history.jsonl").read_text(encoding="utf-8")
    path = tmp_path / "history.jsonl"
    path.write_text(text + '{"t":9,"w":9,"c":"c0')
    lazy = load_history(path, lazy=True)
    assert len(list(lazy.entries)) == len(text.splitlines())
    assert lazy.truncated and load_history(path).truncated


def test_a_field_of_the_wrong_type_is_named_on_the_fast_path(tmp_path: Path, decoder: str) -> None:
    good = '{"t":1,"w":2,"c":"c001","k":"connect","attempt":1}\n'
    bad = '{"t":1,"w":2,"c":"c001","k":"apply","date":"d","epoch":"E","seq":"3"}\n'
    path = tmp_path / "history.jsonl"
    path.write_text(good * 5000 + bad + good)
    with pytest.raises(ConfigError, match=r"line 5001: .*'seq' of the wrong type"):
        list(load_history(path, lazy=True).entries)


def test_both_decoders_read_the_same_rows(tmp_path: Path) -> None:
    pytest.importorskip("msgspec")
    run = FIXTURES / sorted(p.name for p in FIXTURES.iterdir())[0]
    path = run / "history.jsonl"
    try:
        fast_json.use_stdlib(False)
        fast = list(load_history(path).entries.rows())  # type: ignore[attr-defined]
        fast_json.use_stdlib(True)
        plain = list(load_history(path).entries.rows())  # type: ignore[attr-defined]
    finally:
        fast_json.use_stdlib(False)
    assert fast == plain and len(fast) > 500
    assert json.dumps([r[3].to_json() for r in fast[:50]])
