"""`synccli checkin` (not built yet)."""

import click


@click.command("checkin")
def checkin() -> None:
    """Not built yet."""
    raise click.ClickException("not built yet")
