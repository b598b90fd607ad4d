"""``synccli scenarios list|show|validate`` through Click's runner."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from synccli.cli.common import Duration
from synccli.cli.main import cli
from synccli.harness.scenario import SCENARIO_DIR, parse_scenario
from tests.conftest import seconds

SHIPPED = SCENARIO_DIR
GOOD = 'description = "two clients"\nduration_s = 5\nclients = 2\n'
BAD = "duration_s = 5\nclients = 2\nwriters = 3\n"


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    (tmp_path / "good.toml").write_text(GOOD)
    (tmp_path / "bad.toml").write_text(BAD)
    return tmp_path


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, ["scenarios", *args])
    return result.exit_code, result.stdout, result.stderr


def test_help_of_every_command() -> None:
    for command in ([], ["list"], ["show"], ["validate"]):
        code, out, _ = run(*command, "--help")
        assert code == 0 and "Usage:" in out
        assert len(out.splitlines()) > 3


def test_list_shows_files_and_the_builtin_default(folder: Path) -> None:
    code, out, _ = run("list", "--dir", str(folder))
    assert code == 0
    header, _, *rows = out.splitlines()
    assert header.split() == ["name", "duration", "faults", "description"]
    assert rows[0].startswith("bad") and "INVALID" in rows[0] and "writers" in rows[0]
    assert rows[1].split()[:4] == ["good", "5", "s", "none"]
    assert rows[2].startswith("default") and "packet_loss" in rows[2]


def test_list_of_the_shipped_folder_has_every_file() -> None:
    code, out, _ = run("list", "--dir", str(SHIPPED))
    assert code == 0
    assert "INVALID" not in out
    for path in SHIPPED.glob("*.toml"):
        assert f"\n{path.stem} " in out


def test_show_by_name_prints_toml_that_loads_back(folder: Path) -> None:
    code, out, _ = run("show", "good", "--dir", str(folder))
    assert code == 0
    assert out.startswith("# good: resolved; dates today would be ")
    shown = parse_scenario(out, "good.toml")
    assert shown.clients == 2 and shown.groups == 2 and shown.description == "two clients"


def test_show_file_as_json() -> None:
    code, out, _ = run("show", str(SHIPPED / "ci-gate.toml"), "--json")
    assert code == 0
    data = json.loads(out)
    assert data["name"] == "ci-gate"
    assert {f["kind"] for f in data["faults"]} >= {"down", "packet_loss", "server_kill"}


def test_show_unknown_name_is_a_usage_error(folder: Path) -> None:
    code, out, err = run("show", "nope", "--dir", str(folder))
    assert code == 2
    assert err.startswith("Error: no scenario named 'nope'")
    assert "Traceback" not in out + err


def test_show_invalid_file_names_the_line_and_field(folder: Path) -> None:
    code, _, err = run("show", str(folder / "bad.toml"))
    assert code == 2
    assert f"{folder / 'bad.toml'}:3: writers:" in err


def test_validate_reports_each_file_and_exits_2_on_any_invalid(folder: Path) -> None:
    code, out, err = run("validate", str(folder / "good.toml"), str(folder / "bad.toml"))
    assert code == 2
    assert out.startswith(f"OK {folder / 'good.toml'} (good: 5 s, 2 clients, 0 faults)")
    assert f"INVALID {folder / 'bad.toml'}:3: writers: 3 writers is more than" in err
    assert "1 of 2 scenario files are invalid" in err


def test_validate_all_shipped_files_is_ok() -> None:
    files = sorted(str(path) for path in SHIPPED.glob("*.toml"))
    code, out, _ = run("validate", *files)
    assert code == 0
    assert out.count("OK ") == len(files) >= 17


def test_validate_missing_file_and_no_arguments() -> None:
    code, _, err = run("validate", "/nonexistent/x.toml")
    assert code == 2 and "does not exist" in err
    code, _, err = run("validate")
    assert code == 2 and "Missing argument" in err


def test_the_installed_command_exits_2_without_a_traceback(folder: Path) -> None:
    entry = "from synccli.cli.main import main; main()"
    done = subprocess.run(
        [sys.executable, "-c", entry, "scenarios", "validate", str(folder / "bad.toml")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr


THREE_ERRORS = """\
clients = 0
duration_s = "soon"

[[faults]]
kind = "latency"
at_s = 1
for_s = 2
"""
MINIMAL = 'name = "minimal"\n\n[[faults]]\nkind = "down"\nat_s = "1s"\nfor_s = "1s"\n'


def test_validate_reports_every_error_of_a_file_with_its_line(tmp_path: Path) -> None:
    path = tmp_path / "three.toml"
    path.write_text(THREE_ERRORS)
    code, _, err = run("validate", str(path))
    assert code == 2
    assert err.splitlines() == [
        f"INVALID {path}:1: clients: must be at least 1, not 0",
        f"INVALID {path}:2: duration_s: 'soon' is not a duration: use seconds (15) or a "
        'duration like "30s", "2m", "1m30s"',
        f"INVALID {path}:4: faults[1].latency: is missing",
        "1 of 1 scenario files are invalid",
    ]


def test_a_minimal_file_validates(tmp_path: Path) -> None:
    path = tmp_path / "minimal.toml"
    path.write_text(MINIMAL)
    code, out, _ = run("validate", str(path))
    assert code == 0
    assert out == f"OK {path} (minimal: 36 s, 10 clients, 1 faults)\n"


@pytest.mark.parametrize("path", sorted(SHIPPED.glob("*.toml")), ids=lambda p: p.stem)
def test_show_output_validates_and_loads_back(path: Path, tmp_path: Path) -> None:
    code, out, _ = run("show", str(path))
    assert code == 0
    shown = tmp_path / path.name
    shown.write_text(out)
    code, _, err = run("validate", str(shown))
    assert code == 0, err
    assert parse_scenario(out, str(path)) == parse_scenario(path.read_text(), str(path))


def test_show_writes_infinity_as_toml(tmp_path: Path) -> None:
    path = tmp_path / "patient.toml"
    path.write_text("on_time_s = inf\n")
    code, out, _ = run("show", str(path))
    assert code == 0 and "on_time_s = inf\n" in out and "Infinity" not in out
    assert parse_scenario(out, str(path)).on_time_s == float("inf")


def test_duration_option_takes_units_and_refuses_bad_ones_in_one_sentence() -> None:
    option = Duration(0.5, 24 * 3600)
    assert [option.convert(text, None, None) for text in ("15", "1m30s", "2m")] == [15, 90, 120]
    result = CliRunner().invoke(cli, ["simulate", "--duration", "1x"])
    assert result.exit_code == 2
    error = result.output.splitlines()[-1]
    assert error == (
        "Error: Invalid value for '-d' / '--duration' (env var: 'SYNCCLI_DURATION'): '1x' is "
        'not a duration: use seconds (15) or a duration like "30s", "2m", "1m30s".'
    )
    result = CliRunner().invoke(cli, ["simulate", "--duration", "0.1s"])
    assert result.exit_code == 2 and "0.1s is not between 0.5 s and 86400 s" in result.output


@pytest.mark.slow
def test_a_minimal_file_runs_with_options_over_it(tmp_path: Path) -> None:
    path = tmp_path / "minimal.toml"
    path.write_text(MINIMAL)
    out = tmp_path / "run"
    done = subprocess.run(
        [sys.executable, "-m", "synccli", "simulate", "--scenario", str(path), "--quiet",
         "--clients", "2", "--duration", "4s", "--out", str(out)],
        capture_output=True, text=True, timeout=seconds(120),
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["verdict"] == "pass"
    records = [json.loads(line) for line in (out / "history.jsonl").read_text().splitlines()]
    start = next(r for r in records if r["k"] == "run_start")
    config = start["config"]
    assert (config["clients"], config["writers"], config["duration_s"]) == (2, 2, 4.0)
    phases = [r["phase"] for r in records if r["k"] == "fault"]
    assert phases == ["start", "end"]
