"""``synccli serve``: run the sync server until SIGINT/SIGTERM."""

from __future__ import annotations

import dataclasses
import logging
import sys
from pathlib import Path

import click

from synccli.cli.common import db_option, handle_errors
from synccli.cli.secrets import read_pem, resolve_secret, secret_options
from synccli.errors import ConfigError
from synccli.injection import SERVER_BUGS, check_bugs
from synccli.server.app import SyncServer, run_server
from synccli.server.auth import install_redaction
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
@secret_options("token", "SYNCCLI_TOKEN", "single-user bearer token (header or ?token=)")
@secret_options("jwt-secret", "SYNCCLI_JWT_SECRET", "HS256 secret of per-user tokens")
@click.option(
    "--jwt-public-key",
    envvar="SYNCCLI_JWT_PUBLIC_KEY",
    type=click.Path(dir_okay=False, path_type=Path),
    help="PEM public key of per-user RS256/ES256 tokens.",
)
@click.option(
    "--tls-cert",
    envvar="SYNCCLI_TLS_CERT",
    type=click.Path(dir_okay=False, path_type=Path),
    help="PEM certificate chain: serve wss:// and https://.",
)
@click.option(
    "--tls-key",
    envvar="SYNCCLI_TLS_KEY",
    type=click.Path(dir_okay=False, path_type=Path),
    help="PEM private key of --tls-cert.",
)
@click.option(
    "--allowed-origin",
    "allowed_origins",
    envvar="SYNCCLI_ALLOWED_ORIGINS",
    multiple=True,
    metavar="ORIGIN",
    help="Browser origin allowed to connect besides the server's own (repeatable).",
)
@click.option(
    "--metrics-port",
    envvar="SYNCCLI_METRICS_PORT",
    type=click.IntRange(0, 65535),
    default=None,
    help="Serve /metrics and health details without a token on this port instead.",
)
@click.option(
    "--metrics-host",
    envvar="SYNCCLI_METRICS_HOST",
    default=DEFAULTS["metrics_host"],
    show_default=True,
    help="Interface of --metrics-port.",
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
@click.option(
    "--listen-fd",
    type=click.IntRange(min=3),
    hidden=True,
    help="Serve on this inherited listening socket instead of binding (the harness).",
)
@handle_errors
def serve(
    db_url: str,
    host: str,
    port: int,
    token: str | None,
    token_file: Path | None,
    jwt_secret: str | None,
    jwt_secret_file: Path | None,
    jwt_public_key: Path | None,
    tls_cert: Path | None,
    tls_key: Path | None,
    allowed_origins: tuple[str, ...],
    metrics_port: int | None,
    metrics_host: str,
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
    listen_fd: int | None,
) -> None:
    """Run the sync server: WebSocket endpoint /ws, GET /healthz and /metrics on one port.

    Creates or migrates the database schema at start. Stops cleanly on Ctrl+C or SIGTERM
    (a second Ctrl+C forces exit). Auth: --jwt-secret (per-user tokens, see `synccli
    token`) or --token; secrets also from files or the environment. Exit codes: 0 stopped,
    2 usage error (also an empty token or secret), 4 port in use or database unreachable.
    """
    try:
        check_bugs(inject_bugs, "server")
    except ConfigError as exc:
        raise click.BadParameter(str(exc), param_hint="--inject-bug") from None
    static = resolve_secret(token, token_file, "SYNCCLI_TOKEN", "token")
    secret = resolve_secret(jwt_secret, jwt_secret_file, "SYNCCLI_JWT_SECRET", "JWT secret")
    logging.basicConfig(
        level=log_level.upper(),
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    # Before anything logs: tokens never reach the log, at any level.
    install_redaction([s for s in (static.value, secret.value) if s])
    for given, option in ((static, "--token"), (secret, "--jwt-secret")):
        if given.on_command_line:
            logging.getLogger("synccli.serve").warning(
                "%s on the command line is visible to every user of this machine (ps); "
                "use %s-file or the environment instead",
                option,
                option,
            )
    if log_level != "debug":
        # websockets logs every HTTP probe and connection at INFO: noise for operators.
        logging.getLogger("websockets").setLevel(logging.WARNING)
    config = ServerConfig(
        db_url=db_url,
        host=host,
        port=port,
        token=static.value,
        jwt_secret=secret.value,
        jwt_public_key=read_pem(jwt_public_key, "JWT public key"),
        tls_cert=None if tls_cert is None else str(tls_cert),
        tls_key=None if tls_key is None else str(tls_key),
        allowed_origins=allowed_origins,
        metrics_port=metrics_port,
        metrics_host=metrics_host,
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
        listen_fd=listen_fd,
    )
    run_server(config, _announce)
