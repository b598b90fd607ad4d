"""``synccli db``: create the schema, seed a day of appointments, show every channel."""

from __future__ import annotations

from datetime import date as date_type

import click
from tabulate import tabulate

from synccli.cli.common import db_option, examples, handle_errors, option, valid_date
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


def _valid_date(ctx: click.Context, param: click.Parameter, value: str | None) -> str:
    if value is None:
        return date_type.today().isoformat()
    return valid_date(ctx, param, value)


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

    One row per date: epoch, head and oldest kept sequence number with its commit time,
    what retention pruned, events and appointments.
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
            s.oldest_kept or "-",
            f"1-{s.pruned}" if s.pruned else "none",
            s.events,
            s.appointments,
        )
        for s in channels
    ]
    headers = ["date", "epoch", "head", "min", "oldest kept", "pruned", "events", "appointments"]
    click.echo(tabulate(table, headers=headers))


@db.command(
    "prune-channels",
    epilog=examples(
        "synccli db prune-channels", "synccli db prune-channels --db sqlite:///clinic.db"
    ),
)
@db_option()
@handle_errors
def prune_channels(db_url: str) -> None:
    """Delete the empty channels of older versions.

    A channel that never had an event and has no appointments goes: older versions created
    one for every date a client read. Channels with events or appointments are kept.
    """
    store = open_store(db_url)
    try:
        removed = store.prune_channels()
    finally:
        store.close()
    click.echo(f"{removed} empty channels removed from {store.url}")
