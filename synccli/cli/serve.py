"""``synccli serve``: run the sync server until SIGINT/SIGTERM.

Its options are ``ServerConfig``'s fields: ``SETTINGS`` names the ones a user may set (flag,
type, help); the name of each option is the field's, its default the field's default and its
environment variable ``SYNCCLI_`` + the flag, so options, config and docs cannot drift.
"""

from __future__ import annotations

import dataclasses
import logging
import resource
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click

from synccli.cli.common import F, db_option, examples, handle_errors, option
from synccli.cli.secrets import read_pem, resolve_secret, secret_options
from synccli.injection import SERVER_BUGS
from synccli.server.app import SyncServer, run_server
from synccli.server.auth import install_redaction
from synccli.server.config import ServerConfig
from synccli.server.logs import LEVELS, configure_logging
from synccli.server.loop import EVENT_LOOPS
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
    metavar: str | None = None
    #: The environment variable when it is not ``SYNCCLI_`` + the flag.
    env: str | None = None

    @property
    def envvar(self) -> str | None:
        if self.hidden:
            return None
        return self.env or "SYNCCLI_" + self.flag[2:].upper().replace("-", "_")

    def decorator(self) -> Callable[[F], F]:
        flags = (self.short, self.flag) if self.short else (self.flag,)
        default = DEFAULTS[self.field]
        multiple = isinstance(default, tuple)
        return option(
            *flags,
            self.field,
            type=self.type,
            default=default,
            show_default=not self.hidden and default not in (None, ()),
            metavar=self.metavar,
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
    Setting(
        "allowed_origins",
        "--allowed-origin",
        click.STRING,
        "Browser origin allowed to connect besides the server's own (repeatable).",
        metavar="ORIGIN",
        env="SYNCCLI_ALLOWED_ORIGINS",
    ),
    Setting(
        "metrics_port",
        "--metrics-port",
        click.IntRange(0, 65535),
        "Serve /metrics and health details without a token on this port instead.",
    ),
    Setting("metrics_host", "--metrics-host", click.STRING, "Interface of --metrics-port."),
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
    Setting(
        "send_queue_bytes",
        "--send-queue-bytes",
        click.IntRange(min=1),
        "Bytes queued per connection before it is closed as too slow (4001).",
    ),
    Setting(
        "max_unacked",
        "--max-unacked",
        click.IntRange(min=1),
        "Live events a connection may leave unacked before it is closed (4002).",
    ),
    Setting(
        "max_connections",
        "--max-connections",
        click.IntRange(min=1),
        "Open connections; more are refused with HTTP 503.",
    ),
    Setting(
        "backlog",
        "--backlog",
        click.IntRange(min=1),
        "Connections the kernel queues before the server accepts them (listen backlog).",
    ),
    Setting(
        "max_subscriptions",
        "--max-subscriptions",
        click.IntRange(min=1),
        "Dates one connection may subscribe to at once.",
    ),
    Setting(
        "message_rate",
        "--message-rate",
        _SECONDS,
        "Client messages per second per connection (then rate_limited; sustained: 1008).",
    ),
    Setting(
        "message_burst",
        "--message-burst",
        click.FloatRange(min=1),
        "Messages a connection may send at once above --message-rate.",
    ),
    Setting(
        "days_back",
        "--days-back",
        click.IntRange(min=0),
        "Oldest date served, in days before today.",
    ),
    Setting(
        "days_ahead",
        "--days-ahead",
        click.IntRange(min=0),
        "Latest date served, in days after today.",
    ),
    Setting("retention_hours", "--retention", _SECONDS, "Hours of event log kept for resumes."),
    Setting(
        "bus_url",
        "--bus",
        click.STRING,
        "Share events with other nodes on one database through this Redis.",
        metavar="redis://HOST:PORT/DB",
    ),
    Setting(
        "node_name",
        "--node-name",
        click.STRING,
        "Name this node in the X-Synccli-Node header of every WebSocket upgrade.",
        metavar="NAME",
    ),
    Setting(
        "bus_safety_poll_s",
        "--bus-safety-poll",
        _SECONDS,
        "With the bus up and a peer silent, seconds between the relay's polls of the database.",
    ),
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
    Setting(
        "event_loop",
        "--event-loop",
        click.Choice(EVENT_LOOPS),
        "Event loop: asyncio's, uvloop (pip install 'synccli[fast]'), or auto (uvloop if there).",
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
    """Every ``ServerConfig`` setting of ``SETTINGS`` as an option, plus ``--db``; the
    command receives them as keyword arguments named after the fields."""
    for setting in reversed(SETTINGS):
        func = setting.decorator()(func)
    return db_option()(func)


def _path_option(flag: str, help: str) -> Callable[[F], F]:
    envvar = "SYNCCLI_" + flag[2:].upper().replace("-", "_")
    return option(flag, envvar=envvar, type=click.Path(dir_okay=False, path_type=Path), help=help)


def auth_options(func: F) -> F:
    """The secrets (``--token``, ``--jwt-secret``, each also ``--…-file`` or the
    environment), the JWT public key and the TLS certificate and key: files or secrets that
    are read before they become ``ServerConfig`` fields (``auth_settings``)."""
    for decorator in reversed(
        (
            secret_options(
                "token", "SYNCCLI_TOKEN", "single-user bearer token (header or ?token=)"
            ),
            secret_options("jwt-secret", "SYNCCLI_JWT_SECRET", "HS256 secret of per-user tokens"),
            _path_option("--jwt-public-key", "PEM public key of per-user RS256/ES256 tokens."),
            _path_option("--tls-cert", "PEM certificate chain: serve wss:// and https://."),
            _path_option("--tls-key", "PEM private key of --tls-cert."),
        )
    ):
        func = decorator(func)
    return func


#: The parameters of ``auth_options``, in ``auth_settings``' order.
AUTH_PARAMS = (
    "token",
    "token_file",
    "jwt_secret",
    "jwt_secret_file",
    "jwt_public_key",
    "tls_cert",
    "tls_key",
)


def auth_settings(
    token: str | None,
    token_file: Path | None,
    jwt_secret: str | None,
    jwt_secret_file: Path | None,
    jwt_public_key: Path | None,
    tls_cert: Path | None,
    tls_key: Path | None,
) -> dict[str, Any]:
    """The ``ServerConfig`` fields of ``auth_options``. Installs the log redaction of the
    secrets before anything logs, and warns about a secret given on the command line."""
    static = resolve_secret(token, token_file, "SYNCCLI_TOKEN", "token")
    secret = resolve_secret(jwt_secret, jwt_secret_file, "SYNCCLI_JWT_SECRET", "JWT secret")
    install_redaction([s for s in (static.value, secret.value) if s])
    for given, flag in ((static, "--token"), (secret, "--jwt-secret")):
        if given.on_command_line:
            logging.getLogger("synccli.serve").warning(
                "%s on the command line is visible to every user of this machine (ps); "
                "use %s-file or the environment instead",
                flag,
                flag,
            )
    return {
        "token": static.value,
        "jwt_secret": secret.value,
        "jwt_public_key": read_pem(jwt_public_key, "JWT public key"),
        "tls_cert": None if tls_cert is None else str(tls_cert),
        "tls_key": None if tls_key is None else str(tls_key),
    }


#: Descriptors the server needs besides its connections (listeners, database, logs).
SPARE_DESCRIPTORS = 64


def _check_descriptors(max_connections: int) -> None:
    """Warn when the descriptor limit is below what ``max_connections`` needs: accept()
    would fail (EMFILE) before the 503 of the connection limit could answer."""
    soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < max_connections + SPARE_DESCRIPTORS:
        logging.getLogger("synccli.serve").warning(
            "the file descriptor limit (%d) is below --max-connections (%d) + %d; "
            "raise it (ulimit -n) or lower --max-connections",
            soft,
            max_connections,
            SPARE_DESCRIPTORS,
        )


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
        "synccli serve -p 0 --token-file /run/secrets/sync-token --heartbeat 2",
        "SYNCCLI_DB='postgresql+pyodbc://postgres@127.0.0.1:5432/clinic"
        "?driver=PostgreSQL+Unicode' synccli serve",
    ),
)
@server_options
@auth_options
@option(
    "--log-level",
    envvar="SYNCCLI_LOG_LEVEL",
    type=click.Choice(LEVELS),
    default="info",
    show_default=True,
    help="Logging level (stderr).",
)
@handle_errors
def serve(log_level: str, **options: Any) -> None:
    """Run the sync server.

    One port serves the WebSocket endpoint /ws, GET /livez, /readyz (/healthz) and
    /metrics; every resource a client can use is limited (docs/security.md). Creates or
    migrates the database schema at start. Stops cleanly on Ctrl+C or SIGTERM (a second
    Ctrl+C forces exit). Auth: --jwt-secret (per-user tokens, see `synccli token`) or
    --token; secrets also from files or the environment. Exit codes: 0 stopped, 2 usage
    error (also an empty token or secret), 4 port in use, database or bus unreachable.
    """
    configure_logging(log_level)  # one line a second per kind (EMFILE accept() floods)
    auth = auth_settings(**{name: options.pop(name) for name in AUTH_PARAMS})
    config = ServerConfig(**options, **auth)
    _check_descriptors(config.max_connections)
    run_server(config, _announce)
