"""``tailscope generate``: simulated traces with ground truth (see ``docs/scenarios.md``)."""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Annotated

import typer

from tailscope.cli.app import app
from tailscope.cli.options import Quiet
from tailscope.errors import UsageError

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$")
_UNIT_S = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
_SUFFIX_FORMAT = {".parquet": "parquet", ".pb": "otlp-proto", ".binpb": "otlp-proto"}


def parse_duration_s(text: str) -> float:
    """``"60s"``, ``"5m"``, ``"1h"``, ``"500ms"`` or plain seconds → seconds."""
    match = _DURATION.match(text)
    if not match or float(match.group(1)) <= 0:
        raise UsageError(
            f"--duration: expected a positive duration like 60s, 5m or 1h, got {text!r}"
        )
    return float(match.group(1)) * _UNIT_S[match.group(2) or "s"]


def _format_for(output: Path, requested: str | None) -> str:
    if requested is not None:
        return requested
    name = output.name.lower().removesuffix(".gz")
    return next((f for sfx, f in _SUFFIX_FORMAT.items() if name.endswith(sfx)), "otlp-json")


@app.command()
def generate(
    scenario: Annotated[
        str,
        typer.Argument(
            help="A built-in scenario (checkout, gc-cascade, steady, slow-dependency) or a "
            "scenario file (.toml, .yaml).",
            show_default=False,
        ),
    ],
    output: Annotated[
        Path | None,
        typer.Option(
            "--output",
            "-o",
            help="Trace file to write (.jsonl, .jsonl.gz, .pb, .pb.gz, .parquet).",
            show_default=False,
        ),
    ] = None,
    seed: Annotated[int, typer.Option("--seed", help="Same seed, same bytes.")] = 1,
    spans: Annotated[
        int | None, typer.Option("--spans", help="Stop after about this many spans.")
    ] = None,
    requests: Annotated[
        int | None, typer.Option("--requests", help="Simulate this many requests.")
    ] = None,
    duration: Annotated[
        str | None,
        typer.Option("--duration", help="Simulate arrivals for this long (60s, 5m, 1h)."),
    ] = None,
    output_format: Annotated[
        str | None,
        typer.Option(
            "--format",
            help="otlp-json (JSON Lines), otlp-proto (length-prefixed) or parquet. "
            "Default: from the output file name, else otlp-json.",
            show_default=False,
        ),
    ] = None,
    truth: Annotated[
        Path | None,
        typer.Option(
            "--truth", help="Also write the ground truth (truth.json).", show_default=False
        ),
    ] = None,
    clock_skew_ms: Annotated[
        float | None,
        typer.Option(
            "--clock-skew-ms",
            help="Draw each host's clock offset uniformly in ±X ms (default: the scenario's).",
            show_default=False,
        ),
    ] = None,
    sampling: Annotated[
        float | None,
        typer.Option(
            "--sampling",
            help="Head-sampling rate in (0, 1]: keep this fraction of whole traces.",
            show_default=False,
        ),
    ] = None,
    quiet: Quiet = False,
) -> None:
    """Simulate a microservice system and write realistic OpenTelemetry traces whose causes are
    known: every stop-the-world pause, timeout and retry, and whether each trace's timeout was
    GC-caused, goes to --truth. Without --spans/--requests/--duration the scenario's own
    duration is used."""
    from tailscope.simulate import resolve_scenario
    from tailscope.simulate.run import RunSize
    from tailscope.simulate.writers import write_simulation

    if output is None:
        raise UsageError("generate needs -o/--output FILE (.jsonl, .jsonl.gz, .pb, .parquet)")
    sc = resolve_scenario(scenario)
    duration_s = None if duration is None else parse_duration_s(duration)
    if spans is None and requests is None and duration_s is None:
        duration_s = sc.duration_s
    summary = write_simulation(
        sc,
        seed=seed,
        size=RunSize(requests=requests, duration_s=duration_s, spans=spans),
        output=output,
        output_format=_format_for(output, output_format),
        truth_path=truth,
        clock_skew_ms=clock_skew_ms,
        sampling=sampling,
    )
    if not quiet:
        print(
            f"wrote {output}: {summary.spans} spans in {summary.traces} traces "
            f"({summary.output_bytes / 1e6:.1f} MB); {summary.pauses} pauses, "
            f"{summary.timeouts} timeouts, {summary.gc_caused_traces} GC-caused traces"
            + (f"; truth in {truth}" if truth else ""),
            file=sys.stderr,
        )
