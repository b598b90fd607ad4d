"""``synccli board``: the board of a day as it was at any moment, rebuilt from the log."""

from __future__ import annotations

import click
from tabulate import tabulate

from synccli.audit.board import check_head, parse_moment, rebuild, target_seq
from synccli.audit.entries import DayLog
from synccli.audit.render import BOARD_COLUMNS, BOARD_FORMATS, board_json, board_table
from synccli.cli.common import db_option, examples, handle_errors, valid_date
from synccli.cli.output import format_option, note
from synccli.errors import EXIT_FAILED
from synccli.store import open_store


@click.command(
    "board",
    epilog=examples(
        "synccli board 2026-11-26",
        "synccli board 2026-11-26 --at 10:15",
        "synccli board 2026-11-26 --seq 120 -f json",
    ),
)
@click.argument("day", metavar="DATE", callback=valid_date)
@db_option()
@click.option(
    "--at",
    "at",
    default=None,
    help="The board as of this time: ISO 8601, UTC unless it has an offset; a time alone "
    "(10:15) is on DATE.",
)
@click.option(
    "--seq",
    type=click.IntRange(min=0),
    default=None,
    help="The board just after this sequence number (0: before the day's first event).",
)
@format_option(BOARD_FORMATS, "table or json.")
@handle_errors
def board(day: str, db_url: str, at: str | None, seq: int | None, fmt: str) -> None:
    """Show a day's board at a moment, from the log.

    The board of DATE (YYYY-MM-DD) at --at or --seq (default: the head), rebuilt from the
    log: each appointment as its last change up to then left it, or as it was before its
    first later change. At the head it is checked against the stored rows. This is a
    read-only look into the past; the live board, where states change, is the web page
    `synccli serve` serves at GET /.

    Exit codes: 0 shown (and, at the head, it matches the stored rows), 1 the log and the
    stored rows disagree, 2 usage error (also a time or sequence number the log cannot
    rebuild), 4 database unreachable.
    """
    if at is not None and seq is not None:
        raise click.UsageError("give --at or --seq, not both")
    moment = None if at is None else parse_moment(at, day)
    store = open_store(db_url)
    try:
        # At the head the whole day is read (the head check walks it); at a moment, only
        # the entries that decide that board.
        at_head = moment is None and seq is None
        log = store.day_log(day) if at_head else store.board_log(day, seq=seq, moment=moment)
        if log.channel is None and not log.rows:
            note(f"no board on {day}: no appointments and nothing written on that date")
            if fmt == "json":
                click.echo(board_json(day, rebuild(DayLog(day, None, log.rows, []), 0), 0, None))
            return
        target = target_seq(log, moment, seq)
        rebuilt = rebuild(log, target)
        if target == log.head and log.at is not None:
            log = store.day_log(day)  # the head check needs every entry
    finally:
        store.close()
    problems = check_head(log) if target == log.head else None
    if fmt == "json":
        click.echo(board_json(day, rebuilt, log.head, problems))
    else:
        when = f", committed {rebuilt.committed_at}" if rebuilt.committed_at else ""
        click.echo(f"{day} at sequence {target} of {log.head}{when}")
        click.echo(tabulate(board_table(rebuilt), headers=BOARD_COLUMNS))
    if problems:
        for problem in problems:
            note(problem)
        raise SystemExit(EXIT_FAILED)
    if problems is not None:
        note(f"matches the stored rows ({len(log.rows)} appointments)")
