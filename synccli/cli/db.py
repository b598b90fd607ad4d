"""``synccli db``: create the schema, seed a day of appointments, show every channel."""

from __future__ import annotations

from datetime import date as date_type

import click
from tabulate import tabulate

from synccli.cli.common import db_option, handle_errors
from synccli.domain.values import check_date
from synccli.errors import ProtocolError
from synccli.store import open_store


@click.group("db")
def db() -> None:
    """Create, seed and inspect the sync database (exit 4 when it cannot be reached)."""


@db.command("init")
@db_option
@handle_errors
def init(db_url: str) -> None:
    """Create or migrate the schema; never destroys data."""
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


@db.command("seed")
@db_option
@click.option(
    "--date",
    "day",
    callback=_valid_date,
    help="The day to fill, YYYY-MM-DD.  [default: today]",
)
@click.option(
    "--appointments",
    "count",
    type=click.IntRange(0, 100_000),
    default=20,
    show_default=True,
    help="How many appointments the day should have.",
)
@handle_errors
def seed(db_url: str, day: str, count: int) -> None:
    """Create a day of Scheduled appointments (rows, not events); existing ones are kept.
    The schema is created first if it is missing."""
    store = open_store(db_url)
    try:
        store.init_schema()
        created = store.seed(day, count)
    finally:
        store.close()
    click.echo(f"{created} appointments created for {day} ({count - created} already there)")


@db.command("status")
@db_option
@handle_errors
def status(db_url: str) -> None:
    """Show every channel: epoch, head and oldest sequence number, events and appointments."""
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


@db.command("prune-channels")
@db_option
@handle_errors
def prune_channels(db_url: str) -> None:
    """Delete channels that never had an event and have no appointments (left by reads of
    unused dates in older versions, which created a row per date read)."""
    store = open_store(db_url)
    try:
        removed = store.prune_channels()
    finally:
        store.close()
    click.echo(f"{removed} empty channels removed from {store.url}")
