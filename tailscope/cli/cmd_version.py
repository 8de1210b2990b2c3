"""``tailscope version``."""

from __future__ import annotations

import typer

from tailscope import __version__
from tailscope.cli.app import app


@app.command()
def version() -> None:
    """Print the tailscope version and which OTLP readers are in use."""
    from tailscope.ingest.flat import reader_in_use

    typer.echo(f"tailscope {__version__}")
    typer.echo(f"OTLP/JSON reader: {reader_in_use('otlp-json')}")
    typer.echo(f"OTLP protobuf reader: {reader_in_use('otlp-proto')}")
