"""`synccli report` through click's CliRunner: formats, the gate's exit codes and every
bad-input path (one sentence, the documented exit code, never a traceback)."""

from __future__ import annotations

import json
import os
import pty
import select
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from synccli.cli.main import cli
from synccli.domain.channels import WriteRequest
from synccli.store import open_store
from tests.conftest import seconds
from tests.report.builders import BASE_W, Run, clean_run


def _invoke(*args: str) -> Result:
    return CliRunner().invoke(cli, ["report", *args])


def _no_traceback(result: Result) -> None:
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)


def _lossy_run() -> Run:
    run = Run()
    run.commit(3)
    run.subscribed("c001", 0, w=BASE_W)
    run.apply("c001", 1, 2)
    run.final("c001", seq=2)
    return run


def test_help_documents_arguments_options_and_exit_codes() -> None:
    result = _invoke("--help")
    assert result.exit_code == 0
    for text in ("RUN_DIR", "--format", "--gate", "--db", "--threshold", "3 inconclusive"):
        assert text in result.output


@pytest.mark.parametrize("fmt", ["table", "json", "junit", "markdown"])
def test_formats_print_and_write_rewrites_the_outputs(tmp_path: Path, fmt: str) -> None:
    folder = clean_run().write(tmp_path / "run")
    (folder / "summary.json").write_text('{"stale": true}')
    result = _invoke(str(folder), "--format", fmt, "--write")
    assert result.exit_code == 0, result.output
    marker = {
        "table": "PASS",
        "json": '"verdict": "pass"',
        "junit": "<testsuites>",
        "markdown": "## synccli",
    }
    assert marker[fmt] in result.output
    assert json.loads((folder / "summary.json").read_text())["verdict"] == "pass"
    assert (folder / "junit.xml").exists() and (folder / "report.html").exists()


def _files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def test_a_report_leaves_the_run_folder_byte_identical(tmp_path: Path) -> None:
    folder = _lossy_run().write(tmp_path / "run")
    assert _invoke(str(folder), "--write").exit_code == 0
    before = _files(folder)
    relaxed = _invoke(str(folder), "--threshold", "lost<=1", "--format", "json")
    assert relaxed.exit_code == 0
    assert json.loads(relaxed.output)["thresholds"][0]["ok"] is True
    assert _invoke(str(folder)).exit_code == 0
    assert _files(folder) == before
    assert json.loads(before["summary.json"])["thresholds"][0]["ok"] is False


def test_a_report_from_the_database_saves_its_truth_only_with_write(tmp_path: Path) -> None:
    db = tmp_path / "db.sqlite"
    store = open_store(f"sqlite:///{db}")
    store.init_schema()
    store.seed("2026-11-26", 1)
    store.close()
    folder = clean_run().write(tmp_path / "run", truth=False)
    before = _files(folder)
    assert _invoke(str(folder), "--db", f"sqlite:///{db}").exit_code == 0
    assert _files(folder) == before
    assert _invoke(str(folder), "--db", f"sqlite:///{db}", "--write").exit_code == 0
    assert {"truth.json", "summary.json", "junit.xml", "report.html"} <= set(_files(folder))


def test_gate_exit_codes(tmp_path: Path) -> None:
    passing = clean_run().write(tmp_path / "pass")
    failing = _lossy_run().write(tmp_path / "fail")
    empty = Run()
    empty.commit(1)
    inconclusive = empty.write(tmp_path / "inconclusive")
    broken = clean_run()
    broken.rec(None, "infrastructure_error", BASE_W + 3, error="the server never came up")
    infra = broken.write(tmp_path / "infra", truth=False)
    assert _invoke(str(passing), "--gate").exit_code == 0
    assert _invoke(str(failing), "--gate").exit_code == 1
    assert _invoke(str(inconclusive), "--gate").exit_code == 3
    result = _invoke(str(infra), "--gate")
    assert result.exit_code == 4 and "the server never came up" in result.output


def test_without_gate_a_failed_run_exits_zero_after_printing(tmp_path: Path) -> None:
    result = _invoke(str(_lossy_run().write(tmp_path / "run")))
    assert result.exit_code == 0
    assert "FAIL" in result.output and "never delivered" in result.output


def test_threshold_overrides(tmp_path: Path) -> None:
    folder = _lossy_run().write(tmp_path / "run")
    args = (str(folder), "--gate", "--format", "json")
    overrides = ("lost<=1", "delivery_rate=>=0.5", "on_time_rate>=0.5", "converged_clients>=0")
    relaxed = _invoke(*args, *(arg for o in overrides for arg in ("--threshold", o)))
    assert relaxed.exit_code == 0, relaxed.output
    assert json.loads(relaxed.output)["verdict"] == "pass"


def test_bad_threshold_is_a_usage_error(tmp_path: Path) -> None:
    folder = clean_run().write(tmp_path / "run")
    result = _invoke(str(folder), "--threshold", "lost=zero")
    assert result.exit_code == 2
    assert "Error: bad threshold for lost" in result.output
    _no_traceback(result)


def test_default_run_dir_is_the_newest_under_reports(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    older = clean_run().write(tmp_path / "reports" / "20260101T000000Z-a")
    newer = _lossy_run().write(tmp_path / "reports" / "20260102T000000Z-b")
    os.utime(older, (1, 1))
    os.utime(newer, (2, 2))
    monkeypatch.chdir(tmp_path)
    result = _invoke("--format", "json")
    assert result.exit_code == 0
    assert json.loads(result.output)["verdict"] == "fail"


def test_no_reports_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    result = _invoke()
    assert result.exit_code == 2 and "no run folder" in result.output
    _no_traceback(result)


def test_missing_folder(tmp_path: Path) -> None:
    result = _invoke(str(tmp_path / "nope"))
    assert result.exit_code == 2 and "does not exist" in result.output
    _no_traceback(result)


def test_folder_without_history(tmp_path: Path) -> None:
    result = _invoke(str(tmp_path))
    assert result.exit_code == 2 and "no history at" in result.output
    _no_traceback(result)


def test_corrupt_line_in_the_middle_names_the_line(tmp_path: Path) -> None:
    folder = clean_run().write(tmp_path / "run")
    lines = (folder / "history.jsonl").read_text().splitlines()
    lines[3] = lines[3][:20]
    (folder / "history.jsonl").write_text("\n".join(lines) + "\n")
    result = _invoke(str(folder))
    assert result.exit_code == 2 and "line 4" in result.output
    _no_traceback(result)


def test_truncated_last_line_is_tolerated_and_reported(tmp_path: Path) -> None:
    folder = clean_run().write(tmp_path / "run")
    with (folder / "history.jsonl").open("a") as out:
        out.write('{"t": 9, "w": 1800000009, "c": "c0')
    result = _invoke(str(folder), "--format", "json")
    assert result.exit_code == 0
    assert json.loads(result.output)["history_truncated"] is True


def test_missing_truth(tmp_path: Path) -> None:
    folder = clean_run().write(tmp_path / "run", truth=False)
    result = _invoke(str(folder))
    assert result.exit_code == 2 and "--db URL" in result.output
    _no_traceback(result)


def test_truth_from_a_database(tmp_path: Path) -> None:
    db = tmp_path / "db.sqlite"
    store = open_store(f"sqlite:///{db}")
    store.init_schema()
    store.seed("2026-11-26", 1)
    now = datetime.fromtimestamp(BASE_W, UTC)
    outcome = store.write(WriteRequest("r1", "2026-11-26-0001", "Present"), now)
    epoch = store.heads()["2026-11-26"].epoch
    store.close()
    run = Run(epoch=epoch, appointments=1)
    run.commit(1)
    run.clean_client("c001")
    folder = run.write(tmp_path / "run", truth=False)
    result = _invoke(str(folder), "--db", f"sqlite:///{db}", "--format", "json", "--gate")
    data = json.loads(result.output)
    assert outcome.seq == 1
    assert result.exit_code == 0, data["reasons"]
    assert data["truth_source"].startswith("sqlite")


def test_missing_sqlite_database_is_not_created(tmp_path: Path) -> None:
    folder = clean_run().write(tmp_path / "run", truth=False)
    result = _invoke(str(folder), "--db", f"sqlite:///{tmp_path}/absent.db")
    assert result.exit_code == 2 and "no SQLite database" in result.output
    assert not (tmp_path / "absent.db").exists()
    _no_traceback(result)


def test_unsupported_database_url(tmp_path: Path) -> None:
    folder = clean_run().write(tmp_path / "run", truth=False)
    result = _invoke(str(folder), "--db", "oracle://x")
    assert result.exit_code == 2 and "unsupported database URL" in result.output
    _no_traceback(result)


def _on_a_terminal(folder: Path, **env: str) -> str:
    """`synccli report FOLDER` in a real process whose stdout is a pseudo-terminal."""
    master, slave = pty.openpty()
    environ = {k: v for k, v in os.environ.items() if k != "NO_COLOR"} | env
    proc = subprocess.Popen(
        [sys.executable, "-m", "synccli", "report", str(folder)],
        stdout=slave,
        stderr=slave,
        env=environ,
    )
    os.close(slave)
    chunks = []
    try:
        while select.select([master], [], [], seconds(30))[0]:
            try:
                data = os.read(master, 65536)
            except OSError:  # EIO: the process closed the terminal
                break
            if not data:
                break
            chunks.append(data)
        assert proc.wait(timeout=seconds(30)) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(master)
    return b"".join(chunks).decode()


def test_pass_and_fail_are_coloured_on_a_terminal_only(tmp_path: Path) -> None:
    folder = _lossy_run().write(tmp_path / "run")
    coloured = _on_a_terminal(folder)
    assert "\x1b[31mFAIL\x1b[0m" in coloured and "\x1b[32mPASS\x1b[0m" in coloured
    piped = _invoke(str(folder))
    assert "FAIL" in piped.output and "\x1b[" not in piped.output


def test_no_color_turns_colour_off_on_a_terminal(tmp_path: Path) -> None:
    folder = _lossy_run().write(tmp_path / "run")
    plain = _on_a_terminal(folder, NO_COLOR="1")
    assert "FAIL" in plain and "\x1b[" not in plain


def test_after_an_infrastructure_error_every_threshold_reads_not_measured(tmp_path: Path) -> None:
    broken = clean_run()
    broken.rec(None, "infrastructure_error", BASE_W + 3, error="the server never came up")
    folder = broken.write(tmp_path / "infra", truth=False)
    data = json.loads(_invoke(str(folder), "--format", "json").output)
    assert data["verdict"] == "error"
    assert data["thresholds"] and all(
        t["ok"] is None and t["observed"] is None for t in data["thresholds"]
    )
    table = _invoke(str(folder)).output
    assert "PASS" not in table and "N/A" in table and "ERROR" in table
