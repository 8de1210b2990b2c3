"""Hop-by-hop attribution of each root operation's latency variance and p99 tail.

Every critical-path segment belongs to a *hop*: (hop service, hop operation, component). For one
request (one root span) let ``x_h`` be the time of hop ``h`` on its critical path and ``T`` the
root's duration; the segments partition the root, so ``sum_h x_h == T`` and both shares below
sum to 1 over the hops of a root operation:

* variance share ``Cov(x_h, T) / Var(T)`` — how much of the spread of ``T`` moves with ``h``;
* tail share ``(E[x_h | T > p99] - E[x_h]) / (E[T | T > p99] - E[T])`` — how much of the extra
  time of the slowest 1 % of requests is spent in ``h`` (``p99`` nearest rank, as numpy's
  ``inverted_cdf``);
* the fraction of requests in which ``h`` is on the critical path at all.

Hops of component ``stall`` (time behind a detected stop-the-world pause, see
:mod:`tailscope.analysis.stall_time`) are hops like any other; their shares also add up per
paused service and over all pauses (shares are linear in the hop times, so the share of a group
of hops is the sum of their shares, in every bootstrap resample too).

95 % confidence intervals come from a bootstrap over requests (``resamples`` resamples with a
fixed seed, vectorised: resampling is a matrix of per-request weights, and all hops of a root
operation are computed with one matrix product per chunk of resamples). The ranking of a root's
hops is *conclusive* when the top hop's tail-share interval lies entirely above the next hop's,
*ambiguous* otherwise (the verdict names the hops it cannot tell apart). Below a floor of
``min_tail_requests`` requests above p99 a root operation is *inconclusive*: its shares are
computed and shown but nothing is ranked.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

import numpy as np
import polars as pl
from numpy.typing import NDArray

from tailscope.analysis.percentiles import hdr_quantiles_ns
from tailscope.analysis.verdict import root_verdict
from tailscope.report.model import HopShare, PausedService, RootSummary, Stall
from tailscope.types import DEFAULT_MIN_TAIL_REQUESTS, HopComponent

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

NS_PER_MS: Final = 1_000_000
TAIL_QUANTILE: Final = 0.99
DEFAULT_RESAMPLES: Final = 200
DEFAULT_SEED: Final = 20240531
_CHUNK: Final = 25
"""Resamples per weight matrix (bounds memory: chunk x requests floats)."""
_HOP_EXEMPLARS: Final = 3
_TAIL_SLICE_DIVISOR: Final = 16
_TAIL_SLICE_MIN: Final = 64
"""The per-resample p99 is looked for in the top max(64, n / 16) requests by T first."""


@dataclass(frozen=True, slots=True)
class HopOptions:
    """Knobs of :func:`hop_attribution`."""

    min_tail_requests: int = DEFAULT_MIN_TAIL_REQUESTS
    """Floor: below this many requests above p99 a root operation is inconclusive (nothing is
    ranked); above it the intervals decide."""
    resamples: int = DEFAULT_RESAMPLES
    """Bootstrap resamples for the confidence intervals."""
    seed: int = DEFAULT_SEED


@dataclass(frozen=True, slots=True)
class _Shares:
    variance: NDArray[np.float64]
    tail: NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class _Sample:
    """One root operation's requests, laid out for weighted moments in one matrix product."""

    hop_ms: NDArray[np.float64]
    """requests x hops."""
    total_ms: NDArray[np.float64]
    moments: NDArray[np.float64]
    """requests x (2 hops + 2): columns x_h, T, T^2, x_h * T."""
    order: NDArray[np.int64]
    """Requests sorted by T (for the per-resample p99)."""

    @classmethod
    def of(cls, hop_ms: NDArray[np.float64], total_ms: NDArray[np.float64]) -> _Sample:
        moments = np.hstack(
            [hop_ms, total_ms[:, None], (total_ms * total_ms)[:, None], hop_ms * total_ms[:, None]]
        )
        return cls(hop_ms, total_ms, moments, np.argsort(total_ms, kind="stable"))


def _weighted_sums(
    weights: NDArray[np.float64], values: NDArray[np.float64]
) -> NDArray[np.float64]:
    """``weights @ values`` without BLAS: a multi-threaded BLAS on a busy machine with few cores
    spins its threads and runs these thin products 20x slower than a plain loop."""
    sums: NDArray[np.float64] = np.einsum("rn,nc->rc", weights, values, optimize=False)
    return sums


def _tail_positions(
    order: NDArray[np.int64], weights: NDArray[np.float64], n: NDArray[np.float64]
) -> NDArray[np.int64]:
    """Per row of ``weights``, the nearest-rank p99 as a position in ``order`` (requests by T):
    the first whose cumulative weight reaches ``q * n``.

    Only the top of the order is summed (from the top: cumulative = n - weight above), and
    all of it only for rows whose p99 lies below that slice. The weights are counts, so every
    partial sum is an exact integer and the positions are those of a full cumulative sum.
    """
    target = (TAIL_QUANTILE * n)[:, None] - 1e-9
    size = order.size
    top = min(size, max(_TAIL_SLICE_MIN, size // _TAIL_SLICE_DIVISOR))
    if top < size:
        above = weights[:, order[size - top :]]
        # cumulative weight at each position of the slice: n minus the weight above it
        at_or_above = np.cumsum(above[:, ::-1], axis=1)[:, ::-1]
        cumulative = n[:, None] - at_or_above + above
        if not (cumulative[:, 0] >= target[:, 0]).any():
            found: NDArray[np.int64] = size - top + np.argmax(cumulative >= target, axis=1)
            return found
    cumulative = np.cumsum(weights[:, order], axis=1)
    everywhere: NDArray[np.int64] = np.argmax(cumulative >= target, axis=1)
    return everywhere


def _shares(sample: _Sample, weights: NDArray[np.float64]) -> _Shares:
    """Variance and tail shares of every hop under each row of request ``weights``.

    ``weights`` is resamples x requests (how often each request is drawn; a row of ones is the
    sample itself).
    """
    hops = sample.hop_ms.shape[1]
    n = weights.sum(axis=1)
    m = _weighted_sums(weights, sample.moments) / n[:, None]
    mean_x = m[:, :hops]
    mean_t = m[:, hops]
    var_t = m[:, hops + 1] - mean_t * mean_t
    cov = m[:, hops + 2 :] - mean_x * mean_t[:, None]
    with np.errstate(divide="ignore", invalid="ignore"):
        variance = np.where(var_t[:, None] > 0, cov / var_t[:, None], np.nan)
    threshold = sample.total_ms[sample.order][_tail_positions(sample.order, weights, n)]
    # Only requests above the lowest threshold are in any resample's tail; the others would
    # add exact zeros to every sum, so the sums are the same to the last bit (checked against
    # the full-width computation in tests/unit/test_analysis_hops.py).
    candidates = np.flatnonzero(sample.total_ms > threshold.min())
    tail_weights = weights[:, candidates] * (sample.total_ms[None, candidates] > threshold[:, None])
    tail_n = tail_weights.sum(axis=1)
    tail_m = _weighted_sums(tail_weights, sample.moments[candidates, : hops + 1])
    with np.errstate(divide="ignore", invalid="ignore"):
        tail_x = tail_m[:, :hops] / tail_n[:, None]
        tail_t = tail_m[:, hops] / tail_n
        excess = tail_t - mean_t
        tail = np.where(
            (tail_n[:, None] > 0) & (excess[:, None] > 0),
            (tail_x - mean_x) / excess[:, None],
            np.nan,
        )
    return _Shares(variance=variance, tail=tail)


def _bootstrap(sample: _Sample, resamples: int, rng: np.random.Generator) -> _Shares:
    """Shares under ``resamples`` bootstrap resamples of the requests (rows)."""
    n = sample.total_ms.size
    variance: list[NDArray[np.float64]] = []
    tail: list[NDArray[np.float64]] = []
    done = 0
    while done < resamples:
        chunk = min(_CHUNK, resamples - done)
        picks = rng.integers(0, n, size=(chunk, n))
        picks += (np.arange(chunk) * n)[:, None]
        weights = np.bincount(picks.ravel(), minlength=chunk * n).reshape(chunk, n)
        shares = _shares(sample, weights.astype(np.float64))
        variance.append(shares.variance)
        tail.append(shares.tail)
        done += chunk
    return _Shares(variance=np.vstack(variance), tail=np.vstack(tail))


def _interval(samples: NDArray[np.float64]) -> list[tuple[float, float]]:
    """Percentile 95 % interval per column, ignoring resamples where a share is undefined."""
    out: list[tuple[float, float]] = []
    for column in samples.T:
        finite = column[np.isfinite(column)]
        if finite.size == 0:
            out.append((0.0, 0.0))
        else:
            lo, hi = np.percentile(finite, [2.5, 97.5])
            out.append((float(lo), float(hi)))
    return out


def request_hop_times(path: pl.DataFrame, request_keys: list[str]) -> pl.DataFrame:
    """Time (ns) of each hop in each request: one row per (root span, hop) from segments."""
    return path.group_by(
        *request_keys,
        "root_service",
        "root_operation",
        "hop_service",
        "hop_operation",
        "component",
    ).agg((pl.col("seg_end") - pl.col("seg_start")).sum().alias("hop_ns"))


def _hop_times_by_root_row(path: pl.DataFrame, hop_keys: list[str]) -> pl.DataFrame:
    """Time (ns) of each hop under each root row: ``root_row``, the hop keys and ``hop_ns``.

    With categorical hop names (the pipeline's segments) the three hop keys are packed into
    one integer from their global codes and the sums are taken in numpy (one sort of the
    segments, then ``np.add.reduceat``): a polars group-by on the name keys needs a few hundred
    MB at a million segments. The names are put back from one segment per hop.
    """
    hop_ns = (pl.col("seg_end") - pl.col("seg_start")).alias("hop_ns")
    names = path.schema["hop_service"], path.schema["hop_operation"]
    packable = all(isinstance(d, pl.Categorical) for d in names) and path.height > 0
    if packable:
        service = path["hop_service"].to_physical().cast(pl.Int64).to_numpy()
        operation = path["hop_operation"].to_physical().cast(pl.Int64).to_numpy()
        packable = int(service.max()) < 1 << 29 and int(operation.max()) < 1 << 32
    if not packable:
        return path.group_by("root_row", *hop_keys).agg(hop_ns.sum())
    component = path["component"].to_physical().cast(pl.Int64).to_numpy()
    packed = (service << 34) | (operation << 2) | component
    del service, operation, component
    _, first, hop = np.unique(packed, return_index=True, return_inverse=True)
    del packed
    key = path["root_row"].to_numpy() * np.int64(first.size) + hop.reshape(-1)
    order = np.argsort(key, kind="stable")
    key = key[order]
    starts = np.flatnonzero(np.concatenate(([True], key[1:] != key[:-1])))
    durations = path.select(hop_ns).to_series().to_numpy()[order]
    sums = np.add.reduceat(durations, starts) if starts.size else durations[:0]
    del order, durations
    group_key = key[starts]
    labels = path.select(hop_keys)[first][group_key % first.size]
    return pl.concat(
        [
            pl.DataFrame({"root_row": group_key // first.size}),
            labels,
            pl.DataFrame({"hop_ns": sums}),
        ],
        how="horizontal",
    )


def _stall_ids(
    path: pl.DataFrame, roots: pl.DataFrame, by_row: bool
) -> dict[tuple[str, ...], tuple[int, ...]]:
    """Stall indexes behind each (root service, root operation, hop service, hop operation)."""
    if "stall" not in path.columns:
        return {}
    stalled = path.filter(pl.col("stall").is_not_null())
    if stalled.height == 0:
        return {}
    if by_row:
        stalled = stalled.join(
            roots.select("root_row", "root_service", "root_operation"), on="root_row"
        )
    grouped = stalled.group_by(
        pl.col("root_service").cast(pl.String),
        pl.col("root_operation").cast(pl.String),
        pl.col("hop_service").cast(pl.String),
        pl.col("hop_operation").cast(pl.String),
    ).agg(pl.col("stall").unique().sort())
    return {
        (row[0], row[1], row[2], row[3]): tuple(int(i) for i in row[4])
        for row in grouped.iter_rows()
    }


def _group_share(
    point: NDArray[np.float64], boot: NDArray[np.float64], columns: list[int]
) -> tuple[float, tuple[float, float]]:
    """Tail share of a group of hops (the sum of theirs) with its bootstrap interval."""
    value = float(np.nansum(point[0, columns])) if columns else 0.0
    if not columns:
        return value, (0.0, 0.0)
    return value, _interval(boot[:, columns].sum(axis=1, keepdims=True))[0]


def hop_attribution(
    path: pl.DataFrame,
    roots: pl.DataFrame,
    options: HopOptions | None = None,
    stalls: Sequence[Stall] = (),
    languages: Mapping[str, str] | None = None,
) -> tuple[tuple[RootSummary, ...], tuple[HopShare, ...]]:
    """Root summaries and hop shares of every root operation.

    Args:
        path: critical-path segments (see :func:`tailscope.analysis.critical_path.critical_path`;
            with ``root_row``, the hop columns and the segment times are enough).
        roots: one row per root span: ``trace_id``, ``root_span_id``, ``root_service``,
            ``root_operation``, ``duration_ns`` (and ``root_row`` when ``path`` has it: then
            requests are matched by it instead of by ids).
        options: thresholds and bootstrap settings.
        stalls: ``Report.stalls`` (what ``path``'s ``stall`` column indexes), for the verdicts.
        languages: service name -> SDK language, for the verdicts.

    Returns:
        Root summaries (most requests first, each with its :class:`RootVerdict`) and hop shares
        (grouped by root in that order; within a root, largest tail share first, or largest
        variance share when inconclusive).
    """
    options = options or HopOptions()
    if roots.height == 0:
        return (), ()
    root_keys = ["root_service", "root_operation"]
    hop_keys = ["hop_service", "hop_operation", "component"]
    # a root's row number is the cheapest request key; hand-made frames may only have the ids
    by_row = "root_row" in path.columns and "root_row" in roots.columns
    request_keys = ["root_row"] if by_row else ["trace_id", "root_span_id"]
    stall_ids = _stall_ids(path, roots, by_row)
    if by_row:
        # a root row names its root operation: group by integer keys only, then label
        times = _hop_times_by_root_row(path, hop_keys).join(
            roots.select("root_row", *root_keys), on="root_row", how="inner"
        )
    else:
        times = request_hop_times(path, request_keys)
    summaries: list[RootSummary] = []
    shares: list[HopShare] = []
    root_parts = roots.partition_by(root_keys, as_dict=True, maintain_order=True)
    time_parts = times.partition_by(root_keys, as_dict=True, maintain_order=True)
    rng = np.random.default_rng(options.seed)
    ordered = sorted(root_parts.items(), key=lambda kv: (-kv[1].height, kv[0]))
    for key, requests in ordered:
        # canonical request order (ids, not input rows): the bootstrap draws the same
        # resamples however the input was split or ordered (one machine or a cluster)
        requests = requests.sort("trace_id", "root_span_id", *request_keys).with_row_index("_req")
        hop_rows = time_parts.get(key)
        total_ns = requests["duration_ns"].clip(lower_bound=0).to_numpy()
        total_ms = total_ns / NS_PER_MS
        n = total_ms.size
        p50, p99 = hdr_quantiles_ns(total_ns, [0.5, TAIL_QUANTILE])
        threshold = float(np.quantile(total_ms, TAIL_QUANTILE, method="inverted_cdf"))
        in_tail = total_ms > threshold
        tail_requests = int(in_tail.sum())
        inconclusive = tail_requests < options.min_tail_requests
        root_service, root_operation = str(key[0]), str(key[1])
        summary = RootSummary(
            service=root_service,
            operation=root_operation,
            requests=n,
            p50_ms=p50 / NS_PER_MS,
            p99_ms=p99 / NS_PER_MS,
            tail_requests=tail_requests,
            inconclusive=inconclusive,
        )
        if hop_rows is None or hop_rows.height == 0:
            summaries.append(
                root_verdict(summary, (), (0.0, (0.0, 0.0)), (), options.min_tail_requests)
            )
            continue
        hop_rows = hop_rows.join(
            requests.select(*request_keys, "_req"), on=request_keys, how="inner"
        )
        catalog = hop_rows.select(hop_keys).unique().sort(hop_keys).with_row_index("_hop")
        hop_rows = hop_rows.join(catalog, on=hop_keys, how="inner")
        hop_ms = np.zeros((n, catalog.height), dtype=np.float64)
        hop_ms[hop_rows["_req"].to_numpy(), hop_rows["_hop"].to_numpy()] = (
            hop_rows["hop_ns"].to_numpy() / NS_PER_MS
        )
        sample = _Sample.of(hop_ms, total_ms)
        point = _shares(sample, np.ones((1, n)))
        boot = _bootstrap(sample, options.resamples, rng)
        variance_ci = _interval(boot.variance)
        tail_ci = _interval(boot.tail)
        mean = hop_ms.mean(axis=0)
        p99_hop = np.quantile(hop_ms, TAIL_QUANTILE, axis=0, method="inverted_cdf")
        on_path = (hop_ms > 0).mean(axis=0)
        trace_hex = [bytes(t).hex() for t in requests["trace_id"].to_list()]
        focus = np.flatnonzero(in_tail) if tail_requests else np.arange(n)
        root_hops: list[HopShare] = []
        for h, hop in enumerate(catalog.iter_rows(named=True)):
            column = hop_ms[focus, h]
            top = focus[np.argsort(-column, kind="stable")[:_HOP_EXEMPLARS]]
            exemplars = tuple(trace_hex[i] for i in top if hop_ms[i, h] > 0)
            variance_share = point.variance[0, h]
            tail_share = point.tail[0, h]
            component: HopComponent = hop["component"]
            root_hops.append(
                HopShare(
                    root_service=root_service,
                    root_operation=root_operation,
                    hop_service=str(hop["hop_service"]),
                    hop_operation=str(hop["hop_operation"]),
                    component=component,
                    requests=n,
                    mean_ms=float(mean[h]),
                    p99_ms=float(p99_hop[h]),
                    on_critical_path=float(on_path[h]),
                    variance_share=float(variance_share) if np.isfinite(variance_share) else 0.0,
                    variance_share_ci=variance_ci[h],
                    tail_share=float(tail_share) if np.isfinite(tail_share) else 0.0,
                    tail_share_ci=tail_ci[h],
                    inconclusive=inconclusive,
                    exemplar_trace_ids=exemplars,
                    stall_ids=stall_ids.get(
                        (
                            root_service,
                            root_operation,
                            str(hop["hop_service"]),
                            str(hop["hop_operation"]),
                        ),
                        (),
                    )
                    if component == "stall"
                    else (),
                )
            )
        root_hops.sort(
            key=lambda hs: (
                -(hs.variance_share if hs.inconclusive else hs.tail_share),
                -hs.mean_ms,
                hs.hop_service,
                hs.hop_operation,
                hs.component,
            )
        )
        shares.extend(root_hops)
        components = catalog["component"].cast(pl.String).to_list()
        services = catalog["hop_service"].cast(pl.String).to_list()
        stall_columns = [h for h, c in enumerate(components) if c == "stall"]
        paused: list[PausedService] = []
        for service in sorted({services[h] for h in stall_columns}):
            columns = [h for h in stall_columns if services[h] == service]
            value, interval = _group_share(point.tail, boot.tail, columns)
            ids = sorted({i for hs in root_hops if hs.hop_service == service for i in hs.stall_ids})
            durations = [stalls[i].duration_ms for i in ids if i < len(stalls)]
            paused.append(
                PausedService(
                    service=service,
                    language=(languages or {}).get(service),
                    stall_ids=tuple(ids),
                    min_pause_ms=min(durations, default=0.0),
                    max_pause_ms=max(durations, default=0.0),
                    tail_share=value,
                    tail_share_ci=interval,
                )
            )
        paused.sort(key=lambda p: (-p.tail_share, p.service))
        summaries.append(
            root_verdict(
                summary,
                root_hops,
                _group_share(point.tail, boot.tail, stall_columns),
                tuple(paused),
                options.min_tail_requests,
            )
        )
    return tuple(summaries), tuple(shares)
