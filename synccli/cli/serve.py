"""``synccli serve``: run the sync server until SIGINT/SIGTERM."""

from __future__ import annotations

import dataclasses
import logging
import sys

import click

from synccli.cli.common import db_option, handle_errors
from synccli.errors import ConfigError
from synccli.injection import SERVER_BUGS, check_bugs
from synccli.server.app import SyncServer, run_server
from synccli.server.config import ServerConfig
from synccli.store import redact_url

#: ``ServerConfig``'s defaults, so that the options cannot drift from the library's.
DEFAULTS = {f.name: f.default for f in dataclasses.fields(ServerConfig)}


def _announce(server: SyncServer) -> None:
    """The one "listening" line, flushed: the harness waits for it."""
    sys.stdout.write(
        f"synccli serve: listening on {server.url} (db {redact_url(server.config.db_url)})\n"
    )
    sys.stdout.flush()


@click.command("serve")
@db_option
@click.option(
    "--host",
    envvar="SYNCCLI_HOST",
    default=DEFAULTS["host"],
    show_default=True,
    help="Interface to listen on.",
)
@click.option(
    "--port",
    envvar="SYNCCLI_PORT",
    type=click.IntRange(0, 65535),
    default=DEFAULTS["port"],
    show_default=True,
    help="Port to listen on (0 picks a free one).",
)
@click.option(
    "--token",
    envvar="SYNCCLI_TOKEN",
    default=None,
    help="Require this bearer token (header or ?token=).",
)
@click.option(
    "--heartbeat",
    envvar="SYNCCLI_HEARTBEAT",
    type=click.FloatRange(min=0, min_open=True),
    default=DEFAULTS["heartbeat_s"],
    show_default=True,
    help="Seconds between heartbeats.",
)
@click.option(
    "--ack-timeout",
    envvar="SYNCCLI_ACK_TIMEOUT",
    type=click.FloatRange(min=0, min_open=True),
    default=DEFAULTS["ack_timeout_s"],
    show_default=True,
    help="Seconds before an unacked event is re-sent.",
)
@click.option(
    "--max-retries",
    envvar="SYNCCLI_MAX_RETRIES",
    type=click.IntRange(min=0),
    default=DEFAULTS["max_retries"],
    show_default=True,
    help="Re-sends of an unacked event before the connection is closed (4000).",
)
@click.option(
    "--send-queue",
    envvar="SYNCCLI_SEND_QUEUE",
    type=click.IntRange(min=1),
    default=DEFAULTS["send_queue"],
    show_default=True,
    help="Frames queued per connection before it is closed as too slow (4001).",
)
@click.option(
    "--max-replay",
    envvar="SYNCCLI_MAX_REPLAY",
    type=click.IntRange(min=1),
    default=DEFAULTS["max_replay"],
    show_default=True,
    help="Most events replayed on a resume; further behind gets a snapshot.",
)
@click.option(
    "--retention",
    envvar="SYNCCLI_RETENTION",
    type=click.FloatRange(min=0, min_open=True),
    default=DEFAULTS["retention_hours"],
    show_default=True,
    help="Hours of event log kept for resumes.",
)
@click.option(
    "--db-timeout",
    envvar="SYNCCLI_DB_TIMEOUT",
    type=click.FloatRange(min=0, min_open=True),
    default=DEFAULTS["db_timeout_s"],
    show_default=True,
    help="Seconds a database call may take before it is answered as db_unavailable.",
)
@click.option(
    "--log-level",
    envvar="SYNCCLI_LOG_LEVEL",
    type=click.Choice(["debug", "info", "warning", "error"]),
    default="info",
    show_default=True,
    help="Logging level (stderr).",
)
@click.option(
    "--fault-hooks",
    is_flag=True,
    hidden=True,
    help="Enable /_admin/db-fault and /_admin/reset-channel (tests only).",
)
@click.option(
    "--inject-bug",
    "inject_bugs",
    multiple=True,
    hidden=True,
    metavar="NAME",
    help=f"Misbehave on purpose for the harness self-test: {', '.join(sorted(SERVER_BUGS))}.",
)
@click.option("--bug-seed", type=int, default=0, hidden=True, help="Seed of injected bugs.")
@handle_errors
def serve(
    db_url: str,
    host: str,
    port: int,
    token: str | None,
    heartbeat: float,
    ack_timeout: float,
    max_retries: int,
    send_queue: int,
    max_replay: int,
    retention: float,
    db_timeout: float,
    log_level: str,
    fault_hooks: bool,
    inject_bugs: tuple[str, ...],
    bug_seed: int,
) -> None:
    """Run the sync server: WebSocket endpoint /ws, GET /healthz and /metrics on one port.

    Creates or migrates the database schema at start. Stops cleanly on Ctrl+C or SIGTERM
    (a second Ctrl+C forces exit). Exit codes: 0 stopped, 2 usage error, 4 port in use or
    database unreachable.
    """
    try:
        check_bugs(inject_bugs, "server")
    except ConfigError as exc:
        raise click.BadParameter(str(exc), param_hint="--inject-bug") from None
    logging.basicConfig(
        level=log_level.upper(),
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if log_level != "debug":
        # websockets logs every HTTP probe and connection at INFO: noise for operators.
        logging.getLogger("websockets").setLevel(logging.WARNING)
    config = ServerConfig(
        db_url=db_url,
        host=host,
        port=port,
        token=token or None,
        heartbeat_s=heartbeat,
        ack_timeout_s=ack_timeout,
        max_retries=max_retries,
        send_queue=send_queue,
        max_replay=max_replay,
        retention_hours=retention,
        db_timeout_s=db_timeout,
        fault_hooks=fault_hooks,
        inject_bugs=inject_bugs,
        bug_seed=bug_seed,
    )
    run_server(config, _announce)
