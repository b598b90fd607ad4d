"""`synccli scenarios` (not built yet)."""

import click


@click.command("scenarios")
def scenarios() -> None:
    """Not built yet."""
    raise click.ClickException("not built yet")
