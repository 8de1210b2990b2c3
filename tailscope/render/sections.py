"""The report as titled tables of text cells: what every human-readable renderer shows.

Text and Markdown renderers draw the same :class:`Section` objects, so a number appears the same
way in a terminal and in a pull-request comment. Sections come most important first: the entry
points and the hops that own their tail, then slow operations, then stalls, cascades, unexplained
timeouts and runtimes, then what could not be read.
"""

from __future__ import annotations

from dataclasses import dataclass

from tailscope.report.model import HopShare, Report, RootSummary
from tailscope.report.numbers import share_text

DEFAULT_TOP = 10
"""Rows per table unless the caller asks otherwise."""


@dataclass(frozen=True, slots=True)
class Section:
    """One titled table (``rows`` may be empty: then ``empty`` is shown instead)."""

    title: str
    columns: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    empty: str = "none"
    note: str = ""
    """One line under the table (e.g. how many rows were left out)."""


def ms(value: float) -> str:
    """Milliseconds with three significant-ish decimals that stay readable."""
    if value >= 100:
        return f"{value:,.0f}"
    if value >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def pct(value: float) -> str:
    return f"{value * 100:.1f}%"


def _more(total: int, shown: int, what: str) -> str:
    return (
        f"{total - shown} more {what} not shown (see --top or --format json)"
        if total > shown
        else ""
    )


def summary_lines(report: Report) -> list[str]:
    """What was read, in a few lines (always includes skipped records and skew/orphans)."""
    inp = report.input
    lines = [
        f"{inp.spans:,} spans, {inp.traces:,} traces, {inp.services} services "
        f"from {len(inp.files)} file(s)",
        f"skipped records: {inp.skipped_records:,}; duplicate spans dropped: "
        f"{inp.duplicate_spans:,}; orphan spans: {inp.orphan_spans:,}; "
        f"clock-skew adjustments: {inp.skew_adjustments:,}",
    ]
    if inp.non_trace_records or inp.unknown_service_resources:
        lines.append(
            f"metric/log records ignored: {inp.non_trace_records:,}; "
            f"resources without service.name: {inp.unknown_service_resources:,}"
        )
    return lines


_STATUS_LABEL = {
    "conclusive": "conclusive",
    "ambiguous": "top hops overlap",
    "too_few_tail_requests": "inconclusive (too few tail requests)",
    "no_hops": "no hops",
}


def verdict_lines(report: Report, top: int = DEFAULT_TOP) -> list[str]:
    """One line per entry point: ``service operation: <verdict sentence>`` (the model's text)."""
    return [
        f"{r.service} {r.operation}: {r.verdict.text}"
        for r in report.roots[:top]
        if r.verdict is not None
    ]


def _status(root: RootSummary) -> str:
    if root.verdict is not None:
        return _STATUS_LABEL[root.verdict.status]
    return "inconclusive (too few tail requests)" if root.inconclusive else "ok"


def roots_section(report: Report, top: int) -> Section:
    rows = tuple(
        (
            f"{r.service} {r.operation}",
            f"{r.requests:,}",
            ms(r.p50_ms),
            ms(r.p99_ms),
            f"{r.tail_requests:,}",
            _status(r),
        )
        for r in report.roots[:top]
    )
    return Section(
        "Entry points (root operations)",
        ("root", "requests", "p50 ms", "p99 ms", "tail requests", "attribution"),
        rows,
        note=_more(len(report.roots), len(rows), "roots"),
    )


def _hop_name(h: HopShare) -> str:
    return f"{h.hop_service} {h.hop_operation}"


def hop_sections(report: Report, top: int) -> list[Section]:
    """One table per root (the first ``top`` roots): its ``top`` hops by tail share."""
    out: list[Section] = []
    for root in report.roots[:top]:
        hops = [
            h
            for h in report.hops
            if h.root_service == root.service and h.root_operation == root.operation
        ]
        if not hops:
            continue
        rows = tuple(
            (
                _hop_name(h),
                h.component,
                ms(h.mean_ms),
                ms(h.p99_ms),
                pct(h.on_critical_path),
                share_text(h.tail_share, h.tail_share_ci),
                share_text(h.variance_share, h.variance_share_ci),
            )
            for h in hops[:top]
        )
        status = (
            f"inconclusive: {root.tail_requests} tail requests (ranked by variance share)"
            if root.inconclusive
            else f"{root.tail_requests} tail requests, {_status(root)}"
        )
        note = _more(len(hops), len(rows), "hops")
        out.append(
            Section(
                f"Where the time goes: {root.service} {root.operation} ({status})",
                (
                    "hop",
                    "component",
                    "mean ms",
                    "p99 ms",
                    "on path",
                    "tail share [95% CI]",
                    "variance share [95% CI]",
                ),
                rows,
                note=note,
            )
        )
    return out


def operations_section(report: Report, top: int) -> Section:
    rows = tuple(
        (
            op.service,
            op.operation,
            op.kind,
            f"{op.count:,}",
            pct(op.error_rate),
            ms(op.p50_ms),
            ms(op.p90_ms),
            ms(op.p99_ms),
            ms(op.p999_ms),
            ms(op.max_ms),
            op.exemplar_trace_ids[0] if op.exemplar_trace_ids else "",
        )
        for op in report.operations[:top]
    )
    return Section(
        "Slowest operations (by p99)",
        (
            "service",
            "operation",
            "kind",
            "count",
            "errors",
            "p50 ms",
            "p90 ms",
            "p99 ms",
            "p99.9 ms",
            "max ms",
            "slowest trace",
        ),
        rows,
        note=_more(len(report.operations), len(rows), "operations"),
    )


def stall_sections(report: Report, top: int) -> list[Section]:
    stalls = Section(
        "Stop-the-world stalls",
        (
            "#",
            "service",
            "instance",
            "host",
            "kind",
            "duration ms",
            "spans stretched",
            "queued",
            "confidence",
        ),
        tuple(
            (
                str(i),
                st.service,
                st.instance,
                st.host or "",
                st.kind,
                ms(st.duration_ms),
                f"{st.spans_affected:,}",
                f"{st.queued_requests:,}",
                f"{st.confidence:.2f}",
            )
            for i, st in enumerate(report.stalls[:top])
        ),
        empty="no stop-the-world stalls detected",
        note=_more(len(report.stalls), min(top, len(report.stalls)), "stalls"),
    )
    cascades = Section(
        "Timeout/retry cascades",
        (
            "stall",
            "service",
            "instance",
            "timeouts",
            "retries",
            "amplification",
            "p99 impact ms",
            "roots",
            "traces",
        ),
        tuple(
            (
                str(c.stall),
                c.service,
                c.instance,
                f"{c.timed_out_spans:,}",
                f"{c.retries:,}",
                f"{c.amplification:.2f}x",
                ms(c.p99_impact_ms),
                ", ".join(c.root_operations),
                f"{len(c.trace_ids):,}",
            )
            for c in report.cascades[:top]
        ),
        empty="no cascades",
    )
    unexplained = Section(
        "Timeouts no stall explains",
        ("caller", "callee", "operation", "timeouts", "timeout ms", "likely hop", "example trace"),
        tuple(
            (
                u.caller_service,
                u.callee,
                u.operation,
                f"{u.timed_out_spans:,}",
                ms(u.inferred_timeout_ms) if u.inferred_timeout_ms is not None else "?",
                u.likely_hop,
                u.trace_ids[0] if u.trace_ids else "",
            )
            for u in report.unexplained_timeouts[:top]
        ),
        empty="no unexplained timeouts",
    )
    runtimes = Section(
        "Tail latency by runtime (server self time)",
        (
            "language",
            "runtime",
            "services",
            "instances",
            "spans",
            "p50 ms",
            "p99 ms",
            "p99.9 ms",
            "p99/p50",
            "stalls",
            "stall ms/min/instance",
        ),
        tuple(
            (
                r.language,
                r.runtime or "",
                str(r.services),
                str(r.instances),
                f"{r.spans:,}",
                ms(r.p50_ms),
                ms(r.p99_ms),
                ms(r.p999_ms),
                f"{r.tail_ratio:.1f}",
                str(r.stalls),
                f"{r.stall_ms_per_minute_per_instance:.1f}",
            )
            for r in report.runtimes[:top]
        ),
        empty="no runtime information",
    )
    return [stalls, cascades, unexplained, runtimes]


def problems_section(report: Report) -> Section:
    inp = report.input
    rows = tuple(
        (f"{p.file}:{p.line}" if p.line is not None else p.file, p.reason) for p in inp.problems
    )
    by_reason = ", ".join(f"{reason}: {n:,}" for reason, n in sorted(inp.skipped_by_reason.items()))
    return Section(
        f"Input problems ({inp.skipped_records:,} skipped records)",
        ("where", "reason"),
        rows,
        empty="no input problems",
        note=f"skipped by reason: {by_reason}" if by_reason else "",
    )


def all_sections(report: Report, top: int = DEFAULT_TOP) -> list[Section]:
    """Every section in display order."""
    return [
        roots_section(report, top),
        *hop_sections(report, top),
        operations_section(report, top),
        *stall_sections(report, top),
        problems_section(report),
    ]
