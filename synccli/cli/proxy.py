"""`synccli proxy` (not built yet)."""

import click


@click.command("proxy")
def proxy() -> None:
    """Not built yet."""
    raise click.ClickException("not built yet")
