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
            help="Where to write the span table: a .parquet or .arrow file (a directory with "
            "--partition-by).",
            show_default=False,
        ),
    ] = None,
    input_format: InputFormatOpt = "auto",
    strict: Strict = False,
    quiet: Quiet = False,
    partition_by: Annotated[
        str | None,
        typer.Option(
            "--partition-by",
            help="Write a hive-partitioned Parquet dataset into the -o directory instead of "
            "one file: keys hour and/or bucket (hash of the trace id), e.g. hour,bucket; "
            "the input of analyze --engine spark (docs/scale-out.md).",
            show_default=False,
        ),
    ] = None,
    buckets: Annotated[
        int, typer.Option("--buckets", min=1, help="Trace-id buckets for --partition-by bucket.")
    ] = 16,
) -> None:
    """Convert trace exports to one span table (Parquet or Arrow IPC) that every command reads
    back without re-parsing. Bad records are skipped and counted (--strict: exit 2)."""
    from tailscope.cli.inputs import load, summary_line, write_parquet
    from tailscope.ingest import IngestResult, SpanBlocks
    from tailscope.ingest.arrow_io import table_format_for, write_table

    if output is None:
        raise UsageError("convert needs -o/--output FILE (.parquet or .arrow)")
    if partition_by is not None:
        from tailscope.spark.dataset import parse_partition_by, write_partitioned

        keys = parse_partition_by(partition_by)
        loaded = load(inputs, input_format, strict, quiet)
        write_partitioned(loaded.table, output, keys, buckets)
        result: IngestResult | SpanBlocks = loaded
    elif table_format_for(output) == "parquet":  # written while it is read
        result = write_parquet(inputs, output, input_format, strict, quiet)
    else:
        result = load(inputs, input_format, strict, quiet)
        write_table(result.table, output)
    if not quiet:
        print(f"wrote {output}: {summary_line(result)}", file=sys.stderr)
