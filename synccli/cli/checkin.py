"""``synccli checkin``: an operator's state change through a running server."""

from __future__ import annotations

import asyncio
from pathlib import Path

import click

from synccli.cli.common import examples, handle_errors, option
from synccli.cli.secrets import resolve_secret, secret_options
from synccli.client.operator import update_state
from synccli.domain.states import STATES
from synccli.errors import EXIT_FAILED


@click.command(
    "checkin",
    epilog=examples(
        "synccli checkin 2026-11-26-0007",
        "synccli checkin 2026-11-26-0007 --state Dismissed -u ws://10.0.0.5:8765/ws",
        "synccli checkin 2026-11-26-0007 --expected-version 3 --request-id desk-1-42",
    ),
)
@click.argument("appointment_id")
@option(
    "--state",
    default="Present",
    show_default=True,
    type=click.Choice(STATES),
    help="The state to move the appointment to.",
)
@option(
    "-u",
    "--url",
    envvar="SYNCCLI_URL",
    default="ws://127.0.0.1:8765/ws",
    show_default=True,
    help="WebSocket URL of the sync server (wss:// with TLS).",
)
@secret_options("token", "SYNCCLI_TOKEN", "bearer token (static, or a signed one)")
@option(
    "--ca",
    "ca_file",
    envvar="SYNCCLI_CA",
    type=click.Path(exists=True, dir_okay=False),
    help="CA certificate to trust for a wss:// URL (a private CA or self-signed server).",
)
@option(
    "--expected-version",
    type=click.IntRange(min=0),
    default=None,
    help="Refuse the change (conflict) unless the row has this version.",
)
@option(
    "--request-id",
    default=None,
    help="Idempotency key; repeat it to retry safely (default: a new UUID).",
)
@option(
    "--timeout",
    type=click.FloatRange(min=0.1),
    default=10.0,
    show_default=True,
    help="Seconds to wait for the server's answer.",
)
@handle_errors
def checkin(
    appointment_id: str,
    state: str,
    url: str,
    token: str | None,
    token_file: Path | None,
    ca_file: str | None,
    expected_version: int | None,
    request_id: str | None,
    timeout: float,
) -> None:
    """Check a patient in, or change another state.

    Moves APPOINTMENT_ID to --state through the sync server at --url. Exit codes: 0 done,
    1 rejected (not_found, invalid_transition, conflict, forbidden, …), 2 usage error, wrong
    token or untrusted certificate (--ca), 4 server unreachable.
    """
    credential = resolve_secret(token, token_file, "SYNCCLI_TOKEN", "token")
    result = asyncio.run(
        update_state(
            url,
            appointment_id,
            state,
            token=credential.value,
            ca_file=ca_file,
            expected_version=expected_version,
            request_id=request_id,
            timeout=timeout,
        )
    )
    if result.ok and result.row is not None:
        row = result.row
        click.echo(
            f"{row.appointment_id}: {row.state} (version {row.version}, "
            f"sequence {row.date}#{result.seq}, request {result.request_id})"
        )
        return
    click.echo(f"Error: rejected ({result.error_code}): {result.error_message}", err=True)
    raise SystemExit(EXIT_FAILED)
