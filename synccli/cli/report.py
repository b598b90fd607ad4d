"""`synccli report`: re-check a run folder and print or gate on its verdict."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click
from tabulate import tabulate

from synccli.cli.common import examples, handle_errors, option, threshold_option
from synccli.errors import EXIT_OK, ConfigError
from synccli.report import RENDERERS, check_run, latest_run, parse_override, write_outputs
from synccli.report.client_view import COLUMNS, client_steps
from synccli.report.render import colour_wanted, render_table
from synccli.report.run import load_run
from synccli.report.truth import Truth, truth_from_store
from synccli.store import open_store
from synccli.store.urls import parse_sqlite_url

DEFAULT_REPORTS = Path("reports")


def _truth_from_db(url: str) -> Truth:
    if url.lower().startswith("sqlite:"):
        # Opening a missing SQLite file would create an empty database and judge against it.
        path = Path(parse_sqlite_url(url))
        if not path.is_file():
            raise ConfigError(f"no SQLite database at {path}: pass the --db URL the run used")
    store = open_store(url)
    try:
        return truth_from_store(store)
    finally:
        store.close()


@click.command(
    "report",
    epilog=examples(
        "synccli report",
        "synccli report reports/20261126T101500Z-default -f markdown",
        "synccli report --gate -t 'latency_ms.p99<500' -t delivery_rate=1",
        "synccli report --client c001 --around 120",
    ),
)
@click.argument(
    "run_dir",
    required=False,
    type=click.Path(file_okay=False, path_type=Path),
)
@option(
    "-f",
    "--format",
    "fmt",
    type=click.Choice(sorted(RENDERERS)),
    default="table",
    show_default=True,
    help="How to print the summary.",
)
@option(
    "--gate",
    is_flag=True,
    help="Exit with the verdict's code: 0 pass, 1 fail, 3 inconclusive, 4 infrastructure.",
)
@option(
    "--db",
    "db_url",
    default=None,
    help="Read the truth from this database instead of the run's truth.json.",
)
@threshold_option
@option(
    "--client",
    "client_id",
    default=None,
    help="Show what this client saw, step by step, beside what the database committed.",
)
@option(
    "--around",
    type=click.IntRange(min=0),
    default=None,
    help="With --client: only the steps within 10 sequence numbers of this one.",
)
@option(
    "--write",
    is_flag=True,
    help="Rewrite the run's summary.json, junit.xml and report.html (and save the --db "
    "truth as truth.json when the run has none) from this check.",
)
@handle_errors
def report(
    run_dir: Path | None,
    fmt: str,
    gate: bool,
    db_url: str | None,
    thresholds: tuple[str, ...],
    client_id: str | None,
    around: int | None,
    write: bool,
) -> None:
    """Re-check a run and print its verdict.

    RUN_DIR defaults to the newest run folder under ./reports. Its history is checked
    against the truth again and the summary printed; the run's files are left as they are
    unless --write is given. --threshold overrides a threshold for this check. Without
    --gate the command exits 0 once the report is printed; bad input exits 2 (or 4 when a
    database given with --db cannot be read). The table is coloured only on a terminal,
    and never when NO_COLOR is set.
    """
    overrides = [parse_override(text) for text in thresholds]
    folder = run_dir if run_dir is not None else latest_run(DEFAULT_REPORTS)
    truth = _truth_from_db(db_url) if db_url else None
    if client_id is not None:
        steps = client_steps(*load_run(folder, truth), client_id, around)
        # The cells as they are (no number parsing): the same text as report.html's view.
        click.echo(tabulate([s.cells() for s in steps], headers=COLUMNS, disable_numparse=True))
        return
    if around is not None:
        raise click.UsageError("--around needs --client")
    summary = check_run(folder, truth, overrides=overrides, save_truth=write)
    if write:
        write_outputs(folder, summary)
    if fmt == "table":
        text = render_table(summary, colour=colour_wanted(sys.stdout, os.environ))
    else:
        text = RENDERERS[fmt](summary)
    click.echo(text, nl=False)
    ctx = click.get_current_context()
    ctx.exit(summary.exit_code if gate else EXIT_OK)
