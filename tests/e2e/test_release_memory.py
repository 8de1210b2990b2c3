"""``AnalysisOptions(release_memory=True)`` (what the CLI runs) hands freed memory back to the OS
between steps; it must not change a single number of the report."""

from __future__ import annotations

from repo_paths import FIXTURES

from tailscope.analysis.pipeline import AnalysisOptions, analyze, prepare_spans
from tailscope.ingest import read_spans
from tailscope.report.codec import report_to_json


def test_releasing_memory_between_steps_leaves_the_report_identical() -> None:
    prepared = prepare_spans(read_spans([str(FIXTURES / "gc-cascade.jsonl.gz")]))
    plain = analyze(prepared, AnalysisOptions(keep_frames=False)).report
    released = analyze(prepared, AnalysisOptions(keep_frames=False, release_memory=True)).report
    assert plain.stalls and plain.hops  # the steps between which memory is released all ran
    assert report_to_json(released) == report_to_json(plain)
