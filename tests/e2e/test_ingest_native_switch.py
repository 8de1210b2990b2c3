"""The no-compiler install reads every input exactly as the C scanners do.

Each file of the public corpus and the bundled fixtures (and protobuf written from a fixture) is
read here, with the C scanners when the extension is built, and in a fresh interpreter with
``TAILSCOPE_NATIVE=0`` (tailscope then behaves as if the extension were not built: the tolerant
Python readers, orjson and upb, read everything). Tables, counts and problems must be identical.
Without the extension both sides take the reference path and the test still checks that every
format reads without it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pytest
from repo_paths import CORPUS, FIXTURES
from tables import plain

from tailscope.errors import InputError
from tailscope.ingest import read_spans

INPUTS = sorted(
    path
    for folder in ("otlp", "otlp-invalid", "jaeger", "zipkin")
    for path in (CORPUS / folder).iterdir()
    if not path.name.endswith(".md")
) + sorted(FIXTURES.glob("*.jsonl.gz"))

READ_ALL = """
import json, sys
import pyarrow as pa
from tailscope.errors import InputError
from tailscope.ingest import read_spans
from tailscope.ingest.flat import native
assert native is None, "TAILSCOPE_NATIVE=0 must switch the C scanners off"
out = {}
for index, name in enumerate(sys.argv[2:]):
    try:
        result = read_spans([name])
    except InputError as exc:
        out[name] = {"error": str(exc)}
        continue
    with pa.OSFile(f"{sys.argv[1]}/{index}.arrow", "wb") as sink:
        with pa.ipc.new_file(sink, result.table.schema) as writer:
            writer.write_table(result.table)
    stats = result.stats
    out[name] = {
        "records": stats.records,
        "skipped": dict(stats.skipped),
        "problems": [[p.file, p.line, p.offset, p.reason] for p in stats.problems],
        "duplicates": stats.duplicates_dropped,
        "unknown_service": stats.unknown_service_resources,
    }
print(json.dumps(out))
"""


def _read_without_native(paths: list[Path], out: Path) -> dict[str, dict[str, object]]:
    env = {**os.environ, "TAILSCOPE_NATIVE": "0"}
    run = subprocess.run(
        [sys.executable, "-c", READ_ALL, str(out), *map(str, paths)],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    assert run.returncode == 0, run.stderr
    result: dict[str, dict[str, object]] = json.loads(run.stdout)
    return result


@pytest.fixture(scope="module")
def protobuf_fixture(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fixture's spans as collector-framed protobuf, written by ``tailscope generate``."""
    out = tmp_path_factory.mktemp("pb") / "gc-cascade.pb"
    command = [sys.executable, "-m", "tailscope", "generate", "gc-cascade", "--seed", "3"]
    command += ["--requests", "300", "-o", str(out), "--quiet"]
    run = subprocess.run(command, capture_output=True, text=True, check=False)
    assert run.returncode == 0, run.stderr
    return out


def test_every_input_reads_identically_without_the_extension(
    tmp_path: Path, protobuf_fixture: Path
) -> None:
    paths = [*INPUTS, protobuf_fixture]
    assert any(p.suffix == ".pb" for p in INPUTS) and len(paths) > 30
    reference = _read_without_native(paths, tmp_path)
    spans_read = 0
    for index, path in enumerate(paths):
        want = reference[str(path)]
        try:
            result = read_spans([str(path)])
        except InputError as exc:
            assert want == {"error": str(exc)}, path.name
            continue
        assert "error" not in want, (path.name, want)
        with pa.memory_map(str(tmp_path / f"{index}.arrow")) as source:
            slow = pa.ipc.open_file(source).read_all()
        assert plain(result.table).equals(plain(slow)), path.name
        stats = result.stats
        got = {
            "records": stats.records,
            "skipped": dict(stats.skipped),
            "problems": [[p.file, p.line, p.offset, p.reason] for p in stats.problems],
            "duplicates": stats.duplicates_dropped,
            "unknown_service": stats.unknown_service_resources,
        }
        assert got == want, path.name
        spans_read += result.table.num_rows
    assert spans_read > 50_000
