"""Stop-the-world stall detection per process, from traces alone.

A process in a stop-the-world pause (a full GC, a safepoint, a frozen VM) takes no timestamps:
span starts, ends and events all stop for the same wall-clock window, the spans it had in flight
get stretched across it, requests that arrive meanwhile queue and start together when it ends,
and responses to its own outgoing calls sit unread until it resumes. :func:`detect_stalls` looks
for exactly that signature, per instance:

1. **Silence** — a gap between consecutive timestamps of one instance that is at least
   :data:`MIN_GAP_NS` long and :data:`RATE_FACTOR` times the instance's recent mean interval
   (back-to-back pauses separated only by the release of the queue are one window).
2. **Evidence from several traces** (a score of at least :data:`MIN_SCORE`, see there):

   * *working stretched*: a span of the instance in flight across the silence that was not
     merely waiting on a downstream call (its innermost in-flight span is not a CLIENT span,
     nor of unspecified kind) nor backing off before a retry (its last finished child did not
     fail); weak evidence, scored :data:`WORKING_WEIGHT`;
   * *stranded responses*: an in-flight CLIENT span of the instance that succeeded but whose
     SERVER child finished well before the client did (client minus child duration, beyond the
     edge's usual network time, is large) and that ended right after the silence, when the
     process resumed and read it; a client that gave up is no evidence, nor one whose child was
     itself queued behind a silence of its own instance, unless answers of at least
     :data:`STRANDED_CALLEES` callee instances were read together right after the silence;
   * *timeouts noticed late*: an in-flight CLIENT span of the instance that timed out, whose
     timer fell due inside the silence, and that lasted at least :data:`LATE_NS` beyond its
     edge's timeout budget, ending right after the silence: the process noticed late because
     it was not running;
   * *queued requests*: SERVER spans of the instance starting right after the gap whose
     caller's CLIENT span shows an unusually large network-plus-queue time (a caller that gave
     up early shows it too: its duration is the timeout, the queued child's is short). A
     caller that was itself paused while the call was open (silent, or its timeout noticed
     late) is no evidence against the callee. The queue must have witnessed a pause: the
     longest extra wait is at least :data:`QUEUE_WITNESS_NS`, and it measures the *pause part*
     of a silence that began as idle time, against which the other waits are judged. A
     single long wait released first counts twice when its caller was seen running during
     the call (:data:`LONE_WAIT_NS`). When nothing of the instance was in flight across the
     silence, a request whose caller took no timestamp from when the answer could have come
     until the call ended is no evidence (:data:`HELD_MARGIN_NS`): the caller may have read a
     prompt answer late.

3. **Context** — if every other instance active around the window was silent too and fewer
   than :data:`MIN_SCORE` traces waited on it (queued, stranded, noticed late), it is a
   telemetry gap and is not reported; if every other instance on the same host was silent, the
   stall is of kind ``host``; if the sibling instances of the same service were silent too, the
   confidence is halved (traffic may simply have stopped).

Clock rules: gaps, stretching and queue bursts compare timestamps of one instance only; evidence
across instances uses durations; silence of instances on other hosts is judged with a
:data:`SKEW_MARGIN_NS` margin on both sides. So per-host clock offsets of tens of milliseconds
can neither create nor hide a stall. Reported times are the instance's own clock.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Final

import numpy as np
import polars as pl
from numpy.typing import NDArray

from tailscope.analysis._stall_common import (
    NS_PER_MS,
    client_calls,
    instance_timestamps,
    narrow,
    spans_across,
    spans_starting_after,
)
from tailscope.report.model import Stall
from tailscope.schema import SpanKind

if TYPE_CHECKING:
    from tailscope.analysis.stall_stats import WholeInput

MIN_GAP_NS: Final = 10 * NS_PER_MS
"""Shortest silence considered (10 ms): shorter pauses rarely push anything past a timeout."""
RATE_FACTOR: Final = 8.0
"""A silence must last this many times the instance's recent mean interval between timestamps."""
RECENT_TIMESTAMPS: Final = 32
"""How many preceding timestamps define an instance's recent rate."""
COMPONENT_GAP_NS: Final = 5 * NS_PER_MS
"""Shortest part of a chain of back-to-back silences."""
MERGE_BLIP_NS: Final = NS_PER_MS
"""Activity between two silences that always makes them one window (with a released queue)."""
MERGE_BLIP_SHARE: Final = 0.25
"""... and, between two silences of at least :data:`QUIET_GAP_NS`, up to this share of the
shorter one (at most :data:`MERGE_BLIP_MAX_NS`): a collection, a short burst of released
requests, another collection."""
MERGE_BLIP_MAX_NS: Final = 25 * NS_PER_MS
QUIET_GAP_NS: Final = 25 * NS_PER_MS
"""A silence this long is a candidate whatever the instance's rate (a time-based baseline:
an instance with one span per request at tens of requests per second has recent intervals of
tens of ms, so the rate test alone would need hundreds of ms); such a *quiet* candidate must be
confirmed by callers waiting (queued requests, stranded responses), not by stretched work."""
MERGE_MIN_STARTS: Final = 2
"""... and in which at least this many requests (SERVER/CONSUMER spans, not every span of one
request) started: a released queue, not idle traffic."""
MIN_HISTORY: Final = 8
"""Below this many preceding timestamps the instance-wide mean interval is used instead."""
MIN_SCORE: Final = 2.0
"""Evidence needed across one silence: each distinct trace that queued or had a response
stranded scores 1, one merely stretched in its own work scores :data:`WORKING_WEIGHT` (long
own work alone is what a slow CPU-bound request looks like too)."""
WORKING_WEIGHT: Final = 0.5
SKEW_MARGIN_NS: Final = 25 * NS_PER_MS
"""Clock disagreement tolerated when judging whether an instance on another host was silent."""
MIN_EXCESS_NS: Final = 3 * NS_PER_MS
"""Least extra network/queue time (beyond the edge's median) that counts as queueing."""
EXCESS_SHARE: Final = 0.2
"""... and at least this share of the silence."""
PEER_SILENT_SHARE: Final = 0.8
"""Share of a window another instance must have been silent for to count as silent too."""
BURST_NS: Final = 5 * NS_PER_MS
"""Queued requests start within max(5 ms, half the silence) after it ends."""
ROOT_BURST_MIN: Final = 4
"""Requests without an instrumented caller released right after a silence that count as queued:
at least this many, and at least :data:`ROOT_BURST_SHARE` of those the instance's usual rate of
such requests brings over the silence (a frozen process lets them all in at once when it
resumes; an idle or unobserved one does not)."""
ROOT_BURST_SHARE: Final = 0.5
ROOT_BURST_NS: Final = 2 * NS_PER_MS
"""... released within this long after the silence (1 ms before it too: whole-ms clocks)."""
QUEUE_WITNESS_NS: Final = 12 * NS_PER_MS
"""Queued requests are evidence only when the longest of their extra waits is at least this
long. The requests a pause held are released together, and the first to arrive waited for
most of the pause: half of a 25 ms pause, at least. A caller's own congestion (a CPython
process whose threads wait for the GIL, Node.js start times floored to whole milliseconds)
delays its requests to an idle callee by 5–12 ms on real runs, and an idle callee serves
them as they come, right after its silence, just as a paused one would."""
LONE_WAIT_NS: Final = 25 * NS_PER_MS
"""A queued request scores :data:`LONE_WEIGHT` instead of 1 (and counts as two waiting traces)
when it started within :data:`LONE_START_NS` of the silence's end, its extra wait is at least
max(25 ms, half the window's longest silence), and its caller was seen running while the call
was open (a timestamp at least :data:`LONE_AWAKE_NS` inside the call, on the caller's own
clock). A pause that held exactly one request leaves one such witness and often nothing else;
what else gives the same long wait is the caller — paused before it sent the request, or idle
waiting for the answer — and a caller that took timestamps meanwhile was neither throughout."""
LONE_START_NS: Final = 2 * NS_PER_MS
LONE_AWAKE_NS: Final = 5 * NS_PER_MS
LONE_WEIGHT: Final = 2.0
STRANDED_CALLEES: Final = 2
"""Responses read within :data:`BURST_NS` after a silence, from at least this many distinct
callee instances, are stranded even when a callee's request started right after a silence of
that callee: a request that reaches an idle low-rate callee also starts right after a silence,
and independent callees do not release their answers at the moment this process resumes."""
HELD_MARGIN_NS: Final = NS_PER_MS
"""A queued request is no evidence when its caller took no timestamp from this long after the
moment the answer would have reached it, had the request not waited at the callee, to this long
before the call ended, and nothing of the callee was in flight across its silence: the wait may
as well be an answer the caller read late (:func:`_callers_silent_while_held`)."""
LATE_NS: Final = 10 * NS_PER_MS
"""A timed-out call lasting this much beyond its edge's timeout budget was noticed late: its
timer fell due while the caller was not running (a timer never fires early; a running event
loop or thread is late by a millisecond or two, not ten)."""


def detect_stalls(
    spans: pl.DataFrame,
    *,
    narrowed: pl.DataFrame | None = None,
    calls: pl.DataFrame | None = None,
    whole: WholeInput | None = None,
) -> tuple[Stall, ...]:
    """Stop-the-world stalls in ``spans`` (the span table as a polars DataFrame).

    ``narrowed`` is ``narrow(spans)`` and ``calls`` is ``client_calls(narrowed)`` when the
    caller already has them (they are not recomputed).

    ``whole``: what the detector reads of the whole input when ``narrowed`` is only the subset
    of it that the candidate windows need (:func:`tailscope.analysis.stall_stats.evidence_subset`;
    ``calls`` then with the whole input's statistics): the candidates, gaps, request rates,
    instances and the timestamps around the kept windows. None: ``narrowed`` is all of it.

    Returns stalls ordered longest first. Times (``start_unix_nano``/``end_unix_nano``) are the
    stalled instance's last timestamp before and first after the silence, in its own clock;
    ``duration_ms`` is their difference in milliseconds.
    """
    if spans.height == 0:
        return ()
    if narrowed is None:
        narrowed = narrow(spans)
    if whole is None:
        stamps = instance_timestamps(narrowed)
        gaps = _gaps(stamps)
        candidates = _silences(gaps)
    else:
        gaps, candidates = whole.gaps, whole.candidates
    if candidates.height == 0:
        return ()
    if calls is None:
        calls = client_calls(narrowed)
    evidence = _evidence(narrowed, calls, candidates, gaps, whole)
    kept = candidates.join(evidence, on="cid", how="left").with_columns(
        pl.col(c).fill_null(0)
        for c in (
            "stretched",
            "working",
            "stranded",
            "late",
            "queued",
            "evidence_traces",
            "traces",
        )
    )
    kept = kept.with_columns(pl.col("score", "waiting").fill_null(0.0)).filter(
        (pl.col("score") >= MIN_SCORE) & (pl.col("strong") | (pl.col("waiting") >= MIN_SCORE))
    )
    if kept.height == 0:
        return ()
    info = narrowed.group_by("instance").agg(
        pl.col("service").first(), pl.col("host").drop_nulls().first()
    )
    if whole is not None:
        info = whole.instances
    kept = kept.join(info, on="instance", how="left").sort("a")
    if whole is not None:
        stamps = whole.stamps_near(kept)
    return _judge(kept, stamps, info)


def _gaps(stamps: pl.DataFrame, extents: pl.DataFrame | None = None) -> pl.DataFrame:
    """Each timestamp of each instance with the gap to its next one and how surprising that gap
    is at the instance's recent rate. Columns: those of ``stamps``, ``b`` (next timestamp),
    ``started`` (requests started so far), ``mean_interval``, ``gap`` (ns), ``surprise``.

    ``extents`` (``instance``, ``first``, ``last`` in ns, ``n`` distinct timestamps): the whole
    instance's range, when ``stamps`` holds only a stretch of it (one hour with the timestamps
    before it, :mod:`tailscope.analysis.hourly_silences`); None: ``stamps`` is all of it."""
    by = "instance"
    index = pl.int_range(pl.len()).over(by)
    recent_span = pl.col("t") - pl.col("t").shift(RECENT_TIMESTAMPS).over(by).fill_null(
        pl.col("t").first().over(by)
    )
    recent_mean = recent_span / pl.min_horizontal(index, pl.lit(RECENT_TIMESTAMPS))
    overall_mean = (pl.col("t").last() - pl.col("t").first()).over(by) / (
        pl.len().over(by) - 1
    ).clip(lower_bound=1)
    if extents is not None:
        overall_mean = (pl.col("last") - pl.col("first")) / (pl.col("n") - 1).clip(lower_bound=1)
        stamps = stamps.join(
            extents, on="instance", how="left", maintain_order="left", nulls_equal=True
        )
    mean_interval = pl.when(index >= MIN_HISTORY).then(recent_mean).otherwise(overall_mean)
    gaps = (
        stamps.with_columns(
            b=pl.col("t").shift(-1).over(by),
            started=pl.col("starts").cum_sum().over(by),
            mean_interval=pl.max_horizontal(mean_interval, pl.lit(1.0)),
        )
        .with_columns(gap=pl.col("b") - pl.col("t"))
        .with_columns(surprise=pl.col("gap") / pl.col("mean_interval"))
    )
    return gaps if extents is None else gaps.drop("first", "last", "n")


def _silences(gaps: pl.DataFrame) -> pl.DataFrame:
    """Gaps between consecutive timestamps of one instance that its recent rate makes unlikely.

    Back-to-back pauses (a full collection right after another, with a blip of activity of at
    most :data:`MERGE_BLIP_NS` between them in which the queue was released: at least
    :data:`MERGE_MIN_STARTS` spans started) are merged into one window: the requests released
    by the first are stretched across the next, so they are one stall to the callers.
    Components of a merged window need only be :data:`COMPONENT_GAP_NS` long (the recent rate
    right after a long silence is no guide); one of them must pass the full test.

    Columns: ``cid``, ``instance``, ``a`` (last timestamp before), ``b`` (first after), ``gap``
    (``b - a``, ns), ``surprise`` (silent time over the recent mean interval) and
    ``first_resume`` (end of the first silence of a chain; ``b`` for a single one),
    ``core_a``/``core_b`` (the longest silence of the chain).
    """
    by = "instance"
    parts = gaps.filter(pl.col("gap") >= COMPONENT_GAP_NS).select(
        by,
        pl.col("t").alias("a"),
        "b",
        "gap",
        "mean_interval",
        "started",
        strong=(pl.col("gap") >= MIN_GAP_NS) & (pl.col("surprise") >= RATE_FACTOR),
        quiet=pl.col("gap") >= QUIET_GAP_NS,
    )
    previous_gap = pl.col("gap").shift(1).over(by)
    shorter = pl.min_horizontal(previous_gap, pl.col("gap"))
    # two long silences, each unlikely at the instance's rate, may be separated by a longer
    # burst of released requests
    both_strong = pl.col("strong") & pl.col("strong").shift(1).over(by).fill_null(False)
    blip_limit = (
        pl.when(both_strong & (shorter >= QUIET_GAP_NS))
        .then(pl.min_horizontal(pl.lit(MERGE_BLIP_MAX_NS), shorter * MERGE_BLIP_SHARE))
        .otherwise(pl.lit(MERGE_BLIP_NS))
    )
    chained = parts.with_columns(
        window=(
            (
                (pl.col("a") - pl.col("b").shift(1).over(by)).fill_null(MERGE_BLIP_MAX_NS + 1)
                > blip_limit.fill_null(0)
            )
            | (
                (pl.col("started") - pl.col("started").shift(1).over(by)).fill_null(0)
                < MERGE_MIN_STARTS
            )
        )
        .cum_sum()
        .over(by)
    )
    return (
        chained.group_by(by, "window")
        .agg(
            pl.col("a").min(),
            pl.col("b").max(),
            pl.col("b").min().alias("first_resume"),
            pl.col("a").sort_by("gap").last().alias("core_a"),
            pl.col("b").sort_by("gap").last().alias("core_b"),
            pl.col("gap").sum().alias("silent"),
            pl.col("mean_interval").first(),
            pl.col("strong").any(),
            pl.col("quiet").any(),
        )
        .filter(pl.col("strong") | pl.col("quiet"))
        .sort(by, "a")
        .select(
            pl.int_range(pl.len(), dtype=pl.Int64).alias("cid"),
            by,
            "a",
            "b",
            (pl.col("b") - pl.col("a")).alias("gap"),
            (pl.col("silent") / pl.col("mean_interval")).alias("surprise"),
            "first_resume",
            "core_a",
            "core_b",
            "strong",
        )
    )


_in_flight_across = (
    (pl.col("start") < pl.col("b"))
    & (pl.col("end") > pl.col("a"))
    & (
        (pl.col("start") <= pl.col("a"))
        | (pl.col("end") >= pl.col("b"))
        | ((pl.col("start") <= pl.col("core_a")) & (pl.col("end") >= pl.col("core_b")))
    )
)
"""A span of the instance in flight across a silence of the window: no timestamps fall inside
a silence, so a span overlapping the window crosses its outer edge or its longest silence (a
request released between two chained silences and finished before the next is not)."""

_works = ~pl.col("kind").is_in([SpanKind.CLIENT, SpanKind.UNSPECIFIED])
"""Kinds whose innermost in-flight span is the process's own work. UNSPECIFIED is excluded:
without kinds, waiting on a downstream call cannot be told from working."""


_queue_witnessed_pause = (
    pl.col("caller_excess").max().over("cid").fill_null(0) >= QUEUE_WITNESS_NS
) | pl.col("caller_timeout").fill_null(False).any().over("cid")
"""Requests of one window count as queued only if one of them waited at least
:data:`QUEUE_WITNESS_NS` (or a caller timed out waiting): see there."""


_lone_candidate = (
    (pl.col("start") - pl.col("b") <= LONE_START_NS)
    & (
        pl.col("caller_excess")
        >= pl.max_horizontal(pl.lit(LONE_WAIT_NS), (pl.col("core_b") - pl.col("core_a")) // 2)
    )
    & (pl.col("caller_end") - pl.col("caller_start") >= LONE_WAIT_NS)
).fill_null(False)
"""A queued request released first with a long wait (see :data:`LONE_WAIT_NS`); it scores
twice if its caller was awake during the call (:func:`_lone_witnesses`)."""


def _lone_witnesses(queued: pl.DataFrame, gaps: pl.DataFrame) -> pl.DataFrame:
    """The queued requests (rows of released requests with their caller's ``caller_instance``,
    ``caller_start``, ``caller_end``) that score :data:`LONE_WEIGHT`: a long wait released
    first (:data:`_lone_candidate`) whose caller took a timestamp while the call was open, at
    least :data:`LONE_AWAKE_NS` after it started and before it ended (same clock: the caller's
    own). A caller silent for the whole call may have been paused before it sent the request,
    or idle waiting for the answer; one seen running meanwhile was neither for all of it.

    Columns ``cid``, ``tid``, ``weight``. A silence covering ``[start + margin, end - margin]``
    lasts at least the call minus twice the margin (≥ 15 ms for a call of ≥ 25 ms), so only
    such silences of the callers are looked at: one as-of join, the caller's last silence that
    began by ``start + margin``.
    """
    rows = queued.filter(_lone_candidate)
    return (
        _last_caller_silence(
            rows, gaps, LONE_WAIT_NS - 2 * LONE_AWAKE_NS, pl.col("caller_start") + LONE_AWAKE_NS
        )
        .filter((pl.col("_silent_to") < pl.col("caller_end") - LONE_AWAKE_NS).fill_null(True))
        .select("cid", "tid", weight=pl.lit(LONE_WEIGHT))
    )


def _callers_silent_while_held(queued: pl.DataFrame, gaps: pl.DataFrame) -> pl.DataFrame:
    """The queued requests (``cid``, ``tid``) whose caller took no timestamp between the
    moment the response would have reached it had the request not waited at the callee
    (``caller_end - caller_excess``) and the end of the call (each edge moved
    :data:`HELD_MARGIN_NS` inward; the caller's own clock). Such a wait is as well a
    response the caller read late, after a pause of its own: a request sent just before
    the caller froze reaches an idle low-rate callee right after a silence of the callee,
    exactly as a request held by a frozen callee would."""
    rows = queued.filter(pl.col("caller_excess").is_not_null())
    held_from = pl.col("caller_end") - pl.col("caller_excess") + HELD_MARGIN_NS
    return (
        _last_caller_silence(rows, gaps, NS_PER_MS, held_from.cast(pl.Int64))
        .filter(pl.col("_silent_to") >= pl.col("caller_end") - HELD_MARGIN_NS)
        .select("cid", "tid")
    )


def _last_caller_silence(
    rows: pl.DataFrame, gaps: pl.DataFrame, min_gap: int, since: pl.Expr
) -> pl.DataFrame:
    """``rows`` (with ``caller_instance``) with the caller's last silence of at least
    ``min_gap`` ns that began by ``since`` (the caller's own clock): ``_silent_from`` (its last
    timestamp before) and ``_silent_to`` (first after), null when there is none. One as-of
    join on the callers' own gaps; rows come back sorted by ``since``."""
    silences = (
        gaps.filter(pl.col("gap") >= min_gap)
        .join(rows.select(pl.col("caller_instance").alias("instance")).unique(), on="instance")
        .select(
            pl.col("instance").alias("caller_instance"),
            pl.col("t").alias("_silent_from"),
            pl.col("b").alias("_silent_to"),
        )
        .sort("_silent_from")
    )
    return (
        rows.with_columns(_from=since)
        .sort("_from")
        .join_asof(
            silences,
            left_on="_from",
            right_on="_silent_from",
            by="caller_instance",
            strategy="backward",
            check_sortedness=False,
        )
    )


def _caller_silences(
    gaps: pl.DataFrame, candidates: pl.DataFrame, frozen: pl.DataFrame
) -> pl.DataFrame:
    """Silences of each instance that count as the instance being paused, when it calls:
    ``instance``, ``t`` (last timestamp before), ``b`` (first after), ``gap`` (ns), sorted by
    instance and ``t``, with ``silent_before`` (the instance's paused time before ``t``, ns).

    The silences (at least :data:`COMPONENT_GAP_NS`) inside the candidate windows ``frozen``
    lists (``cid``): windows with evidence that the process was frozen, not idle (see
    :func:`_frozen_windows`). How long a silence is, even relative to the instance's rate, does
    not tell a paused caller from an idle one: a caller whose requests all wait on a frozen
    callee falls silent as long as the callee does.
    """
    parts = gaps.filter(pl.col("gap") >= COMPONENT_GAP_NS).select("instance", "t", "b", "gap")
    windows = (
        candidates.join(frozen, on="cid", how="semi")
        .select("instance", pl.col("a").alias("_wa"), pl.col("b").alias("_wb"))
        .sort("_wa")
    )
    return (
        parts.sort("t")
        .join_asof(
            windows,
            left_on="t",
            right_on="_wa",
            by="instance",
            strategy="backward",
            check_sortedness=False,
        )
        .filter(pl.col("t") < pl.col("_wb"))
        .select("instance", "t", "b", "gap")
        .sort("instance", "t")
        .with_columns(silent_before=(pl.col("gap").cum_sum() - pl.col("gap")).over("instance"))
    )


def _with_caller_paused(frame: pl.DataFrame, silences: pl.DataFrame) -> pl.DataFrame:
    """``frame`` (rows with a caller's ``caller_instance``, ``caller_start``, ``caller_end``,
    ``caller_excess``) with ``caller_paused``: the calling instance itself was paused while the
    call was open — its silences (see :func:`_caller_silences`) beginning after the CLIENT span
    started and ending before it did add up to at least half the call's excess time. Then the
    excess is the caller's own pause (before the request left, or with the response unread),
    not a queue at the callee. So is a call the caller started in the burst right after such a
    silence (within max(:data:`BURST_NS`, half the silence)): a process resuming from a pause
    works through its own backlog, and its calls' extra time is its own congestion. As-of
    joins on the caller's own silences (same clock: no skew involved): the first silence after
    the call started, the last one before it ended, the last one before it started.
    """
    own = silences.select(
        pl.col("instance").alias("caller_instance"),
        "t",
        "b",
        (pl.col("silent_before") + pl.col("gap")).alias("_through"),
        "silent_before",
    )
    # starts may be floored to whole milliseconds (the Node.js SDK): probe 1 ms early
    joined = (
        frame.with_row_index("_row")
        .with_columns(_probe=pl.col("caller_start") - NS_PER_MS)
        .sort("_probe")
        .join_asof(
            own.select("caller_instance", pl.col("t").alias("_first_t"), "silent_before").sort(
                "_first_t"
            ),
            left_on="_probe",
            right_on="_first_t",
            by="caller_instance",
            strategy="forward",
            check_sortedness=False,
        )
        .sort("caller_end")
        .join_asof(
            own.select("caller_instance", pl.col("b").alias("_last_b"), "_through").sort("_last_b"),
            left_on="caller_end",
            right_on="_last_b",
            by="caller_instance",
            strategy="backward",
            check_sortedness=False,
        )
        .sort("caller_start")
        .join_asof(
            own.select(
                "caller_instance",
                pl.col("b").alias("_prev_b"),
                (pl.col("b") - pl.col("t")).alias("_prev_gap"),
            ).sort("_prev_b"),
            left_on="caller_start",
            right_on="_prev_b",
            by="caller_instance",
            strategy="backward",
            check_sortedness=False,
        )
        .sort("_row")
    )
    silent = pl.col("_through") - pl.col("silent_before")
    paused = (
        (pl.col("_last_b") > pl.col("_first_t"))
        & (silent * 2 >= pl.col("caller_excess").fill_null(0))
    ).fill_null(False)
    resuming = (
        pl.col("caller_start") - pl.col("_prev_b")
        <= pl.max_horizontal(pl.lit(BURST_NS), pl.col("_prev_gap") // 2)
    ).fill_null(False)
    return joined.with_columns(caller_paused=paused | resuming).drop(
        "_row", "_probe", "_first_t", "silent_before", "_last_b", "_through", "_prev_b", "_prev_gap"
    )


def _window_scores(weights: pl.DataFrame) -> pl.DataFrame:
    """Per window: ``cid``, ``evidence_traces`` (distinct traces) and ``score`` (each trace's
    largest ``weight``, summed), from rows ``cid``, ``tid``, ``weight``."""
    return (
        weights.group_by("cid", "tid")
        .agg(pl.col("weight").max())
        .group_by("cid")
        .agg(pl.len().alias("evidence_traces"), pl.col("weight").sum().alias("score"))
    )


def _frozen_windows(own: pl.DataFrame, queued: pl.DataFrame | None) -> pl.DataFrame:
    """Candidate windows (``cid``) in which the process itself was frozen, as a caller: its
    own evidence (``own``: ``cid``, ``tid``, ``weight`` per working, stranded or late trace)
    scores at least 1, or, with ``queued`` (``cid``, ``tid`` of queued requests, scored 1
    each), the window scores :data:`MIN_SCORE`."""
    frozen = _window_scores(own).filter(pl.col("score") >= 1.0).select("cid")
    if queued is None:
        return frozen
    with_queue = _window_scores(pl.concat([own, queued.with_columns(weight=pl.lit(1.0))]))
    return pl.concat(
        [frozen, with_queue.filter(pl.col("score") >= MIN_SCORE).select("cid")]
    ).unique()


def _evidence(
    narrowed: pl.DataFrame,
    calls: pl.DataFrame,
    candidates: pl.DataFrame,
    gaps: pl.DataFrame,
    whole_input: WholeInput | None = None,
) -> pl.DataFrame:
    """Per candidate silence: stretched spans, and traces that are working / stranded / queued.

    Columns: ``cid``, ``stretched`` (spans in flight across the silence), ``traces`` (their
    distinct traces), ``working``, ``stranded``, ``late``, ``queued`` (counts),
    ``evidence_traces`` (distinct traces among the last four).
    """
    windows = candidates.select(
        "cid", "instance", "a", "b", "gap", "first_resume", "core_a", "core_b"
    )
    core = pl.col("core_b") - pl.col("core_a")
    threshold = pl.max_horizontal(pl.lit(MIN_EXCESS_NS), core * EXCESS_SHARE)
    cols = ["tid", "sid", "pid", "instance", "kind", "start", "end"]

    stretched = spans_across(narrowed.select(cols), windows).filter(_in_flight_across)
    # innermost in-flight spans: no in-flight child of their own
    has_child = stretched.select("cid", "tid", pl.col("pid").alias("sid")).drop_nulls().unique()
    innermost = stretched.join(has_child, on=["cid", "tid", "sid"], how="anti")
    # an innermost span whose last finished child failed is waiting to retry (backoff), not
    # working: no evidence
    last_child = (
        narrowed.select("tid", pl.col("pid").alias("sid"), "end", "error")
        .drop_nulls("sid")
        .join(
            innermost.filter(_works).select("cid", "tid", "sid", "a"),
            on=["tid", "sid"],
            how="inner",
        )
        .filter(pl.col("end") <= pl.col("a"))
        .sort("end")
        .group_by("cid", "tid", "sid")
        .agg(pl.col("error").last().alias("backoff"))
    )
    working = (
        innermost.filter(_works)
        .join(last_child, on=["cid", "tid", "sid"], how="left")
        .filter(~pl.col("backoff").fill_null(False))
        .select("cid", "tid")
    )
    # a child that itself started right after a silence of its own instance was queued there:
    # the caller's extra wait is the callee's queue, not a response stranded at the caller
    burst = pl.max_horizontal(pl.lit(BURST_NS), core // 2)
    servers = narrowed.filter(pl.col("kind") == SpanKind.SERVER).select(cols)
    queued_elsewhere = (
        spans_starting_after(
            servers,
            windows,
            "a",
            (pl.col("start") > pl.col("a")) & (pl.col("start") <= pl.col("b") + burst),
        )
        .select("tid", pl.col("sid").alias("child_sid"))
        .unique()
    )
    held = (
        innermost.filter(pl.col("kind") == SpanKind.CLIENT)
        .join(
            calls.select("tid", "sid", "excess", "error", "child_sid", "child_instance"),
            on=["tid", "sid"],
            how="inner",
        )
        .filter(
            (pl.col("excess") >= threshold)
            & ~pl.col("error")
            & (pl.col("end") <= pl.col("b") + burst)
        )
        .with_columns(_together=pl.col("end") <= pl.col("b") + BURST_NS)
        .with_columns(
            _together=pl.col("_together")
            & (
                pl.col("child_instance").filter("_together").n_unique().over("cid")
                >= STRANDED_CALLEES
            )
        )
    )
    # ... unless responses of several callee instances were all read together right after the
    # silence: independent callees do not release their queues at the moment this process
    # resumes; what they share is the process that read their responses late
    stranded = pl.concat(
        [
            held.filter("_together"),
            held.filter(~pl.col("_together")).join(
                queued_elsewhere, on=["tid", "child_sid"], how="anti"
            ),
        ]
    ).select("cid", "tid")
    # a timed-out call whose timer fell due inside the silence and that ended only when the
    # process resumed, well beyond its edge's budget: the process noticed late (same clock)
    due = pl.col("start") + pl.col("budget")
    late = (
        innermost.filter(pl.col("kind") == SpanKind.CLIENT)
        .join(calls.select("tid", "sid", "timeout", "budget"), on=["tid", "sid"], how="inner")
        .filter(
            pl.col("timeout")
            & (pl.col("end") - pl.col("start") >= pl.col("budget") + LATE_NS)
            & (due >= pl.col("a") - NS_PER_MS)
            & (due <= pl.col("b"))
            & (pl.col("end") <= pl.col("b") + burst)
        )
        .select("cid", "tid")
    )

    callers = calls.select(
        "tid",
        pl.col("child_sid").alias("sid"),
        pl.col("excess").alias("caller_excess"),
        pl.col("timeout").alias("caller_timeout"),
        (pl.col("timeout") & (pl.col("dur") >= pl.col("budget") + LATE_NS)).alias("caller_late"),
        pl.col("start").alias("caller_start"),
        pl.col("end").alias("caller_end"),
        pl.col("instance").alias("caller_instance"),
    ).drop_nulls("sid")
    released = spans_starting_after(
        servers, windows, "first_resume", pl.col("start") <= pl.col("b") + burst
    ).join(callers, on=["tid", "sid"], how="left")
    # a silence that began as idle time holds a shorter pause: the longest extra wait of the
    # requests released after it (the earliest arrival waited through the pause) measures the
    # pause part, and the others' waits are judged against that part, provided each waited
    # before the silence ended (its extra wait exceeds how long after the silence it started:
    # a request that reached an idle process after it resumed waited for nothing there)
    pause_part = pl.min_horizontal(core, pl.col("caller_excess").max().over("cid").fill_null(0))
    arrived_in_silence = (
        pl.col("caller_excess") - (pl.col("start") - pl.col("b")).clip(lower_bound=0)
        >= MIN_EXCESS_NS
    )
    waited_in_pause = (
        pl.col("caller_excess")
        >= pl.max_horizontal(pl.lit(MIN_EXCESS_NS), pause_part * EXCESS_SHARE)
    ) & arrived_in_silence
    # ... and so must a request that waited a share of the whole silence, when nothing of the
    # instance was in flight across it: an idle callee starts the requests of a congested
    # caller as they come, and one started well after the silence ended with less extra wait
    # than that reached it after it resumed (with work in flight the window may be the first
    # of back-to-back pauses, whose queue is released only after the last)
    worked_through = pl.col("cid").is_in(stretched.get_column("cid").unique().implode())
    # a caller that gave up shows no reliable excess (its child may outlive it): its request
    # starting in the release burst is queued all the same if it was sent well before the
    # silence ended
    waited = released.with_columns(
        _whole=((pl.col("caller_excess") >= threshold) & (arrived_in_silence | worked_through))
        # sent well before the silence ended (beyond any clock disagreement)
        | (pl.col("caller_timeout") & (pl.col("caller_start") + SKEW_MARGIN_NS < pl.col("b")))
    ).filter(pl.col("_whole") | waited_in_pause)
    own = pl.concat(
        [
            working.with_columns(weight=pl.lit(WORKING_WEIGHT)),
            stranded.with_columns(weight=pl.lit(1.0)),
            late.with_columns(weight=pl.lit(1.0)),
        ]
    )
    # requests without an instrumented caller (entry points): queued when many are released
    # together, far more than the instance's usual rate of them brings in a few milliseconds
    extent = gaps.group_by("instance").agg((pl.col("t").max() - pl.col("t").min()).alias("_x"))
    called = (
        calls.drop_nulls("child_sid")
        .group_by(pl.col("child_instance").alias("instance"))
        .agg(pl.len().alias("_called"))
    )
    served = servers.group_by("instance").agg(pl.len().alias("_n"))
    if whole_input is not None:  # ``narrowed`` is a subset: the whole input's rates
        served, called, extent = whole_input.served, whole_input.called, whole_input.extent
    root_rate = (
        served.join(called, on="instance", how="left")
        .join(extent, on="instance")
        .select(
            "instance",
            (
                (pl.col("_n") - pl.col("_called").fill_null(0)).clip(lower_bound=0)
                / pl.col("_x").clip(lower_bound=1)
            ).alias("_rate"),
        )
    )
    burst_roots = (
        released.filter(
            pl.col("caller_start").is_null()
            & (pl.col("start") >= pl.col("b") - NS_PER_MS)
            & (pl.col("start") <= pl.col("b") + ROOT_BURST_NS)
        )
        .join(windows.select("cid", "instance"), on="cid")
        .join(root_rate, on="instance", how="left")
        .with_columns(
            _n=pl.col("tid").n_unique().over("cid"),
            _expected=pl.col("_rate").fill_null(0.0) * (pl.col("core_b") - pl.col("core_a")),
        )
        .with_columns(_background=pl.col("_rate").fill_null(0.0) * (ROOT_BURST_NS + NS_PER_MS))
        .filter(
            (pl.col("_n") >= ROOT_BURST_MIN)
            & (pl.col("_n") >= ROOT_BURST_SHARE * pl.col("_expected"))
            # well above what the usual arrivals put in so short a stretch (Poisson margin)
            & (pl.col("_n") >= pl.col("_background") + 3 * pl.col("_background").sqrt() + 2)
        )
        .select("cid", "tid")
    )
    # a caller that was itself paused while its call was open (before sending, or with the
    # response unread) is no evidence against this instance. Which caller silences are
    # pauses, not idleness, is decided in two passes: first the windows with the process's
    # own evidence of being frozen (work stretched, responses stranded, timeouts noticed
    # late); then also the windows that pass as stalls with the queue evidence of the first
    # pass (a frozen caller with nothing in flight shows only its own callers queueing)
    frozen = _frozen_windows(own, None)
    for final in (False, True):
        by_callers = (
            _with_caller_paused(waited, _caller_silences(gaps, candidates, frozen))
            .filter(~pl.col("caller_paused") & ~pl.col("caller_late").fill_null(False))
            .filter(_queue_witnessed_pause)
        )
        queued = pl.concat([by_callers.select("cid", "tid"), burst_roots]).unique()
        if not final:
            # only requests that waited through a share of the whole silence: a caller's
            # silence taken for a pause hides its callees' pauses, so the weaker evidence of
            # a pause part does not decide it
            whole = pl.concat([by_callers.filter("_whole").select("cid", "tid"), burst_roots])
            frozen = _frozen_windows(
                own, whole.join(candidates, on="cid").filter(pl.col("strong")).select("cid", "tid")
            )

    # in a window in which nothing of the instance was in flight, a request whose caller was
    # silent from when the answer could have come until the call ended is no evidence: the
    # wait may as well be an answer its frozen caller read late (idle callee, paused caller)
    idle_start = candidates.join(stretched.select("cid").unique(), on="cid", how="anti")
    unread = _callers_silent_while_held(by_callers.join(idle_start, on="cid", how="semi"), gaps)
    queued = queued.join(unread, on=["cid", "tid"], how="anti")
    by_callers = by_callers.join(unread, on=["cid", "tid"], how="anti")
    # a long wait released first, from a caller seen running meanwhile, counts twice
    lone = _lone_witnesses(by_callers, gaps)
    counts = [
        stretched.group_by("cid").agg(
            pl.len().alias("stretched"), pl.col("tid").n_unique().alias("traces")
        ),
        working.group_by("cid").agg(pl.col("tid").n_unique().alias("working")),
        stranded.group_by("cid").agg(pl.len().alias("stranded")),
        late.group_by("cid").agg(pl.len().alias("late")),
        queued.group_by("cid").agg(pl.len().alias("queued")),
        _window_scores(pl.concat([own, queued.with_columns(weight=pl.lit(1.0)), lone])),
        pl.concat([stranded, late, queued])
        .group_by("cid")
        .agg(pl.col("tid").n_unique().cast(pl.Float64).alias("waiting"))
        .join(
            lone.group_by("cid").agg(pl.col("tid").n_unique().alias("_lone")),
            on="cid",
            how="left",
        )
        .with_columns(pl.col("waiting") + pl.col("_lone").fill_null(0))
        .drop("_lone"),
    ]
    out = candidates.select("cid")
    for frame in counts:
        out = out.join(frame, on="cid", how="left")
    return out


def _judge(kept: pl.DataFrame, stamps: pl.DataFrame, info: pl.DataFrame) -> tuple[Stall, ...]:
    """Classify each silence against what every other instance did meanwhile, and score it.

    One loop per candidate window (a handful), each a binary search over all timestamps.
    """
    order = stamps.sort("t")
    times = order["t"].to_numpy()
    names = info["instance"].to_list()
    code_of = {name: i for i, name in enumerate(names)}
    codes = order["instance"].replace_strict(code_of, return_dtype=pl.Int64).to_numpy()
    services = np.array(info["service"].to_list(), dtype=object)
    hosts = np.array(info["host"].to_list(), dtype=object)

    stalls: list[Stall] = []
    for row in kept.iter_rows(named=True):
        me = code_of[row["instance"]]
        a, b, gap = int(row["a"]), int(row["b"]), int(row["gap"])
        lo, hi = np.searchsorted(times, [a - gap - SKEW_MARGIN_NS, b + gap + SKEW_MARGIN_NS])
        # instances with a timestamp nearby, ascending (a count per code: no sort of the slice)
        near = np.flatnonzero(np.bincount(codes[lo:hi], minlength=len(names)))
        near = near[near != me]
        if row["host"] is None:
            same_host = np.zeros(near.size, dtype=bool)
        else:
            same_host = hosts[near] == row["host"]
        # callers queued, responses stranded, timers noticed late: what a telemetry gap (spans
        # lost, or never made) cannot produce
        waiting_traces = float(row["waiting"])
        silent = np.zeros(near.size, dtype=bool)
        for margin, peers in ((0, same_host), (SKEW_MARGIN_NS, ~same_host)):
            if peers.any():
                silent[peers] = _silent_peers(times, codes, near[peers], a, b, margin)
        if near.size and silent.all() and waiting_traces < MIN_SCORE:
            # everything stopped and nothing waited on it: a telemetry gap, not a pause (an
            # entry instance that froze silences everything downstream of it too, but the
            # requests that arrived meanwhile are released together when it resumes)
            continue
        host_peers = silent[same_host]
        is_host = bool(host_peers.size and host_peers.all())
        siblings = services[near] == row["service"]
        siblings_silent = bool(siblings.any() and silent[siblings].all())

        surprise = float(row["surprise"])
        confidence = (1.0 - 0.5 ** float(row["score"])) * (1.0 - math.exp(-surprise / RATE_FACTOR))
        reasons = [
            f"silent {gap / NS_PER_MS:.0f} ms, {surprise:.0f}x its recent interval",
            f"{row['stretched']} spans of {row['traces']} traces in flight",
        ]
        if row["working"]:
            reasons.append(f"{row['working']} traces stretched in own work")
        if row["stranded"]:
            reasons.append(f"{row['stranded']} responses stranded")
        if row["late"]:
            reasons.append(f"{row['late']} timeouts noticed late")
        if row["queued"]:
            reasons.append(f"{row['queued']} requests queued")
        if siblings_silent:
            confidence *= 0.5
            reasons.append("sibling instances silent too")
        if is_host:
            reasons.append("every instance on the host silent")
        stalls.append(
            Stall(
                service=str(row["service"]),
                instance=str(row["instance"]),
                host=row["host"],
                start_unix_nano=a,
                end_unix_nano=b,
                duration_ms=gap / NS_PER_MS,
                spans_affected=int(row["stretched"]),
                queued_requests=int(row["queued"]),
                confidence=round(confidence, 3),
                kind="host" if is_host else "process",
                evidence=tuple(reasons),
            )
        )
    stalls.sort(key=lambda st: (-st.duration_ms, st.start_unix_nano))
    return tuple(stalls)


def _silent_peers(
    times: NDArray[np.int64],
    codes: NDArray[np.int64],
    peers: NDArray[np.int64],
    a: int,
    b: int,
    margin: int,
) -> NDArray[np.bool_]:
    """Whether each instance code in ``peers`` was silent over most of
    ``(a + margin, b - margin)``: its longest stretch without a timestamp there (edges
    included) covers at least :data:`PEER_SILENT_SHARE` of it. ``times`` is every timestamp,
    ascending, and ``codes`` their instances.

    Processes frozen together still took their last timestamps at different moments before the
    freeze, so a peer's silence need not cover the window exactly. A window too short to judge
    after the margins counts as not silent. All peers in one pass over the window's timestamps.
    """
    lo_t, hi_t = a + margin, b - margin
    if hi_t - lo_t <= 0:
        return np.zeros(peers.size, dtype=bool)
    lo = int(np.searchsorted(times, lo_t, side="right"))
    hi = int(np.searchsorted(times, hi_t, side="left"))
    slot = np.full(int(codes[lo:hi].max(initial=0)) + 1, -1, dtype=np.int64)
    wanted = peers[peers < slot.size]
    slot[wanted] = np.arange(wanted.size)
    inside = slot[codes[lo:hi]] >= 0
    peer = slot[codes[lo:hi][inside]]
    t = times[lo:hi][inside]
    by_peer = np.argsort(peer, kind="stable")  # times stay ascending within a peer
    peer, t = peer[by_peer], t[by_peer]
    first = np.ones(peer.size, dtype=bool)
    first[1:] = peer[1:] != peer[:-1]
    last = np.ones(peer.size, dtype=bool)
    last[:-1] = first[1:]
    previous = np.empty_like(t)
    previous[1:] = t[:-1]
    previous[first] = lo_t
    # a peer without a timestamp inside was silent all along
    longest = np.full(wanted.size, hi_t - lo_t, dtype=np.int64)
    longest[np.unique(peer)] = 0
    np.maximum.at(longest, peer, t - previous)
    np.maximum.at(longest, peer[last], hi_t - t[last])
    out = np.zeros(peers.size, dtype=bool)
    out[peers < slot.size] = longest >= PEER_SILENT_SHARE * (hi_t - lo_t)
    out[peers >= slot.size] = True  # no timestamp of theirs in the window at all
    return out
