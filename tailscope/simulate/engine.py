"""The discrete-event core: run one request through the call graph, with or without pauses.

Requests do not contend with each other (capacity is unbounded); what couples them is the
processes they share: a pause of one instance stalls every request that is on it at the time.
Each request is simulated recursively. All its randomness comes from addressable keys
(:mod:`tailscope.simulate.randomness`), so running it again with pauses switched off — the
counterfactual — uses exactly the same draws, and the difference between the two runs is the
pauses' doing and nothing else.

Times are integer nanoseconds since the simulation origin, in the *true* clock (per-host skew
is applied only when spans are exported).
"""

from __future__ import annotations

import math
import zlib
from bisect import bisect_left
from dataclasses import dataclass, field
from typing import Any

from tailscope.schema import SpanKind, StatusCode
from tailscope.simulate.pauses import PauseSchedule
from tailscope.simulate.randomness import MASK64, child_key, mix64, standard_normal, uniform
from tailscope.simulate.scenario import (
    CallStep,
    DependencyStep,
    Distribution,
    Operation,
    ParallelStep,
    PublishStep,
    Retry,
    Scenario,
    Service,
)

NS_PER_MS = 1_000_000

SDK_VERSIONS: dict[str, tuple[str, str, str | None, str | None]] = {
    # language: (sdk version, instrumentation scope, process.runtime.name, runtime version)
    "go": (
        "1.32.0",
        "go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp",
        "go",
        "go1.23.4",
    ),
    "java": (
        "1.45.0",
        "io.opentelemetry.java-agent",
        "OpenJDK Runtime Environment",
        "21.0.5+11-LTS",
    ),
    "dotnet": ("1.10.0", "OpenTelemetry.Instrumentation.AspNetCore", ".NET", "8.0.11"),
    "nodejs": ("1.29.0", "@opentelemetry/instrumentation-http", "nodejs", "22.12.0"),
    "python": ("1.29.0", "opentelemetry.instrumentation.flask", "cpython", "3.12.8"),
    "rust": ("0.27.1", "opentelemetry-http", None, None),
}

TIMEOUT_EXCEPTIONS: dict[str, str] = {
    "go": "context.deadlineExceededError",
    "java": "java.net.SocketTimeoutException",
    "dotnet": "System.Threading.Tasks.TaskCanceledException",
    "nodejs": "TimeoutError",
    "python": "TimeoutError",
    "rust": "reqwest::Error",
}

GRPC_DEADLINE_EXCEEDED = 4
GRPC_INTERNAL = 13
GRPC_UNAVAILABLE = 14


def sample_ms(dist: Distribution, key: int, index: int) -> float:
    """One draw (ms) from a lognormal-with-tail distribution, using draws index..index+2."""
    median, sigma = dist.median_ms, dist.sigma
    if dist.tail_probability and uniform(key, index + 2) < dist.tail_probability:
        median, sigma = dist.tail_median_ms, dist.tail_sigma
    if sigma == 0.0:
        return median
    return median * math.exp(sigma * standard_normal(key, index))


def sample_ns(dist: Distribution, key: int, index: int) -> int:
    return max(1_000, int(sample_ms(dist, key, index) * NS_PER_MS))


class Instance:
    """One process of a service: where it runs, what its SDK reports, when it pauses."""

    __slots__ = (
        "attributes",
        "host",
        "index",
        "language",
        "name",
        "pauses",
        "pid",
        "runtime_name",
        "runtime_version",
        "scope_name",
        "scope_version",
        "service",
    )

    def __init__(self, service: Service, ordinal: int, index: int, seed_key: int) -> None:
        self.service = service
        self.index = index
        self.name = f"{service.name}-{ordinal + 1}"
        self.host = service.hosts[ordinal % len(service.hosts)]
        self.language = service.runtime
        sdk_version, scope, runtime_name, runtime_version = SDK_VERSIONS[service.runtime]
        self.scope_name = scope
        self.scope_version = sdk_version
        self.runtime_name = runtime_name
        self.runtime_version = runtime_version
        instance_key = child_key(seed_key ^ zlib.crc32(self.name.encode()), 0x1A57)
        self.pid = 1 + int(uniform(instance_key, 0) * 60_000)
        self.pauses = PauseSchedule(service.pauses, child_key(instance_key, 1))
        attrs: list[tuple[str, Any]] = [
            ("service.name", service.name),
            ("service.version", service.version),
            ("service.instance.id", self.name),
            ("host.name", self.host),
            ("process.pid", self.pid),
            ("telemetry.sdk.language", self.language),
            ("telemetry.sdk.name", "opentelemetry"),
            ("telemetry.sdk.version", sdk_version),
        ]
        if runtime_name is not None:
            attrs.append(("process.runtime.name", runtime_name))
            attrs.append(("process.runtime.version", runtime_version))
        self.attributes = tuple(attrs)


class SimSpan:
    """One finished span, in the true clock. ``arrival`` is when the request reached the
    process (differs from ``start`` when it arrived during a pause and queued)."""

    __slots__ = (
        "arrival",
        "attributes",
        "end",
        "events",
        "instance",
        "kind",
        "name",
        "parent_id",
        "span_id",
        "start",
        "status",
        "status_message",
    )

    def __init__(
        self,
        span_id: int,
        parent_id: int | None,
        name: str,
        kind: int,
        start: int,
        end: int,
        instance: Instance,
        attributes: list[tuple[str, Any]],
        status: int = StatusCode.UNSET,
        status_message: str | None = None,
        events: list[tuple[int, str, list[tuple[str, Any]]]] | None = None,
        arrival: int | None = None,
    ) -> None:
        self.span_id = span_id
        self.parent_id = parent_id
        self.name = name
        self.kind = kind
        self.start = start
        self.end = end
        self.instance = instance
        self.attributes = attributes
        self.status = status
        self.status_message = status_message
        self.events = events or []
        self.arrival = start if arrival is None else arrival


@dataclass(slots=True)
class TimeoutRecord:
    """A timed-out client span and why (decided by re-running that attempt without pauses)."""

    span_id: int
    caller_service: str
    callee_service: str
    callee_instance: str
    cause: str
    pause: tuple[int, int] | None
    """(instance index, pause index in its schedule) of the longest pause that caused it."""


@dataclass(slots=True)
class RetryRecord:
    span_id: int
    retry_of_span_id: int
    attempt: int


@dataclass(slots=True)
class TraceResult:
    """Everything one simulated request produced."""

    index: int
    trace_id: bytes
    root_service: str
    root_operation: str
    spans: list[SimSpan]
    timeouts: list[TimeoutRecord]
    retries: list[RetryRecord]
    timed_out: bool
    timed_out_without_pauses: bool
    root_duration_ns: int
    root_duration_without_pauses_ns: int
    touched_pauses: bool
    """Whether any pause moved any time of this request (else the counterfactual is identical)."""


@dataclass(slots=True)
class _Run:
    """State of one run of one request (real or counterfactual)."""

    pauses_on: bool
    record: bool
    spans: list[SimSpan] = field(default_factory=list)
    timeouts: list[TimeoutRecord] = field(default_factory=list)
    retries: list[RetryRecord] = field(default_factory=list)
    touched: list[tuple[int, int]] = field(default_factory=list)
    """(instance index, pause index) of every pause that moved a time of this run."""
    timed_out: bool = False
    max_dependency_ns: int = 0


def _split_operation(name: str) -> tuple[str, str]:
    """``"POST /charge"`` → (``POST``, ``/charge``); ``"a.b.Svc/Method"`` → (``a.b.Svc``,
    ``Method``)."""
    if " " in name:
        method, _, route = name.partition(" ")
        return method, route
    if "/" in name:
        svc, _, method = name.rpartition("/")
        return svc, method
    return "GET", "/" + name


def reported_times(span: SimSpan) -> tuple[int, int]:
    """(start, end) as the span's SDK reports them (true clock): with a coarse clock the start
    is floored to the service's ``clock_resolution_ms`` and the exact duration kept."""
    resolution = span.instance.service.clock_resolution_ms
    if not resolution:
        return span.start, span.end
    step = int(resolution * NS_PER_MS)
    start = span.start - span.start % step
    return start, start + span.end - span.start


def _span_id(key: int) -> int:
    return mix64(key ^ 0x5A4E1D) or 1


class Engine:
    """A compiled scenario: instances, pause schedules and the per-request simulation."""

    def __init__(self, scenario: Scenario, seed: int) -> None:
        self.scenario = scenario
        self.seed_key = mix64(seed & MASK64) ^ 0x7A115C0BE
        self.instances: list[Instance] = []
        self.by_service: dict[str, list[Instance]] = {}
        for svc in scenario.services:
            group = []
            for ordinal in range(svc.instances):
                inst = Instance(svc, ordinal, len(self.instances), self.seed_key)
                self.instances.append(inst)
                group.append(inst)
            self.by_service[svc.name] = group
        self.services = {s.name: s for s in scenario.services}
        self.dependencies = {d.name: d for d in scenario.dependencies}
        total_weight = sum(e.weight for e in scenario.entries)
        acc = 0.0
        self.entry_cdf: list[tuple[float, str, str]] = []
        for e in scenario.entries:
            acc += e.weight / total_weight
            self.entry_cdf.append((acc, e.service, e.operation))
        self.network = scenario.network

    # --- time arithmetic that respects pauses (or ignores them in the counterfactual) ----
    @staticmethod
    def _resume(run: _Run, inst: Instance, t: int) -> int:
        if not run.pauses_on:
            return t
        moved = inst.pauses.resume(t)
        if moved != t:
            run.touched.append((inst.index, bisect_left(inst.pauses.ends, moved)))
        return moved

    @staticmethod
    def _advance(run: _Run, inst: Instance, t: int, work_ns: int) -> int:
        if not run.pauses_on:
            return t + work_ns
        schedule = inst.pauses
        finish = schedule.advance(t, work_ns)
        if finish - t != work_ns:
            first = bisect_left(schedule.starts, t)
            last = bisect_left(schedule.starts, finish)
            run.touched.extend((inst.index, i) for i in range(first, last))
        return finish

    # --- requests -------------------------------------------------------------------------
    def request_key(self, index: int) -> int:
        return child_key(self.seed_key, index)

    def arrival_gap_ns(self, index: int) -> int:
        """Gap before request ``index`` (Poisson arrivals at the scenario rate)."""
        mean_ns = 1e9 / self.scenario.rate_per_s
        return int(-math.log(1.0 - uniform(self.request_key(index), 3)) * mean_ns)

    def sampled(self, index: int, rate: float) -> bool:
        return rate >= 1.0 or uniform(self.request_key(index), 2) < rate

    def run_request(self, index: int, arrival: int) -> TraceResult:
        """Simulate request ``index`` arriving at ``arrival`` (true-clock ns), then its
        counterfactual when any pause touched it."""
        key = self.request_key(index)
        u = uniform(key, 0)
        _, service, operation = next((c for c in self.entry_cdf if u < c[0]), self.entry_cdf[-1])
        hi = mix64(key ^ 0x7EAC1D) & MASK64
        lo = mix64(key ^ 0x7EAC2E) & MASK64
        trace_id = ((hi << 64) | lo or 1).to_bytes(16, "big")
        run = _Run(pauses_on=True, record=True)
        group = self.by_service[service]
        inst = group[int(uniform(key, 1) * len(group))]
        op = self.services[service].operation(operation)
        start, end, _ = self._run_operation(
            run, inst, op, arrival, child_key(key, 1), None, SpanKind.SERVER
        )
        timed_out_cf = run.timed_out
        duration_cf = end - start
        if run.touched:
            cf = _Run(pauses_on=False, record=False)
            cf_start, cf_end, _ = self._run_operation(
                cf, inst, op, arrival, child_key(key, 1), None, SpanKind.SERVER
            )
            timed_out_cf = cf.timed_out
            duration_cf = cf_end - cf_start
        return TraceResult(
            index=index,
            trace_id=trace_id,
            root_service=service,
            root_operation=operation,
            spans=run.spans,
            timeouts=run.timeouts,
            retries=run.retries,
            timed_out=run.timed_out,
            timed_out_without_pauses=timed_out_cf,
            root_duration_ns=end - start,
            root_duration_without_pauses_ns=duration_cf,
            touched_pauses=bool(run.touched),
        )

    def _run_operation(
        self,
        run: _Run,
        inst: Instance,
        op: Operation,
        arrival: int,
        key: int,
        parent_id: int | None,
        kind: int,
        message: PublishStep | None = None,
    ) -> tuple[int, int, str | None]:
        """Execute ``op`` on ``inst`` for a request (or ``message``) arriving at ``arrival``.

        Returns (start, end, error type or None)."""
        start = self._resume(run, inst, arrival)
        span_id = _span_id(key)
        work_ns = sample_ns(op.work, key, 0)
        segments = len(op.steps) + 1
        weights = [0.5 + uniform(key, 3 + i) for i in range(segments)]
        total = sum(weights)
        t = self._advance(run, inst, start, int(work_ns * weights[0] / total))
        error: str | None = None
        for slot, step in enumerate(op.steps):
            if isinstance(step, ParallelStep):
                ends = []
                for j, leaf in enumerate(step.steps):
                    leaf_end, leaf_error = self._run_leaf(
                        run, inst, leaf, t, child_key(key, 64 * slot + j + 1), span_id
                    )
                    ends.append(leaf_end)
                    error = error or leaf_error
                t = max(ends)
            else:
                t, error = self._run_leaf(run, inst, step, t, child_key(key, 64 * slot), span_id)
            if error is not None:
                break  # fail fast: the rest of the work is not done
            t = self._advance(run, inst, t, int(work_ns * weights[slot + 1] / total))
        if run.record:
            span = self._server_span(inst, op, span_id, parent_id, kind, arrival, start, t, error)
            if message is not None:
                span.attributes[:0] = [
                    ("messaging.system", message.system),
                    ("messaging.destination.name", message.topic),
                ]
            run.spans.append(span)
        # the caller sees a failed response (500 / INTERNAL), never this operation's own
        # downstream timeout: only the caller's own timer produces "timeout" for it
        return start, t, None if error is None else "internal"

    def _server_span(
        self,
        inst: Instance,
        op: Operation,
        span_id: int,
        parent_id: int | None,
        kind: int,
        arrival: int,
        start: int,
        end: int,
        error: str | None,
    ) -> SimSpan:
        svc = inst.service
        attrs: list[tuple[str, Any]]
        status = StatusCode.ERROR if error else StatusCode.UNSET
        if kind == SpanKind.CONSUMER:
            attrs = [("messaging.operation.type", "process")]
        elif svc.protocol == "grpc":
            rpc_service, rpc_method = _split_operation(op.name)
            attrs = [
                ("rpc.system", "grpc"),
                ("rpc.service", rpc_service),
                ("rpc.method", rpc_method),
                ("server.address", svc.name),
                ("server.port", 50051),
                ("rpc.grpc.status_code", GRPC_INTERNAL if error else 0),
            ]
        else:
            method, route = _split_operation(op.name)
            attrs = [
                ("http.request.method", method),
                ("http.route", route),
                ("url.path", route),
                ("url.scheme", "http"),
                ("server.address", svc.name),
                ("server.port", 8080),
                ("http.response.status_code", 500 if error else 200),
            ]
        if error:
            attrs.append(("error.type", "500" if svc.protocol == "http" else "INTERNAL"))
        return SimSpan(
            span_id,
            parent_id,
            op.name,
            kind,
            start,
            end,
            inst,
            attrs,
            status,
            f"downstream call failed: {error}" if error else None,
            None,
            arrival,
        )

    def _run_leaf(
        self,
        run: _Run,
        inst: Instance,
        step: CallStep | DependencyStep | PublishStep,
        t: int,
        key: int,
        parent_id: int,
    ) -> tuple[int, str | None]:
        if isinstance(step, PublishStep):
            return self._run_publish(run, inst, step, t, key, parent_id), None
        retry = step.retry
        previous_span: int | None = None
        attempt = 0
        while True:
            akey = child_key(key, attempt)
            end, error, span_id = self._run_attempt(run, inst, step, t, akey, parent_id, attempt)
            if run.record and previous_span is not None:
                run.retries.append(RetryRecord(span_id, previous_span, attempt + 1))
            if error != "timeout" or attempt >= retry.retries:
                return end, error
            backoff = retry.backoff_ms * retry.multiplier**attempt
            backoff *= 1.0 - retry.jitter * uniform(akey, 7)
            t = self._resume(run, inst, end + int(backoff * NS_PER_MS))
            previous_span = span_id
            attempt += 1

    def _run_attempt(
        self,
        run: _Run,
        inst: Instance,
        step: CallStep | DependencyStep,
        start: int,
        akey: int,
        parent_id: int,
        attempt: int,
    ) -> tuple[int, str | None, int]:
        """One try of a call: returns (client span end, error or None, client span id)."""
        span_id = _span_id(akey)
        retry: Retry = step.retry
        net_out = sample_ns(self.network, akey, 1)
        net_back = sample_ns(self.network, akey, 4)
        send_work = inst.service.send_work
        sent = start
        if send_work is not None:
            # the caller's own work before the request leaves: a pause here is the caller's
            sent = self._advance(run, inst, start, sample_ns(send_work, akey, 13))
        arrival = sent + net_out
        callee_name: str
        callee_instance: str
        marker = len(run.touched)
        if isinstance(step, CallStep):
            group = self.by_service[step.service]
            callee = group[int(uniform(akey, 0) * len(group))]
            callee_op = self.services[step.service].operation(step.operation)
            _, served, callee_error = self._run_operation(
                run, callee, callee_op, arrival, child_key(akey, 1), span_id, SpanKind.SERVER
            )
            callee_name, callee_instance = step.service, callee.name
        else:
            dep = self.dependencies[step.dependency]
            latency = sample_ns(dep.latency, akey, 8)
            run.max_dependency_ns = max(run.max_dependency_ns, latency)
            served = arrival + latency
            callee_error = "error" if uniform(akey, 11) < dep.error_rate else None
            callee_name, callee_instance = dep.name, dep.address
        callee_marker = len(run.touched)
        response = served + net_back
        timed_out = retry.timeout_ms is not None and response - start > retry.timeout_ms * NS_PER_MS
        if timed_out:
            assert retry.timeout_ms is not None
            end = self._resume(run, inst, start + int(retry.timeout_ms * NS_PER_MS))
            error: str | None = "timeout"
            run.timed_out = True
        else:
            end = self._resume(run, inst, response)
            error = callee_error
        if run.record:
            if timed_out:
                run.timeouts.append(
                    self._timeout_cause(
                        run,
                        inst,
                        step,
                        start,
                        akey,
                        span_id,
                        callee_name,
                        callee_instance,
                        run.touched[marker:callee_marker],
                    )
                )
            run.spans.append(
                self._client_span(inst, step, span_id, parent_id, start, end, error, attempt)
            )
        return end, error, span_id

    def _timeout_cause(
        self,
        run: _Run,
        inst: Instance,
        step: CallStep | DependencyStep,
        start: int,
        akey: int,
        span_id: int,
        callee_service: str,
        callee_instance: str,
        touched: list[tuple[int, int]],
    ) -> TimeoutRecord:
        """Would this attempt have timed out without pauses? Re-run it with pauses off."""
        cf = _Run(pauses_on=False, record=False)
        self._run_attempt(cf, inst, step, start, akey, 0, 0)
        caller = inst.service.name
        if not cf.timed_out:
            longest = max(
                touched,
                key=lambda p: (
                    self.instances[p[0]].pauses.cumulative[p[1] + 1]
                    - self.instances[p[0]].pauses.cumulative[p[1]]
                ),
                default=None,
            )
            return TimeoutRecord(span_id, caller, callee_service, callee_instance, "pause", longest)
        assert step.retry.timeout_ms is not None
        slow_dependency = isinstance(step, DependencyStep) or (
            cf.max_dependency_ns > 0.5 * step.retry.timeout_ms * NS_PER_MS
        )
        cause = "slow_dependency" if slow_dependency else "slow_work"
        return TimeoutRecord(span_id, caller, callee_service, callee_instance, cause, None)

    def _client_span(
        self,
        inst: Instance,
        step: CallStep | DependencyStep,
        span_id: int,
        parent_id: int,
        start: int,
        end: int,
        error: str | None,
        attempt: int,
    ) -> SimSpan:
        attrs: list[tuple[str, Any]]
        events: list[tuple[int, str, list[tuple[str, Any]]]] = []
        status = StatusCode.ERROR if error else StatusCode.UNSET
        message: str | None = None
        timeout_ms = step.retry.timeout_ms
        if isinstance(step, CallStep):
            svc = self.services[step.service]
            if svc.protocol == "grpc":
                rpc_service, rpc_method = _split_operation(step.operation)
                name = step.operation
                code = 0
                if error == "timeout":
                    code = GRPC_DEADLINE_EXCEEDED
                elif error:
                    code = GRPC_INTERNAL
                attrs = [
                    ("rpc.system", "grpc"),
                    ("rpc.service", rpc_service),
                    ("rpc.method", rpc_method),
                    ("server.address", svc.name),
                    ("server.port", 50051),
                    ("rpc.grpc.status_code", code),
                ]
                if error == "timeout":
                    attrs.append(("error.type", "DEADLINE_EXCEEDED"))
                    message = f"DEADLINE_EXCEEDED: deadline exceeded after {timeout_ms:g}ms"
                elif error:
                    attrs.append(("error.type", "INTERNAL"))
                    message = "INTERNAL: upstream failure"
            else:
                method, route = _split_operation(step.operation)
                name = f"{method} {route}"
                attrs = [
                    ("http.request.method", method),
                    ("server.address", svc.name),
                    ("server.port", 8080),
                    ("url.full", f"http://{svc.name}:8080{route}"),
                    ("url.template", route),
                ]
                attrs.extend(self._http_outcome(error, timeout_ms))
                if error == "timeout":
                    message = f"request timed out after {timeout_ms:g}ms"
        else:
            dep = self.dependencies[step.dependency]
            if dep.type == "db":
                name = f"{dep.operation} {dep.name}"
                attrs = [
                    ("db.system", dep.system),
                    ("db.operation.name", dep.operation),
                    ("db.namespace", dep.name),
                    ("server.address", dep.address),
                    ("server.port", dep.port),
                ]
                if error == "timeout":
                    attrs.append(("error.type", "timeout"))
                    message = f"query timed out after {timeout_ms:g}ms"
                elif error:
                    attrs.append(("error.type", "db_error"))
                    message = "database error"
            else:
                name = dep.operation
                attrs = [
                    ("http.request.method", dep.operation),
                    ("server.address", dep.address),
                    ("server.port", dep.port),
                    ("url.full", f"https://{dep.address}/"),
                ]
                attrs.extend(self._http_outcome(error, timeout_ms))
                if error == "timeout":
                    message = f"request timed out after {timeout_ms:g}ms"
        if attempt > 0:
            attrs.append(("http.request.resend_count", attempt))
        if error == "timeout":
            events.append(
                (
                    end,
                    "exception",
                    [
                        ("exception.type", TIMEOUT_EXCEPTIONS[inst.language]),
                        ("exception.message", message or "timeout"),
                    ],
                )
            )
        return SimSpan(
            span_id,
            parent_id,
            name,
            SpanKind.CLIENT,
            start,
            end,
            inst,
            attrs,
            status,
            message,
            events,
        )

    @staticmethod
    def _http_outcome(error: str | None, timeout_ms: float | None) -> list[tuple[str, Any]]:
        if error == "timeout":
            return [("http.response.status_code", 504), ("error.type", "timeout")]
        if error:
            return [("http.response.status_code", 500), ("error.type", "500")]
        return [("http.response.status_code", 200)]

    def _run_publish(
        self, run: _Run, inst: Instance, step: PublishStep, t: int, key: int, parent_id: int
    ) -> int:
        """A PRODUCER span here; the consumer handles the message after a queueing delay."""
        span_id = _span_id(key)
        end = self._advance(
            run, inst, t, int(0.05 * NS_PER_MS + uniform(key, 0) * 0.15 * NS_PER_MS)
        )
        delivered = end + sample_ns(step.delay, key, 3)
        group = self.by_service[step.service]
        consumer = group[int(uniform(key, 1) * len(group))]
        op = self.services[step.service].operation(step.operation)
        self._run_operation(
            run, consumer, op, delivered, child_key(key, 1), span_id, SpanKind.CONSUMER, step
        )
        if run.record:
            attrs: list[tuple[str, Any]] = [
                ("messaging.system", step.system),
                ("messaging.destination.name", step.topic),
                ("messaging.operation.type", "send"),
            ]
            run.spans.append(
                SimSpan(
                    span_id, parent_id, f"send {step.topic}", SpanKind.PRODUCER, t, end, inst, attrs
                )
            )
        return end
