"""Option declarations shared by several commands (one place, one spelling)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

Inputs = Annotated[
    list[str],
    typer.Argument(
        help="Trace exports: files, directories or '-' for stdin. OTLP/JSON (object or JSON "
        "Lines), OTLP protobuf, Jaeger JSON, Zipkin JSON, Parquet/Arrow from 'convert'; .gz ok.",
        show_default=False,
    ),
]
InputFormatOpt = Annotated[
    str,
    typer.Option("--input-format", help="Force the input format instead of sniffing content."),
]
Strict = Annotated[
    bool,
    typer.Option("--strict", help="Fail (exit 2) on any malformed record instead of skipping it."),
]
Quiet = Annotated[bool, typer.Option("--quiet", "-q", help="No progress output.")]
OutputFile = Annotated[
    Path | None, typer.Option("--output", "-o", help="Write to this file instead of stdout.")
]
