"""`synccli serve` (not built yet)."""

import click


@click.command("serve")
def serve() -> None:
    """Not built yet."""
    raise click.ClickException("not built yet")
