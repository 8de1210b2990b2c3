"""``tailscope version``."""

from __future__ import annotations

import typer

from tailscope import __version__
from tailscope.cli.app import app


@app.command()
def version() -> None:
    """Print the tailscope version and which OTLP readers are in use."""
    from tailscope.ingest.flat import native

    typer.echo(f"tailscope {__version__}")
    scanner = "native (C)" if native is not None else "pyarrow.json (native scanner not built)"
    typer.echo(f"OTLP/JSON Lines reader: {scanner}")
