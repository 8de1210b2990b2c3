"""Build :class:`TriageData` from trace exports: read, analyse and (with a baseline) gate.

Runs in the app's worker thread, so it reports what it is doing through a :class:`LoadProgress`
(bytes per input from the readers, then named stages) instead of printing.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from tailscope.errors import BaselineError
from tailscope.ingest.model import ProgressSink
from tailscope.tui.data import TriageData
from tailscope.types import InputFormat

if TYPE_CHECKING:
    from tailscope.analysis.pipeline import PreparedSpans
    from tailscope.gate.baseline import Baseline
    from tailscope.report.model import GatePolicy, GateVerdict


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
    """A loader that reads ``inputs``, runs the analysis pipeline and, given a ``baseline``
    file, gates the input against it (:func:`compare_policy`) for the Compare screen."""

    def load(progress: LoadProgress) -> TriageData:
        from dataclasses import replace

        from tailscope.analysis.pipeline import AnalysisOptions, analyze, prepare_spans
        from tailscope.ingest import read_spans

        # A bad baseline file fails before minutes of reading, not after.
        known_good = read_baseline(baseline) if baseline is not None else None
        result = read_spans(inputs, input_format=input_format, strict=strict, progress=progress)
        progress.stage(
            f"Analysing {result.table.num_rows:,} spans "
            "(percentiles, critical paths, hops, stalls)…"
        )
        prepared = prepare_spans(result)
        analysis = analyze(prepared, AnalysisOptions())
        report = analysis.report
        if known_good is not None:
            progress.stage("Comparing with the baseline…")
            verdict = compare_with_baseline(prepared, known_good, result.stats.files)
            report = replace(report, gate=verdict)
        return TriageData(
            report=report,
            spans=analysis.spans,
            path=analysis.path,
            table=result.table,
        )

    return load


def compare_policy() -> GatePolicy:
    """The gate's default policy (allowances, confidence), at p50, p99 and p99.9."""
    from tailscope.gate import GatePolicy

    return GatePolicy(quantiles=(0.5, 0.99, 0.999))


def read_baseline(path: Path) -> Baseline:
    """Read and validate a baseline file.

    Raises:
        BaselineError: the file cannot be read or is not a valid baseline.
    """
    from tailscope.gate import decode_baseline

    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise BaselineError(f"cannot read baseline {path}: {exc.strerror or exc}") from exc
    return decode_baseline(raw, source=str(path))


def compare_with_baseline(
    spans: PreparedSpans, known_good: Baseline, files: Sequence[str]
) -> GateVerdict:
    """Gate the prepared spans against a baseline with the same function as ``tailscope gate``
    (:func:`tailscope.gate.gate`), per quantile of :func:`compare_policy`.

    Raises:
        BaselineError: no operation is in both the baseline and the input.
    """
    from datetime import UTC, datetime

    import tailscope
    from tailscope.gate import gate

    return gate(
        spans,
        known_good,
        compare_policy(),
        created=datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        tailscope_version=tailscope.__version__,
        inputs=tuple(files),
    )
