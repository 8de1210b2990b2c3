"""Streaming output of a simulation: OTLP/JSON Lines, OTLP protobuf, Parquet, truth.json.

Traces are simulated and written batch by batch, so memory stays bounded by one batch (plus
the ground truth, which grows with the number of pauses, timeouts and traces kept in it).
Byte-for-byte deterministic for a given seed: gzip headers carry no time or file name, JSON
keys are written in a fixed order, protobuf is serialised deterministically.

Framing follows the OpenTelemetry Collector's file exporter: one ``ExportTraceServiceRequest``
per line for JSON; for protobuf each message is preceded by its length as a 4-byte big-endian
unsigned integer.
"""

from __future__ import annotations

import gzip
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from tailscope.errors import UsageError
from tailscope.simulate.engine import Engine, TraceResult
from tailscope.simulate.export import otlp_json_line, otlp_proto_message, table_from_traces
from tailscope.simulate.run import RunSize, TruthRecorder, host_offsets_ns, iter_batches
from tailscope.simulate.scenario import Scenario
from tailscope.types import OutputFormat

OUTPUT_FORMATS: tuple[OutputFormat, ...] = ("otlp-json", "otlp-proto", "parquet")


@dataclass(frozen=True, slots=True)
class WriteSummary:
    """What was written."""

    spans: int
    traces: int
    output_bytes: int
    pauses: int
    timeouts: int
    gc_caused_traces: int


@contextmanager
def _open_binary(path: Path) -> Iterator[Callable[[bytes], object]]:
    """A write function for ``path``; gzip-compressed when it ends in ``.gz``."""
    try:
        raw = path.open("wb")
    except OSError as exc:
        raise UsageError(f"cannot write {path}: {exc.strerror or exc}") from None
    with raw:
        if path.suffix.lower() == ".gz":
            # No file name and no time in the header: same seed, same bytes.
            with gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0, compresslevel=6) as gz:
                yield gz.write
        else:
            yield raw.write


def write_simulation(
    scenario: Scenario,
    *,
    seed: int,
    size: RunSize,
    output: Path,
    output_format: str,
    truth_path: Path | None = None,
    clock_skew_ms: float | None = None,
    sampling: float | None = None,
    batch_traces: int = 256,
    on_batch: Callable[[int], None] | None = None,
) -> WriteSummary:
    """Simulate and write ``output`` (and ``truth_path``) in a streaming fashion.

    Args:
        output_format: ``otlp-json`` (JSON Lines), ``otlp-proto`` (length-prefixed messages)
            or ``parquet`` (the span table). A ``.gz`` suffix gzips JSON and protobuf output.
        on_batch: called with the number of spans of each batch written (progress).

    Raises:
        UsageError: unknown format, bad option values, or an unwritable output.
    """
    if output_format not in OUTPUT_FORMATS:
        raise UsageError(
            f"unknown output format {output_format!r}; choose one of {', '.join(OUTPUT_FORMATS)}"
        )
    size.check()
    rate = scenario.sampling if sampling is None else sampling
    engine = Engine(scenario, seed)
    offsets = host_offsets_ns(scenario, seed, clock_skew_ms)
    recorder = TruthRecorder(engine, seed, rate, offsets, keep=truth_path is not None)
    batches = iter_batches(engine, size, rate, batch_traces=batch_traces)
    if output_format == "parquet":
        written = _write_parquet(batches, output, offsets, recorder, on_batch)
    else:
        encode = otlp_json_line if output_format == "otlp-json" else _framed_proto
        written = _write_stream(batches, output, offsets, recorder, encode, on_batch)
    if truth_path is not None:
        write_truth(recorder.truth(), truth_path)
    return WriteSummary(
        spans=recorder.spans,
        traces=recorder.traces,
        output_bytes=written,
        pauses=recorder.pause_count(),
        timeouts=recorder.timeout_count,
        gc_caused_traces=recorder.gc_caused_count,
    )


def write_truth(truth: dict[str, Any], path: Path) -> None:
    """Write ``truth.json`` (indented, keys in contract order)."""
    try:
        path.write_bytes(orjson.dumps(truth, option=orjson.OPT_INDENT_2) + b"\n")
    except OSError as exc:
        raise UsageError(f"cannot write {path}: {exc.strerror or exc}") from None


def _framed_proto(traces: list[TraceResult], offsets: dict[str, int]) -> bytes:
    message = otlp_proto_message(traces, offsets)
    return len(message).to_bytes(4, "big") + message


def _write_stream(
    batches: Any,
    output: Path,
    offsets: dict[str, int],
    recorder: TruthRecorder,
    encode: Callable[[list[TraceResult], dict[str, int]], bytes],
    on_batch: Callable[[int], None] | None,
) -> int:
    with _open_binary(output) as write:
        for batch in batches:
            recorder.add(batch)
            write(encode(batch, offsets))
            if on_batch is not None:
                on_batch(sum(len(t.spans) for t in batch))
    return output.stat().st_size


def _write_parquet(
    batches: Any,
    output: Path,
    offsets: dict[str, int],
    recorder: TruthRecorder,
    on_batch: Callable[[int], None] | None,
) -> int:
    import pyarrow.parquet as pq

    from tailscope.schema import SPAN_SCHEMA

    try:
        writer = pq.ParquetWriter(str(output), SPAN_SCHEMA, compression="zstd")
    except OSError as exc:
        raise UsageError(f"cannot write {output}: {exc}") from None
    with writer:
        for batch in batches:
            recorder.add(batch)
            writer.write_table(table_from_traces(batch, offsets))
            if on_batch is not None:
                on_batch(sum(len(t.spans) for t in batch))
    return output.stat().st_size
