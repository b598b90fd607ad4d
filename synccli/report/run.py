"""Checking a run folder: the entry points the harness and ``synccli report`` call.

A run folder holds ``history.jsonl`` (the clients' and the harness's records) and
``truth.json`` (what the database committed, written by the harness at the end of the run).
``check_run`` re-checks the history (never trusting an older ``summary.json``);
``write_outputs`` writes ``summary.json``, ``junit.xml`` and ``report.html`` beside them.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from synccli.errors import ConfigError
from synccli.history import History, load_history
from synccli.report.html_report import render_html
from synccli.report.render import render_json, render_junit
from synccli.report.summary import Summary, infrastructure_error, summarize
from synccli.report.thresholds import Threshold
from synccli.report.truth import Truth, load_truth, write_truth

HISTORY_FILE = "history.jsonl"
TRUTH_FILE = "truth.json"
OUTPUT_FILES = ("summary.json", "junit.xml", "report.html")


def check_run(
    run_dir: Path,
    truth: Truth | None = None,
    *,
    overrides: Iterable[Threshold] = (),
    on_time_s: float | None = None,
    save_truth: bool = True,
) -> Summary:
    """Check the run in ``run_dir`` against ``truth`` (default: its ``truth.json``).

    A ``truth`` given for a folder without ``truth.json`` is saved there (unless
    ``save_truth`` is false), so the run can be re-checked offline later. A run whose
    infrastructure failed may have no truth; it is judged ``error`` without one.
    """
    if not run_dir.is_dir():
        raise ConfigError(f"run folder {run_dir} does not exist: pass the folder of a run")
    # Lazily: summarize checks the file in the one pass it makes.
    history = load_history(run_dir / HISTORY_FILE, lazy=True)
    if save_truth and truth is not None and not (run_dir / TRUTH_FILE).exists():
        write_truth(run_dir / TRUTH_FILE, truth)
    if truth is None:
        truth_path = run_dir / TRUTH_FILE
        if not truth_path.exists() and infrastructure_error(history) is not None:
            truth = Truth(source="none (the run's infrastructure failed)")
        else:
            truth = load_truth(truth_path)
    return summarize(history, truth, overrides=overrides, on_time_s=on_time_s)


def load_run(run_dir: Path, truth: Truth | None = None) -> tuple[History, Truth]:
    """The history of the run in ``run_dir`` and its truth (``truth``, else its
    ``truth.json``)."""
    if not run_dir.is_dir():
        raise ConfigError(f"run folder {run_dir} does not exist: pass the folder of a run")
    history = load_history(run_dir / HISTORY_FILE)
    return history, truth if truth is not None else load_truth(run_dir / TRUTH_FILE)


def write_outputs(run_dir: Path, summary: Summary) -> list[Path]:
    """Write ``summary.json``, ``junit.xml`` and ``report.html`` into ``run_dir``."""
    paths = [run_dir / name for name in OUTPUT_FILES]
    for path, text in zip(
        paths, (render_json(summary), render_junit(summary), render_html(summary)), strict=True
    ):
        path.write_text(text, encoding="utf-8")
    return paths


def latest_run(reports_dir: Path) -> Path:
    """The newest run folder (one with a ``history.jsonl``) under ``reports_dir``, by
    modification time, then name."""
    runs = (
        [p for p in reports_dir.iterdir() if (p / HISTORY_FILE).is_file()]
        if reports_dir.is_dir()
        else []
    )
    if not runs:
        raise ConfigError(
            f"no run folder with a {HISTORY_FILE} under {reports_dir}: "
            "run `synccli simulate` first or pass RUN_DIR"
        )
    return max(runs, key=lambda p: (p.stat().st_mtime, p.name))
