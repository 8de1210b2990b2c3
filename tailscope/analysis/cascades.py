"""Timeout -> retry cascades caused by stalls, and the timeouts no stall explains.

A stall hurts its callers through time: a request in flight inside the paused process (or queued
in front of it) makes the caller's CLIENT span wait past its configured timeout; the caller
retries, the retry may time out as well, and the callers further up wait past theirs. So a
timed-out span is linked to a stall when it is, or is an ancestor of, a span the stall touched:

* a span of the stalled instance in flight across the silence (stretched), or
* a SERVER span of it that started inside or right after the silence and whose caller's
  network-plus-queue time exceeds the edge's usual by at least ``MIN_EXCESS_NS`` (queued), or
* (for callers whose request left no SERVER span) a CLIENT span aimed at the stalled instance by
  ``server.address`` whose own interval overlaps the silence within the skew margin.

Ancestry is followed with parent ids only — no cross-host timestamp comparison. Retries are the
later attempts of the same logical call (same trace, parent span and target) or spans carrying
``http.request.resend_count``. Timed-out spans linked to no stall become
:class:`~tailscope.report.model.UnexplainedTimeout` rows per call edge, with the hop where the
time most likely went; they are never labelled as GC.
"""

from __future__ import annotations

from collections import Counter
from typing import Final

import numpy as np
import polars as pl
from numpy.typing import NDArray

from tailscope.analysis._stall_common import (
    NS_PER_MS,
    as_names,
    client_calls,
    narrow,
    spans_across,
    spans_starting_after,
)
from tailscope.analysis.stalls import BURST_NS, LATE_NS, MIN_EXCESS_NS, SKEW_MARGIN_NS
from tailscope.histogram import LatencyHistogram
from tailscope.report.model import Cascade, Stall, UnexplainedTimeout
from tailscope.schema import SpanKind

MAX_DEPTH: Final = 256
"""Deepest parent chain followed when walking from touched spans up to their roots."""
DEPENDENCY_SHARE: Final = 0.5
"""A downstream call taking at least this share of the callee's time is where the time went."""


def find_cascades(
    spans: pl.DataFrame,
    stalls: tuple[Stall, ...],
    *,
    narrowed: pl.DataFrame | None = None,
    calls: pl.DataFrame | None = None,
) -> tuple[tuple[Cascade, ...], tuple[UnexplainedTimeout, ...]]:
    """Cascades linked to ``stalls`` (indices into that tuple) and timeouts no stall explains.

    Args:
        spans: the span table as a polars DataFrame.
        stalls: what :func:`~tailscope.analysis.stalls.detect_stalls` found in the same table.
        narrowed: ``narrow(spans)`` when the caller already has it (not recomputed).
        calls: ``client_calls(narrowed)`` when the caller already has it (not recomputed).

    Returns:
        Cascades ordered by the stall they belong to, and unexplained timeouts per call edge,
        most timeouts first.
    """
    if spans.height == 0:
        return (), ()
    if narrowed is None:
        narrowed = narrow(spans)
    if calls is None:
        calls = client_calls(narrowed)
    timeouts = calls.filter(pl.col("timeout"))
    if timeouts.height == 0:
        return (), ()
    linked = _linked_timeouts(narrowed, calls, timeouts, stalls)
    cascades = _cascades(narrowed, calls, linked, stalls)
    unexplained = _unexplained(calls, timeouts.join(linked, on=["tid", "sid"], how="anti"))
    return cascades, unexplained


def _touched(
    narrowed: pl.DataFrame, calls: pl.DataFrame, stalls: tuple[Stall, ...]
) -> pl.DataFrame:
    """Spans each stall touched directly: ``stall``, ``tid``, ``sid`` and ``delay`` (ns).

    ``delay`` is how much the stall lengthened what the span's caller waited for: for a
    stretched span, the part of the silence it spent in flight (for a call with a timeout
    budget, only the part before its timer fell due) less the part its children in flight
    spent across it (a span waiting on a child is delayed only through that child, which
    carries the delay, if any), and for a CLIENT span only when it ended right after the
    silence (its response or timer was stranded there; a call still waiting well after the
    process resumed was not lengthened); the extra queue time for a queued span (0: it lies
    outside the child's duration); the silence for a call aimed at the instance by name.
    """
    windows = pl.DataFrame(
        {
            "stall": list(range(len(stalls))),
            "instance": [st.instance for st in stalls],
            "a": [st.start_unix_nano for st in stalls],
            "b": [st.end_unix_nano for st in stalls],
        },
        schema={"stall": pl.Int64, "instance": pl.String, "a": pl.Int64, "b": pl.Int64},
    ).with_columns(*as_names("instance"), gap=pl.col("b") - pl.col("a"))
    mine = narrowed.select("tid", "sid", "pid", "instance", "kind", "start", "end")
    burst = pl.max_horizontal(pl.lit(BURST_NS), pl.col("gap") // 2)
    # no timestamps inside a silence: a span overlapping it was in flight across (part of) it
    across = spans_across(mine, windows)
    overlap = pl.min_horizontal("end", "b") - pl.max_horizontal("start", "a")
    waiting_on_child = (
        across.group_by("stall", "tid", pl.col("pid").alias("sid"))
        .agg(overlap.sum().alias("_waiting"))
        .drop_nulls("sid")
    )
    # a call's timer falls due at start + budget: pause time after it ate none of the budget
    due = calls.select("tid", "sid", (pl.col("start") + pl.col("budget")).alias("_due"))
    stretched = (
        across.join(waiting_on_child, on=["stall", "tid", "sid"], how="left")
        .join(due, on=["tid", "sid"], how="left")
        .with_columns(
            delay=pl.when(
                (pl.col("kind") == SpanKind.CLIENT) & (pl.col("end") > pl.col("b") + burst)
            )
            .then(pl.lit(0, dtype=pl.Int64))
            .otherwise(
                (
                    pl.min_horizontal("end", "b", pl.col("_due").fill_null(pl.col("end")))
                    - pl.max_horizontal("start", "a")
                    - pl.col("_waiting").fill_null(0)
                ).clip(lower_bound=0)
            )
        )
        .drop("_waiting", "_due")
    )
    callers = calls.select("tid", pl.col("child_sid").alias("sid"), "excess").drop_nulls("sid")
    queued = (
        spans_starting_after(
            mine.filter(pl.col("kind") == SpanKind.SERVER),
            windows,
            "a",
            (pl.col("start") > pl.col("a")) & (pl.col("start") <= pl.col("b") + burst),
        )
        .join(callers, on=["tid", "sid"], how="inner")
        .filter(pl.col("excess") >= MIN_EXCESS_NS)
        .with_columns(delay=pl.lit(0, dtype=pl.Int64))
    )
    # callers whose request left no server span: match the target by name, times with margin
    single = narrowed.group_by("service").agg(pl.col("instance").n_unique().alias("n"))
    named = windows.join(
        narrowed.select("instance", "service", "host").unique("instance"), on="instance"
    ).join(single, on="service")
    targets = pl.concat(
        [
            named.select("stall", "a", "b", "gap", pl.col("instance").alias("target")),
            named.drop_nulls("host").select(
                "stall", "a", "b", "gap", pl.col("host").alias("target")
            ),
            named.filter(pl.col("n") == 1).select(
                "stall", "a", "b", "gap", pl.col("service").alias("target")
            ),
        ]
    ).unique(["stall", "target"])
    aimed = (
        calls.filter(pl.col("child_sid").is_null())
        .select("tid", "sid", "target", "start", "end")
        .join(targets, on="target", how="inner")
        .filter(
            (pl.col("start") <= pl.col("b") + SKEW_MARGIN_NS)
            & (pl.col("end") >= pl.col("a") - SKEW_MARGIN_NS)
        )
        .with_columns(delay=pl.col("gap"))
    )
    return (
        pl.concat([f.select("stall", "tid", "sid", "delay") for f in (stretched, queued, aimed)])
        .group_by("stall", "tid", "sid")
        .agg(pl.col("delay").max())
    )


def _linked_timeouts(
    narrowed: pl.DataFrame,
    calls: pl.DataFrame,
    timeouts: pl.DataFrame,
    stalls: tuple[Stall, ...],
) -> pl.DataFrame:
    """Timed-out spans that are, or are ancestors of, a span some stall touched, and that would
    not have timed out without the stall's delay.

    The counterfactual test, per timed-out CLIENT span with a SERVER child: what the client
    would have waited without the stalls is the child's duration plus the edge's usual
    overhead, minus the delay all stalls put inside the child's subtree (silences, or a
    descendant's queue time). If that still reaches the edge's timeout budget (or the client's
    own duration, when shorter), the call would have timed out anyway (a slow dependency that
    also met a pause) and is not linked. A call noticed late by a paused caller lasted beyond
    its budget; the budget, not that duration, is what the call had to beat. Columns: ``tid``,
    ``sid``, ``stall`` (the stall that delayed the span most).
    """
    empty = pl.DataFrame(schema={"tid": pl.Binary, "sid": pl.Binary, "stall": pl.Int64})
    if not stalls:
        return empty
    touched = _touched(narrowed, calls, stalls)
    frontier = touched
    # ancestors share the trace: only the touched traces' parent links are ever followed
    parents = (
        narrowed.select("tid", "sid", "pid")
        .drop_nulls("pid")
        .join(frontier.select("tid").unique(), on="tid", how="semi")
    )
    reached = [frontier]
    seen = frontier.select("stall", "tid", "sid")
    for _ in range(MAX_DEPTH):
        up = (
            frontier.join(parents, on=["tid", "sid"], how="inner")
            .group_by("stall", "tid", pl.col("pid").alias("sid"))
            .agg(pl.col("delay").max())
            .join(seen, on=["stall", "tid", "sid"], how="anti")
        )
        if up.height == 0:
            break
        reached.append(up)
        seen = pl.concat([seen, up.select("stall", "tid", "sid")])
        frontier = up
    affected = pl.concat(reached).group_by("stall", "tid", "sid").agg(pl.col("delay").max())
    # the delay all stalls together put inside a timed-out client's child subtree (queue time
    # in front of the child itself is outside the child's duration and is not subtracted)
    inside = (
        affected.group_by("tid", "sid")
        .agg(pl.col("delay").sum())
        .select("tid", pl.col("sid").alias("child_sid"), pl.col("delay").alias("inside"))
    )
    counterfactual = (
        pl.col("child_dur") + pl.col("usual_overhead").clip(lower_bound=0) - pl.col("inside")
    )
    # the same test cut where the callee, frozen itself, first called further down only after
    # the caller's timer had fallen due: what it met down there came too late to be the cause
    cut = _calls_after_due(calls, timeouts).join(
        touched.group_by("tid", "sid").agg(pl.col("delay").sum().alias("_own")),
        left_on=["tid", "child_sid"],
        right_on=["tid", "sid"],
        how="inner",
    )
    counterfactual_cut = (
        pl.col("_until_late")
        + pl.col("usual_overhead").clip(lower_bound=0)
        - pl.col("_own").fill_null(0)
    )
    # each timed-out span belongs to the stall that delayed it most
    strongest = (
        affected.sort("delay", "stall", descending=[True, False])
        .unique(["tid", "sid"], keep="first")
        .select("tid", "sid", "stall", "delay")
    )
    summed = affected.group_by("tid", "sid").agg(pl.col("delay").sum().alias("_summed"))
    # a call without an instrumented child (a database, an external API, a request its callee
    # never started) is linked only when the delays of all the stalls that met it, summed, are
    # at least half of it: it waited through every silence of its target in its interval, each
    # adding to the wait; a slow dependency that merely met a pause of
    # its caller would have timed out anyway. Nor when it was noticed late: its caller resumed
    # after the timer fell due and still found no response waiting (a resumed thread reads a
    # response that arrived meanwhile), so the dependency was slower than the budget anyway
    noticed_late = pl.col("dur") >= pl.col("budget") + LATE_NS
    linked = (
        timeouts.select(
            "tid",
            "sid",
            "dur",
            "budget",
            "child_sid",
            "child_dur",
            "usual_overhead",
            pl.min_horizontal("budget", "dur").alias("limit"),
        )
        .join(strongest, on=["tid", "sid"], how="inner")
        .join(summed, on=["tid", "sid"], how="inner")
        .join(inside, on=["tid", "child_sid"], how="left")
        .join(cut.select("tid", "sid", "_until_late", "_own"), on=["tid", "sid"], how="left")
        .with_columns(pl.col("inside").fill_null(0))
        .filter(
            pl.when(pl.col("child_dur").is_null())
            .then((pl.col("_summed") * 2 >= pl.col("limit")) & ~noticed_late.fill_null(False))
            .otherwise(
                (counterfactual < pl.col("limit"))
                | (counterfactual_cut < pl.col("limit")).fill_null(False)
            )
        )
        .select("tid", "sid", "stall", pl.col("child_sid").is_null().alias("_childless"))
    )
    linked = linked.join(
        _timing_out_anyway(linked.filter(pl.col("_childless")), timeouts, stalls, touched),
        on=["tid", "sid"],
        how="anti",
    ).drop("_childless")
    # a timeout with an unexplained timeout below it (a slow dependency that timed out on its
    # own) is that dependency's, even when a pause added to the wait: the slow call wins —
    # unless the call below started after this call's timer had fallen due
    parents = (
        narrowed.select("tid", "sid", "pid")
        .drop_nulls("pid")
        .join(linked.select("tid").unique(), on="tid", how="semi")
    )
    for _ in range(MAX_DEPTH):
        leftover = timeouts.select("tid", "sid").join(linked, on=["tid", "sid"], how="anti")
        blocked = _timed_out_below_in_time(
            leftover.join(parents.select("tid").unique(), on="tid"), parents, calls
        )
        kept = linked.join(blocked, on=["tid", "sid"], how="anti")
        if kept.height == linked.height:
            break
        linked = kept
    return linked


def _calls_after_due(calls: pl.DataFrame, timeouts: pl.DataFrame) -> pl.DataFrame:
    """Timed-out calls whose callee made its first call further down only after the caller's
    timer had fallen due: ``tid``, ``sid``, ``_until_late`` (ns from the callee's SERVER span
    start to that call's start).

    Both times are on the callee's clock. The request reached the callee after the caller sent
    it, so the caller's timer (per attempt, or per socket operation from the send) fell due by
    the callee's start plus the budget; a call that started later cannot have delayed the
    answer the caller gave up on. (A CPython ``http.client`` caller of a callee frozen before
    it queried a slow database times out while the callee is frozen; the query, and its own
    timeout, come after — docs/detection.md, "Real-SDK runs: what a socket timeout measures".)
    """
    own = timeouts.filter(pl.col("child_sid").is_not_null() & pl.col("budget").is_not_null())
    return (
        own.select("tid", "sid", "child_sid", "child_start", "budget")
        .join(
            calls.select("tid", pl.col("pid").alias("child_sid"), pl.col("start").alias("_down")),
            on=["tid", "child_sid"],
            how="inner",
        )
        .group_by("tid", "sid", "child_sid", "child_start", "budget")
        .agg(pl.col("_down").min())
        .filter(pl.col("_down") > pl.col("child_start") + pl.col("budget"))
        .select(
            "tid",
            "sid",
            "child_sid",
            (pl.col("_down") - pl.col("child_start")).alias("_until_late"),
        )
    )


def _timed_out_below_in_time(
    leftover: pl.DataFrame, parents: pl.DataFrame, calls: pl.DataFrame
) -> pl.DataFrame:
    """Timed-out calls (``tid``, ``sid``) with a timeout of ``leftover`` below them that could
    have held them up: the call on the path that their callee made (the leftover timeout itself,
    or the call it lies under) started before the callee's SERVER span start plus their budget,
    both on the callee's clock. A call started later began after their timer had fallen due.
    Without a SERVER child or a budget the timeout below always counts. Follows ``parents``
    (``tid``, ``sid``, ``pid``) links up to the roots."""
    # only the leftover timeouts' traces are ever walked
    mine = calls.join(leftover.select("tid").unique(), on="tid", how="semi")
    due = mine.select("tid", "sid", "child_start", "budget")
    entries = mine.select("tid", "sid", pl.col("start").alias("_entry"))
    frontier = leftover.select("tid", "sid").join(entries, on=["tid", "sid"], how="inner")
    found = [frontier.select("tid", "sid").clear()]
    for _ in range(MAX_DEPTH):
        up = (
            frontier.join(parents, on=["tid", "sid"], how="inner")
            .group_by("tid", pl.col("pid").alias("sid"))
            .agg(pl.col("_entry").min())
            .join(due, on=["tid", "sid"], how="left")
        )
        if up.height == 0:
            break
        # spans that are no call (SERVER, internal) pass: only timed-out calls are ever blocked
        in_time = (
            pl.col("child_start").is_null()
            | pl.col("budget").is_null()
            | (pl.col("_entry") <= pl.col("child_start") + pl.col("budget"))
        )
        found.append(up.filter(in_time).select("tid", "sid"))
        # past a call, the entry is that call's own start (on its caller's clock)
        frontier = up.join(entries, on=["tid", "sid"], how="left", suffix="_call").select(
            "tid", "sid", pl.coalesce("_entry_call", "_entry").alias("_entry")
        )
    return pl.concat(found).unique()


def _timing_out_anyway(
    childless: pl.DataFrame,
    timeouts: pl.DataFrame,
    stalls: tuple[Stall, ...],
    touched: pl.DataFrame,
) -> pl.DataFrame:
    """Linked timed-out calls without an instrumented child (``tid``, ``sid``, ``stall``) whose
    dependency was timing out anyway: another call of the same caller instance to the same
    target, started within one budget of it and clear of the stall's window (same clock),
    timed out too, and no stall delayed that other call (``touched``: :func:`_touched`). A slow
    database window times out every call; a pause, only those it met — and a callee pausing
    again a few hundred ms later times out the calls that meet the next pause.
    Columns: ``tid``, ``sid``."""
    if childless.height == 0:
        return childless.select("tid", "sid")
    windows = pl.DataFrame(
        {
            "stall": list(range(len(stalls))),
            "a": [st.start_unix_nano for st in stalls],
            "b": [st.end_unix_nano for st in stalls],
        },
        schema={"stall": pl.Int64, "a": pl.Int64, "b": pl.Int64},
    )
    mine = childless.join(
        timeouts.select("tid", "sid", "instance", "target", "start", "budget"), on=["tid", "sid"]
    ).join(windows, on="stall")
    others = (
        timeouts.join(touched.filter(pl.col("delay") > 0), on=["tid", "sid"], how="anti")
        .select(
            "instance",
            "target",
            pl.col("sid").alias("_other"),
            pl.col("start").alias("_start"),
            pl.col("end").alias("_end"),
        )
        .join(mine.select("instance", "target").unique(), on=["instance", "target"], how="semi")
    )
    return (
        mine.join(others, on=["instance", "target"], how="inner")
        .filter(
            (pl.col("_other") != pl.col("sid"))
            & ((pl.col("_start") - pl.col("start")).abs() <= pl.col("budget"))
            & ((pl.col("_end") < pl.col("a")) | (pl.col("_start") > pl.col("b")))
        )
        .select("tid", "sid")
        .unique()
    )


def _cascades(
    narrowed: pl.DataFrame,
    calls: pl.DataFrame,
    linked: pl.DataFrame,
    stalls: tuple[Stall, ...],
) -> tuple[Cascade, ...]:
    if linked.height == 0:
        return ()
    # logical calls: attempts from the same parent span (same caller instance, so one clock)
    # with the same operation and target, in start order; the child's service is not part of
    # the key, since an attempt that never reached the callee has no child
    key = ["tid", "pid", "instance", "name", "target"]
    # only calls made by the parents of linked calls can be attempts of an affected call; their
    # groups are kept whole, so the attempt numbers are those over all calls
    linked_parents = (
        linked.join(calls.select("tid", "sid", "pid"), on=["tid", "sid"])
        .select("tid", "pid")
        .unique()
    )
    attempts = calls.join(
        linked_parents, on=["tid", "pid"], how="semi", nulls_equal=True
    ).with_columns(
        attempt=pl.col("start").rank("ordinal").over(key),
        call_key=pl.struct(key),
    )
    linked_calls = linked.join(
        attempts.select("tid", "sid", "call_key", "attempt"), on=["tid", "sid"]
    )
    # a logical call whose attempts met different stalls belongs to the first one it met
    per_stall_calls = (
        linked_calls.sort("attempt").unique("call_key", keep="first").select("stall", "call_key")
    )
    affected_attempts = attempts.join(per_stall_calls, on="call_key", how="inner")
    call_stats = affected_attempts.group_by("stall").agg(
        pl.len().alias("attempts"),
        pl.col("call_key").n_unique().alias("logical"),
        ((pl.col("attempt") > 1) | (pl.col("resend") > 0)).sum().alias("retries"),
        pl.col("start").min().alias("first"),
        pl.col("end").max().alias("last"),
    )
    roots = _roots(narrowed).with_columns(op=pl.col("service") + pl.lit(" ") + pl.col("name"))
    traces = linked.select("stall", "tid").unique()
    timed = linked.group_by("stall").agg(pl.len().alias("timed_out"))
    affected_roots = traces.join(roots.select("tid", "op"), on="tid", how="inner")
    per_stall = (
        call_stats.join(timed, on="stall")
        .join(traces.group_by("stall").agg(pl.col("tid")), on="stall", how="left")
        .join(
            affected_roots.group_by("stall").agg(pl.col("op").unique().alias("ops")),
            on="stall",
            how="left",
        )
        .sort("stall")
    )
    impacts = _p99_impacts_ms(roots, affected_roots)
    out: list[Cascade] = []
    for row in per_stall.iter_rows(named=True):
        idx = int(row["stall"])
        stall = stalls[idx]
        ops = sorted(set(row["ops"] or []))
        out.append(
            Cascade(
                stall=idx,
                service=stall.service,
                instance=stall.instance,
                start_unix_nano=min(int(row["first"]), stall.start_unix_nano),
                end_unix_nano=max(int(row["last"]), stall.end_unix_nano),
                timed_out_spans=int(row["timed_out"]),
                retries=int(row["retries"]),
                amplification=round(int(row["attempts"]) / max(int(row["logical"]), 1), 3),
                root_operations=tuple(ops),
                trace_ids=tuple(sorted(t.hex() for t in row["tid"] or [])),
                p99_impact_ms=impacts.get(idx, 0.0),
            )
        )
    return tuple(out)


def _roots(narrowed: pl.DataFrame) -> pl.DataFrame:
    """One root span per trace (no parent, or a parent not in the input): the earliest."""
    if "is_root" in narrowed.columns:  # the pipeline's span tree already knows
        candidates = narrowed.filter(pl.col("is_root")).select(
            "tid", "service", "name", "start", "dur"
        )
    else:
        present = narrowed.select("tid", pl.col("sid").alias("pid"))
        candidates = (
            narrowed.select("tid", "pid", "service", "name", "start", "dur")
            .join(present, on=["tid", "pid"], how="anti")
            .drop("pid")
        )
    return candidates.sort("start").unique("tid", keep="first")


def p99_ns(durations_ns: NDArray[np.int64]) -> int:
    """The p99 of ``durations_ns`` exactly as :class:`LatencyHistogram` reports it, cheaply.

    A histogram's quantile is the highest value equivalent to the bucket holding the
    nearest-rank sample; bucketing is monotone, so that bucket is the one of the nearest-rank
    value of the sorted raw durations. Recording that one value is enough — recording every
    duration costs one hdrh call per distinct bucket, per cascade.
    """
    if durations_ns.size == 0:
        return 0
    rank = max(int(0.99 * durations_ns.size + 0.5), 1)
    value = int(np.partition(durations_ns, rank - 1)[rank - 1])
    return LatencyHistogram.from_durations_ns([value]).quantile_ns(0.99)


def _p99_impacts_ms(roots: pl.DataFrame, affected: pl.DataFrame) -> dict[int, float]:
    """Per stall: the largest, over its affected root operations, of the root p99 with minus
    the p99 without the stall's traces (ms, rounded to µs).

    ``roots`` has one row per trace (``tid``, ``op``, ``dur``); ``affected`` the ``stall``,
    ``tid`` and ``op`` of every root a stall's cascade reached. Each operation's durations are
    sorted once; removing a cascade's traces only shifts ranks, so the nearest-rank sample of
    what remains is found by index arithmetic on the removed positions (the same value
    :func:`p99_ns` would pick from the filtered durations).
    """
    if affected.height == 0:
        return {}
    ranked = (
        roots.filter(pl.col("op").is_not_null())
        .select("tid", "op", "dur")
        .sort("op", "dur", "tid")
        .with_columns(pos=pl.int_range(pl.len(), dtype=pl.Int64).over("op"))
    )
    sorted_durs = {
        str(op): np.asarray(durs, dtype=np.int64)
        for op, durs in ranked.group_by("op").agg(pl.col("dur")).iter_rows()
    }
    removed = (
        affected.join(ranked.select("tid", "op", "pos"), on=["tid", "op"], how="inner")
        .group_by("stall", "op")
        .agg(pl.col("pos").sort())
    )
    p99_of_value: dict[int, int] = {}

    def p99_at(durs: NDArray[np.int64], gone: NDArray[np.int64]) -> int:
        n = durs.size - gone.size
        if n <= 0:
            return 0
        rank = max(int(0.99 * n + 0.5), 1)
        # the rank-th remaining value sits at the first position p with
        # p + 1 - (removed positions <= p) == rank: a fixed point reached in <= len(gone) steps
        pos = rank - 1
        while True:
            moved = rank - 1 + int(np.searchsorted(gone, pos, side="right"))
            if moved == pos:
                break
            pos = moved
        value = int(durs[pos])
        if value not in p99_of_value:
            p99_of_value[value] = LatencyHistogram.from_durations_ns([value]).quantile_ns(0.99)
        return p99_of_value[value]

    no_removal = np.empty(0, dtype=np.int64)
    worst: dict[int, float] = {}
    for stall, op, positions in removed.iter_rows():
        durs = sorted_durs[str(op)]
        impact = (
            p99_at(durs, no_removal) - p99_at(durs, np.asarray(positions, np.int64))
        ) / NS_PER_MS
        worst[int(stall)] = max(worst.get(int(stall), 0.0), impact)
    return {stall: round(value, 3) for stall, value in worst.items()}


def _unexplained(calls: pl.DataFrame, leftover: pl.DataFrame) -> tuple[UnexplainedTimeout, ...]:
    """Group timeouts no stall explains by call edge and name the hop the time went to."""
    if leftover.height == 0:
        return ()
    # the longest downstream call made inside each SERVER span (keyed by that span's id),
    # for the callees of the leftover timeouts only
    callees = (
        leftover.select("tid", "sid")
        .join(calls.select("tid", "sid", "child_sid"), on=["tid", "sid"], how="inner")
        .select("tid", pl.col("child_sid").alias("pid"))
        .drop_nulls("pid")
        .unique()
    )
    longest = (
        calls.join(callees, on=["tid", "pid"], how="semi")
        .with_columns(down=pl.coalesce("child_service", "target", "name"))
        .sort("dur", descending=True)
        .unique(["tid", "pid"], keep="first")
        .select("tid", pl.col("pid").alias("child_sid"), "down", pl.col("dur").alias("down_dur"))
    )
    inner_share = pl.col("down_dur") / pl.max_horizontal(pl.col("child_dur"), pl.lit(1))
    hop = (
        pl.when(pl.col("child_sid").is_null() & pl.col("target").is_not_null())
        .then(pl.lit("dependency ") + pl.col("target"))
        .when(pl.col("child_sid").is_null())
        .then(pl.lit("unknown"))
        .when(
            pl.col("child_start").is_not_null()
            & (pl.col("child_dur") < pl.col("dur") // 2)
            & (pl.col("overhead") > pl.col("dur") // 2)
        )
        .then(pl.lit("network"))
        .when(pl.col("down_dur").is_not_null() & (inner_share >= DEPENDENCY_SHARE))
        .then(pl.lit("dependency ") + pl.col("down"))
        .otherwise(pl.lit("self ") + pl.col("child_service"))
    )
    edge_timeout = (
        calls.filter(pl.col("timeout"))
        .with_columns(callee=pl.coalesce("child_service", "target", pl.lit("unknown")))
        .with_columns(ms=(pl.col("dur") / NS_PER_MS).round(0))
        .group_by("service", "callee", "name")
        .agg(pl.col("ms").mode().min().alias("inferred_ms"))
    )
    labelled = (
        leftover.select("tid", "sid")
        .join(calls, on=["tid", "sid"], how="inner")
        .join(longest, on=["tid", "child_sid"], how="left")
        .with_columns(callee=pl.coalesce("child_service", "target", pl.lit("unknown")), hop=hop)
        .join(edge_timeout, on=["service", "callee", "name"], how="left")
    )
    groups = labelled.group_by("service", "callee", "name").agg(
        pl.len().alias("n"),
        pl.col("hop").alias("hops"),
        pl.col("inferred_ms").first(),
        pl.col("tid").unique().alias("tids"),
    )
    out: list[UnexplainedTimeout] = []
    for row in groups.sort("n", "service", descending=[True, False]).iter_rows(named=True):
        hops = Counter(row["hops"]).most_common(1)
        out.append(
            UnexplainedTimeout(
                caller_service=row["service"],
                callee=row["callee"],
                operation=row["name"],
                timed_out_spans=int(row["n"]),
                inferred_timeout_ms=None
                if row["inferred_ms"] is None
                else float(row["inferred_ms"]),
                likely_hop=hops[0][0] if hops else "unknown",
                trace_ids=tuple(sorted(t.hex() for t in row["tids"])),
            )
        )
    return tuple(out)
