"""Renderers: terminal table, JSON, JUnit, Markdown and the self-contained HTML report."""

from __future__ import annotations

import io
import json
import re
import xml.etree.ElementTree as ET
from pathlib import Path

from synccli.report import check_run, render_html, write_outputs
from synccli.report.render import (
    colour_wanted,
    render_json,
    render_junit,
    render_markdown,
    render_table,
    threshold_rows,
)
from synccli.report.thresholds import parse_override
from tests.report.builders import BASE_W, Run, clean_run


def _failing_run() -> Run:
    run = Run()
    run.commit(4)
    run.subscribed("c001", 0, w=BASE_W)
    run.apply("c001", 1, 2, 3)
    run.final("c001", seq=3)
    run.fault("start", BASE_W + 0.1, name="<down>")
    run.fault("end", BASE_W + 0.2, name="<down>")
    return run


def test_table_shows_verdict_metrics_thresholds_faults_anomalies_and_reasons() -> None:
    text = render_table(_failing_run().summary())
    assert "FAIL" in text
    assert "delivery rate" in text and "75.00%" in text
    assert "lost" in text and "FAIL" in text
    assert "<down>" in text
    assert "never delivered" in text
    assert "why not pass:" in text


def test_json_is_the_versioned_summary() -> None:
    data = json.loads(render_json(clean_run().summary()))
    assert data["schema"] == "synccli.summary/1"
    keys = (
        "run_id seed verdict clients duration_s events_committed expected_pairs delivered_pairs "
        "delivery_rate on_time_rate lost duplicates out_of_order phantoms converged_clients "
        "retries ack_timeouts gaps_detected gap_recoveries resyncs reconnects rollbacks writes "
        "latency_ms faults thresholds anomalies reasons history_truncated"
    )
    for key in keys.split(" "):
        assert key in data, key
    assert set(data["latency_ms"]) == {"p50", "p90", "p99", "p999", "max", "count"}


def test_junit_has_a_case_per_threshold_and_failures_for_failed_ones() -> None:
    summary = _failing_run().summary()
    root = ET.fromstring(render_junit(summary))
    suite = root.find("testsuite")
    assert suite is not None
    cases = suite.findall("testcase")
    assert len(cases) == len(summary.thresholds) + 1
    failed = {c.get("name") for c in cases if c.find("failure") is not None}
    assert "lost == 0" in failed and "verdict" in failed
    assert suite.get("failures") == str(len(failed))


def test_junit_marks_an_inconclusive_run_as_an_error() -> None:
    run = Run()
    run.commit(1)
    root = ET.fromstring(render_junit(run.summary()))
    verdict = next(c for c in root.iter("testcase") if c.get("name") == "verdict")
    error = verdict.find("error")
    assert error is not None and error.get("type") == "inconclusive"


def test_markdown_has_tables() -> None:
    text = render_markdown(_failing_run().summary())
    assert text.startswith("## synccli run fixture")
    assert "| lost" in text and "### Thresholds" in text and "### Anomalies" in text


def test_html_is_self_contained_and_escaped() -> None:
    page = render_html(_failing_run().summary())
    assert page.startswith("<!DOCTYPE html>")
    assert not re.search(r"""(src|href)=["'](?!#)|https?://|@import""", page)
    assert "&lt;down&gt;" in page and "<down>" not in page
    assert "<svg" in page


def test_write_outputs_writes_the_three_files(tmp_path: Path) -> None:
    folder = clean_run().write(tmp_path / "run")
    summary = check_run(folder)
    paths = write_outputs(folder, summary)
    assert [p.name for p in paths] == ["summary.json", "junit.xml", "report.html"]
    assert json.loads((folder / "summary.json").read_text())["verdict"] == "pass"


def test_fault_table_names_the_trace_counts() -> None:
    run = clean_run(clients=1, events=5)
    run.fault("start", BASE_W + 0.1, name="loss", kind="packet_loss")
    run.fault("end", BASE_W + 0.3, name="loss", kind="packet_loss",
              evidence={"packets_dropped": 12})  # fmt: skip
    run.fault("start", BASE_W + 0.4, name="quiet", kind="reset_peer")
    run.fault("end", BASE_W + 0.5, name="quiet", kind="reset_peer")
    text = render_table(run.summary())
    assert "packets_dropped 12" in text
    assert "no trace" in text


def test_table_values_are_in_their_units_with_one_latency_percentile_per_row() -> None:
    summary = clean_run().summary(overrides=[parse_override("latency_ms.p99<500")])
    text = render_table(summary)
    rows = {row[0]: row for row in threshold_rows(summary)}
    assert rows["delivery_rate"][2] == "100.00%"
    assert rows["latency_ms.p99"][2] == "50.0 ms"
    assert rows["lost"][2] == "0"
    for label in ("p50", "p90", "p99", "p99.9", "max"):
        assert re.search(rf"^latency commit→apply {re.escape(label)} +50\.0 ms$", text, re.M)
    assert re.search(r"^latency samples +10$", text, re.M)


def test_every_table_column_has_a_header() -> None:
    text = render_table(_failing_run().summary())
    assert re.search(r"^threshold +expr +observed +result$", text, re.M)
    assert re.search(r"^metric +value$", text, re.M)
    assert re.search(r"^fault +clients behind +never +p50 +p99 +max$", text, re.M)


def test_colour_is_asked_for_and_never_without_a_terminal_or_with_no_color() -> None:
    summary = _failing_run().summary()
    assert "\x1b[31mFAIL\x1b[0m" in render_table(summary, colour=True)
    assert "\x1b[" not in render_table(summary)

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    assert colour_wanted(Terminal(), {}) is True
    assert colour_wanted(Terminal(), {"NO_COLOR": "1"}) is False
    assert colour_wanted(Terminal(), {"NO_COLOR": ""}) is True
    assert colour_wanted(io.StringIO(), {}) is False
