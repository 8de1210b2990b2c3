"""A small hand-built triage case (report, spans, critical path) shared by the TUI tests, and
tests of the view models the TUI draws from it (waterfall order, overlays, filter, sort).

The numbers are made up but consistent: six traces of ``frontend GET /checkout`` calling
checkout (JVM), which calls inventory (JVM, stalls) and payments (Rust). Trace 1 is the slow one:
inventory-1 stalled for 280 ms inside it, the checkout → inventory call timed out and was retried.
Everything is fixed (no clock, no randomness) so the snapshots are stable.
"""

from __future__ import annotations

import polars as pl

from tailscope.analysis.verdict import root_verdict
from tailscope.gate import GatePolicy, GateVerdict, QuantileComparison
from tailscope.ingest.rows import SpanRow, attribute_from_python, table_from_rows
from tailscope.report.model import (
    Cascade,
    HopShare,
    InputSummary,
    OperationStats,
    PausedService,
    ProblemEntry,
    Report,
    RootSummary,
    RuntimeSummary,
    Stall,
    UnexplainedTimeout,
)
from tailscope.schema import SpanKind, StatusCode
from tailscope.tui.data import (
    TriageData,
    filter_operations,
    normalise_trace_id,
    sort_operations,
    trace_summaries,
    trace_view,
)
from tailscope.tui.panes import clip_middle
from tailscope.types import Verdict

BASE_NS = 1_700_000_000_000_000_000
MS = 1_000_000
TRACE_GAP_NS = 10_000 * MS
INVENTORY_MS = (310.0, 20.0, 18.0, 25.0, 22.0, 19.0)
"""Inventory server time per trace (ms): trace 1 holds the 280 ms stall."""
PAYMENTS_MS = 30.0
SKEW_NS = 2 * MS
"""Payments' host clock runs 2 ms behind; the pipeline shifted its spans by +2 ms in trace 1."""


def trace_hex(n: int) -> str:
    return f"{n:032x}"


def span_bytes(trace: int, n: int) -> bytes:
    return bytes([0, 0, 0, 0, 0, 0, trace, n])


def _trace_rows(trace: int) -> tuple[list[SpanRow], list[dict[str, object]]]:
    """The seven spans of one trace and its critical-path segments."""
    t0 = BASE_NS + (trace - 1) * TRACE_GAP_NS
    inv = int(INVENTORY_MS[trace - 1] * MS)
    pay = int(PAYMENTS_MS * MS)
    tid = bytes.fromhex(trace_hex(trace))
    d_start, d_end = t0 + 3 * MS, t0 + 3 * MS + inv + 2 * MS
    f_start = d_end + 1 * MS
    f_end = f_start + pay + 2 * MS
    end = f_end + 3 * MS
    slow = trace == 1

    def row(
        n: int, parent: int | None, name: str, kind: int, start: int, stop: int, **kw: object
    ) -> SpanRow:
        service = str(kw.pop("service"))
        return SpanRow(
            trace_id=tid,
            span_id=span_bytes(trace, n),
            parent_span_id=span_bytes(trace, parent) if parent else None,
            name=name,
            kind=kind,
            start_unix_nano=start,
            end_unix_nano=stop,
            service_name=service,
            service_instance=str(kw.pop("instance", f"{service}-1")),
            **kw,  # type: ignore[arg-type]
        )

    rows = [
        row(
            1,
            None,
            "GET /checkout",
            SpanKind.SERVER,
            t0,
            end,
            service="frontend",
            attributes=[attribute_from_python("http.route", "/checkout")],
        ),
        row(2, 1, "POST /order", SpanKind.CLIENT, t0 + 1 * MS, end - 1 * MS, service="frontend"),
        row(3, 2, "POST /order", SpanKind.SERVER, t0 + 2 * MS, end - 2 * MS, service="checkout"),
        row(
            4,
            3,
            "GET /stock",
            SpanKind.CLIENT,
            d_start,
            d_end,
            service="checkout",
            status_code=StatusCode.ERROR if slow else StatusCode.UNSET,
            status_message="deadline exceeded" if slow else None,
            attributes=[
                attribute_from_python("http.request.method", "GET"),
                attribute_from_python("server.address", "inventory"),
            ],
            events=[
                (
                    d_end - MS,
                    "exception",
                    [attribute_from_python("exception.type", "TimeoutException")],
                )
            ]
            if slow
            else [],
        ),
        row(
            5,
            4,
            "GET /stock",
            SpanKind.SERVER,
            d_start + 1 * MS,
            d_start + 1 * MS + inv,
            service="inventory",
        ),
        row(6, 3, "POST /charge", SpanKind.CLIENT, f_start, f_end, service="checkout"),
        row(
            7,
            6,
            "POST /charge",
            SpanKind.SERVER,
            f_start + 1 * MS,
            f_end - 1 * MS,
            service="payments",
        ),
    ]
    segments: list[dict[str, object]] = [
        {
            "span_id": 1,
            "start": t0,
            "end": t0 + 2 * MS,
            "svc": "frontend",
            "op": "GET /checkout",
            "comp": "self",
        },
        {
            "span_id": 3,
            "start": t0 + 2 * MS,
            "end": d_start + 1 * MS,
            "svc": "checkout",
            "op": "POST /order",
            "comp": "self",
        },
        {
            "span_id": 5,
            "start": d_start + 1 * MS,
            "end": d_start + 1 * MS + inv,
            "svc": "inventory",
            "op": "GET /stock",
            "comp": "self",
        },
        {
            "span_id": 3,
            "start": d_start + 1 * MS + inv,
            "end": f_start + 1 * MS,
            "svc": "checkout",
            "op": "POST /order",
            "comp": "self",
        },
        {
            "span_id": 7,
            "start": f_start + 1 * MS,
            "end": f_end - 1 * MS,
            "svc": "payments",
            "op": "POST /charge",
            "comp": "self",
        },
        {
            "span_id": 1,
            "start": f_end - 1 * MS,
            "end": end,
            "svc": "frontend",
            "op": "GET /checkout",
            "comp": "self",
        },
    ]
    return rows, segments


def sample_spans_and_path() -> tuple[pl.DataFrame, pl.DataFrame]:
    """Spans (SPAN_SCHEMA plus ``skew_adjustment_ns``) and critical-path segments of 6 traces."""
    rows: list[SpanRow] = []
    path_rows: list[dict[str, object]] = []
    for trace in range(1, 7):
        trace_rows, segments = _trace_rows(trace)
        rows.extend(trace_rows)
        for seg in segments:
            path_rows.append(
                {
                    "trace_id": bytes.fromhex(trace_hex(trace)),
                    "span_id": span_bytes(trace, int(str(seg["span_id"]))),
                    "seg_start": seg["start"],
                    "seg_end": seg["end"],
                    "hop_service": seg["svc"],
                    "hop_operation": seg["op"],
                    "component": seg["comp"],
                    "root_service": "frontend",
                    "root_operation": "GET /checkout",
                }
            )
    spans = pl.from_arrow(table_from_rows(rows))
    assert isinstance(spans, pl.DataFrame)
    skewed = (pl.col("service_name").cast(pl.String) == "payments") & (
        pl.col("trace_id") == bytes.fromhex(trace_hex(1))
    )
    server = pl.col("kind") == int(SpanKind.SERVER)
    spans = spans.with_columns(
        skew_adjustment_ns=pl.when(skewed).then(pl.lit(SKEW_NS)).otherwise(pl.lit(0)),
        skew_corrected=skewed & server,
    )
    return spans, pl.DataFrame(path_rows)


def _op(
    service: str,
    operation: str,
    kind: str,
    count: int,
    err: float,
    p50: float,
    p99: float,
    traces: tuple[int, ...],
    is_root: bool = False,
) -> OperationStats:
    return OperationStats(
        service=service, operation=operation, kind=kind, count=count, error_rate=err,
        p50_ms=p50, p90_ms=p50 * 1.6, p99_ms=p99, p999_ms=p99 * 1.3, max_ms=p99 * 1.5,
        exemplar_trace_ids=tuple(trace_hex(t) for t in traces), is_root=is_root,
    )  # fmt: skip


def sample_report() -> Report:
    """A report consistent with :func:`sample_spans_and_path`, with every section filled."""
    stall_start = BASE_NS + 5 * MS
    stalls = (
        Stall("inventory", "inventory-1", "host-b", stall_start, stall_start + 280 * MS, 280.0,
              spans_affected=3, queued_requests=2, confidence=0.93, kind="process",
              evidence=("3 spans of 1 trace in flight",)),
        Stall("inventory", "inventory-1", "host-b", BASE_NS + 41_000 * MS,
              BASE_NS + 41_120 * MS, 120.0, spans_affected=1, queued_requests=0,
              confidence=0.61, kind="process"),
        Stall("checkout", "checkout-2", "host-a", BASE_NS + 22_000 * MS, BASE_NS + 22_090 * MS,
              90.0, spans_affected=2, queued_requests=1, confidence=0.72, kind="process"),
    )  # fmt: skip
    checkout_hops = (
        HopShare("frontend", "GET /checkout", "inventory", "GET /stock", "stall", 6, 69.0,
                 310.0, 1.0, 0.81, (0.70, 0.92), 0.86, (0.74, 0.95),
                 exemplar_trace_ids=(trace_hex(1), trace_hex(4)), stall_ids=(0,)),
        HopShare("frontend", "GET /checkout", "checkout", "POST /order", "self", 6, 4.1, 5.0,
                 1.0, 0.09, (0.02, 0.17), 0.07, (0.01, 0.15),
                 exemplar_trace_ids=(trace_hex(1),)),
        HopShare("frontend", "GET /checkout", "payments", "POST /charge", "self", 6, 30.0,
                 30.0, 1.0, 0.06, (0.0, 0.12), 0.05, (0.0, 0.11)),
        HopShare("frontend", "GET /checkout", "frontend", "GET /checkout", "network", 6, 4.0,
                 4.0, 1.0, 0.04, (0.0, 0.08), 0.02, (-0.03, 0.06)),
    )  # fmt: skip
    return Report(
        tailscope_version="0.1.0",
        input=InputSummary(
            files=("sample.otlp.json",), spans=42, traces=6, services=4, skipped_records=3,
            problems=(ProblemEntry("sample.otlp.json", 17, "truncated line"),),
            orphan_spans=1, skew_adjustments=1,
            skipped_by_reason={"truncated line": 2, "end before start": 1},
            time_range_unix_nano=(BASE_NS, BASE_NS + 60_000 * MS),
        ),
        operations=(
            _op("frontend", "GET /checkout", "server", 6, 0.167, 71.0, 352.0, (1, 4, 2), True),
            _op("frontend", "POST /order", "client", 6, 0.0, 69.0, 350.0, (1, 4)),
            _op("checkout", "POST /order", "server", 6, 0.0, 67.0, 348.0, (1, 4)),
            _op("checkout", "GET /stock", "client", 6, 0.167, 24.0, 312.0, (1,)),
            _op("inventory", "GET /stock", "server", 6, 0.0, 21.0, 310.0, (1, 4)),
            _op("checkout", "POST /charge", "client", 6, 0.0, 32.0, 32.0, (2,)),
            _op("payments", "POST /charge", "server", 6, 0.0, 30.0, 30.0, (2,)),
            _op("frontend", "GET /cart", "server", 3, 0.0, 5.0, 9.0, (), True),
        ),
        roots=(
            root_verdict(
                RootSummary("frontend", "GET /checkout", 6, 71.0, 352.0, 1, inconclusive=False),
                checkout_hops,
                (0.86, (0.74, 0.95)),
                (PausedService("inventory", "java", (0,), 280.0, 280.0, 0.86, (0.74, 0.95)),),
                floor=1,
            ),
            RootSummary("frontend", "GET /cart", 3, 5.0, 9.0, 0, inconclusive=True),
        ),
        hops=checkout_hops,
        stalls=stalls,
        cascades=(
            Cascade(0, "inventory", "inventory-1", stall_start, stall_start + 280 * MS,
                    timed_out_spans=1, retries=1, amplification=2.0,
                    root_operations=("frontend GET /checkout",),
                    trace_ids=(trace_hex(1), trace_hex(4)), p99_impact_ms=281.0),
        ),
        unexplained_timeouts=(
            UnexplainedTimeout("checkout", "postgres", "SELECT orders", 4, 250.0,
                               "dependency postgres", (trace_hex(3),)),
        ),
        runtimes=(
            RuntimeSummary("java", "OpenJDK 21", 2, 3, 24, 19.0, 290.0, 300.0, 15.3, 3, 49.0),
            RuntimeSummary("go", "go1.22", 1, 1, 12, 2.0, 4.0, 5.0, 2.0, 0, 0.0),
            RuntimeSummary("rust", None, 1, 1, 6, 28.0, 30.0, 30.0, 1.07, 0, 0.0),
        ),
    )  # fmt: skip


def _comparison(
    name: str, q: float, base: float, cur: float, verdict: Verdict, reason: str
) -> QuantileComparison:
    service, operation = name.split("/", 1)
    change = cur - base
    return QuantileComparison(
        name=name, service=service, operation=operation, kind=None, quantile=q,
        baseline_count=2000, current_count=6, baseline_ms=base, current_ms=cur,
        change_ms=change, change_pct=100 * change / base,
        interval_ms=(change * 0.5, change * 1.5),
        interval_pct=(50 * change / base, 150 * change / base),
        verdict=verdict, reason=reason,
    )  # fmt: skip


def sample_verdict() -> GateVerdict:
    """What the gate said about the sample against a (made-up) known-good baseline."""
    policy = GatePolicy(quantiles=(0.5, 0.99, 0.999))
    rows = (
        _comparison("frontend/GET /checkout", 0.5, 70.0, 71.0, "pass", "+1.4% within +10%"),
        _comparison("frontend/GET /checkout", 0.99, 120.0, 352.0, "fail", "whole interval > +10%"),
        _comparison("frontend/GET /checkout", 0.999, 150.0, 457.6, "inconclusive",
                    "6 samples < 6905 needed for p99.9"),
    )  # fmt: skip
    return GateVerdict(
        verdict="fail",
        rows=rows,
        checks=(),
        policy=policy,
        baseline_label="abc123",
        baseline_created="2026-11-28T12:00:00Z",
        current_label=None,
    )


def sample_triage(with_verdict: bool = False) -> TriageData:
    spans, path = sample_spans_and_path()
    verdict = sample_verdict() if with_verdict else None
    return TriageData(report=sample_report(), spans=spans, path=path, verdict=verdict)


# --- view-model tests -------------------------------------------------------------------------


def test_waterfall_orders_parents_before_children_by_start_time() -> None:
    # GIVEN the slow trace WHEN its waterfall is built
    view = trace_view(sample_triage(), trace_hex(1))
    assert view is not None
    # THEN spans come depth-first, children by start time, with the right depths
    names = [(w.depth, w.service, w.name) for w in view.spans]
    assert names == [
        (0, "frontend", "GET /checkout"),
        (1, "frontend", "POST /order"),
        (2, "checkout", "POST /order"),
        (3, "checkout", "GET /stock"),
        (4, "inventory", "GET /stock"),
        (3, "checkout", "POST /charge"),
        (4, "payments", "POST /charge"),
    ]
    # AND the trace lasts from the root's start to its end (hand-computed: 3+310+2+1+32+3 ms)
    assert abs(view.duration_ms - 351.0) < 1e-9


def test_waterfall_marks_critical_path_stalls_skew_and_errors() -> None:
    view = trace_view(sample_triage(), trace_hex(1))
    assert view is not None
    by_name = {(w.service, w.name, w.kind): w for w in view.spans}
    inventory = by_name[("inventory", "GET /stock", SpanKind.SERVER)]
    # THEN the inventory server span carries its critical-path segment (310 ms) ...
    assert [(b - a) / MS for a, b in inventory.critical_segments] == [310.0]
    # ... and the first inventory stall (index 0), which overlaps it; not the later ones
    assert [i for i, _, _ in inventory.stall_windows] == [0]
    # AND only the payments spans carry the +2 ms skew shift
    shifted = {w.service for w in view.spans if w.skew_adjustment_ns}
    assert shifted == {"payments"}
    assert [w.name for w in view.spans if w.skew_corrected] == ["POST /charge"]
    # AND the timed-out client call is an error with its event and attributes
    client = by_name[("checkout", "GET /stock", SpanKind.CLIENT)]
    assert client.error and client.status_message == "deadline exceeded"
    assert [name for _, name, _ in client.events] == ["exception"]
    assert ("server.address", "inventory") in client.attributes
    # AND the critical path adds up to the trace's length (segments tile it)
    assert abs(view.critical_path_ms - view.duration_ms) < 1e-9


def test_trace_view_of_unknown_trace_is_none() -> None:
    assert trace_view(sample_triage(), trace_hex(99)) is None
    assert trace_view(TriageData(report=sample_report()), trace_hex(1)) is None


def test_trace_ids_are_normalised_or_rejected() -> None:
    assert normalise_trace_id(" 0xABC ") == "0" * 29 + "abc"
    assert normalise_trace_id(trace_hex(5)) == trace_hex(5)
    assert normalise_trace_id("xyz") is None
    assert normalise_trace_id("1" * 33) is None
    assert normalise_trace_id("") is None


def test_filter_matches_every_word_in_service_or_operation() -> None:
    ops = sample_report().operations
    found = filter_operations(ops, "CHECKOUT stock")
    assert [(o.service, o.operation) for o in found] == [("checkout", "GET /stock")]
    assert len(filter_operations(ops, "  ")) == len(ops)
    assert filter_operations(ops, "nothing-like-this") == []


def test_sort_is_stable_and_reversible() -> None:
    ops = sample_report().operations
    by_p99 = sort_operations(ops, "p99_ms", descending=True)
    assert [o.p99_ms for o in by_p99] == sorted((o.p99_ms for o in ops), reverse=True)
    by_service = sort_operations(ops, "service", descending=False)
    # ties keep the report's order: the frontend operations stay in report order
    assert [o.operation for o in by_service if o.service == "frontend"] == [
        "GET /checkout",
        "POST /order",
        "GET /cart",
    ]


def test_trace_summaries_give_root_duration_and_size() -> None:
    # GIVEN two sample traces and one id that is not in the input
    wanted = (trace_hex(1), trace_hex(2), trace_hex(77))
    found = trace_summaries(sample_triage(), wanted)
    # THEN the known ones are summarised from their spans (hand-computed) and the unknown skipped
    assert set(found) == {trace_hex(1), trace_hex(2)}
    slow = found[trace_hex(1)]
    assert slow.root == "frontend GET /checkout"
    assert (slow.spans, slow.errors) == (7, 1)
    assert abs(slow.duration_ms - 351.0) < 1e-9
    assert abs(found[trace_hex(2)].duration_ms - (3 + 20 + 2 + 1 + 32 + 3)) < 1e-9
    assert trace_summaries(TriageData(report=sample_report()), wanted) == {}


def test_clip_middle_keeps_the_end_of_long_names() -> None:
    assert clip_middle("inventory.v1.InventoryService/Reserve", 24) == "inventory…ervice/Reserve"
    assert len(clip_middle("inventory.v1.InventoryService/Reserve", 24)) == 24
    assert clip_middle("GET /stock", 24) == "GET /stock"
