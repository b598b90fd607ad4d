"""Every command's help: text, an example, a summary that is not cut off, every environment
variable shown, short flags that mean the same everywhere; and shell completion."""

from __future__ import annotations

import os
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from synccli.cli.main import cli
from synccli.harness.scenario import SCENARIO_DIR


def _commands(group: click.Group, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    found = []
    ctx = click.Context(group)
    for name in group.list_commands(ctx):
        command = group.get_command(ctx, name)
        assert command is not None, name
        path = (*prefix, name)
        found.append(path)
        if isinstance(command, click.Group):
            found += _commands(command, path)
    return found


def _command(path: tuple[str, ...]) -> click.Command:
    command: click.Command = cli
    for name in path:
        assert isinstance(command, click.Group)
        found = command.get_command(click.Context(command), name)
        assert found is not None, path
        command = found
    return command


def _help(path: tuple[str, ...]) -> str:
    result = CliRunner().invoke(cli, [*path, "--help"], prog_name="synccli", terminal_width=100)
    assert result.exit_code == 0, path
    return result.output


PATHS = _commands(cli)


def test_every_command_is_found() -> None:
    assert {("serve",), ("simulate",), ("report",), ("db", "init"), ("token",)} <= set(PATHS)
    assert len([path for path in PATHS if len(path) == 1]) == 10


@pytest.mark.parametrize("path", PATHS, ids=" ".join)
def test_every_command_has_help_text_and_an_example(path: tuple[str, ...]) -> None:
    command = _command(path)
    assert command.help and "Not built" not in command.help
    lines = _help(path).splitlines()
    examples = lines.index("  Examples:")
    shown = [line.strip() for line in lines[examples + 1 :] if line.strip()]
    assert shown, path
    # Every example runs this very command (possibly after an environment assignment).
    wanted = "synccli " + " ".join(path)
    assert all(wanted in line for line in shown), shown


@pytest.mark.parametrize("path", PATHS, ids=" ".join)
def test_summaries_are_one_short_sentence(path: tuple[str, ...]) -> None:
    command = _command(path)
    assert command.help is not None
    first_line = command.help.strip().splitlines()[0]
    summary = command.get_short_help_str()  # Click's own limit: 45 characters
    assert summary == first_line, path
    assert not summary.endswith("..."), path


def test_the_command_list_cuts_no_summary() -> None:
    output = _help(())
    listed = output.split("Commands:")[1].split("Examples:")[0]
    assert "..." not in listed and "…" not in listed
    assert "serve      Run the sync server." in listed


@pytest.mark.parametrize("path", PATHS, ids=" ".join)
def test_every_environment_variable_is_shown(path: tuple[str, ...]) -> None:
    output = " ".join(_help(path).split())
    for param in _command(path).params:
        if isinstance(param, click.Option) and param.envvar and not param.hidden:
            assert isinstance(param.envvar, str)
            assert f"env var: {param.envvar}" in output, (path, param.name)


def test_simulate_reads_clients_and_duration_from_the_environment() -> None:
    options = {p.name: p for p in _command(("simulate",)).params}
    assert options["clients"].envvar == "SYNCCLI_CLIENTS"
    assert options["duration_s"].envvar == "SYNCCLI_DURATION"
    result = CliRunner().invoke(cli, ["simulate"], env={"SYNCCLI_CLIENTS": "0"})
    assert result.exit_code == 2 and "SYNCCLI_CLIENTS" in result.output


def test_short_flags_mean_the_same_in_every_command() -> None:
    meaning: dict[str, set[str]] = {}
    for path in PATHS:
        for param in _command(path).params:
            if not isinstance(param, click.Option):
                continue
            longs = [o for o in param.opts if o.startswith("--")]
            for short in (o for o in param.opts if not o.startswith("--")):
                meaning.setdefault(short, set()).update(longs)
    assert {k: v for k, v in meaning.items() if len(v) > 1} == {}
    expected = {"-c": "--clients", "-d": "--duration", "-s": "--scenario", "-q": "--quiet"}
    for short, long in expected.items():
        assert meaning[short] == {long}
    assert meaning["-t"] == {"--threshold"} and meaning["-p"] == {"--port"}


# ----------------------------------------------------------------------- completion


def _complete(words: str, cwd: Path) -> list[str]:
    """What bash would offer for the last word of ``words``, through Click's own protocol."""
    env = {
        "_SYNCCLI_COMPLETE": "bash_complete",
        "COMP_WORDS": words,
        "COMP_CWORD": str(len(words.split()) - (0 if words.endswith(" ") else 1)),
    }
    previous = Path.cwd()
    os.chdir(cwd)
    try:
        result = CliRunner().invoke(cli, [], prog_name="synccli", env=env)
    finally:
        os.chdir(previous)
    assert result.exit_code == 0, result.output
    return [line.split(",", 1)[1] for line in result.output.splitlines()]


def test_the_documented_completion_script_is_produced() -> None:
    result = CliRunner().invoke(
        cli, [], prog_name="synccli", env={"_SYNCCLI_COMPLETE": "bash_source"}
    )
    assert result.exit_code == 0
    assert "_synccli_completion" in result.output and "complete " in result.output


def test_scenario_names_and_toml_files_complete(tmp_path: Path) -> None:
    shipped = sorted(path.stem for path in SCENARIO_DIR.glob("*.toml"))
    assert {"server-crash", "sequential-updates", "soak-everything"} <= set(shipped)
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "slow-db.toml").write_text("")
    (tmp_path / "mine" / "notes.txt").write_text("")
    (tmp_path / "settle.toml").write_text("")
    starting = [name for name in shipped if name.startswith("se")]
    offered = _complete("synccli simulate --scenario se", tmp_path)
    assert offered == [*starting, "settle.toml"]
    assert _complete("synccli simulate -s def", tmp_path) == ["default"]
    assert _complete("synccli simulate -s mine/", tmp_path) == ["mine/slow-db.toml"]
    assert "mine/" in _complete("synccli simulate -s m", tmp_path)
    assert _complete("synccli scenarios show soa", tmp_path) == ["soak-everything"]
    assert _complete("synccli scenarios show --dir mine sl", tmp_path) == ["slow-db"]
    # Other options still complete as Click does by default.
    assert "--scenario" in _complete("synccli simulate --sc", tmp_path)


def test_the_readme_lists_every_environment_variable_and_short_flag() -> None:
    readme = (Path(__file__).parents[2] / "README.md").read_text(encoding="utf-8")
    for path in PATHS:
        for param in _command(path).params:
            if not isinstance(param, click.Option) or param.hidden:
                continue
            if isinstance(param.envvar, str):
                assert f"`{param.envvar}`" in readme, param.envvar
            for short in (o for o in param.opts if not o.startswith("--")):
                assert f"| `{short}` |" in readme, short
    assert "_SYNCCLI_COMPLETE=bash_source synccli" in readme
