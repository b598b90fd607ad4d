"""``synccli db``: create the schema, seed a day of appointments, show every channel."""

from __future__ import annotations

from datetime import date as date_type

import click
from tabulate import tabulate

from synccli.cli.common import db_option, examples, handle_errors, option
from synccli.domain.values import check_date
from synccli.errors import ProtocolError
from synccli.store import open_store


@click.group(
    "db",
    epilog=examples(
        "synccli db init --db sqlite:///clinic.db",
        "synccli db seed --date 2026-11-26 --appointments 40",
        "SYNCCLI_DB=sqlite:///clinic.db synccli db status",
    ),
)
def db() -> None:
    """Create, seed and inspect the database.

    Every subcommand exits 4 when the database cannot be reached.
    """


@db.command("init", epilog=examples("synccli db init", "synccli db init --db sqlite:///clinic.db"))
@db_option()
@handle_errors
def init(db_url: str) -> None:
    """Create or migrate the schema.

    Never destroys data: tables that exist are kept, missing ones are added.
    """
    store = open_store(db_url)
    try:
        store.init_schema()
    finally:
        store.close()
    click.echo(f"schema ready in {store.url}")


def _valid_date(_ctx: click.Context, _param: click.Parameter, value: str | None) -> str:
    if value is None:
        return date_type.today().isoformat()
    try:
        return check_date(value)
    except ProtocolError:
        raise click.BadParameter(f"{value!r} is not a date; use YYYY-MM-DD") from None


@db.command(
    "seed",
    epilog=examples("synccli db seed", "synccli db seed --date 2026-11-26 --appointments 40"),
)
@db_option()
@option(
    "--date",
    "day",
    callback=_valid_date,
    help="The day to fill, YYYY-MM-DD.  [default: today]",
)
@option(
    "--appointments",
    "count",
    type=click.IntRange(0, 100_000),
    default=20,
    show_default=True,
    help="How many appointments the day should have.",
)
@handle_errors
def seed(db_url: str, day: str, count: int) -> None:
    """Create a day of Scheduled appointments.

    They are rows, not events; existing ones are kept. The schema is created first if it is
    missing.
    """
    store = open_store(db_url)
    try:
        store.init_schema()
        created = store.seed(day, count)
    finally:
        store.close()
    click.echo(f"{created} appointments created for {day} ({count - created} already there)")


@db.command(
    "status",
    epilog=examples("synccli db status", "synccli db status --db sqlite:///clinic.db"),
)
@db_option()
@handle_errors
def status(db_url: str) -> None:
    """Show every channel's epoch and heads.

    One row per date: epoch, head and oldest sequence number, events and appointments.
    """
    store = open_store(db_url)
    try:
        channels = store.status()
    finally:
        store.close()
    if not channels:
        click.echo(f"no channels in {store.url} yet; run `synccli db seed` to create a day")
        return
    table = [
        (
            s.channel.date,
            s.channel.epoch,
            s.channel.head_seq,
            s.channel.min_seq,
            s.events,
            s.appointments,
        )
        for s in channels
    ]
    click.echo(tabulate(table, headers=["date", "epoch", "head", "min", "events", "appointments"]))
