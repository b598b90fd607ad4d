"""``synccli simulate``: run the server, simulated clients and faults, then check the history."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path
from typing import Any

import click

from synccli.cli.common import (
    Duration,
    F,
    complete_scenario,
    db_option,
    examples,
    handle_errors,
    option,
    threshold_option,
)
from synccli.cli.secrets import resolve_secret, secret_options
from synccli.errors import ConfigError, InfrastructureError
from synccli.harness.browsers import browsers_unavailable
from synccli.harness.run import RunConfig, RunOutcome, run_simulation
from synccli.harness.selection import is_builtin, scenario_for_run
from synccli.injection import CLIENT_BUGS, SERVER_BUGS, split_bugs
from synccli.report import render_table
from synccli.report.render import colour_wanted
from synccli.signals import stop_on_signals

#: ``synccli simulate``'s overrides of the scenario's load, named after ``Scenario``'s fields.
_OVERRIDES = (
    option(
        "-c",
        "--clients",
        envvar="SYNCCLI_CLIENTS",
        type=click.IntRange(1, 5000),
        help="Simulated clients [default: the scenario's; 10 for the default].",
    ),
    option("--writers", type=click.IntRange(0, 5000), help="How many clients also write."),
    option("--dates", type=click.IntRange(1, 31), help="How many dates (channels) to use."),
    option(
        "-d",
        "--duration",
        "duration_s",
        envvar="SYNCCLI_DURATION",
        type=Duration(0.5, 24 * 3600),
        help="Load time: seconds, or 30s, 2m, 1m30s; the default scenario's faults are "
        "fitted into it.",
    ),
    option("-r", "--rate", type=click.FloatRange(0, 10_000), help="Writes per second, in total."),
    option(
        "--seed",
        envvar="SYNCCLI_SEED",
        type=int,
        help="Seed for every random choice (recorded in the report).",
    ),
)


def scenario_overrides(func: F) -> F:
    """Every option of ``_OVERRIDES``; the command receives them as keyword arguments."""
    for decorator in reversed(_OVERRIDES):
        func = decorator(func)
    return func


@click.command(
    "simulate",
    epilog=examples(
        "synccli simulate -c 10 -d 15",
        "synccli simulate -s server-crash -t 'latency_ms.p99<800'",
        "synccli simulate -s ./my-scenario.toml -q -o reports/nightly",
        "SYNCCLI_CLIENTS=1000 synccli simulate --workers 2 --no-faults",
    ),
)
@scenario_overrides
@option(
    "-s",
    "--scenario",
    "scenario_ref",
    envvar="SYNCCLI_SCENARIO",
    shell_complete=complete_scenario,
    help="Scenario name (see `synccli scenarios list`) or TOML file [default: the built-in].",
)
@option("--no-faults", is_flag=True, help="Run without any fault.")
@threshold_option
@option(
    "-o",
    "--out",
    "out_dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Run folder [default: reports/<timestamp>-<scenario>].",
)
@option(
    "-u",
    "--url",
    help="Test an external server (ws:// or wss://HOST:PORT/ws) instead of starting one.",
)
@option(
    "--tls",
    is_flag=True,
    help="Serve wss:// with a throwaway self-signed certificate (implies --jwt).",
)
@option("--jwt", is_flag=True, help="Per-user signed tokens: one minted per client.")
@option(
    "--ca",
    "ca_file",
    type=click.Path(exists=True, dir_okay=False),
    help="CA certificate to trust for a wss:// --url.",
)
@db_option(
    default=None,
    help="Database URL for the embedded server [default: a fresh SQLite file in the run folder].",
)
@option(
    "--toxiproxy",
    "toxiproxy_url",
    envvar="TOXIPROXY_URL",
    help="Use a running Toxiproxy (http://HOST:8474) instead of the embedded proxy.",
)
@secret_options("token", "SYNCCLI_TOKEN", "bearer token of the server")
@option(
    "--workers",
    type=click.IntRange(1, 16),
    default=1,
    show_default=True,
    help="Processes to spread the clients over (for 1000+ clients).",
)
@option(
    "--nodes",
    type=click.IntRange(1, 9),
    help="Server processes on one database; 2+ adds a Redis bus and HAProxy (if installed)"
    " [default: the scenario's, else 1].",
)
@option(
    "--browsers",
    type=click.IntRange(0, 50),
    default=0,
    help="Also run N headless Chromium pages on the board as clients (needs chromium).",
)
@option("-q", "--quiet", is_flag=True, help="No live progress line.")
@option(
    "--inject-bug",
    "bugs",
    multiple=True,
    hidden=True,
    type=click.Choice(sorted(SERVER_BUGS | CLIENT_BUGS)),
)
@handle_errors
def simulate_command(
    scenario_ref: str | None,
    no_faults: bool,
    thresholds: tuple[str, ...],
    out_dir: Path | None,
    url: str | None,
    tls: bool,
    jwt: bool,
    ca_file: str | None,
    db_url: str | None,
    toxiproxy_url: str | None,
    token: str | None,
    token_file: Path | None,
    workers: int,
    nodes: int | None,
    browsers: int,
    quiet: bool,
    bugs: tuple[str, ...],
    **overrides: Any,
) -> None:
    """Run clients under faults and check them.

    Starts the sync server (or tests --url), runs the clients and the fault schedule, then
    checks every client's history against the database and prints the verdict. With no
    --scenario it runs the built-in default, fitted to --duration: client drop-outs and
    resets through the proxy and, where the machine allows it, real packet loss.
    --threshold overrides the scenario's thresholds for this run's gate.

    \b
    Exit codes: 0 pass, 1 fail, 2 usage error, 3 inconclusive,
    4 infrastructure error.
    """
    if browsers and (missing := browsers_unavailable()) is not None:
        raise InfrastructureError(missing)
    if url is not None and not url.startswith(("ws://", "wss://")):
        raise ConfigError(f"--url must be a WebSocket URL like ws://127.0.0.1:8765/ws, not {url!r}")
    if nodes is not None and nodes > 1 and url is not None:
        raise ConfigError("--nodes starts a cluster of embedded servers: leave out --url")
    if url is not None and (tls or jwt):
        raise ConfigError("--tls and --jwt set up the embedded server; with --url use --ca/--token")
    credential = resolve_secret(token, token_file, "SYNCCLI_TOKEN", "token")
    if credential.value is not None and (tls or jwt):
        raise ConfigError("--tls and --jwt mint their own tokens; leave --token out")
    scenario = scenario_for_run(
        scenario_ref,
        no_faults=no_faults,
        thresholds=thresholds,
        **overrides,
    )
    server_bugs, client_bugs = split_bugs(bugs)
    config = RunConfig(
        scenario=scenario,
        out_dir=out_dir,
        url=url,
        db_url=db_url,
        toxiproxy_url=toxiproxy_url,
        server_bugs=server_bugs,
        client_bugs=client_bugs,
        token=credential.value,
        tls=tls,
        jwt=jwt,
        ca_file=ca_file,
        workers=workers,
        nodes=nodes,
        browsers=browsers,
        progress=not quiet,
        builtin_default=is_builtin(scenario_ref),
    )
    outcome = asyncio.run(_run(config))
    _print_outcome(outcome)
    sys.exit(outcome.exit_code)


simulate = simulate_command


def _say(message: str) -> None:
    click.echo(message, err=True)


async def _run(config: RunConfig) -> RunOutcome:
    """Run with Ctrl+C wired: the first stops the run cleanly, a second forces exit."""
    stop = asyncio.Event()
    with stop_on_signals(
        stop,
        on_stop=lambda: _say(
            "\nstopping: healing faults and writing a partial report (Ctrl+C again to force)"
        ),
        on_force=lambda: _say("\nforced exit"),
    ):
        return await run_simulation(config, stop, say=_say)


def _print_outcome(outcome: RunOutcome) -> None:
    click.echo(render_table(outcome.summary, colour=colour_wanted(sys.stdout, os.environ)))
    click.echo(f"run folder: {outcome.run_dir}")
    if outcome.interrupted:
        click.echo("the run was interrupted: this is a partial report", err=True)
