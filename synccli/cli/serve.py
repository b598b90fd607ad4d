"""``synccli serve``: run the sync server until SIGINT/SIGTERM.

Its options are ``ServerConfig``'s fields: ``SETTINGS`` names the ones a user may set (flag,
type, help); the name of each option is the field's, its default the field's default and its
environment variable ``SYNCCLI_`` + the flag, so options, config and docs cannot drift.
"""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import click

from synccli.cli.common import F, db_option, examples, handle_errors, option, token_option
from synccli.injection import SERVER_BUGS
from synccli.server.app import SyncServer, run_server
from synccli.server.config import ServerConfig
from synccli.server.logs import LEVELS, configure_logging
from synccli.store import redact_url

#: ``ServerConfig``'s defaults, so that the options cannot drift from the library's.
DEFAULTS = {f.name: f.default for f in dataclasses.fields(ServerConfig)}

_SECONDS = click.FloatRange(min=0, min_open=True)


@dataclass(frozen=True, slots=True)
class Setting:
    """One ``ServerConfig`` field as a ``serve`` option."""

    field: str
    flag: str
    type: click.ParamType[Any]
    help: str
    short: str | None = None
    #: Test hooks: not in ``--help``, no environment variable.
    hidden: bool = False

    @property
    def envvar(self) -> str | None:
        return None if self.hidden else "SYNCCLI_" + self.flag[2:].upper().replace("-", "_")

    def decorator(self) -> Callable[[F], F]:
        flags = (self.short, self.flag) if self.short else (self.flag,)
        multiple = isinstance(DEFAULTS[self.field], tuple)
        return option(
            *flags,
            self.field,
            type=self.type,
            default=DEFAULTS[self.field],
            show_default=not self.hidden,
            envvar=self.envvar,
            hidden=self.hidden,
            multiple=multiple,
            is_flag=self.type is click.BOOL,
            help=self.help,
        )


SETTINGS = (
    Setting("host", "--host", click.STRING, "Interface to listen on."),
    Setting(
        "port", "--port", click.IntRange(0, 65535), "Port to listen on (0 picks a free one).", "-p"
    ),
    Setting("heartbeat_s", "--heartbeat", _SECONDS, "Seconds between heartbeats."),
    Setting(
        "ack_timeout_s", "--ack-timeout", _SECONDS, "Seconds before an unacked event is re-sent."
    ),
    Setting(
        "max_retries",
        "--max-retries",
        click.IntRange(min=0),
        "Re-sends of an unacked event before the connection is closed (4000).",
    ),
    Setting(
        "send_queue",
        "--send-queue",
        click.IntRange(min=1),
        "Frames queued per connection before it is closed as too slow (4001).",
    ),
    Setting(
        "max_replay",
        "--max-replay",
        click.IntRange(min=1),
        "Most events replayed on a resume; further behind gets a snapshot.",
    ),
    Setting("retention_hours", "--retention", _SECONDS, "Hours of event log kept for resumes."),
    Setting(
        "db_timeout_s",
        "--db-timeout",
        _SECONDS,
        "Seconds a database call may take before it is answered as db_unavailable.",
    ),
    Setting(
        "fault_hooks",
        "--fault-hooks",
        click.BOOL,
        "Enable /_admin/db-fault and /_admin/reset-channel (tests only).",
        hidden=True,
    ),
    Setting(
        "inject_bugs",
        "--inject-bug",
        click.Choice(sorted(SERVER_BUGS)),
        "Misbehave on purpose for the harness self-test.",
        hidden=True,
    ),
    Setting("bug_seed", "--bug-seed", click.INT, "Seed of injected bugs.", hidden=True),
    Setting(
        "listen_fd",
        "--listen-fd",
        click.IntRange(min=3),
        "Serve on this inherited listening socket instead of binding (the harness).",
        hidden=True,
    ),
)


def server_options(func: F) -> F:
    """Every ``ServerConfig`` setting of ``SETTINGS`` as an option, plus ``--db`` and
    ``--token``; the command receives them as keyword arguments named after the fields."""
    for setting in reversed(SETTINGS):
        func = setting.decorator()(func)
    func = token_option("Require this bearer token (header or ?token=).")(func)
    return db_option()(func)


def _announce(server: SyncServer) -> None:
    """The one "listening" line, flushed: the harness waits for it."""
    sys.stdout.write(
        f"synccli serve: listening on {server.url} (db {redact_url(server.config.db_url)})\n"
    )
    sys.stdout.flush()


@click.command(
    "serve",
    epilog=examples(
        "synccli serve --db sqlite:///clinic.db",
        "synccli serve -p 0 --token s3cret --heartbeat 2",
        "SYNCCLI_DB='postgresql+pyodbc://postgres@127.0.0.1:5432/clinic"
        "?driver=PostgreSQL+Unicode' synccli serve",
    ),
)
@server_options
@option(
    "--log-level",
    envvar="SYNCCLI_LOG_LEVEL",
    type=click.Choice(LEVELS),
    default="info",
    show_default=True,
    help="Logging level (stderr).",
)
@handle_errors
def serve(log_level: str, **settings: Any) -> None:
    """Run the sync server.

    One port serves the WebSocket endpoint /ws, GET /healthz and GET /metrics. Creates or
    migrates the database schema at start. Stops cleanly on Ctrl+C or SIGTERM (a second
    Ctrl+C forces exit). Exit codes: 0 stopped, 2 usage error, 4 port in use or database
    unreachable.
    """
    configure_logging(log_level)
    run_server(ServerConfig(**settings), _announce)
