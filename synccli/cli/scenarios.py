"""``synccli scenarios``: list, show and validate scenario files."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import click
from tabulate import tabulate

from synccli.cli.common import complete_scenario, examples, handle_errors, option
from synccli.errors import EXIT_USAGE, ConfigError
from synccli.harness.scenario import (
    DEFAULT_NAME,
    SCENARIO_DIR,
    Scenario,
    default_scenario,
    find_scenario,
    list_scenarios,
    load_scenario,
)

_DIR_OPTION = option(
    "--dir",
    "directory",
    type=click.Path(file_okay=False, path_type=Path),
    default=SCENARIO_DIR,
    show_default="the shipped scenarios",
    help="Folder of scenario files looked up by name.",
)


@click.group(
    "scenarios",
    epilog=examples(
        "synccli scenarios list",
        "synccli scenarios show server-crash",
        "synccli scenarios validate scenarios/*.toml",
    ),
)
def scenarios() -> None:
    """List, show and validate scenario files.

    A scenario file holds the load, the fault schedule and the thresholds of a run (see
    docs/scenarios.md). A scenario is named by a shipped file (synccli/scenarios/NAME.toml,
    or --dir) or given as a path; `default` is the built-in one `synccli simulate` runs
    without --scenario.
    """


@scenarios.command(
    "list", epilog=examples("synccli scenarios list", "synccli scenarios list --dir ./mine")
)
@_DIR_OPTION
@handle_errors
def list_command(directory: Path) -> None:
    """List the scenarios and their faults.

    One line per file in --dir, then the built-in default.
    """
    rows = []
    for name, path, description in list_scenarios(directory):
        try:
            scenario = load_scenario(path)
        except ConfigError:
            rows.append((name, "-", "-", description))
            continue
        rows.append((name, f"{scenario.duration_s:g} s", _fault_kinds(scenario), description))
    builtin = default_scenario(packet_loss=True)
    rows.append(
        (DEFAULT_NAME, f"{builtin.duration_s:g} s", _fault_kinds(builtin), builtin.description)
    )
    click.echo(tabulate(rows, headers=("name", "duration", "faults", "description")))


@scenarios.command(
    "show",
    epilog=examples(
        "synccli scenarios show default",
        "synccli scenarios show ./my-scenario.toml --json",
    ),
)
@click.argument("ref", metavar="NAME|FILE", shell_complete=complete_scenario)
@option("--json", "as_json", is_flag=True, help="Print JSON instead of TOML.")
@_DIR_OPTION
@handle_errors
def show_command(ref: str, as_json: bool, directory: Path) -> None:
    """Print a scenario, every default filled in.

    The output loads again as a scenario file (or is JSON with --json).
    """
    scenario = find_scenario(ref, directory)
    if as_json:
        click.echo(scenario.to_json())
        return
    dates = ", ".join(scenario.date_list(date.today()))
    click.echo(f"# {scenario.name}: resolved; dates today would be {dates}")
    click.echo(scenario.to_toml(), nl=False)


@scenarios.command(
    "validate",
    epilog=examples(
        "synccli scenarios validate scenarios/*.toml",
        "synccli scenarios validate ./my-scenario.toml",
    ),
)
@click.argument("files", nargs=-1, required=True, type=click.Path(path_type=Path))
def validate_command(files: tuple[Path, ...]) -> None:
    """Check scenario files.

    Prints OK, or every error (file:line: field: problem), for each of FILES. Exit code 2
    if any file is invalid.
    """
    invalid = 0
    for path in files:
        try:
            scenario = load_scenario(path)
        except ConfigError as exc:
            invalid += 1
            for problem in str(exc).splitlines():
                click.echo(f"INVALID {problem}", err=True)
            continue
        click.echo(
            f"OK {path} ({scenario.name}: {scenario.duration_s:g} s, {scenario.clients} "
            f"clients, {len(scenario.faults)} faults)"
        )
    if invalid:
        click.echo(f"{invalid} of {len(files)} scenario files are invalid", err=True)
        raise SystemExit(EXIT_USAGE)


def _fault_kinds(scenario: Scenario) -> str:
    if not scenario.faults:
        return "none"
    kinds = ", ".join(dict.fromkeys(f.kind for f in scenario.faults))
    # Keep the table one line per scenario on an ordinary terminal.
    return f"{len(scenario.faults)}: {kinds if len(kinds) <= 40 else kinds[:39] + '…'}"
