"""Drive the engine over a stream of requests and keep the ground truth.

:func:`iter_batches` yields batches of finished traces (bounded memory: writers consume them
as they come); :class:`TruthRecorder` folds every batch into the ``truth.json`` content
documented in ``docs/scenarios.md``.
"""

from __future__ import annotations

import zlib
from bisect import bisect_right
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from tailscope.errors import UsageError
from tailscope.simulate.engine import NS_PER_MS, Engine, TraceResult
from tailscope.simulate.export import span_id_bytes
from tailscope.simulate.randomness import child_key, uniform
from tailscope.simulate.scenario import Scenario

TRUTH_VERSION = 1


def host_offsets_ns(scenario: Scenario, seed: int, clock_skew_ms: float | None) -> dict[str, int]:
    """Per-host clock offsets (ns): the scenario's own, or uniform in ±``clock_skew_ms``."""
    if clock_skew_ms is None:
        own = dict(scenario.clock_offsets_ms)
        return {host: int(own.get(host, 0.0) * NS_PER_MS) for host in scenario.hosts}
    if clock_skew_ms < 0:
        raise UsageError(f"clock skew must be >= 0 ms, got {clock_skew_ms}")
    key = child_key(seed & ((1 << 64) - 1), 0xC10C)
    return {
        host: int(
            (2.0 * uniform(key ^ zlib.crc32(host.encode()), 0) - 1.0) * clock_skew_ms * NS_PER_MS
        )
        for host in scenario.hosts
    }


@dataclass(frozen=True, slots=True)
class RunSize:
    """How much to simulate: stop at the first limit reached (at least one must be set)."""

    requests: int | None = None
    duration_s: float | None = None
    spans: int | None = None

    def check(self) -> None:
        if self.requests is None and self.duration_s is None and self.spans is None:
            raise UsageError("say how much to simulate: requests, duration or spans")
        for name, value in (
            ("requests", self.requests),
            ("duration", self.duration_s),
            ("spans", self.spans),
        ):
            if value is not None and value <= 0:
                raise UsageError(f"{name} must be positive, got {value}")


def iter_batches(
    engine: Engine, size: RunSize, sampling: float, batch_traces: int = 512
) -> Iterator[list[TraceResult]]:
    """Simulate requests in arrival order and yield the sampled traces in batches."""
    size.check()
    if not 0.0 < sampling <= 1.0:
        raise UsageError(f"sampling must be in (0, 1], got {sampling}")
    arrival = 0
    spans = 0
    batch: list[TraceResult] = []
    index = 0
    duration_ns = None if size.duration_s is None else int(size.duration_s * 1e9)
    while True:
        if size.requests is not None and index >= size.requests:
            break
        if size.spans is not None and spans >= size.spans:
            break
        arrival += engine.arrival_gap_ns(index)
        if duration_ns is not None and arrival > duration_ns:
            break
        if engine.sampled(index, sampling):
            trace = engine.run_request(index, arrival)
            spans += len(trace.spans)
            batch.append(trace)
            if len(batch) >= batch_traces:
                yield batch
                batch = []
        index += 1
    if batch:
        yield batch


class TruthRecorder:
    """Accumulates the ground truth of the exported traces."""

    def __init__(
        self,
        engine: Engine,
        seed: int,
        sampling: float,
        offsets_ns: dict[str, int],
        keep: bool = True,
    ) -> None:
        """``keep`` False: only count (bounded memory when no truth file is wanted)."""
        self.keep = keep
        self.timeout_count = 0
        self.gc_caused_count = 0
        self.engine = engine
        self.seed = seed
        self.sampling = sampling
        self.offsets_ns = offsets_ns
        self.spans = 0
        self.traces = 0
        self.horizon = 0
        self.stretched: dict[tuple[int, int], list[str]] = {}
        self.queued: dict[tuple[int, int], list[str]] = {}
        self.touched_requests: dict[tuple[int, int], set[int]] = {}
        self.timeouts: list[tuple[bytes, Any]] = []
        self.retries: list[dict[str, Any]] = []
        self.outcomes: dict[str, dict[str, Any]] = {}

    def add(self, batch: list[TraceResult]) -> None:
        for trace in batch:
            self.traces += 1
            self.spans += len(trace.spans)
            self.timeout_count += len(trace.timeouts)
            self.gc_caused_count += trace.timed_out and not trace.timed_out_without_pauses
            if not self.keep:
                self.horizon = max(self.horizon, max(span.end for span in trace.spans))
                continue
            trace_hex = trace.trace_id.hex()
            for span in trace.spans:
                schedule = span.instance.pauses
                inst_index = span.instance.index
                self.horizon = max(self.horizon, span.end)
                span_hex = span_id_bytes(span.span_id).hex()
                for i in schedule.pauses_within(span.start, span.end):
                    self.stretched.setdefault((inst_index, i), []).append(span_hex)
                    self.touched_requests.setdefault((inst_index, i), set()).add(trace.index)
                if span.arrival < span.start:
                    j = schedule.pause_ending_at(span.start)
                    if j is not None:
                        self.queued.setdefault((inst_index, j), []).append(span_hex)
                        self.touched_requests.setdefault((inst_index, j), set()).add(trace.index)
            for record in trace.timeouts:
                self.timeouts.append((trace.trace_id, record))
            for retry in trace.retries:
                self.retries.append(
                    {
                        "trace_id": trace_hex,
                        "span_id": span_id_bytes(retry.span_id).hex(),
                        "retry_of_span_id": span_id_bytes(retry.retry_of_span_id).hex(),
                        "attempt": retry.attempt,
                    }
                )
            self.outcomes[trace_hex] = {
                "root_service": trace.root_service,
                "root_operation": trace.root_operation,
                "timed_out": trace.timed_out,
                "timed_out_without_pauses": trace.timed_out_without_pauses,
                "gc_caused": trace.timed_out and not trace.timed_out_without_pauses,
                "root_duration_ms": trace.root_duration_ns / NS_PER_MS,
                "root_duration_without_pauses_ms": trace.root_duration_without_pauses_ns
                / NS_PER_MS,
                "touched_pauses": trace.touched_pauses,
            }

    def pause_count(self) -> int:
        """Pauses that started before the last simulated timestamp."""
        count = 0
        for inst in self.engine.instances:
            inst.pauses.ensure(self.horizon)
            count += bisect_right(inst.pauses.starts, self.horizon)
        return count

    def truth(self) -> dict[str, Any]:
        """The ``truth.json`` object (times: integer Unix ns in the true clock)."""
        from tailscope.simulate.export import EPOCH_NS

        listed: list[tuple[int, int, int]] = []
        for inst in self.engine.instances:
            schedule = inst.pauses
            schedule.ensure(self.horizon)
            for i, start in enumerate(schedule.starts):
                if start > self.horizon:
                    break
                listed.append((start, inst.index, i))
        listed.sort()
        global_index = {(inst, i): n for n, (_, inst, i) in enumerate(listed)}
        pauses = []
        for start, inst_index, i in listed:
            inst = self.engine.instances[inst_index]
            end = inst.pauses.ends[i]
            pauses.append(
                {
                    "service": inst.service.name,
                    "instance": inst.name,
                    "host": inst.host,
                    "kind": inst.pauses.kinds[i],
                    "start_unix_nano": EPOCH_NS + start,
                    "end_unix_nano": EPOCH_NS + end,
                    "duration_ms": (end - start) / NS_PER_MS,
                    "stretched_span_ids": self.stretched.get((inst_index, i), []),
                    "queued_span_ids": self.queued.get((inst_index, i), []),
                    "requests_touched": len(self.touched_requests.get((inst_index, i), ())),
                }
            )
        timeouts = []
        for trace_id, record in self.timeouts:
            timeouts.append(
                {
                    "trace_id": trace_id.hex(),
                    "span_id": span_id_bytes(record.span_id).hex(),
                    "caller_service": record.caller_service,
                    "callee_service": record.callee_service,
                    "callee_instance": record.callee_instance,
                    "cause": record.cause,
                    "pause_index": None if record.pause is None else global_index.get(record.pause),
                }
            )
        return {
            "tailscope_truth_version": TRUTH_VERSION,
            "scenario": self.engine.scenario.name,
            "seed": self.seed,
            "spans": self.spans,
            "traces": self.traces,
            "sampling": self.sampling,
            "epoch_unix_nano": EPOCH_NS,
            "host_offsets_ns": dict(sorted(self.offsets_ns.items())),
            "pauses": pauses,
            "timeouts": timeouts,
            "retries": self.retries,
            "trace_outcomes": self.outcomes,
        }
