"""`synccli db` (not built yet)."""

import click


@click.command("db")
def db() -> None:
    """Not built yet."""
    raise click.ClickException("not built yet")
