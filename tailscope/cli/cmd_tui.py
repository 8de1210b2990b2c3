"""``tailscope tui``: interactive p99 triage in the terminal (a Textual app).

Thin: validate options, hand a loader to the app (it reads and analyses in a worker thread
while the loading screen shows progress) and re-raise whatever typed error ended the app.
textual, polars and pyarrow are imported inside the command so ``tailscope --help`` stays fast.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from tailscope.cli.app import app
from tailscope.cli.inputs import check_input_format
from tailscope.cli.options import InputFormatOpt, Inputs, Strict
from tailscope.errors import UsageError

BaselineOpt = Annotated[
    Path | None,
    typer.Option(
        "--baseline",
        help="A baseline from 'tailscope baseline': adds the Compare screen (gate verdicts).",
    ),
]


@app.command()
def tui(
    inputs: Inputs,
    baseline: BaselineOpt = None,
    input_format: InputFormatOpt = "auto",
    strict: Strict = False,
) -> None:
    """Explore why p99 went bad, interactively: operations, hops that own the tail, stalls and
    the timeout cascades they start, and single-trace waterfalls. Keys: 1-6 screens, / filter,
    Enter open, t trace id, ? help, q quit."""
    fmt = check_input_format(input_format)
    if "-" in inputs:
        raise UsageError("tailscope tui reads the keyboard from stdin: give files, not '-'")
    if not (sys.stdin.isatty() and sys.stdout.isatty()):
        raise UsageError("tailscope tui needs a terminal; use 'tailscope analyze' for text output")

    from tailscope.tui.app import TriageApp
    from tailscope.tui.load import triage_loader

    loader = triage_loader(inputs, input_format=fmt, strict=strict, baseline=baseline)
    names = ", ".join(Path(i).name for i in inputs)
    triage = TriageApp(loader=loader, subtitle=names)
    triage.run()
    if triage.failure is not None:
        raise triage.failure
