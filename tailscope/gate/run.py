"""The one gate function behind ``tailscope gate`` and the TUI's Compare screen.

:func:`gate` takes the prepared spans of the run being gated (one span tree, built once by
:func:`tailscope.analysis.pipeline.prepare_spans`), summarises them the way a baseline file
is written, runs the stall and cascade checks on the same spans when limits are given, and
returns the :class:`~tailscope.report.model.GateVerdict` that the report model carries
(``Report.gate``). Pure: no files, no printing, no exit codes.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from tailscope.gate.baseline import Baseline, build_baseline
from tailscope.gate.evaluate import evaluate
from tailscope.gate.findings import finding_checks

if TYPE_CHECKING:
    from tailscope.analysis.pipeline import PreparedSpans
    from tailscope.report.model import GatePolicy, GateVerdict


def gate(
    spans: PreparedSpans,
    baseline: Baseline,
    policy: GatePolicy,
    *,
    created: str,
    tailscope_version: str,
    label: str | None = None,
    inputs: Sequence[str] = (),
    max_stalls: int | None = None,
    max_cascades: int | None = None,
) -> GateVerdict:
    """Gate a run against a baseline.

    Args:
        spans: the run's prepared spans (reused for the summary and the finding checks).
        baseline: the known-good run(s), e.g. from :func:`~tailscope.gate.decode_baseline`.
        policy: quantiles, allowances, confidence, sample minimum, operation globs, strictness.
        created: time of the gate (ISO 8601 UTC), recorded in the run's summary.
        tailscope_version: version recorded in the run's summary.
        label: name of the run (e.g. the git sha), shown in the verdict.
        inputs: names of the files read.
        max_stalls: fail when more stop-the-world stalls are found (None: not checked).
        max_cascades: fail when more timeout cascades are found (None: not checked).

    Raises:
        BaselineError: no gated operation is in both the baseline and the run.
        UsageError: an operation glob matches nothing.
        InputError: the stall or cascade detector failed (a gate must not pass on findings it
            did not look for).
    """
    current = build_baseline(
        spans,
        label=label,
        created=created,
        tailscope_version=tailscope_version,
        inputs=inputs,
    )
    checks = finding_checks(spans, max_stalls, max_cascades)
    return evaluate(current, baseline, policy, checks)
