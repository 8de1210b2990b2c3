"""``tailscope baseline``: record a known-good run's latency histograms; ``baseline merge``.

One command with two forms, because a typer group cannot take both ``INPUT...`` and a
subcommand: when the first argument is the word ``merge`` the rest are baseline files to combine
(name a trace file literally called ``merge`` as ``./merge``).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from tailscope.cli.app import app
from tailscope.cli.options import InputFormatOpt, Inputs, Quiet, Strict
from tailscope.errors import BaselineError, UsageError

if TYPE_CHECKING:
    from tailscope.gate.baseline import Baseline


def utc_now_iso() -> str:
    """Current UTC time, ISO 8601 with a ``Z`` (what baseline files record as ``created``)."""
    from datetime import UTC, datetime

    return datetime.now(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def read_baseline_file(path: Path) -> Baseline:
    """Read and validate a baseline file (BaselineError with the path on any problem)."""
    from tailscope.gate.baseline import decode_baseline

    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise BaselineError(f"baseline file not found: {path}") from None
    except OSError as exc:
        raise BaselineError(f"cannot read baseline {path}: {exc.strerror or exc}") from None
    return decode_baseline(data, str(path))


def _write(data: bytes, output: Path | None) -> None:
    if output is None or str(output) == "-":
        sys.stdout.buffer.write(data)
        sys.stdout.flush()
        return
    try:
        output.write_bytes(data)
    except OSError as exc:
        raise UsageError(f"cannot write {output}: {exc.strerror or exc}") from None


@app.command()
def baseline(
    inputs: Inputs,
    output: Annotated[
        Path | None,
        typer.Option(
            "--output",
            "-o",
            help="Baseline file to write (default: stdout).",
            show_default=False,
        ),
    ] = None,
    label: Annotated[
        str | None,
        typer.Option("--label", help="Free text stored in the baseline, e.g. the git sha."),
    ] = None,
    input_format: InputFormatOpt = "auto",
    strict: Strict = False,
    quiet: Quiet = False,
) -> None:
    """Record a baseline: per root operation and per operation, an HdrHistogram of latency
    (standard compressed encoding), the sample count, the time range and metadata.

    [bold]tailscope baseline[/bold] INPUT... -o baseline.json [--label SHA]

    [bold]tailscope baseline merge[/bold] a.json b.json ... -o merged.json [--label TEXT]:
    combine several runs into one baseline (histograms are added).
    """
    from tailscope import __version__
    from tailscope.gate.baseline import build_baseline, encode_baseline, merge_baselines

    if inputs and inputs[0] == "merge":
        files = inputs[1:]
        if not files:
            raise UsageError("baseline merge needs baseline files: baseline merge a.json b.json")
        parts = [read_baseline_file(Path(f)) for f in files]
        merged = merge_baselines(
            parts, label=label, created=utc_now_iso(), tailscope_version=__version__
        )
        _write(encode_baseline(merged), output)
        if not quiet:
            print(
                f"merged {len(parts)} baseline(s): {len(merged.roots)} root operation(s), "
                f"{len(merged.operations)} operation(s), {merged.spans:,} spans"
                + (f" -> {output}" if output else ""),
                file=sys.stderr,
            )
        return

    from tailscope.cli.inputs import load, summary_line

    result = load(inputs, input_format, strict, quiet)
    built = build_baseline(
        result.table,
        label=label,
        created=utc_now_iso(),
        tailscope_version=__version__,
        inputs=result.stats.files,
    )
    _write(encode_baseline(built), output)
    if not quiet:
        print(
            f"baseline: {len(built.roots)} root operation(s), {len(built.operations)} "
            f"operation(s) from {summary_line(result)}" + (f" -> {output}" if output else ""),
            file=sys.stderr,
        )
