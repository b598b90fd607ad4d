"""``synccli events``: a day's durable log as a table, JSON Lines or CSV (the audit trail)."""

from __future__ import annotations

import click

from synccli.audit.render import LOG_FORMATS, log_blocks
from synccli.cli.common import db_option, examples, handle_errors, valid_date
from synccli.cli.output import format_option, note, stream
from synccli.store import open_store
from synccli.store.log import LogReader, check_appointment


@click.command(
    "events",
    epilog=examples(
        "synccli events 2026-11-26 | less",
        "synccli events 2026-11-26 --appointment 2026-11-26-0007",
        "synccli events 2026-11-26 --since 1200 -f csv > log.csv",
    ),
)
@click.argument("day", metavar="DATE", callback=valid_date)
@db_option()
@click.option("--appointment", "appointment_id", default=None, help="Only this appointment.")
@click.option(
    "--since",
    type=click.IntRange(min=0),
    default=0,
    show_default=True,
    help="Only events after this sequence number.",
)
@click.option("--limit", type=click.IntRange(min=1), default=None, help="At most this many events.")
@format_option(LOG_FORMATS, "table, json (one object per line) or csv.")
@handle_errors
def events(
    day: str, db_url: str, appointment_id: str | None, since: int, limit: int | None, fmt: str
) -> None:
    """Show a day's log, oldest first.

    The log of DATE (YYYY-MM-DD): sequence number, commit time, appointment, patient,
    from → to, version, who made the change (actor) and its request id.

    Output streams page by page (pipe it to a pager); notes (pruned events, an empty log) go
    to stderr. Exit codes: 0 shown (also an empty log), 1 no such appointment, 2 usage
    error, 4 database unreachable.
    """
    store = open_store(db_url)
    try:
        if appointment_id is not None:
            check_appointment(store, appointment_id, day)
        reader = LogReader(store, day, since=since, limit=limit, appointment_id=appointment_id)
        first = reader.first()
        channel = reader.channel
        if channel is None:
            note(f"no events on {day}: nothing has been written on that date")
            return
        if channel.min_seq > 1:
            note(
                f"events 1 to {channel.min_seq - 1} of {day} were pruned by retention; "
                f"the log keeps {channel.min_seq} to {channel.head_seq}"
            )
        stream(log_blocks(reader.pages(first), fmt))
        if reader.count == 0:
            which = f" of {appointment_id}" if appointment_id else ""
            note(f"no events{which} on {day} after sequence {since} (head {channel.head_seq})")
    finally:
        store.close()
