"""The checker (history vs database), metrics, thresholds and the verdict, and renderers.

The harness calls ``check_run(run_dir, truth)`` and ``write_outputs(run_dir, summary)``
(after ``write_truth(run_dir / "truth.json", truth)``); ``synccli report`` checks the same
way offline and writes the outputs only with ``--write``. Summary fields are documented in
docs/report.md.
"""

from synccli.history import History, load_history, parse_history
from synccli.report.checker import Anomaly, CheckResult, check_records
from synccli.report.html_report import render_html
from synccli.report.render import (
    RENDERERS,
    render_json,
    render_junit,
    render_markdown,
    render_table,
)
from synccli.report.run import check_run, latest_run, write_outputs
from synccli.report.summary import (
    SUMMARY_SCHEMA,
    VERDICT_EXIT,
    Summary,
    exit_code_for,
    summarize,
)
from synccli.report.thresholds import (
    DEFAULT_THRESHOLDS,
    METRICS,
    Threshold,
    parse_override,
    parse_threshold,
    parse_thresholds,
)
from synccli.report.truth import (
    ChannelTruth,
    CommittedEvent,
    Truth,
    channel_from_protocol,
    load_truth,
    truth_from_data,
    truth_from_protocol,
    truth_from_store,
    write_truth,
)

__all__ = [
    "DEFAULT_THRESHOLDS",
    "METRICS",
    "RENDERERS",
    "SUMMARY_SCHEMA",
    "VERDICT_EXIT",
    "Anomaly",
    "ChannelTruth",
    "CheckResult",
    "CommittedEvent",
    "History",
    "Summary",
    "Threshold",
    "Truth",
    "channel_from_protocol",
    "check_records",
    "check_run",
    "exit_code_for",
    "latest_run",
    "load_history",
    "load_truth",
    "parse_history",
    "parse_override",
    "parse_threshold",
    "parse_thresholds",
    "render_html",
    "render_json",
    "render_junit",
    "render_markdown",
    "render_table",
    "summarize",
    "truth_from_data",
    "truth_from_protocol",
    "truth_from_store",
    "write_outputs",
    "write_truth",
]
