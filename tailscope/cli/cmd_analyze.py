"""``tailscope analyze``: parse options, load inputs, run the pipeline, render the report."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from tailscope.cli.app import app
from tailscope.cli.options import InputFormatOpt, Inputs, Quiet, Strict
from tailscope.errors import UsageError
from tailscope.types import (
    DEFAULT_LARGE_TRACE_SPANS,
    DEFAULT_MIN_TAIL_REQUESTS,
    ENGINES,
    REPORT_FORMATS,
)

if TYPE_CHECKING:
    from tailscope.analysis.pipeline import AnalysisOptions
    from tailscope.report.model import Report

_SUFFIX_FORMAT = {".json": "json", ".md": "markdown", ".markdown": "markdown"}


def choose_format(requested: str | None, output: Path | None) -> str:
    """``--format`` if given; else from ``-o``'s suffix (.json, .md), else ``text``."""
    if requested is not None:
        if requested not in REPORT_FORMATS:
            raise UsageError(
                f"unknown --format {requested!r}; choose one of {', '.join(REPORT_FORMATS)}"
            )
        return requested
    if output is not None:
        return _SUFFIX_FORMAT.get(output.suffix.lower(), "text")
    return "text"


def _analyze_locally(
    inputs: list[str],
    input_format: str,
    strict: bool,
    quiet: bool,
    min_tail_requests: int,
    no_stalls: bool,
) -> Report:
    from tailscope.analysis.pipeline import AnalysisOptions, prepare_spans
    from tailscope.analysis.pipeline import analyze as run_analysis
    from tailscope.cli.inputs import load

    # No reference to the ingested Arrow table outlives prepare_spans: with release_memory its
    # memory goes back to the OS before the analyses allocate theirs.
    prepared = prepare_spans(load(inputs, input_format, strict, quiet))
    options = AnalysisOptions(
        min_tail_requests=min_tail_requests,
        detect_stalls=not no_stalls,
        keep_frames=False,
        release_memory=True,
    )
    return run_analysis(prepared, options).report


def _analyze_on_spark(
    inputs: list[str],
    options: AnalysisOptions,
    master: str | None,
    partitions: int | None,
    large_trace_spans: int,
) -> Report:
    from tailscope.spark.engine import SparkOptions, run_spark

    if len(inputs) != 1:
        raise UsageError("--engine spark reads one Parquet dataset (a directory or URI)")
    spark_options = SparkOptions(
        master=master, partitions=partitions, large_trace_spans=large_trace_spans
    )
    return run_spark(inputs[0], options, spark_options)


@app.command()
def analyze(
    inputs: Inputs,
    report_format: Annotated[
        str | None,
        typer.Option(
            "--format",
            "-f",
            help="text (rich tables), json (versioned, docs/report-schema.md) or markdown. "
            "Default: from -o's suffix (.json, .md), else text.",
            show_default=False,
        ),
    ] = None,
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", help="Write the report here instead of stdout."),
    ] = None,
    input_format: InputFormatOpt = "auto",
    strict: Strict = False,
    quiet: Quiet = False,
    min_tail_requests: Annotated[
        int,
        typer.Option(
            "--min-tail-requests",
            min=0,
            help="Floor: below this many requests above p99 a root's hops are not ranked "
            "(above it the 95% intervals decide whether the ranking is conclusive).",
        ),
    ] = DEFAULT_MIN_TAIL_REQUESTS,
    top: Annotated[
        int, typer.Option("--top", min=1, help="Rows per table in text and markdown.")
    ] = 10,
    no_stalls: Annotated[
        bool,
        typer.Option(
            "--no-stalls",
            help="Skip stop-the-world stall, cascade and runtime detection (those sections "
            "stay empty); percentiles, critical paths and hops only.",
        ),
    ] = False,
    engine: Annotated[
        str,
        typer.Option(
            "--engine",
            help="local (this process) or spark: run on a Spark cluster over a Parquet "
            "dataset written by convert --partition-by (needs tailscope[spark] and Java; "
            "docs/scale-out.md).",
        ),
    ] = "local",
    spark_master: Annotated[
        str | None,
        typer.Option(
            "--spark-master",
            help="Spark master for --engine spark, e.g. local[2] (default: spark-submit's).",
            show_default=False,
        ),
    ] = None,
    spark_partitions: Annotated[
        int | None,
        typer.Option(
            "--spark-partitions",
            min=1,
            help="Shuffle partitions for --engine spark (default: spark.sql.shuffle.partitions).",
            show_default=False,
        ),
    ] = None,
    spark_large_trace_spans: Annotated[
        int,
        typer.Option(
            "--spark-large-trace-spans",
            min=0,
            help="--engine spark: traces of more spans than this are analysed in a separate "
            "pass (0: one pass for all).",
        ),
    ] = DEFAULT_LARGE_TRACE_SPANS,
) -> None:
    """Per-operation percentiles, critical paths, and which hop owns each entry point's p99
    tail and variance; plus stop-the-world stalls and the timeouts they caused."""
    from tailscope.analysis.pipeline import AnalysisOptions
    from tailscope.render import RenderOptions, get_renderer

    name = choose_format(report_format, output)
    renderer = get_renderer(name)
    if engine not in ENGINES:
        raise UsageError(f"unknown --engine {engine!r}; choose one of {', '.join(ENGINES)}")
    if engine == "spark":
        report = _analyze_on_spark(
            inputs,
            AnalysisOptions(min_tail_requests=min_tail_requests, detect_stalls=not no_stalls),
            spark_master,
            spark_partitions,
            spark_large_trace_spans,
        )
    else:
        report = _analyze_locally(inputs, input_format, strict, quiet, min_tail_requests, no_stalls)
    to_terminal = output is None and sys.stdout.isatty()
    width = typer.get_terminal_size()[0] if to_terminal else 160
    text = renderer.render(
        report, RenderOptions(top=top, color=to_terminal and name == "text", width=width)
    )
    if output is None:
        sys.stdout.write(text)
        return
    try:
        output.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"cannot write {output}: {exc.strerror or exc}") from exc
    if not quiet:
        print(f"wrote {output} ({name})", file=sys.stderr)
