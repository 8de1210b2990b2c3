"""What ``tailscope generate`` writes: readable by real parsers, deterministic, honest errors.

GIVEN small simulations written in every output format, THEN: the same seed gives the same
bytes; opentelemetry-proto's own parsers read them (JSON line by line, protobuf frame by
frame); tailscope's ingestor reads back exactly the in-memory span table; scenario files load
and bad ones fail with the key path and exit code 2.
"""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pytest
import yaml
from google.protobuf import json_format
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from repo_paths import REPO as _REPO

from tailscope.errors import UsageError
from tailscope.ingest import read_spans
from tailscope.simulate import builtin_scenario, load_scenario, simulate
from tailscope.simulate.builtin import builtin_scenario_mapping
from tailscope.simulate.run import RunSize
from tailscope.simulate.writers import WriteSummary, write_simulation

REPO = _REPO
FORMATS = {
    "otlp-json": "out.jsonl",
    "otlp-json-gz": "out.jsonl.gz",
    "otlp-proto": "out.pb",
    "parquet": "out.parquet",
}


def _write(path: Path, fmt: str, seed: int = 1, requests: int = 150) -> WriteSummary:
    return write_simulation(
        builtin_scenario("gc-cascade"),
        seed=seed,
        size=RunSize(requests=requests),
        output=path,
        output_format=fmt.removesuffix("-gz"),
        truth_path=path.with_suffix(".truth.json"),
    )


def _normalised(table: pa.Table) -> pa.Table:
    """Sorted by ids, dictionaries decoded: equal content compares equal."""
    table = table.sort_by([("trace_id", "ascending"), ("span_id", "ascending")])
    columns = {
        name: (
            table.column(name).cast(pa.string())
            if pa.types.is_dictionary(table.schema.field(name).type)
            else table.column(name)
        )
        for name in table.column_names
    }
    return pa.table(columns)


@pytest.mark.parametrize("fmt", FORMATS)
def test_same_seed_same_bytes(tmp_path: Path, fmt: str) -> None:
    name = FORMATS[fmt]
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    (tmp_path / "c").mkdir()
    _write(tmp_path / "a" / name, fmt)
    _write(tmp_path / "b" / name, fmt)
    _write(tmp_path / "c" / name, fmt, seed=2)
    first = (tmp_path / "a" / name).read_bytes()
    assert len(first) > 1000
    assert first == (tmp_path / "b" / name).read_bytes()
    assert first != (tmp_path / "c" / name).read_bytes()
    truth = (tmp_path / "a" / name).with_suffix(".truth.json").read_bytes()
    assert truth == (tmp_path / "b" / name).with_suffix(".truth.json").read_bytes()


@pytest.mark.parametrize("fmt", FORMATS)
def test_tailscope_ingest_reads_back_the_simulated_table(tmp_path: Path, fmt: str) -> None:
    path = tmp_path / FORMATS[fmt]
    summary = _write(path, fmt)
    expected = simulate(builtin_scenario("gc-cascade"), seed=1, requests=150)
    result = read_spans([str(path)])
    assert result.stats.skipped_records == 0
    assert result.table.num_rows == summary.spans == expected.table.num_rows
    assert _normalised(result.table).equals(_normalised(expected.table))
    truth = json.loads(path.with_suffix(".truth.json").read_text())
    assert truth == json.loads(json.dumps(expected.truth))


def test_opentelemetry_proto_parses_every_json_line(tmp_path: Path) -> None:
    path = tmp_path / "out.jsonl.gz"
    summary = _write(path, "otlp-json-gz")
    lines = gzip.decompress(path.read_bytes()).decode().splitlines()
    assert len(lines) >= 1
    spans = 0
    kinds: set[int] = set()
    for line in lines:
        request = ExportTraceServiceRequest()
        json_format.Parse(line, request)  # ids are hex in OTLP/JSON: count, don't compare
        raw = json.loads(line)
        for rs, raw_rs in zip(request.resource_spans, raw["resourceSpans"], strict=True):
            attrs = {a.key for a in rs.resource.attributes}
            assert {"service.name", "service.instance.id", "host.name", "process.pid"} <= attrs
            assert {"telemetry.sdk.language", "telemetry.sdk.name"} <= attrs
            for ss, raw_ss in zip(rs.scope_spans, raw_rs["scopeSpans"], strict=True):
                assert len(ss.spans) == len(raw_ss["spans"])
                for span, raw_span in zip(ss.spans, raw_ss["spans"], strict=True):
                    assert str(span.start_time_unix_nano) == raw_span["startTimeUnixNano"]
                    assert span.end_time_unix_nano >= span.start_time_unix_nano
                    assert len(raw_span["traceId"]) == 32 and raw_span["traceId"].islower()
                    kinds.add(span.kind)
                spans += len(ss.spans)
    assert spans == summary.spans
    assert kinds == {2, 3, 4, 5}


def test_opentelemetry_proto_parses_every_length_prefixed_frame(tmp_path: Path) -> None:
    path = tmp_path / "out.pb"
    summary = _write(path, "otlp-proto")
    data = path.read_bytes()
    offset = spans = frames = 0
    span_ids: set[str] = set()
    while offset < len(data):
        size = int.from_bytes(data[offset : offset + 4], "big")
        request = ExportTraceServiceRequest()
        request.ParseFromString(data[offset + 4 : offset + 4 + size])
        offset += 4 + size
        frames += 1
        for rs in request.resource_spans:
            for ss in rs.scope_spans:
                spans += len(ss.spans)
                span_ids.update(s.span_id.hex() for s in ss.spans)
    assert offset == len(data) and frames >= 1
    assert spans == summary.spans
    truth = json.loads(path.with_suffix(".truth.json").read_text())
    assert {t["span_id"] for t in truth["timeouts"]} <= span_ids


def test_scenario_files_in_yaml_and_toml_load_like_the_builtin(tmp_path: Path) -> None:
    mapping = builtin_scenario_mapping("checkout")
    (tmp_path / "shop.yaml").write_text(yaml.safe_dump(mapping, sort_keys=False))
    assert load_scenario(tmp_path / "shop.yaml") == builtin_scenario("checkout")
    toml = """
name = "tiny"
entries = [{ service = "api", operation = "GET /items" }]
[arrival]
rate_per_s = 50
duration_s = 2
[services.api]
runtime = "python"
instances = 2
[services.api.pauses.gc-gen2]
every_ms = 500
duration = { median_ms = 30, sigma = 0.2 }
[services.api.operations."GET /items"]
work = { median_ms = 2, sigma = 0.3 }
steps = [{ dependency = { name = "db", timeout_ms = 100 } }]
[dependencies.db]
type = "db"
system = "mysql"
latency = { median_ms = 1, sigma = 0.2 }
"""
    (tmp_path / "tiny.toml").write_text(toml)
    scenario = load_scenario(tmp_path / "tiny.toml")
    sim = simulate(scenario, seed=1)
    assert 60 <= sim.truth["traces"] <= 140  # 50/s for 2 s, Poisson
    assert {p["kind"] for p in sim.truth["pauses"]} >= {"gc-gen2"}
    names = set(sim.table.column("name").to_pylist())
    assert names == {"GET /items", "SELECT db"}


@pytest.mark.parametrize(
    ("patch", "message"),
    [
        ({"services": {"cart": {"instances": 0}}}, "services.cart.instances: must be >= 1"),
        ({"services": {"cart": {"runtime": "cobol"}}}, "services.cart.runtime: must be one of"),
        ({"network": {"median_ms": 1, "sigam": 2}}, "network.sigam: unknown key"),
        ({"arrival": {"rate_per_s": -5}}, "arrival.rate_per_s: must be > 0"),
        ({"entries": [{"service": "nope", "operation": "x"}]}, "entries[0]: unknown service"),
        (
            {
                "services": {
                    "notifier": {
                        "operations": {
                            "process orders": {
                                "work": {"median_ms": 1},
                                "steps": [
                                    {
                                        "call": {
                                            "service": "checkout",
                                            "operation": "checkout.v1.CheckoutService/PlaceOrder",
                                        }
                                    }
                                ],
                            }
                        }
                    }
                }
            },
            "calls form a cycle",
        ),
    ],
)
def test_invalid_scenarios_name_the_key_path(
    tmp_path: Path, patch: dict[str, object], message: str
) -> None:
    mapping = builtin_scenario_mapping("checkout")

    def merge(into: dict[str, object], update: dict[str, object]) -> None:
        for key, value in update.items():
            target = into.get(key)
            if isinstance(value, dict) and isinstance(target, dict):
                merge(target, value)
            else:
                into[key] = value

    merge(mapping, patch)
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(mapping))
    with pytest.raises(UsageError, match=message.replace("[", r"\[").replace("]", r"\]")):
        load_scenario(path)


def test_cli_writes_files_and_reports_bad_input_in_one_line(tmp_path: Path) -> None:
    out = tmp_path / "demo.jsonl"
    truth = tmp_path / "truth.json"
    ok = subprocess.run(
        [
            sys.executable,
            "-m",
            "tailscope",
            "generate",
            "steady",
            "--seed",
            "3",
            "--requests",
            "50",
            "-o",
            str(out),
            "--truth",
            str(truth),
        ],
        capture_output=True,
        text=True,
        cwd=REPO,
        check=False,
    )
    assert ok.returncode == 0, ok.stderr
    assert json.loads(truth.read_text())["traces"] == 50
    assert out.read_text().count("\n") >= 1
    (tmp_path / "bad.yaml").write_text("services: {a: {runtime: go}}\nentries: []\n")
    for args in (
        ["generate", str(tmp_path / "bad.yaml"), "-o", str(out)],
        ["generate", "checkout", "--duration", "soon", "-o", str(out)],
        ["generate", "checkout", "--requests", "5", "--sampling", "2", "-o", str(out)],
        ["generate", "checkout", "--requests", "5", "--format", "csv", "-o", str(out)],
    ):
        bad = subprocess.run(
            [sys.executable, "-m", "tailscope", *args],
            capture_output=True,
            text=True,
            cwd=REPO,
            check=False,
        )
        assert bad.returncode == 2, args
        assert bad.stderr.startswith("tailscope: error: ") and bad.stderr.count("\n") == 1


def test_the_documented_example_scenario_runs(tmp_path: Path) -> None:
    doc = (REPO / "docs" / "scenarios.md").read_text()
    example = doc.split("### A complete example")[1].split("```yaml\n")[1].split("```")[0]
    path = tmp_path / "tiny-shop.yaml"
    path.write_text(example)
    sim = simulate(load_scenario(path), seed=1, requests=300)
    truth = sim.truth
    assert truth["scenario"] == "tiny-shop" and truth["traces"] == 300
    kinds = {(p["service"], p["kind"]) for p in truth["pauses"]}
    assert ("stock", "gc-full") in kinds and ("stock", "gc-concurrent-remark") in kinds
    assert not any(service == "mailer" for service, _ in kinds)  # rust: no GC
    assert any(t["cause"] == "pause" for t in truth["timeouts"])
    services = set(sim.table.column("service_name").to_pylist())
    assert services == {"api", "stock", "mailer"}


def _fixture_commands() -> list[list[str]]:
    readme = (REPO / "fixtures" / "README.md").read_text()
    return [
        line.split()[1:] for line in readme.splitlines() if line.startswith("tailscope generate ")
    ]


def test_fixtures_are_documented_and_small() -> None:
    commands = _fixture_commands()
    assert len(commands) == 4
    for args in commands:
        output = REPO / args[args.index("-o") + 1]
        truth = REPO / args[args.index("--truth") + 1]
        assert output.stat().st_size < 2_000_000 and truth.stat().st_size < 2_000_000


@pytest.mark.parametrize("scenario", ["gc-cascade", "steady"])
def test_fixtures_regenerate_byte_for_byte(tmp_path: Path, scenario: str) -> None:
    from typer.testing import CliRunner

    from tailscope.cli.app import app

    args = next(a for a in _fixture_commands() if a[1] == scenario)
    output = args.index("-o") + 1
    truth = args.index("--truth") + 1
    expected = [REPO / args[output], REPO / args[truth]]
    args[output] = str(tmp_path / "out.jsonl.gz")
    args[truth] = str(tmp_path / "truth.json")
    result = CliRunner().invoke(app, [*args, "--quiet"])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "out.jsonl.gz").read_bytes() == expected[0].read_bytes()
    assert (tmp_path / "truth.json").read_bytes() == expected[1].read_bytes()
