"""Spans of hand-built two-host models for the stall tests: times in ms from a fixed start,
each host's clock offset by a fixed amount, one instance per service."""

from __future__ import annotations

import polars as pl

from tailscope.ingest.rows import SpanRow, table_from_rows
from tailscope.schema import StatusCode

MS = 1_000_000
T0 = 1_700_000_000_000_000_000
OFFSETS = {"host-a": 0, "host-b": 15 * MS}
"""Clock offset of each host (ns): host-b's clock runs 15 ms ahead."""


def ms_span(
    trace: bytes,
    span_id: bytes,
    parent: bytes | None,
    service: str,
    host: str,
    name: str,
    kind: int,
    start: float,
    end: float,
    *,
    timeout: bool = False,
    db: bool = False,
) -> SpanRow:
    """One span of ``service`` (instance ``service-1``, Python) on ``host``, ``start``/``end``
    in ms on the host's clock; ``timeout``: an error of type timeout; ``db``: a database call."""
    return SpanRow(
        trace_id=trace,
        span_id=span_id,
        parent_span_id=parent,
        name=name,
        kind=kind,
        start_unix_nano=T0 + int(start * MS) + OFFSETS[host],
        end_unix_nano=T0 + int(end * MS) + OFFSETS[host],
        service_name=service,
        service_instance=f"{service}-1",
        host_name=host,
        sdk_language="python",
        status_code=StatusCode.ERROR if timeout else StatusCode.UNSET,
        error_type="timeout" if timeout else None,
        db_system="postgresql" if db else None,
    )


def span_frame(rows: list[SpanRow]) -> pl.DataFrame:
    """The span table of ``rows`` as a polars frame."""
    frame = pl.from_arrow(table_from_rows(rows))
    assert isinstance(frame, pl.DataFrame)
    return frame
