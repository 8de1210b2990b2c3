"""Scenario model: the simulated system as frozen dataclasses, parsed from plain mappings.

A scenario is what ``docs/scenarios.md`` documents: services (runtime, instances, hosts, pause
profile), their operations (own work time, downstream steps), uninstrumented dependencies,
the arrival process, network latency, clock offsets and head sampling. Built-in scenarios and
scenario files (TOML/YAML) go through the same :func:`scenario_from_mapping`, so every key is
validated in one place and a bad value names its key path (``services.cart.instances``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any, Literal, TypeAlias

from tailscope.errors import UsageError

Runtime = Literal["go", "java", "dotnet", "nodejs", "python", "rust"]
RUNTIMES: tuple[Runtime, ...] = ("go", "java", "dotnet", "nodejs", "python", "rust")
Protocol = Literal["http", "grpc"]
DependencyType = Literal["db", "http"]


@dataclass(frozen=True, slots=True)
class Distribution:
    """A lognormal time (``median_ms``, ``sigma``), optionally mixed with a heavy tail: with
    probability ``tail_probability`` the draw comes from ``tail_median_ms``/``tail_sigma``."""

    median_ms: float
    sigma: float = 0.0
    tail_probability: float = 0.0
    tail_median_ms: float = 0.0
    tail_sigma: float = 0.0

    def scaled(self, factor: float) -> Distribution:
        """The same shape with every median multiplied by ``factor``."""
        return replace(
            self, median_ms=self.median_ms * factor, tail_median_ms=self.tail_median_ms * factor
        )


@dataclass(frozen=True, slots=True)
class PauseKind:
    """One kind of stop-the-world pause of a runtime (e.g. ``gc-full``): pauses start on
    average every ``every_ms`` (exponential gaps) and last a lognormal ``duration``."""

    name: str
    every_ms: float
    duration: Distribution
    back_to_back_probability: float = 0.0
    """Chance that a second pause of the same kind follows this one after a short gap."""
    back_to_back_gap_ms: float = 15.0
    """Median running time between the two (uniform in 0.5x..1.5x)."""


@dataclass(frozen=True, slots=True)
class Retry:
    """Client timeout and retry policy of one call edge. ``timeout_ms`` None: wait forever.
    Backoff before attempt n+1 is ``backoff_ms * multiplier**(n-1)``, times a uniform factor
    in ``[1 - jitter, 1]`` (jitter 1.0 is "full jitter")."""

    timeout_ms: float | None = None
    retries: int = 0
    backoff_ms: float = 10.0
    multiplier: float = 2.0
    jitter: float = 0.5


@dataclass(frozen=True, slots=True)
class CallStep:
    """A synchronous call to an instrumented service's operation (CLIENT → SERVER span)."""

    service: str
    operation: str
    retry: Retry


@dataclass(frozen=True, slots=True)
class DependencyStep:
    """A call to an uninstrumented dependency (database, external API): a CLIENT span only."""

    dependency: str
    retry: Retry


@dataclass(frozen=True, slots=True)
class PublishStep:
    """An asynchronous message: a PRODUCER span here, a CONSUMER span in the consumer service
    after a queueing ``delay``; the caller does not wait for the consumer."""

    topic: str
    system: str
    service: str
    operation: str
    delay: Distribution


LeafStep: TypeAlias = CallStep | DependencyStep | PublishStep


@dataclass(frozen=True, slots=True)
class ParallelStep:
    """Calls issued together (fan-out); the operation continues when the last one returns."""

    steps: tuple[LeafStep, ...]


Step: TypeAlias = LeafStep | ParallelStep


@dataclass(frozen=True, slots=True)
class Operation:
    """An endpoint of a service: its own on-CPU ``work`` (split evenly at random around its
    steps) and its downstream ``steps`` in order."""

    name: str
    work: Distribution
    steps: tuple[Step, ...] = ()


@dataclass(frozen=True, slots=True)
class Service:
    """An instrumented service: ``instances`` processes spread round-robin over ``hosts``."""

    name: str
    runtime: Runtime
    protocol: Protocol
    instances: int
    hosts: tuple[str, ...]
    pauses: tuple[PauseKind, ...]
    operations: tuple[Operation, ...]
    version: str = "1.0.0"
    clock_resolution_ms: float = 0.0
    """Span starts are reported floored to this resolution (the Node.js SDK stamps starts with
    ``Date.now()``: whole milliseconds); durations stay exact. 0: exact clocks."""
    send_work: Distribution | None = None
    """On-CPU time between a CLIENT span's start and its request leaving (serialising, pool
    checkout): a pause of the caller there delays the request before it is sent."""

    def operation(self, name: str) -> Operation:
        for op in self.operations:
            if op.name == name:
                return op
        raise KeyError(name)


@dataclass(frozen=True, slots=True)
class Dependency:
    """An uninstrumented dependency: a database (``type`` db, ``system`` e.g. postgresql) or an
    external HTTP API (``type`` http). ``latency`` is its whole response time; it never pauses.
    ``error_rate`` is the chance that a call fails fast with an error response."""

    name: str
    type: DependencyType
    system: str
    address: str
    port: int
    operation: str
    latency: Distribution
    error_rate: float = 0.0


@dataclass(frozen=True, slots=True)
class Entry:
    """A root operation that external requests hit, chosen with probability ∝ ``weight``."""

    service: str
    operation: str
    weight: float = 1.0


@dataclass(frozen=True, slots=True)
class Scenario:
    """A simulated system. Frozen: derive variants with :meth:`with_work_scaled` or
    :func:`dataclasses.replace`."""

    name: str
    description: str
    rate_per_s: float
    duration_s: float
    network: Distribution
    sampling: float
    clock_offsets_ms: tuple[tuple[str, float], ...]
    entries: tuple[Entry, ...]
    services: tuple[Service, ...]
    dependencies: tuple[Dependency, ...] = ()

    def service(self, name: str) -> Service:
        for svc in self.services:
            if svc.name == name:
                return svc
        raise KeyError(name)

    def dependency(self, name: str) -> Dependency:
        for dep in self.dependencies:
            if dep.name == name:
                return dep
        raise KeyError(name)

    @property
    def hosts(self) -> tuple[str, ...]:
        """Every host, in first-mention order (services' hosts, then clock offsets)."""
        seen: dict[str, None] = {}
        for svc in self.services:
            for host in svc.hosts:
                seen.setdefault(host, None)
        for host, _ in self.clock_offsets_ms:
            seen.setdefault(host, None)
        return tuple(seen)

    def with_work_scaled(self, service: str, operation: str, factor: float) -> Scenario:
        """The same system with one operation's own work time multiplied by ``factor``
        (1.2 = 20 % slower). Downstream calls are unchanged, so only that hop gets slower.

        Raises:
            UsageError: unknown service or operation, or a factor that is not positive.
        """
        if not (factor > 0 and math.isfinite(factor)):
            raise UsageError(f"work scale factor must be positive, got {factor}")
        try:
            svc = self.service(service)
            op = svc.operation(operation)
        except KeyError as exc:
            raise UsageError(
                f"scenario {self.name!r} has no operation {operation!r} in service {service!r}"
            ) from exc
        new_op = replace(op, work=op.work.scaled(factor))
        new_ops = tuple(new_op if o.name == operation else o for o in svc.operations)
        new_svc = replace(svc, operations=new_ops)
        return replace(
            self, services=tuple(new_svc if s.name == service else s for s in self.services)
        )


# --- default pause profiles ---------------------------------------------------------------
def _pk(name: str, every_ms: float, median_ms: float, sigma: float) -> PauseKind:
    return PauseKind(name, every_ms, Distribution(median_ms, sigma))


DEFAULT_PAUSES: dict[str, tuple[PauseKind, ...]] = {
    # Go: two short STW phases per GC cycle (sub-millisecond), rare long ones when the heap
    # is under memory pressure (GC assists + mark termination stretched).
    "go": (_pk("gc-stw", 800.0, 0.15, 0.5), _pk("gc-pressure", 180_000.0, 12.0, 0.5)),
    # JVM G1: young collections of a few ms, rare full GCs of hundreds of ms.
    "java": (_pk("gc-young", 2_500.0, 6.0, 0.4), _pk("gc-full", 900_000.0, 300.0, 0.4)),
    # .NET: frequent gen0 collections, rare blocking gen2.
    "dotnet": (_pk("gc-gen0", 1_500.0, 1.5, 0.5), _pk("gc-gen2", 300_000.0, 80.0, 0.5)),
    # Node.js (V8): scavenges of ~1 ms, occasional mark-compact.
    "nodejs": (_pk("gc-scavenge", 700.0, 1.0, 0.4), _pk("gc-mark-compact", 40_000.0, 40.0, 0.5)),
    # CPython: the cyclic collector's young generations are cheap, gen2 scans are not.
    "python": (_pk("gc-gen0", 400.0, 0.2, 0.5), _pk("gc-gen2", 60_000.0, 25.0, 0.5)),
    # Rust: no garbage collector.
    "rust": (),
}


# --- parsing ------------------------------------------------------------------------------
class _Keys:
    """A mapping being parsed at a key path; every error names the full path."""

    def __init__(self, data: Any, path: str) -> None:
        if not isinstance(data, Mapping):
            raise UsageError(f"{path or 'scenario'}: expected a table/mapping, got {_kind(data)}")
        self.data: Mapping[str, Any] = data
        self.path = path
        self.used: set[str] = set()

    def at(self, key: str) -> str:
        return f"{self.path}.{key}" if self.path else key

    def has(self, key: str) -> bool:
        return key in self.data

    def raw(self, key: str, default: Any = None) -> Any:
        self.used.add(key)
        return self.data.get(key, default)

    def required(self, key: str) -> Any:
        self.used.add(key)
        if key not in self.data:
            raise UsageError(f"{self.at(key)}: required key is missing")
        return self.data[key]

    def number(
        self,
        key: str,
        default: float | None = None,
        *,
        minimum: float = 0.0,
        maximum: float = math.inf,
        exclusive_min: bool = False,
    ) -> float:
        value = self.required(key) if default is None else self.raw(key, default)
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise UsageError(f"{self.at(key)}: expected a number, got {_kind(value)}")
        number = float(value)
        too_small = number <= minimum if exclusive_min else number < minimum
        if not math.isfinite(number) or too_small or number > maximum:
            low = f"> {minimum:g}" if exclusive_min else f">= {minimum:g}"
            high = "" if maximum == math.inf else f" and <= {maximum:g}"
            raise UsageError(f"{self.at(key)}: must be {low}{high}, got {value!r}")
        return number

    def integer(self, key: str, default: int | None = None, *, minimum: int = 0) -> int:
        value = self.required(key) if default is None else self.raw(key, default)
        if isinstance(value, bool) or not isinstance(value, int):
            raise UsageError(f"{self.at(key)}: expected an integer, got {_kind(value)}")
        if value < minimum:
            raise UsageError(f"{self.at(key)}: must be >= {minimum}, got {value}")
        return value

    def text(self, key: str, default: str | None = None, choices: tuple[str, ...] = ()) -> str:
        value = self.required(key) if default is None else self.raw(key, default)
        if not isinstance(value, str) or not value:
            raise UsageError(f"{self.at(key)}: expected a non-empty string, got {_kind(value)}")
        if choices and value not in choices:
            raise UsageError(f"{self.at(key)}: must be one of {', '.join(choices)}, got {value!r}")
        return value

    def finish(self) -> None:
        unknown = sorted(str(k) for k in self.data if k not in self.used)
        if unknown:
            raise UsageError(f"{self.at(unknown[0])}: unknown key")


def _kind(value: Any) -> str:
    if value is None:
        return "nothing"
    return f"{type(value).__name__} {value!r}"[:80]


def _distribution(data: Any, path: str) -> Distribution:
    keys = _Keys(data, path)
    median = keys.number("median_ms", exclusive_min=True)
    sigma = keys.number("sigma", 0.0, maximum=5.0)
    tail_probability = 0.0
    tail_median = 0.0
    tail_sigma = 0.0
    if keys.has("tail"):
        tail = _Keys(keys.raw("tail"), keys.at("tail"))
        tail_probability = tail.number("probability", maximum=1.0)
        tail_median = tail.number("median_ms", exclusive_min=True)
        tail_sigma = tail.number("sigma", 0.0, maximum=5.0)
        tail.finish()
    keys.finish()
    return Distribution(median, sigma, tail_probability, tail_median, tail_sigma)


def _retry(keys: _Keys) -> Retry:
    timeout = keys.raw("timeout_ms")
    timeout_ms = None if timeout is None else keys.number("timeout_ms", exclusive_min=True)
    return Retry(
        timeout_ms=timeout_ms,
        retries=keys.integer("retries", 0),
        backoff_ms=keys.number("backoff_ms", 10.0),
        multiplier=keys.number("backoff_multiplier", 2.0, minimum=1.0),
        jitter=keys.number("jitter", 0.5, maximum=1.0),
    )


def _leaf_step(data: Any, path: str) -> LeafStep:
    keys = _Keys(data, path)
    if keys.has("call"):
        call = _Keys(keys.raw("call"), keys.at("call"))
        step: LeafStep = CallStep(call.text("service"), call.text("operation"), _retry(call))
    elif keys.has("dependency"):
        dep = _Keys(keys.raw("dependency"), keys.at("dependency"))
        step = DependencyStep(dep.text("name"), _retry(dep))
    elif keys.has("publish"):
        pub = _Keys(keys.raw("publish"), keys.at("publish"))
        delay = pub.raw("delay", {"median_ms": 2.0, "sigma": 0.5})
        step = PublishStep(
            topic=pub.text("topic"),
            system=pub.text("system", "kafka"),
            service=pub.text("service"),
            operation=pub.text("operation"),
            delay=_distribution(delay, pub.at("delay")),
        )
    else:
        raise UsageError(f"{path}: a step needs one of call, dependency, publish, parallel")
    keys.finish()
    return step


def _step(data: Any, path: str) -> Step:
    if isinstance(data, Mapping) and "parallel" in data:
        keys = _Keys(data, path)
        items = keys.raw("parallel")
        if not isinstance(items, list) or not items:
            raise UsageError(f"{keys.at('parallel')}: expected a non-empty list of steps")
        keys.finish()
        return ParallelStep(
            tuple(_leaf_step(item, f"{path}.parallel[{i}]") for i, item in enumerate(items))
        )
    return _leaf_step(data, path)


def _pauses(runtime: Runtime, data: Any, path: str) -> tuple[PauseKind, ...]:
    """The runtime's default pause kinds with per-kind overrides; ``"off"`` disables all."""
    if data is None:
        return DEFAULT_PAUSES[runtime]
    if data == "off":
        return ()
    keys = _Keys(data, path)
    kinds = {k.name: k for k in DEFAULT_PAUSES[runtime]}
    for name in list(keys.data):
        sub = _Keys(keys.raw(name), keys.at(name))
        base = kinds.get(name)
        every = sub.number("every_ms", base.every_ms if base else None)
        if sub.has("duration") or base is None:
            duration = _distribution(sub.required("duration"), sub.at("duration"))
        else:
            duration = base.duration
        probability, gap = 0.0, 15.0
        if sub.has("back_to_back"):
            pair = _Keys(sub.raw("back_to_back"), sub.at("back_to_back"))
            probability = pair.number("probability", maximum=1.0)
            gap = pair.number("gap_ms", 15.0, exclusive_min=True)
            pair.finish()
        sub.finish()
        if every == 0:
            kinds.pop(name, None)
        else:
            kinds[name] = PauseKind(str(name), every, duration, probability, gap)
    return tuple(kinds.values())


def _service(name: str, data: Any, path: str) -> Service:
    keys = _Keys(data, path)
    runtime: Runtime = keys.text("runtime", choices=RUNTIMES)  # type: ignore[assignment]
    protocol: Protocol = keys.text("protocol", "http", choices=("http", "grpc"))  # type: ignore[assignment]
    instances = keys.integer("instances", 1, minimum=1)
    hosts_raw = keys.raw("hosts", [f"{name}-host"])
    if (
        not isinstance(hosts_raw, list)
        or not hosts_raw
        or not all(isinstance(h, str) and h for h in hosts_raw)
    ):
        raise UsageError(f"{keys.at('hosts')}: expected a non-empty list of host names")
    pauses = _pauses(runtime, keys.raw("pauses"), keys.at("pauses"))
    ops_raw = _Keys(keys.required("operations"), keys.at("operations"))
    operations = []
    for op_name in list(ops_raw.data):
        op_keys = _Keys(ops_raw.raw(op_name), ops_raw.at(str(op_name)))
        work = _distribution(op_keys.required("work"), op_keys.at("work"))
        steps_raw = op_keys.raw("steps", [])
        if not isinstance(steps_raw, list):
            raise UsageError(f"{op_keys.at('steps')}: expected a list of steps")
        steps = tuple(_step(s, f"{op_keys.at('steps')}[{i}]") for i, s in enumerate(steps_raw))
        op_keys.finish()
        operations.append(Operation(str(op_name), work, steps))
    if not operations:
        raise UsageError(f"{keys.at('operations')}: a service needs at least one operation")
    version = keys.text("version", "1.0.0")
    resolution = keys.number("clock_resolution_ms", 0.0, maximum=1000.0)
    send_raw = keys.raw("send_work")
    send_work = None if send_raw is None else _distribution(send_raw, keys.at("send_work"))
    keys.finish()
    return Service(
        name,
        runtime,
        protocol,
        instances,
        tuple(hosts_raw),
        pauses,
        tuple(operations),
        version,
        resolution,
        send_work,
    )


def _dependency(name: str, data: Any, path: str) -> Dependency:
    keys = _Keys(data, path)
    dep_type: DependencyType = keys.text("type", choices=("db", "http"))  # type: ignore[assignment]
    default_system = "postgresql" if dep_type == "db" else "http"
    default_op = "SELECT" if dep_type == "db" else "GET"
    dep = Dependency(
        name=name,
        type=dep_type,
        system=keys.text("system", default_system),
        address=keys.text("address", name),
        port=keys.integer("port", 5432 if dep_type == "db" else 443, minimum=1),
        operation=keys.text("operation", default_op),
        latency=_distribution(keys.required("latency"), keys.at("latency")),
        error_rate=keys.number("error_rate", 0.0, maximum=1.0),
    )
    keys.finish()
    return dep


def scenario_from_mapping(data: Any, default_name: str = "scenario") -> Scenario:
    """Parse and validate a scenario mapping (the content of a TOML/YAML scenario file).

    Raises:
        UsageError: a key is missing, unknown, of the wrong type or out of range, or a call
            names a service/operation/dependency that does not exist; the message starts with
            the key path.
    """
    keys = _Keys(data, "")
    name = keys.text("name", default_name)
    description = keys.text("description", name)
    arrival = _Keys(keys.raw("arrival", {}), "arrival")
    rate = arrival.number("rate_per_s", 100.0, exclusive_min=True)
    duration = arrival.number("duration_s", 60.0, exclusive_min=True)
    arrival.finish()
    network = _distribution(keys.raw("network", {"median_ms": 0.3, "sigma": 0.3}), "network")
    sampling = keys.number("sampling", 1.0, maximum=1.0, exclusive_min=True)
    offsets_raw = _Keys(keys.raw("clock_offsets_ms", {}), "clock_offsets_ms")
    offsets = []
    for host in list(offsets_raw.data):
        offsets.append(
            (str(host), offsets_raw.number(host, minimum=-3_600_000.0, maximum=3_600_000.0))
        )
    services_raw = _Keys(keys.required("services"), "services")
    services = tuple(
        _service(str(n), services_raw.raw(n), services_raw.at(str(n)))
        for n in list(services_raw.data)
    )
    deps_raw = _Keys(keys.raw("dependencies", {}), "dependencies")
    dependencies = tuple(
        _dependency(str(n), deps_raw.raw(n), deps_raw.at(str(n))) for n in list(deps_raw.data)
    )
    entries_raw = keys.required("entries")
    if not isinstance(entries_raw, list) or not entries_raw:
        raise UsageError("entries: expected a non-empty list of {service, operation, weight}")
    entries = []
    for i, item in enumerate(entries_raw):
        e = _Keys(item, f"entries[{i}]")
        entries.append(
            Entry(
                e.text("service"), e.text("operation"), e.number("weight", 1.0, exclusive_min=True)
            )
        )
        e.finish()
    keys.finish()
    scenario = Scenario(
        name=name,
        description=description,
        rate_per_s=rate,
        duration_s=duration,
        network=network,
        sampling=sampling,
        clock_offsets_ms=tuple(offsets),
        entries=tuple(entries),
        services=services,
        dependencies=dependencies,
    )
    _check_references(scenario)
    return scenario


def _check_references(scenario: Scenario) -> None:
    """Every call names an existing service operation / dependency, and calls form no cycle."""
    names = {s.name for s in scenario.services}
    deps = {d.name for d in scenario.dependencies}

    def check_op(service: str, operation: str, path: str) -> None:
        if service not in names:
            raise UsageError(f"{path}: unknown service {service!r}")
        try:
            scenario.service(service).operation(operation)
        except KeyError:
            raise UsageError(
                f"{path}: service {service!r} has no operation {operation!r}"
            ) from None

    for i, entry in enumerate(scenario.entries):
        check_op(entry.service, entry.operation, f"entries[{i}]")
    edges: dict[tuple[str, str], list[tuple[str, str]]] = {}
    for svc in scenario.services:
        for op in svc.operations:
            base = f"services.{svc.name}.operations.{op.name}.steps"
            targets = edges.setdefault((svc.name, op.name), [])
            for i, step in enumerate(op.steps):
                leaves = step.steps if isinstance(step, ParallelStep) else (step,)
                for j, leaf in enumerate(leaves):
                    path = f"{base}[{i}]" + (
                        f".parallel[{j}]" if isinstance(step, ParallelStep) else ""
                    )
                    if isinstance(leaf, DependencyStep):
                        if leaf.dependency not in deps:
                            raise UsageError(
                                f"{path}.dependency.name: unknown dependency {leaf.dependency!r}"
                            )
                    else:
                        check_op(leaf.service, leaf.operation, path)
                        targets.append((leaf.service, leaf.operation))
    state: dict[tuple[str, str], int] = {}

    def visit(node: tuple[str, str]) -> None:
        state[node] = 1
        for nxt in edges.get(node, []):
            if state.get(nxt) == 1:
                raise UsageError(
                    f"services.{node[0]}.operations.{node[1]}: calls form a cycle through "
                    f"{nxt[0]} {nxt[1]!r}"
                )
            if nxt not in state:
                visit(nxt)
        state[node] = 2

    for node in edges:
        if node not in state:
            visit(node)
