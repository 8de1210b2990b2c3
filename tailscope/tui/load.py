"""Build :class:`TriageData` from trace exports: read, analyse and (with a baseline) gate.

Runs in the app's worker thread, so it reports what it is doing through a :class:`LoadProgress`
(bytes per input from the readers, then named stages) instead of printing.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

from tailscope.errors import UsageError
from tailscope.ingest.model import ProgressSink
from tailscope.tui.data import TriageData
from tailscope.types import InputFormat


class LoadProgress(ProgressSink):
    """A progress sink that is also told about stages (``Analysing …``)."""

    def stage(self, text: str) -> None:
        """A new stage of loading begins."""


Loader = Callable[[LoadProgress], TriageData]
"""Builds the data, reporting progress; runs in a worker thread."""


def triage_loader(
    inputs: Sequence[str],
    *,
    input_format: InputFormat = "auto",
    strict: bool = False,
    baseline: Path | None = None,
) -> Loader:
    """A loader that reads ``inputs``, runs the analysis pipeline and, given a ``baseline``,
    nothing more yet (see ``docs/tui.md``: the Compare screen waits for the gate)."""
    if baseline is not None:
        raise UsageError(
            "tailscope tui --baseline is not available yet: the Compare screen needs the gate"
        )

    def load(progress: LoadProgress) -> TriageData:
        from tailscope.analysis.pipeline import AnalysisOptions, analyze

        from tailscope.ingest import read_spans

        result = read_spans(inputs, input_format=input_format, strict=strict, progress=progress)
        progress.stage(
            f"Analysing {result.table.num_rows:,} spans "
            "(percentiles, critical paths, hops, stalls)…"
        )
        analysis = analyze(result, AnalysisOptions())
        return TriageData(report=analysis.report, spans=analysis.spans, path=analysis.path)

    return load
