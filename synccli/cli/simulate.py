"""``synccli simulate``: run the server, simulated clients and faults, then check the history."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import signal
import sys
from pathlib import Path
from typing import Any

import click

from synccli.cli.common import Duration, handle_errors
from synccli.cli.secrets import resolve_secret, secret_options
from synccli.errors import ConfigError
from synccli.harness.run import RunConfig, RunOutcome, run_simulation
from synccli.harness.scenario import default_scenario, find_scenario
from synccli.injection import CLIENT_BUGS, SERVER_BUGS, split_bugs
from synccli.report import render_table
from synccli.report.render import colour_wanted


@click.command("simulate")
@click.option("--clients", type=click.IntRange(1, 5000), help="Simulated clients [default: 10].")
@click.option("--writers", type=click.IntRange(0, 5000), help="How many clients also write.")
@click.option("--dates", type=click.IntRange(1, 31), help="How many dates (channels) to use.")
@click.option(
    "--duration", type=Duration(0.5, 24 * 3600), help="Load time: seconds, or 30s, 2m, 1m30s."
)
@click.option("--rate", type=click.FloatRange(0, 10_000), help="Writes per second, in total.")
@click.option("--seed", type=int, help="Seed for every random choice (recorded in the report).")
@click.option(
    "--scenario", "scenario_ref", help="Scenario name (see `synccli scenarios list`) or TOML file."
)
@click.option("--no-faults", is_flag=True, help="Run without any fault.")
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Run folder [default: reports/<timestamp>-<scenario>].",
)
@click.option(
    "--url", help="Test an external server (ws:// or wss://HOST:PORT/ws) instead of starting one."
)
@click.option(
    "--tls",
    is_flag=True,
    help="Serve wss:// with a throwaway self-signed certificate (implies --jwt).",
)
@click.option("--jwt", is_flag=True, help="Per-user signed tokens: one minted per client.")
@click.option(
    "--ca",
    "ca_file",
    type=click.Path(exists=True, dir_okay=False),
    help="CA certificate to trust for a wss:// --url.",
)
@click.option(
    "--db",
    "db_url",
    envvar="SYNCCLI_DB",
    help="Database URL for the embedded server [default: a fresh SQLite file in the run folder].",
)
@click.option(
    "--toxiproxy",
    "toxiproxy_url",
    envvar="TOXIPROXY_URL",
    help="Use a running Toxiproxy (http://HOST:8474) instead of the embedded proxy.",
)
@secret_options("token", "SYNCCLI_TOKEN", "bearer token of the server")
@click.option(
    "--workers",
    type=click.IntRange(1, 16),
    default=1,
    show_default=True,
    help="Processes to spread the clients over (for 1000+ clients).",
)
@click.option("--quiet", is_flag=True, help="No live progress line.")
@click.option(
    "--inject-bug",
    "bugs",
    multiple=True,
    hidden=True,
    type=click.Choice(sorted(SERVER_BUGS | CLIENT_BUGS)),
)
@handle_errors
def simulate_command(
    clients: int | None,
    writers: int | None,
    dates: int | None,
    duration: float | None,
    rate: float | None,
    seed: int | None,
    scenario_ref: str | None,
    no_faults: bool,
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
    quiet: bool,
    bugs: tuple[str, ...],
) -> None:
    """Run N simulated clients against the sync server under faults, then check every
    client's history against the database and print the verdict.

    With no --scenario it runs the built-in default: client disconnections through the
    proxy and, where the machine allows it, real packet loss. Exit codes: 0 pass, 1 fail,
    2 usage error, 3 inconclusive, 4 infrastructure error.
    """
    if url is not None and not url.startswith(("ws://", "wss://")):
        raise ConfigError(f"--url must be a WebSocket URL like ws://127.0.0.1:8765/ws, not {url!r}")
    if url is not None and (tls or jwt):
        raise ConfigError("--tls and --jwt set up the embedded server; with --url use --ca/--token")
    credential = resolve_secret(token, token_file, "SYNCCLI_TOKEN", "token")
    if credential.value is not None and (tls or jwt):
        raise ConfigError("--tls and --jwt mint their own tokens; leave --token out")
    # The options apply over the file before it is validated: what they set need not be
    # valid in the file alone (a late fault with a longer --duration).
    overrides: dict[str, Any] = {
        "clients": clients,
        "writers": writers,
        "dates": dates,
        "duration_s": duration,
        "rate": rate,
        "seed": seed,
        "faults": () if no_faults else None,
    }
    scenario = (
        find_scenario(scenario_ref, **overrides)
        if scenario_ref
        else default_scenario(clients or 10).with_overrides(**overrides)
    )
    if no_faults:
        # Named for what ran: `default-no-faults` is not the default scenario.
        scenario = dataclasses.replace(scenario, name=f"{scenario.name}-no-faults")
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
        progress=not quiet,
        builtin_default=scenario_ref is None,
    )
    outcome = asyncio.run(_run(config))
    _print_outcome(outcome)
    sys.exit(outcome.exit_code)


simulate = simulate_command


async def _run(config: RunConfig) -> RunOutcome:
    """Run with Ctrl+C wired: the first stops the run cleanly, a second forces exit."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()

    def on_signal() -> None:
        if stop.is_set():
            click.echo("\nforced exit", err=True)
            os._exit(130)
        stop.set()
        click.echo(
            "\nstopping: healing faults and writing a partial report (Ctrl+C again to force)",
            err=True,
        )

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, on_signal)
    try:
        return await run_simulation(config, stop, say=lambda m: click.echo(m, err=True))
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)


def _print_outcome(outcome: RunOutcome) -> None:
    click.echo(render_table(outcome.summary, colour=colour_wanted(sys.stdout, os.environ)))
    click.echo(f"run folder: {outcome.run_dir}")
    if outcome.interrupted:
        click.echo("the run was interrupted: this is a partial report", err=True)
