"""`synccli simulate` (not built yet)."""

import click


@click.command("simulate")
def simulate() -> None:
    """Not built yet."""
    raise click.ClickException("not built yet")
