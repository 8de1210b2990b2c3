"""``tailscope version``."""

from __future__ import annotations

import typer

from tailscope import __version__
from tailscope.cli.app import app


@app.command()
def version() -> None:
    """Print the tailscope version."""
    typer.echo(f"tailscope {__version__}")
