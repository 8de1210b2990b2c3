"""Shared building blocks of stall, cascade and runtime analysis (private).

Everything here is a polars expression or a whole-table transformation: the span table in, a
narrower frame out. Times stay in integer nanoseconds; only the public sections convert to ms.

Two rules hold throughout, because hosts' clocks disagree by tens of milliseconds:

* timestamps are compared only between spans of the **same instance** (one process, one clock);
* evidence that crosses instances uses **durations** (a CLIENT span's duration minus its SERVER
  child's is the network-plus-queue time of that call, whatever the two clocks say).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc
from numpy.typing import NDArray

from tailscope import schema as s
from tailscope.schema import SpanKind, StatusCode

if TYPE_CHECKING:
    from tailscope.analysis.stall_stats import StallStats

NS_PER_MS = 1_000_000

_TIMEOUT_WORDS = r"(?i)time[\s_-]?out|timed[\s_-]?out|deadline"
"""What a status message, ``error.type`` or exception text says when a call gave up waiting."""


def _text(column: str) -> pl.Expr:
    return pl.col(column).cast(pl.String)


def _names(column: str) -> pl.Expr:
    """A name column as a polars categorical (global categories: joins across frames work;
    frames built from Python strings must cast their name columns with :func:`as_names`)."""
    return pl.col(column).cast(pl.Categorical)


def as_names(*columns: str) -> list[pl.Expr]:
    """Cast string ``columns`` of a small frame built in Python to the categorical dtype of the
    narrowed span table's name columns, so the two can be joined."""
    return [pl.col(c).cast(pl.Categorical) for c in columns]


EVENT_TIMES: Final = "event_times"
"""Span-table column derived from ``events``: each span's event times (list of int64 ns)."""
EXCEPTION_TIMEOUT: Final = "exception_timeout"
"""Span-table column derived from ``events``: an ERROR span whose ``exception`` event says
timeout or deadline (False for every other span)."""


def event_columns(
    events: pa.ChunkedArray | pa.Array | None, error: NDArray[np.bool_]
) -> list[pl.Series]:
    """:data:`EVENT_TIMES` and :data:`EXCEPTION_TIMEOUT` from an Arrow ``events`` column.

    Read in place: only the event times are taken from every span, and only the events of
    ERROR spans (a small share) are converted to polars to look for a timeout. ``error`` is
    the per-span ERROR status; ``events`` None means no span has events.
    """
    n = error.shape[0]
    if events is None:
        return [
            pl.Series(EVENT_TIMES, [[]] * n, dtype=pl.List(pl.Int64)),
            pl.Series(EXCEPTION_TIMEOUT, np.zeros(n, dtype=bool)),
        ]
    chunks = events.chunks if isinstance(events, pa.ChunkedArray) else [events]
    lists: list[pa.Array] = []
    for chunk in chunks:
        lengths = pc.fill_null(pc.list_value_length(chunk), 0).to_numpy(zero_copy_only=False)
        offsets = np.zeros(lengths.size + 1, dtype=np.int64)
        np.cumsum(lengths, out=offsets[1:])
        times = pc.struct_field(pc.list_flatten(chunk), "time_unix_nano")
        lists.append(pa.LargeListArray.from_arrays(pa.array(offsets), times))
    as_lists = pl.from_arrow(pa.chunked_array(lists, type=pa.large_list(pa.int64())))
    assert isinstance(as_lists, pl.Series)
    times_series = as_lists.alias(EVENT_TIMES).rechunk()
    timeout = np.zeros(n, dtype=bool)
    rows = np.flatnonzero(error & (times_series.list.len().to_numpy() > 0))
    if rows.size:
        subset = pl.from_arrow(pa.table({s.EVENTS: events.take(pa.array(rows))}))
        assert isinstance(subset, pl.DataFrame)
        timeout[rows] = subset.select(_exception_timeout_signal()).to_series().to_numpy()
    return [times_series, pl.Series(EXCEPTION_TIMEOUT, timeout)]


def with_event_columns(spans: pl.DataFrame) -> pl.DataFrame:
    """``spans`` with :data:`EVENT_TIMES` and :data:`EXCEPTION_TIMEOUT` derived from its
    ``events`` column (unchanged when it already has them)."""
    if EVENT_TIMES in spans.columns and EXCEPTION_TIMEOUT in spans.columns:
        return spans
    error = (spans[s.STATUS_CODE] == StatusCode.ERROR).to_numpy()
    events = spans[s.EVENTS].to_arrow() if s.EVENTS in spans.columns else None
    return spans.with_columns(event_columns(events, error))


def narrow(spans: pl.DataFrame) -> pl.DataFrame:
    """The columns the stall analyses need; names stay categorical (a million names cast to
    strings cost a quarter of a gigabyte and make every join and group-by slower).

    Columns: ``tid``, ``sid``, ``pid`` (binary ids), ``service``, ``instance``, ``host``,
    ``name`` (categorical), ``kind``, ``start``, ``end``, ``dur`` (ns), ``error`` (status ERROR),
    ``timeout`` (ERROR with a timeout signal), ``target`` (``server.address``, else
    ``db.system``; categorical), ``resend`` (``http.request.resend_count``), ``language``,
    ``runtime`` (categorical), ``event_times`` (list of ns), and ``is_root`` when ``spans``
    has it (see :func:`tailscope.analysis.traces.with_roots`).

    ``spans`` is the span table, either with its ``events`` column or with the columns
    :func:`event_columns` derives from it (the pipeline reads them from the Arrow table and
    never converts the events).
    """
    spans = with_event_columns(spans)
    error = pl.col(s.STATUS_CODE) == StatusCode.ERROR
    roots = [pl.col("is_root")] if "is_root" in spans.columns else []
    return spans.select(
        pl.col(s.TRACE_ID).alias("tid"),
        pl.col(s.SPAN_ID).alias("sid"),
        pl.col(s.PARENT_SPAN_ID).alias("pid"),
        _names(s.SERVICE).alias("service"),
        _names(s.INSTANCE).alias("instance"),
        _names(s.HOST).alias("host"),
        _names(s.NAME).alias("name"),
        pl.col(s.KIND).cast(pl.Int8).alias("kind"),
        pl.col(s.START).alias("start"),
        pl.col(s.END).alias("end"),
        pl.max_horizontal(pl.col(s.END) - pl.col(s.START), pl.lit(0)).alias("dur"),
        error.alias("error"),
        (error & (_attribute_timeout_signal() | pl.col(EXCEPTION_TIMEOUT))).alias("timeout"),
        pl.coalesce(_names(s.SERVER_ADDRESS), _names(s.DB_SYSTEM)).alias("target"),
        pl.col(s.HTTP_RESEND_COUNT).fill_null(0).alias("resend"),
        _names(s.LANGUAGE).alias("language"),
        _names(s.RUNTIME_NAME).alias("runtime"),
        pl.col(EVENT_TIMES).alias("event_times"),
        *roots,
    )


def _attribute_timeout_signal() -> pl.Expr:
    """The timeout signals carried by attributes and the status message (events excluded)."""
    error_type = _text(s.ERROR_TYPE).fill_null("")
    return (
        error_type.str.contains(_TIMEOUT_WORDS)
        | error_type.is_in(["504", "408"])
        | (pl.col(s.RPC_GRPC_STATUS_CODE).fill_null(-1) == 4)
        | (_text(s.RPC_RESPONSE_STATUS_CODE).fill_null("") == "DEADLINE_EXCEEDED")
        | pl.col(s.HTTP_STATUS_CODE).fill_null(0).is_in([504, 408])
        | pl.col(s.STATUS_MESSAGE).fill_null("").str.contains(_TIMEOUT_WORDS)
    )


def _exception_timeout_signal() -> pl.Expr:
    """True where an ``exception`` event's type or message says timeout/deadline."""
    return (
        pl.col(s.EVENTS)
        .list.eval(
            (pl.element().struct.field("name") == "exception")
            & pl.element()
            .struct.field("attributes")
            .list.eval(
                pl.element().struct.field("key").is_in(["exception.type", "exception.message"])
                & pl.element().struct.field("value").str.contains(_TIMEOUT_WORDS)
            )
            .list.any()
        )
        .list.any()
        .fill_null(False)
    )


TIMEOUT_EDGE: Final = ["service", "name", "target"]
"""Calls that share one configured timeout: caller service, client operation and target
(``server.address`` or ``db.system``; a call that never reached its callee has no child)."""


def client_calls(narrowed: pl.DataFrame, stats: StallStats | None = None) -> pl.DataFrame:
    """Every CLIENT span with its instrumented SERVER child, if any, and its call overhead.

    Columns: the client's ``tid``, ``sid``, ``pid``, ``service``, ``instance``, ``name``,
    ``start``, ``end``, ``dur``, ``error``, ``timeout``, ``target``, ``resend``; the child's
    ``child_sid``, ``child_service``, ``child_instance``, ``child_start``, ``child_dur``;
    ``overhead`` = client duration minus child duration (network + queue + stranded time, ns;
    null without a child), ``usual_overhead`` = the median overhead of the same edge (caller
    service, client operation, callee service), ``excess`` = overhead minus usual overhead, and
    ``budget`` = the timeout budget of the call's edge (caller service, client operation,
    target): the shortest duration of the edge's timed-out calls (ns; null when none timed
    out). A timer never fires early, so a timed-out call that lasted well beyond its edge's
    budget was noticed late by its caller.

    Both edge statistics are over the whole input: pass the whole table, never one part of it,
    or with ``stats`` those of the whole input (:mod:`tailscope.analysis.stall_stats`), which
    are then used instead of ``narrowed``'s.
    """
    clients = narrowed.filter(pl.col("kind") == SpanKind.CLIENT)
    children = narrowed.filter(pl.col("kind") == SpanKind.SERVER).select(
        "tid",
        pl.col("pid").alias("sid"),
        pl.col("sid").alias("child_sid"),
        pl.col("service").alias("child_service"),
        pl.col("instance").alias("child_instance"),
        pl.col("start").alias("child_start"),
        pl.col("dur").alias("child_dur"),
    )
    # one child per client: the first server span that names it as parent
    children = children.unique(subset=["tid", "sid"], keep="first", maintain_order=True)
    joined = clients.join(children, on=["tid", "sid"], how="left")
    overhead = pl.col("dur") - pl.col("child_dur")
    edge = ["service", "name", "child_service"]
    if stats is not None:
        return (
            joined.with_columns(overhead=overhead)
            .join(stats.edges, on=edge, how="left", nulls_equal=True, maintain_order="left")
            .join(
                stats.budgets, on=TIMEOUT_EDGE, how="left", nulls_equal=True, maintain_order="left"
            )
            .with_columns(excess=pl.col("overhead") - pl.col("usual_overhead"))
        )
    return (
        joined.with_columns(overhead=overhead)
        .with_columns(
            usual_overhead=pl.col("overhead").median().over(edge),
            budget=pl.col("dur").filter(pl.col("timeout")).min().over(TIMEOUT_EDGE),
        )
        .with_columns(excess=pl.col("overhead") - pl.col("usual_overhead"))
    )


def instance_timestamps(narrowed: pl.DataFrame) -> pl.DataFrame:
    """Every distinct timestamp each instance took (span starts, ends and event times), sorted.

    Columns: ``instance``, ``t`` (ns, in that instance's own clock) and ``starts`` (how many
    requests the instance started handling at exactly ``t``: SERVER and CONSUMER span starts).
    """
    # grouped and sorted by the instance's dictionary code, not its name (much cheaper on
    # millions of timestamps); only the order within one instance matters downstream
    code = narrowed.select(pl.col("instance").cast(pl.Categorical).to_physical()).to_series()
    request = narrowed["kind"].is_in([SpanKind.SERVER, SpanKind.CONSUMER]).cast(pl.Int32)
    keyed = pl.DataFrame(
        {"code": code, "start": narrowed["start"], "end": narrowed["end"], "request": request}
    )
    parts = [
        keyed.select("code", pl.col("start").alias("t"), pl.col("request").alias("starts")),
        keyed.select("code", pl.col("end").alias("t"), pl.lit(0).alias("starts")),
        pl.DataFrame({"code": code, "t": narrowed["event_times"]})
        .filter(pl.col("t").list.len() > 0)
        .explode("t")
        .select("code", "t", pl.lit(0).alias("starts"))
        .filter(pl.col("t") > 0),
    ]
    names = pl.DataFrame({"code": code, "instance": narrowed["instance"]}).unique("code")
    # distinct (code, t) are runs of the sorted frame: sum ``starts`` per run from a running
    # total instead of a hash group-by (which costs hundreds of MB on millions of keys)
    run_ends = pl.col("code").ne_missing(pl.col("code").shift(-1)) | pl.col("t").ne_missing(
        pl.col("t").shift(-1)
    )
    return (
        pl.concat(parts)
        .sort("code", "t")
        .with_columns(total=pl.col("starts").cum_sum())
        .filter(run_ends)
        .with_columns(
            starts=(pl.col("total") - pl.col("total").shift(1).fill_null(0)).cast(pl.Int32)
        )
        .join(names, on="code", how="left", maintain_order="left")
        .select("instance", "t", "starts")
    )


def _instance_codes(column: pl.Series) -> NDArray[np.int64]:
    """Global categorical codes of an instance column (the same name has the same code in
    every frame, so codes of different frames can be compared)."""
    return column.cast(pl.Categorical).to_physical().cast(pl.Int64).to_numpy()


def spans_across(spans: pl.DataFrame, windows: pl.DataFrame) -> pl.DataFrame:
    """Pairs of a span and a window of the same instance that it overlaps (start < b, end > a).

    ``spans`` needs ``instance``, ``start``, ``end``; ``windows`` needs ``instance``, ``a``,
    ``b`` and must not overlap within one instance (silences never do). Output-sensitive: the
    windows a span overlaps form one contiguous run of its instance's windows (sorted by
    ``a``), found with two binary searches per span, one pass per instance that has windows;
    no span is paired with windows it does not touch. Columns: those of ``spans``, then those
    of ``windows`` but ``instance``.
    """
    # by instance code (not name: categoricals sort lexically), then start
    code_order = np.lexsort((windows["a"].to_numpy(), _instance_codes(windows["instance"])))
    ordered = windows[code_order]
    window_code = _instance_codes(ordered["instance"])
    window_a = ordered["a"].to_numpy()
    window_b = ordered["b"].to_numpy()
    span_code = _instance_codes(spans["instance"])
    span_start = spans["start"].to_numpy()
    span_end = spans["end"].to_numpy()
    by_instance = np.argsort(span_code, kind="stable")
    sorted_code = span_code[by_instance]
    rows: list[NDArray[np.int64]] = []
    first: list[NDArray[np.int64]] = []
    count: list[NDArray[np.int64]] = []
    for code in np.unique(window_code):
        lo, hi = np.searchsorted(window_code, [code, code + 1])
        s_lo, s_hi = np.searchsorted(sorted_code, [code, code + 1])
        mine = by_instance[s_lo:s_hi]
        # first window ending after the span starts, last window starting before it ends
        run_start = np.searchsorted(window_b[lo:hi], span_start[mine], side="right")
        run_end = np.searchsorted(window_a[lo:hi], span_end[mine], side="left")
        touching = run_end > run_start
        rows.append(mine[touching])
        first.append(lo + run_start[touching])
        count.append((run_end - run_start)[touching])
    row = np.concatenate(rows) if rows else np.zeros(0, dtype=np.int64)
    runs = np.concatenate(count) if count else np.zeros(0, dtype=np.int64)
    starts = np.concatenate(first) if first else np.zeros(0, dtype=np.int64)
    pair_row = np.repeat(row, runs)
    # window index: the run's first window plus the position within the run
    within = np.arange(pair_row.size) - np.repeat(np.cumsum(runs) - runs, runs)
    pair_window = np.repeat(starts, runs) + within
    return pl.concat([spans[pair_row], ordered.drop("instance")[pair_window]], how="horizontal")


def spans_starting_after(
    spans: pl.DataFrame, windows: pl.DataFrame, after: str, within: pl.Expr
) -> pl.DataFrame:
    """Pairs of a span and the window of its instance whose column ``after`` is the latest at or
    before the span's start, kept where ``within`` (an expression over both) holds.

    One window per span: used for requests that queued behind a silence and started when it
    ended (``after`` = the window's start or first resume; ``within`` bounds the burst).
    """
    ordered = windows.sort("instance", after).with_row_index("_wi")
    return (
        spans.sort("start")
        .join_asof(
            ordered.select("instance", pl.col(after).alias("_after"), "_wi").sort("_after"),
            left_on="start",
            right_on="_after",
            by="instance",
            strategy="backward",
            check_sortedness=False,
        )
        .drop_nulls("_wi")
        .join(ordered.drop("instance"), on="_wi")
        .filter(within)
        .drop("_wi", "_after")
    )
