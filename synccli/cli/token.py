"""``synccli token``: mint a signed per-user token for the server's ``--jwt-secret``."""

from __future__ import annotations

from pathlib import Path

import click

from synccli.cli.common import examples, handle_errors
from synccli.cli.secrets import read_pem, resolve_secret, secret_options
from synccli.errors import ConfigError
from synccli.tokens import HMAC_ALGORITHM, PUBLIC_KEY_ALGORITHMS, mint_token, parse_ttl


def split_channels(values: tuple[str, ...]) -> list[str]:
    """``--channels`` values, each possibly a comma-separated list."""
    return [part.strip() for value in values for part in value.split(",") if part.strip()]


@click.command(
    "token",
    epilog=examples(
        "synccli token --sub desk-1 --channels 2026-11-26 --write",
        "SYNCCLI_JWT_SECRET=… synccli token --sub board-3 --channels '2026-11-*' --ttl 12h",
        "synccli token --sub ops --channels '*' --jwt-private-key signing.pem",
    ),
)
@click.option("--sub", required=True, help="The user: recorded as the actor of every write.")
@click.option(
    "--channels",
    multiple=True,
    required=True,
    help="Date patterns the token may read: 2026-11-26, 2026-11-*, * (repeatable or a,b).",
)
@click.option("--write", is_flag=True, help="Allow writes to those dates (check-ins).")
@click.option("--ttl", default="8h", show_default=True, help="Lifetime: 90s, 15m, 8h, 7d.")
@secret_options("jwt-secret", "SYNCCLI_JWT_SECRET", "HS256 secret the server verifies with")
@click.option(
    "--jwt-private-key",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Sign with this PEM private key instead (the server has --jwt-public-key).",
)
@click.option(
    "--algorithm",
    type=click.Choice(PUBLIC_KEY_ALGORITHMS),
    default=PUBLIC_KEY_ALGORITHMS[0],
    show_default=True,
    help="Algorithm of --jwt-private-key.",
)
@handle_errors
def token(
    sub: str,
    channels: tuple[str, ...],
    write: bool,
    ttl: str,
    jwt_secret: str | None,
    jwt_secret_file: Path | None,
    jwt_private_key: Path | None,
    algorithm: str,
) -> None:
    """Mint a signed per-user token.

    Prints a token for --sub that reads --channels (and writes them with --write), valid
    for --ttl. The secret comes from --jwt-secret-file, $SYNCCLI_JWT_SECRET or
    --jwt-secret. Exit codes: 0 printed, 2 usage error."""
    private = read_pem(jwt_private_key, "JWT private key")
    secret = resolve_secret(jwt_secret, jwt_secret_file, "SYNCCLI_JWT_SECRET", "JWT secret")
    if (private is None) == (secret.value is None):
        raise ConfigError("give either the JWT secret or --jwt-private-key (exactly one)")
    key, alg = (secret.value, HMAC_ALGORITHM) if private is None else (private, algorithm)
    assert key is not None
    click.echo(mint_token(key, sub, split_channels(channels), write, parse_ttl(ttl), alg))
