"""The typer application object every command module registers on."""

from __future__ import annotations

import typer

app = typer.Typer(
    name="tailscope",
    help="Which hop owns the p99 tail, and did a stop-the-world pause start it? "
    "Reads OpenTelemetry (OTLP), Jaeger and Zipkin trace exports.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
)
