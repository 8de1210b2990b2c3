"""Baseline files: per-operation latency HdrHistograms of a known-good run, portable and mergeable.

A baseline holds, for every root operation (service, operation of spans with no parent in the
input) and every operation (service, operation, kind), the latency HdrHistogram in its standard
compressed V2 encoding (base64; unit microseconds, 1 µs .. 1 h, 3 significant digits), so any
HdrHistogram implementation can read it, plus the sample count, the time range of the spans and
metadata (tailscope version, a label such as a git sha, when it was created, format version).

Histograms, not percentiles, are stored because quantiles of several runs cannot be combined but
histograms can (:func:`merge_baselines`), and because the gate needs the whole distribution to
compute order-statistic confidence intervals.

Reading validates everything and raises :class:`~tailscope.errors.BaselineError` with one clear
line: not JSON, not a baseline, a newer format, a histogram that does not decode, or a count that
does not match its histogram (a hand-edited or truncated file).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Final

import numpy as np

from tailscope import schema as s
from tailscope.errors import BaselineError, HistogramError
from tailscope.histogram import LatencyHistogram
from tailscope.schema import SpanKind

if TYPE_CHECKING:
    import pyarrow as pa

    from tailscope.analysis.pipeline import PreparedSpans

BASELINE_FORMAT: Final = "tailscope-baseline"
BASELINE_FORMAT_VERSION: Final = 1
HISTOGRAM_ENCODING: Final = (
    "HdrHistogram V2 compressed (zlib), base64; unit microseconds; trackable 1..3600000000; "
    "3 significant digits"
)


@dataclass(frozen=True, slots=True)
class OperationHistogram:
    """The latency distribution of one operation (or one root operation) in one run."""

    service: str
    operation: str
    kind: str | None
    """Span kind (``server``, ``client`` ...) for operations; ``None`` for root operations."""
    count: int
    start_unix_nano: int
    """Earliest span start."""
    end_unix_nano: int
    """Latest span end."""
    histogram: LatencyHistogram = field(compare=False)

    @property
    def name(self) -> str:
        """``service/operation``: what ``--operations`` globs match against."""
        return f"{self.service}/{self.operation}"

    @property
    def key(self) -> tuple[str, str, str | None]:
        return (self.service, self.operation, self.kind)


@dataclass(frozen=True, slots=True)
class Baseline:
    """One baseline file (or the same summary of the run being gated)."""

    label: str | None
    """Free text naming the run, e.g. the git sha of the build that produced it."""
    created: str
    """UTC time of creation, ISO 8601 (``2026-11-29T04:30:00Z``)."""
    tailscope_version: str
    spans: int
    traces: int
    roots: tuple[OperationHistogram, ...]
    operations: tuple[OperationHistogram, ...]
    inputs: tuple[str, ...] = ()
    merged_from: tuple[dict[str, str | None], ...] = ()
    """Label and creation time of each baseline merged into this one (empty if not merged)."""
    format_version: int = BASELINE_FORMAT_VERSION

    def root(self, service: str, operation: str) -> OperationHistogram | None:
        return _find(self.roots, (service, operation, None))

    def operation(self, service: str, operation: str, kind: str) -> OperationHistogram | None:
        return _find(self.operations, (service, operation, kind))


def _find(
    items: Iterable[OperationHistogram], key: tuple[str, str, str | None]
) -> OperationHistogram | None:
    return next((item for item in items if item.key == key), None)


def kind_name(kind: int) -> str:
    """OTLP span-kind number as the lowercase word used in reports."""
    try:
        return SpanKind(kind).name.lower()
    except ValueError:
        return "unspecified"


# --- building ---------------------------------------------------------------------------------
def build_baseline(
    spans: pa.Table | PreparedSpans,
    *,
    label: str | None,
    created: str,
    tailscope_version: str,
    inputs: Sequence[str] = (),
) -> Baseline:
    """Summarise spans into per-operation and per-root-operation histograms.

    Root operations are those of the span tree (:mod:`tailscope.analysis.span_tree`): a span is a
    root when it has no parent id or its parent is not in the input — the same roots as
    ``tailscope analyze``. Spans exported without a duration are left out of the histograms.

    Args:
        spans: spans of :data:`~tailscope.schema.SPAN_SCHEMA`, or the pipeline's prepared spans
            (:func:`tailscope.analysis.pipeline.prepare_spans`, whose span tree is then reused).
        label: free text stored with the baseline (e.g. a git sha).
        created: creation time to record (ISO 8601 UTC); passed in so this stays pure.
        tailscope_version: version to record.
        inputs: names of the files read, recorded for provenance.
    """
    import polars as pl

    from tailscope.analysis.traces import DURATION_UNKNOWN

    frame = _span_frame(spans)
    timed = frame.filter(~pl.col(DURATION_UNKNOWN))
    operations = _histograms(timed, [s.SERVICE, s.NAME, s.KIND])
    roots = _histograms(timed.filter(pl.col("is_root")), [s.SERVICE, s.NAME])
    return Baseline(
        label=label,
        created=created,
        tailscope_version=tailscope_version,
        spans=frame.height,
        traces=frame.get_column(s.TRACE_ID).n_unique() if frame.height else 0,
        roots=roots,
        operations=operations,
        inputs=tuple(inputs),
    )


_BASELINE_COLUMNS: Final = (s.TRACE_ID, s.SERVICE, s.NAME, s.KIND, s.START, s.END, s.DURATION)


def _span_frame(spans: pa.Table | PreparedSpans) -> Any:
    """The columns a baseline reads, names as strings, with the span tree's ``is_root`` and the
    ``duration_unknown`` mark (read from the prepared spans when given, else computed once)."""
    import polars as pl

    from tailscope.analysis.pipeline import PreparedSpans
    from tailscope.analysis.span_tree import build_span_tree
    from tailscope.analysis.traces import DURATION_UNKNOWN, duration_unknown_rows

    if isinstance(spans, PreparedSpans):
        frame = spans.spans.select(*_BASELINE_COLUMNS, "is_root", DURATION_UNKNOWN)
    else:
        converted = pl.from_arrow(spans.select(list(_BASELINE_COLUMNS)))
        assert isinstance(converted, pl.DataFrame)
        frame = converted.with_columns(
            pl.Series("is_root", build_span_tree(spans).parent < 0, dtype=pl.Boolean),
            pl.Series(
                DURATION_UNKNOWN, duration_unknown_rows(spans[s.ATTRIBUTES]), dtype=pl.Boolean
            ),
        )
    return frame.with_columns(pl.col(s.SERVICE).cast(pl.String), pl.col(s.NAME).cast(pl.String))


def _histograms(spans: Any, keys: list[str]) -> tuple[OperationHistogram, ...]:
    """One histogram per group of ``keys``: one sort, then slices of one numpy array (a Python
    loop per operation, never per span)."""
    import polars as pl

    if spans.height == 0:
        return ()
    ordered = spans.sort(keys)
    groups = (
        ordered.with_row_index("_row")
        .group_by(keys, maintain_order=True)
        .agg(
            pl.col("_row").first().alias("_first"),
            pl.len().alias("_count"),
            pl.col(s.START).min().alias("_start"),
            pl.col(s.END).max().alias("_end"),
        )
    )
    durations = ordered.get_column(s.DURATION).to_numpy().astype(np.int64, copy=False)
    durations = np.maximum(durations, 0)  # a span ending before it starts counts as 0 ns
    out: list[OperationHistogram] = []
    for row in groups.iter_rows(named=True):
        first, count = int(row["_first"]), int(row["_count"])
        kind = kind_name(int(row[s.KIND])) if s.KIND in keys else None
        out.append(
            OperationHistogram(
                service=str(row[s.SERVICE]),
                operation=str(row[s.NAME]),
                kind=kind,
                count=count,
                start_unix_nano=int(row["_start"]),
                end_unix_nano=int(row["_end"]),
                histogram=LatencyHistogram.from_durations_ns(durations[first : first + count]),
            )
        )
    return tuple(out)


# --- merging ----------------------------------------------------------------------------------
def merge_baselines(
    baselines: Sequence[Baseline], *, label: str | None, created: str, tailscope_version: str
) -> Baseline:
    """Combine several runs into one baseline: histograms of the same key are added, counts and
    span totals summed, time ranges widened. Each input's label and creation time are kept in
    ``merged_from``."""
    if not baselines:
        raise BaselineError("nothing to merge: give at least one baseline file")
    merged_from: list[dict[str, str | None]] = []
    for b in baselines:
        merged_from.extend(b.merged_from or ({"label": b.label, "created": b.created},))
    return Baseline(
        label=label,
        created=created,
        tailscope_version=tailscope_version,
        spans=sum(b.spans for b in baselines),
        traces=sum(b.traces for b in baselines),
        roots=_merge_series([b.roots for b in baselines]),
        operations=_merge_series([b.operations for b in baselines]),
        inputs=tuple(name for b in baselines for name in b.inputs),
        merged_from=tuple(merged_from),
    )


def _merge_series(
    series: Sequence[tuple[OperationHistogram, ...]],
) -> tuple[OperationHistogram, ...]:
    merged: dict[tuple[str, str, str | None], OperationHistogram] = {}
    for items in series:
        for item in items:
            seen = merged.get(item.key)
            if seen is None:
                # copy, so merging never mutates an input baseline's histogram
                copy = LatencyHistogram.decode(item.histogram.encode())
                merged[item.key] = replace(item, histogram=copy)
                continue
            seen.histogram.merge(item.histogram)
            merged[item.key] = replace(
                seen,
                count=seen.count + item.count,
                start_unix_nano=min(seen.start_unix_nano, item.start_unix_nano),
                end_unix_nano=max(seen.end_unix_nano, item.end_unix_nano),
            )
    return tuple(merged[k] for k in sorted(merged, key=lambda k: (k[0], k[1], k[2] or "")))


# --- JSON codec -------------------------------------------------------------------------------
def baseline_to_dict(baseline: Baseline) -> dict[str, Any]:
    """The JSON document of a baseline file (see ``docs/gating.md``)."""
    return {
        "format": BASELINE_FORMAT,
        "format_version": baseline.format_version,
        "tailscope_version": baseline.tailscope_version,
        "label": baseline.label,
        "created": baseline.created,
        "spans": baseline.spans,
        "traces": baseline.traces,
        "inputs": list(baseline.inputs),
        "merged_from": [dict(m) for m in baseline.merged_from],
        "histogram_encoding": HISTOGRAM_ENCODING,
        "roots": [_series_to_dict(r) for r in baseline.roots],
        "operations": [_series_to_dict(o) for o in baseline.operations],
    }


def _series_to_dict(item: OperationHistogram) -> dict[str, Any]:
    out: dict[str, Any] = {"service": item.service, "operation": item.operation}
    if item.kind is not None:
        out["kind"] = item.kind
    out.update(
        count=item.count,
        start_unix_nano=item.start_unix_nano,
        end_unix_nano=item.end_unix_nano,
        histogram=item.histogram.encode(),
    )
    return out


def encode_baseline(baseline: Baseline) -> bytes:
    """The baseline file's bytes (indented JSON, one histogram string per operation)."""
    import orjson

    return orjson.dumps(baseline_to_dict(baseline), option=orjson.OPT_INDENT_2) + b"\n"


def decode_baseline(data: bytes | str, source: str = "baseline") -> Baseline:
    """Parse and validate a baseline file's content. ``source`` names it in error messages."""
    import orjson

    try:
        doc = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise BaselineError(f"{source}: not a tailscope baseline (invalid JSON: {exc})") from exc
    if not isinstance(doc, dict) or doc.get("format") != BASELINE_FORMAT:
        raise BaselineError(
            f'{source}: not a tailscope baseline (expected "format": "{BASELINE_FORMAT}"; '
            "create one with 'tailscope baseline INPUT... -o FILE')"
        )
    version = doc.get("format_version")
    if not isinstance(version, int) or isinstance(version, bool):
        raise BaselineError(f"{source}: baseline has no integer format_version")
    if version > BASELINE_FORMAT_VERSION:
        raise BaselineError(
            f"{source}: baseline format version {version} is newer than this tailscope reads "
            f"({BASELINE_FORMAT_VERSION}); upgrade tailscope"
        )
    if version < 1:
        raise BaselineError(f"{source}: invalid baseline format_version {version}")
    try:
        return Baseline(
            label=_optional_str(doc.get("label"), "label"),
            created=str(doc.get("created", "")),
            tailscope_version=str(doc.get("tailscope_version", "")),
            spans=_int(doc.get("spans", 0), "spans"),
            traces=_int(doc.get("traces", 0), "traces"),
            roots=tuple(_series_from_dict(r, root=True) for r in _list(doc, "roots")),
            operations=tuple(_series_from_dict(o, root=False) for o in _list(doc, "operations")),
            inputs=tuple(str(i) for i in _list(doc, "inputs", required=False)),
            merged_from=tuple(
                {"label": _optional_str(m.get("label"), "label"), "created": m.get("created")}
                for m in _list(doc, "merged_from", required=False)
                if isinstance(m, dict)
            ),
            format_version=version,
        )
    except _Invalid as exc:
        raise BaselineError(f"{source}: corrupted baseline: {exc}") from exc


class _Invalid(ValueError):
    """A field of a baseline document is missing or wrong (message names it)."""


def _list(doc: dict[str, Any], name: str, required: bool = True) -> list[Any]:
    value = doc.get(name)
    if value is None and not required:
        return []
    if not isinstance(value, list):
        raise _Invalid(f"'{name}' must be a list")
    return value


def _int(value: Any, name: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise _Invalid(f"'{name}' must be a non-negative integer, got {value!r}")
    return value


def _optional_str(value: Any, name: str) -> str | None:
    if value is None or isinstance(value, str):
        return value
    raise _Invalid(f"'{name}' must be a string")


def _series_from_dict(item: Any, *, root: bool) -> OperationHistogram:
    section = "roots" if root else "operations"
    if not isinstance(item, dict):
        raise _Invalid(f"an entry of '{section}' is not an object")
    service, operation = item.get("service"), item.get("operation")
    if not isinstance(service, str) or not isinstance(operation, str):
        raise _Invalid(f"an entry of '{section}' lacks 'service' or 'operation'")
    where = f"{section} {service}/{operation}"
    kind = None if root else item.get("kind")
    if not root and not isinstance(kind, str):
        raise _Invalid(f"{where}: missing 'kind'")
    encoded = item.get("histogram")
    if not isinstance(encoded, str):
        raise _Invalid(f"{where}: missing 'histogram'")
    try:
        histogram = LatencyHistogram.decode(encoded)
    except HistogramError as exc:
        raise _Invalid(f"{where}: histogram does not decode ({exc})") from exc
    count = _int(item.get("count"), f"{where}: count")
    if histogram.count != count:
        raise _Invalid(
            f"{where}: histogram holds {histogram.count} values but 'count' says {count}"
        )
    return OperationHistogram(
        service=service,
        operation=operation,
        kind=kind,
        count=count,
        start_unix_nano=_int(item.get("start_unix_nano", 0), f"{where}: start_unix_nano"),
        end_unix_nano=_int(item.get("end_unix_nano", 0), f"{where}: end_unix_nano"),
        histogram=histogram,
    )
