"""``synccli db`` through click's CliRunner on real SQLite files."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from synccli.cli.main import cli
from synccli.errors import EXIT_INFRASTRUCTURE, EXIT_USAGE
from synccli.store.sqlite import SqliteStore
from tests.conftest import require


def run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, list(args))
    return result.exit_code, result.output


@pytest.fixture
def url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'clinic.db'}"


def test_init_creates_the_schema_and_is_repeatable(url: str, tmp_path: Path) -> None:
    for _ in range(2):
        code, out = run("db", "init", "--db", url)
        assert code == 0, out
        assert "schema ready" in out
    store = SqliteStore(tmp_path / "clinic.db")
    assert store.status() == []
    store.close()


def test_seed_then_status_shows_the_day(url: str) -> None:
    code, out = run("db", "seed", "--db", url, "--date", "2026-11-26", "--appointments", "7")
    assert code == 0, out
    assert "7 appointments created for 2026-11-26" in out
    code, out = run("db", "seed", "--db", url, "--date", "2026-11-26", "--appointments", "9")
    assert "2 appointments created" in out and "(7 already there)" in out
    code, out = run("db", "status", "--db", url)
    assert code == 0, out
    header, _rule, line = out.splitlines()
    assert [h.strip() for h in header.split("  ") if h.strip()] == [
        "date",
        "epoch",
        "head",
        "min",
        "oldest kept",
        "pruned",
        "events",
        "appointments",
    ]
    cells = line.split()
    assert (cells[0], cells[2:]) == ("2026-11-26", ["0", "1", "-", "none", "0", "9"])


def test_seed_defaults_to_today_and_twenty(url: str) -> None:
    code, out = run("db", "seed", "--db", url)
    assert code == 0, out
    assert out.startswith("20 appointments created for ")


def test_db_url_from_the_environment(url: str) -> None:
    result = CliRunner().invoke(cli, ["db", "init"], env={"SYNCCLI_DB": url})
    assert result.exit_code == 0 and url.removeprefix("sqlite:///") in result.output


@pytest.mark.parametrize(
    ("args", "code", "words"),
    [
        (
            ["db", "init", "--db", "oracle://scott:tiger@h/x"],
            EXIT_USAGE,
            "unsupported database URL",
        ),
        (["db", "init", "--db", "sqlite:///"], EXIT_USAGE, "names no file"),
        (
            ["db", "init", "--db", "sqlite:////no/such/folder/x.db"],
            EXIT_INFRASTRUCTURE,
            "/no/such/folder",
        ),
        (["db", "seed", "--date", "2026-13-01"], EXIT_USAGE, "not a date"),
        (["db", "seed", "--appointments", "-1"], EXIT_USAGE, "-1"),
    ],
)
def test_bad_input_is_one_sentence_and_an_exit_code(args: list[str], code: int, words: str) -> None:
    exit_code, out = run(*args)
    assert exit_code == code, out
    assert words in out
    assert "Traceback" not in out and "tiger" not in out


def test_unreadable_database_exits_4(tmp_path: Path) -> None:
    bogus = tmp_path / "garbage.db"
    bogus.write_bytes(b"not sqlite at all " * 64)
    code, out = run("db", "status", "--db", f"sqlite:///{bogus}")
    assert code == EXIT_INFRASTRUCTURE
    assert "garbage.db" in out and "Traceback" not in out


def test_status_of_an_empty_database_says_what_to_do(url: str) -> None:
    run("db", "init", "--db", url)
    code, out = run("db", "status", "--db", url)
    assert code == 0 and "synccli db seed" in out


def test_status_without_schema_says_run_init(url: str) -> None:
    code, out = run("db", "status", "--db", url)
    assert code == EXIT_INFRASTRUCTURE and "synccli db init" in out


def test_every_command_has_help() -> None:
    for command in ("init", "seed", "status"):
        code, out = run("db", command, "--help")
        assert code == 0 and "--db" in out
        assert len(out.splitlines()[2].strip()) > 10


def test_unknown_odbc_driver_exits_4_without_the_password() -> None:
    require(importlib.util.find_spec("pyodbc") is not None, "pyodbc is not installed")
    code, out = run(
        "db", "init", "--db", "postgresql+pyodbc://u:hunter2@127.0.0.1:5432/x?driver=No+Such+Driver"
    )
    assert code == EXIT_INFRASTRUCTURE
    assert "No Such Driver" in out or "not installed" in out
    assert "hunter2" not in out and "Traceback" not in out


def test_missing_pyodbc_is_an_infrastructure_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pyodbc", None)
    code, out = run("db", "init", "--db", "mssql+pyodbc://sa:pw@h:1433/clinic")
    assert code == EXIT_INFRASTRUCTURE
    assert "apt-get install unixodbc" in out and "Traceback" not in out


def test_prune_channels_removes_the_empty_rows_older_versions_left(
    url: str, tmp_path: Path
) -> None:
    store = SqliteStore(tmp_path / "clinic.db")
    store.init_schema()
    store.seed("2026-11-26", 2)
    for day in ("2026-01-01", "2026-01-02"):
        store.reset_channel(day)  # a row with no events and no appointments
    store.close()
    code, out = run("db", "prune-channels", "--db", url)
    assert (code, out.strip()) == (0, f"2 empty channels removed from {url}")
    code, out = run("db", "status", "--db", url)
    assert [line.split()[0] for line in out.splitlines()[2:]] == ["2026-11-26"]
    assert run("db", "prune-channels", "--db", url)[1].startswith("0 empty channels")
