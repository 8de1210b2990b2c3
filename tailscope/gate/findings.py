"""Gate checks on findings: the number of stop-the-world stalls and of timeout cascades.

They are counted exactly as ``tailscope analyze`` counts them (the same prepared spans and the
same detectors); the rest of the analysis (critical paths, bootstrap) is not needed to gate
and is skipped. Unlike the report, a detector failure is an error here: a gate must not pass
on stalls it did not look for.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from tailscope.errors import InputError
from tailscope.gate.evaluate import threshold_check
from tailscope.report.model import ThresholdCheck

if TYPE_CHECKING:
    from tailscope.analysis.pipeline import PreparedSpans


def finding_checks(
    prepared: PreparedSpans, max_stalls: int | None, max_cascades: int | None
) -> tuple[ThresholdCheck, ...]:
    """One check per limit given (None: that finding is not gated, and not computed), on the
    spans the gate already prepared (their span tree is not rebuilt)."""
    if max_stalls is None and max_cascades is None:
        return ()
    from tailscope.analysis.pipeline import stall_sections

    if prepared.spans.height == 0:
        return ()
    try:
        stalls, cascades, _unexplained, _runtimes = stall_sections(prepared.spans)
    except Exception as exc:  # a detector bug must not become a silent pass or a traceback
        raise InputError(
            f"stall/cascade detection failed on this input: {type(exc).__name__}: {exc}"
        ) from exc
    checks = []
    if max_stalls is not None:
        longest = (
            f"longest {stalls[0].service}/{stalls[0].instance} {stalls[0].duration_ms:.0f} ms"
            if stalls
            else ""
        )
        checks.append(threshold_check("stalls", len(stalls), max_stalls, longest))
    if max_cascades is not None:
        detail = (
            f"{sum(c.timed_out_spans for c in cascades)} timed-out spans, "
            f"{sum(c.retries for c in cascades)} retries"
            if cascades
            else ""
        )
        checks.append(threshold_check("cascades", len(cascades), max_cascades, detail))
    return tuple(checks)
