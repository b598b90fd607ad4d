"""`synccli report` (not built yet)."""

import click


@click.command("report")
def report() -> None:
    """Not built yet."""
    raise click.ClickException("not built yet")
