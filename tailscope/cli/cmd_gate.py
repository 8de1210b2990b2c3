"""``tailscope gate``: fail CI when a tail quantile regressed against a baseline, soundly.

Thin: read the inputs, summarise them into histograms, evaluate against the baseline file under
the policy the options describe, render, then exit 1 (FindingsOverThreshold) on a failed gate.
The Markdown rendering is appended to ``$GITHUB_STEP_SUMMARY`` whenever that variable is set.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated

import typer

from tailscope.cli.app import app
from tailscope.cli.options import InputFormatOpt, Inputs, Quiet
from tailscope.errors import FindingsOverThreshold, UsageError
from tailscope.types import GATE_FORMATS


@app.command()
def gate(
    inputs: Inputs,
    baseline: Annotated[
        Path,
        typer.Option("--baseline", "-b", help="Baseline file from 'tailscope baseline'."),
    ],
    quantile: Annotated[
        list[float] | None,
        typer.Option("--quantile", help="Quantile to gate, 0..1 (repeatable; default 0.99)."),
    ] = None,
    max_increase_pct: Annotated[
        float | None,
        typer.Option(
            "--max-increase-pct",
            help="Allowed increase of the quantile, percent (default 10 when neither "
            "--max-increase-pct nor --max-increase-ms is given).",
            show_default=False,
        ),
    ] = None,
    max_increase_ms: Annotated[
        float | None,
        typer.Option(
            "--max-increase-ms",
            help="Allowed increase, milliseconds. With both limits a regression must exceed both.",
            show_default=False,
        ),
    ] = None,
    confidence: Annotated[
        float, typer.Option("--confidence", help="Confidence of the change interval.")
    ] = 0.95,
    min_samples: Annotated[
        int,
        typer.Option("--min-samples", help="Fewer samples on either side: inconclusive."),
    ] = 0,
    operations: Annotated[
        list[str] | None,
        typer.Option(
            "--operations",
            help="Glob over 'service/operation' (repeatable; default: the root operations).",
            show_default=False,
        ),
    ] = None,
    fail_on_stalls: Annotated[
        int | None,
        typer.Option(
            "--fail-on-stalls",
            help="Also fail when more than N stop-the-world stalls are detected.",
            show_default=False,
        ),
    ] = None,
    fail_on_cascades: Annotated[
        int | None,
        typer.Option(
            "--fail-on-cascades",
            help="Also fail when more than N timeout/retry cascades are detected.",
            show_default=False,
        ),
    ] = None,
    output_format: Annotated[
        str,
        typer.Option("--format", "-f", help=f"Output format: {', '.join(GATE_FORMATS)}."),
    ] = "text",
    output: Annotated[
        Path | None,
        typer.Option(
            "--output",
            "-o",
            help="Write the report here (the text table still goes to stdout).",
            show_default=False,
        ),
    ] = None,
    label: Annotated[
        str | None, typer.Option("--label", help="Name of this run, e.g. the git sha.")
    ] = None,
    strict: Annotated[
        bool,
        typer.Option("--strict", help="Inconclusive operations fail the gate."),
    ] = False,
    strict_input: Annotated[
        bool,
        typer.Option(
            "--strict-input",
            help="Fail (exit 2) on any malformed input record instead of skipping it.",
        ),
    ] = False,
    input_format: InputFormatOpt = "auto",
    quiet: Quiet = False,
) -> None:
    """Gate on tail-latency regressions against a baseline (exit 0 pass, 1 regression, 2 error).

    Each quantile is a Harrell-Davis estimate with its Maritz-Jarrett standard error; the
    change gets a two-sided interval at --confidence.

    An operation fails only when the whole interval of the change is beyond the allowed increase.

    Too few samples for an interval: inconclusive, which passes unless --strict.

    Example: [bold]tailscope gate traces/ -b baseline.json --format junit -o gate.xml[/bold]
    """
    from tailscope import __version__
    from tailscope.analysis.pipeline import prepare_spans
    from tailscope.cli.cmd_baseline import read_baseline_file, utc_now_iso
    from tailscope.cli.inputs import load, summary_line
    from tailscope.gate.run import gate as gate_run
    from tailscope.render.gate import render_gate
    from tailscope.report.model import GatePolicy

    if output_format not in GATE_FORMATS:
        raise UsageError(
            f"unknown --format {output_format!r}; choose one of {', '.join(GATE_FORMATS)}"
        )
    for name, limit in (
        ("--fail-on-stalls", fail_on_stalls),
        ("--fail-on-cascades", fail_on_cascades),
    ):
        if limit is not None and limit < 0:
            raise UsageError(f"{name} must be >= 0, got {limit}")
    pct = max_increase_pct
    if pct is None and max_increase_ms is None:
        pct = 10.0
    policy = GatePolicy(
        quantiles=tuple(dict.fromkeys(quantile)) if quantile else (0.99,),
        max_increase_pct=pct,
        max_increase_ms=max_increase_ms,
        confidence=confidence,
        min_samples=min_samples,
        operations=tuple(dict.fromkeys(operations or ())),
        strict=strict,
    )
    reference = read_baseline_file(baseline)
    result = load(inputs, input_format, strict_input, quiet)
    if not quiet:
        print(summary_line(result), file=sys.stderr)
    verdict = gate_run(
        prepare_spans(result),
        reference,
        policy,
        created=utc_now_iso(),
        tailscope_version=__version__,
        label=label,
        inputs=result.stats.files,
        max_stalls=fail_on_stalls,
        max_cascades=fail_on_cascades,
    )

    rendered = render_gate(verdict, output_format)
    if output is None:
        sys.stdout.write(rendered)
    else:
        try:
            output.write_text(rendered, encoding="utf-8")
        except OSError as exc:
            raise UsageError(f"cannot write {output}: {exc.strerror or exc}") from None
        sys.stdout.write(render_gate(verdict, "text") if output_format != "text" else rendered)
    sys.stdout.flush()
    summary_file = os.environ.get("GITHUB_STEP_SUMMARY")
    if summary_file:
        try:
            with open(summary_file, "a", encoding="utf-8") as handle:
                handle.write(render_gate(verdict, "markdown") + "\n")
        except OSError as exc:
            print(
                f"tailscope: warning: cannot append to $GITHUB_STEP_SUMMARY: {exc}",
                file=sys.stderr,
            )
    if verdict.failed:
        raise FindingsOverThreshold(f"gate {verdict.summary()}")
