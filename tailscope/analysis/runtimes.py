"""Tail latency compared across runtimes (Rust vs Go vs JVM ...), on the user's own traces.

The comparison uses the **self time** of SERVER spans: the span's duration minus the union of
its children's intervals (clipped to the span). A service that waits on a slow database would
otherwise look slow whatever its runtime; self time is what the process itself spent, which is
where a garbage collector's pauses land. Children are compared with their parent only when they
belong to the same instance (same clock); children on other hosts are ignored for the union,
since their timestamps are offset by the hosts' clock disagreement.

Runtime = ``telemetry.sdk.language`` (``unknown`` when absent) with ``process.runtime.name``
where present. Percentiles are :class:`~tailscope.histogram.LatencyHistogram`'s (computed with
:func:`~tailscope.analysis.percentiles.hdr_quantiles_ns`).
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

from tailscope.analysis._stall_common import NS_PER_MS, as_names, narrow
from tailscope.analysis.percentiles import hdr_quantiles_ns
from tailscope.report.model import RuntimeSummary, Stall
from tailscope.schema import SpanKind

NS_PER_MINUTE = 60_000_000_000
UNKNOWN_LANGUAGE = "unknown"


def server_self_time(narrowed: pl.DataFrame) -> pl.DataFrame:
    """SERVER spans with their self time in ns (column ``self_ns``), vectorised.

    The union of children's intervals is measured by sorting each parent's children by start:
    each child adds what it reaches beyond both its own start and the latest end of the earlier
    children, ``max(0, end - max(start, latest earlier end))``.
    """
    servers = narrowed.filter(pl.col("kind") == SpanKind.SERVER).select(
        "tid", "sid", "instance", "start", "end", "dur"
    )
    # children are keyed by their parent's row in ``servers`` (trace and span ids are unique in
    # an ingested table): integer keys keep the sort and the window functions cheap
    children = (
        narrowed.select("tid", pl.col("pid").alias("sid"), "instance", "start", "end")
        .drop_nulls("sid")
        .join(
            servers.with_row_index("_p").select(
                "_p",
                "tid",
                "sid",
                "instance",
                pl.col("start").alias("ps"),
                pl.col("end").alias("pe"),
            ),
            on=["tid", "sid", "instance"],
            how="inner",
        )
        .select(
            "_p",
            cs=pl.col("start").clip(pl.col("ps"), pl.col("pe")),
            ce=pl.col("end").clip(pl.col("ps"), pl.col("pe")),
        )
        .filter(pl.col("ce") > pl.col("cs"))
        .sort("_p", "cs")
    )
    same_parent = pl.col("_p") == pl.col("_p").shift(1)
    covered = (
        children.with_columns(reach=pl.col("ce").cum_max().over("_p"))
        .with_columns(earlier=pl.when(same_parent).then(pl.col("reach").shift(1)))
        .group_by("_p")
        .agg(
            (pl.col("ce") - pl.max_horizontal("cs", "earlier"))
            .clip(lower_bound=0)
            .sum()
            .alias("covered")
        )
    )
    return (
        servers.with_row_index("_p")
        .join(covered, on="_p", how="left", maintain_order="left")
        .drop("_p")
        .with_columns(self_ns=(pl.col("dur") - pl.col("covered").fill_null(0)).clip(lower_bound=0))
    )


@dataclass(frozen=True, slots=True)
class RuntimeLatencies:
    """What :func:`compare_runtimes` reads besides the stalls (:func:`runtime_latencies`): the
    pipeline computes it while the stalls are being detected."""

    groups: pl.DataFrame
    """Per (``language``, ``runtime``): ``services``, ``instances``, ``spans``, ``values``
    (SERVER self times, ns), ``first``/``last`` (observed window, ns)."""
    runtime_of: pl.DataFrame
    """``instance`` -> its ``language`` and ``runtime``."""


def runtime_latencies(
    spans: pl.DataFrame, *, narrowed: pl.DataFrame | None = None
) -> RuntimeLatencies | None:
    """The stall-free part of :func:`compare_runtimes`; None when there is nothing to compare
    (no spans, or no SERVER span with a self time)."""
    if spans.height == 0:
        return None
    if narrowed is None:
        narrowed = narrow(spans)
    narrowed = narrowed.with_columns(pl.col("language").fill_null(UNKNOWN_LANGUAGE))
    selfs = server_self_time(narrowed).join(
        narrowed.select("tid", "sid", "language", "runtime", "service"), on=["tid", "sid"]
    )
    if selfs.height == 0:
        return None
    window = narrowed.group_by("language", "runtime").agg(
        pl.col("start").min().alias("first"), pl.col("end").max().alias("last")
    )
    groups = (
        selfs.group_by("language", "runtime")
        .agg(
            pl.col("service").n_unique().alias("services"),
            pl.col("instance").n_unique().alias("instances"),
            pl.len().alias("spans"),
            pl.col("self_ns").alias("values"),
        )
        .join(window, on=["language", "runtime"], how="left", nulls_equal=True)
    )
    runtime_of = narrowed.select("instance", "language", "runtime").unique("instance")
    return RuntimeLatencies(groups=groups, runtime_of=runtime_of)


def compare_runtimes(
    spans: pl.DataFrame,
    stalls: tuple[Stall, ...],
    *,
    narrowed: pl.DataFrame | None = None,
    latencies: RuntimeLatencies | None = None,
) -> tuple[RuntimeSummary, ...]:
    """Per-runtime latency of SERVER spans' self time, with stall rates.

    ``narrowed`` is ``narrow(spans)`` when the caller already has it (it is not recomputed);
    ``latencies`` is :func:`runtime_latencies` of them when the caller already has it.

    ``stall_ms_per_minute_per_instance`` is the stalled milliseconds of the runtime's instances
    divided by the observed minutes (first span start to last span end of that runtime) and by
    its instance count. Ordered by p99 self time, worst first.
    """
    if latencies is None:
        latencies = runtime_latencies(spans, narrowed=narrowed)
    if latencies is None:
        return ()
    stall_frame = pl.DataFrame(
        {
            "instance": [st.instance for st in stalls],
            "ms": [st.duration_ms for st in stalls],
        },
        schema={"instance": pl.String, "ms": pl.Float64},
    ).with_columns(as_names("instance"))
    stall_totals = (
        stall_frame.join(latencies.runtime_of, on="instance", how="inner")
        .group_by("language", "runtime")
        .agg(pl.len().alias("stalls"), pl.col("ms").sum().alias("stall_ms"))
    )
    groups = latencies.groups.join(
        stall_totals, on=["language", "runtime"], how="left", nulls_equal=True
    )
    values = groups["values"]
    out: list[RuntimeSummary] = []
    for i, row in enumerate(groups.drop("values").iter_rows(named=True)):
        self_ns = values[i].to_numpy()
        p50, p99, p999 = (q / NS_PER_MS for q in hdr_quantiles_ns(self_ns, [0.5, 0.99, 0.999]))
        minutes = max(int(row["last"]) - int(row["first"]), 1) / NS_PER_MINUTE
        stall_ms = float(row["stall_ms"] or 0.0)
        out.append(
            RuntimeSummary(
                language=str(row["language"]),
                runtime=row["runtime"],
                services=int(row["services"]),
                instances=int(row["instances"]),
                spans=int(row["spans"]),
                p50_ms=p50,
                p99_ms=p99,
                p999_ms=p999,
                tail_ratio=round(p99 / p50, 3) if p50 > 0 else 0.0,
                stalls=int(row["stalls"] or 0),
                stall_ms_per_minute_per_instance=round(
                    stall_ms / minutes / max(int(row["instances"]), 1), 3
                ),
            )
        )
    out.sort(key=lambda r: (-r.p99_ms, r.language))
    return tuple(out)
