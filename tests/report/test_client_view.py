"""``synccli report RUN --client ID [--around SEQ]``: one client's steps beside what the
database committed, on fixture runs that go right and runs that go wrong."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from synccli.cli.main import cli
from synccli.errors import ConfigError
from synccli.report.client_view import client_steps
from tests.report.builders import BASE_W, Run, clean_run


def checks(run: Run, client: str, around: int | None = None) -> list[tuple[int | None, str]]:
    steps = client_steps(run.history(), run.truth(), client, around, span=1)
    return [(s.seq, s.check) for s in steps if s.check]


def test_a_clean_client_saw_every_commit() -> None:
    run = clean_run(clients=1, events=3)
    steps = client_steps(run.history(), run.truth(), "c001")
    assert [s.saw.split()[0] for s in steps] == [
        "connected",
        "subscribed",
        "apply",
        "apply",
        "apply",
    ]
    assert [(s.seq, s.check) for s in steps if s.check] == [(1, "ok"), (2, "ok"), (3, "ok")]
    assert steps[2].committed == steps[2].saw.removeprefix("apply ")


def test_phantoms_differences_and_misses_are_named() -> None:
    run = Run()
    run.commit(5)
    run.connect("c1", BASE_W)
    run.subscribed("c1", 0, w=BASE_W + 0.01)
    run.apply("c1", 1)
    run.apply("c1", 2, state="Cancelled")
    run.apply("c1", 3)
    run.apply("c1", 9, appointmentId="ghost")
    assert checks(run, "c1") == [
        (1, "ok"),
        (2, "phantom"),
        (3, "ok"),
        (9, "phantom"),
        (4, "missed"),
        (5, "missed"),
    ]
    assert checks(run, "c1", around=2) == [(1, "ok"), (2, "phantom"), (3, "ok")]


def test_a_snapshot_covers_what_it_includes() -> None:
    run = Run()
    run.commit(4)
    run.snapshot("c1", 3)
    run.apply("c1", 4)
    assert checks(run, "c1") == [(4, "ok")]


def test_an_unknown_client_is_a_usage_error() -> None:
    with pytest.raises(ConfigError, match="no client 'c9'; its clients: c001, c002"):
        client_steps(clean_run().history(), clean_run().truth(), "c9")


def test_the_command_shows_the_steps(tmp_path: Path) -> None:
    folder = clean_run(clients=1, events=30).write(tmp_path / "run")
    result = CliRunner().invoke(cli, ["report", str(folder), "--client", "c001", "--around", "15"])
    assert result.exit_code == 0, result.output
    header, _rule, *lines = result.output.splitlines()
    assert header.split()[:3] == ["t", "s", "date"]
    assert [int(line.split()[2]) for line in lines] == list(range(5, 26))
    assert all(line.rstrip().endswith("ok") for line in lines)
    result = CliRunner().invoke(cli, ["report", str(folder), "--client", "nobody"])
    assert result.exit_code == 2 and "no client 'nobody'" in result.output
    result = CliRunner().invoke(cli, ["report", str(folder), "--around", "3"])
    assert result.exit_code == 2 and "--around needs --client" in result.output
