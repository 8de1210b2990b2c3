"""``tailscope convert``: read trace exports once, write the span table as Parquet or Arrow."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from tailscope.cli.app import app
from tailscope.cli.options import InputFormatOpt, Inputs, Quiet, Strict
from tailscope.errors import UsageError


@app.command()
def convert(
    inputs: Inputs,
    output: Annotated[
        Path | None,
        typer.Option(
            "--output",
            "-o",
            help="Where to write the span table: a .parquet or .arrow file.",
            show_default=False,
        ),
    ] = None,
    input_format: InputFormatOpt = "auto",
    strict: Strict = False,
    quiet: Quiet = False,
) -> None:
    """Convert trace exports to one span table (Parquet or Arrow IPC) that every command reads
    back without re-parsing. Bad records are skipped and counted (--strict: exit 2)."""
    from tailscope.cli.inputs import load, summary_line
    from tailscope.ingest.arrow_io import table_format_for, write_table

    if output is None:
        raise UsageError("convert needs -o/--output FILE (.parquet or .arrow)")
    table_format_for(output)
    result = load(inputs, input_format, strict, quiet)
    write_table(result.table, output)
    if not quiet:
        print(f"wrote {output}: {summary_line(result)}", file=sys.stderr)
