"""The console entry point leaves with ``os._exit`` after flushing (``tailscope.cli.run``): what
it writes and the exit code must be exactly what the in-process ``main`` produces."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.ipc as ipc
import pyarrow.parquet as pq
import pytest
from repo_paths import FIXTURES

from tailscope import schema as s
from tailscope.cli import main

STEADY = FIXTURES / "steady.jsonl.gz"


BUFFERED = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}
"""The environment with stdout block-buffered on a pipe, as for most users."""


def tailscope(*args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "tailscope", *args], capture_output=True, timeout=120, env=BUFFERED
    )


@pytest.mark.parametrize(
    ("report_format", "top"),
    [("json", "10"), ("markdown", "1")],  # 27 kB written through; 2 kB left in stdout's buffer
)
def test_report_on_stdout_is_the_in_process_report(
    tmp_path: Path, report_format: str, top: str
) -> None:
    # GIVEN the report written to a file by the in-process main
    out = tmp_path / "report"
    with pytest.raises(SystemExit) as done:
        main(["analyze", str(STEADY), "-f", report_format, "--top", top, "-o", str(out), "-q"])
    assert done.value.code in (0, None)
    # WHEN the process prints it to a pipe and leaves without interpreter teardown
    run = tailscope("analyze", str(STEADY), "-f", report_format, "--top", top)
    # THEN every byte arrived (flushed before os._exit) and the exit code is 0
    assert run.returncode == 0, run.stderr
    assert len(run.stdout) > 1000
    assert run.stdout == out.read_bytes()


def test_exit_codes_and_errors_survive_the_fast_exit(tmp_path: Path) -> None:
    missing = tailscope("analyze", str(tmp_path / "nope.jsonl"), "-q")
    assert missing.returncode == 2
    assert missing.stderr.startswith(b"tailscope: error: ")
    usage = tailscope("analyze", str(STEADY), "--format", "html")
    assert usage.returncode == 2
    assert b"html" in usage.stderr


def test_reader_closing_the_pipe_early_is_not_an_error() -> None:
    # `tailscope analyze ... | head -c 100`: the reader leaves; no traceback, exit 0
    child = subprocess.Popen(
        [sys.executable, "-m", "tailscope", "analyze", str(STEADY), "--format", "json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=BUFFERED,
    )
    assert child.stdout is not None and child.stderr is not None
    first = child.stdout.read(100)
    child.stdout.close()
    err = child.stderr.read()
    assert child.wait(timeout=120) == 0
    assert len(first) == 100
    assert b"Traceback" not in err


def test_converted_files_are_complete_before_the_process_leaves(tmp_path: Path) -> None:
    # Parquet's footer and Arrow IPC's are written on close: a file cut short by the fast
    # exit would not open. Both must hold the same span table.
    tables = {}
    for suffix in ("parquet", "arrow"):
        target = tmp_path / f"spans.{suffix}"
        run = tailscope("convert", str(STEADY), "-o", str(target), "-q")
        assert run.returncode == 0, run.stderr
        if suffix == "parquet":
            tables[suffix] = s.conform(pq.read_table(target))
        else:
            with pa.memory_map(str(target)) as source:
                tables[suffix] = s.conform(ipc.open_file(source).read_all())
    assert tables["parquet"].num_rows == 11_681
    assert tables["parquet"].equals(tables["arrow"])


LOADED_AT_EXIT = (
    "import os, sys\n"
    "real_exit = os._exit\n"
    "def leave(status):\n"
    "    loaded = sorted(m for m in sys.modules if m.split('.')[0] in ('pandas', 'pyarrow'))\n"
    "    print('LOADED', ' '.join(loaded), file=sys.stderr, flush=True)\n"
    "    real_exit(status)\n"
    "os._exit = leave\n"
    "sys.argv = ['tailscope', *sys.argv[1:]]\n"
    "from tailscope.cli import run\n"
    "run()\n"
)
"""The console script's entry point, reporting the pandas and pyarrow modules loaded when it
leaves."""


@pytest.mark.parametrize(
    "command",
    [("analyze", str(STEADY), "-f", "json"), ("convert", str(STEADY), "-o", "{tmp}/t.arrow")],
)
def test_the_console_script_never_imports_pandas(tmp_path: Path, command: tuple[str, ...]) -> None:
    # GIVEN pandas installed (a test dependency) and pyarrow, which imports it on first use
    assert importlib.util.find_spec("pandas") is not None
    # WHEN a command runs through the console entry point
    argv = [a.replace("{tmp}", str(tmp_path)) for a in command]
    run = subprocess.run(
        [sys.executable, "-c", LOADED_AT_EXIT, *argv, "-q"],
        capture_output=True,
        timeout=120,
        env=BUFFERED,
    )
    # THEN it succeeded having used pyarrow, and no pandas module was loaded (0.15-0.3 s of CPU)
    assert run.returncode == 0, run.stderr[-2000:]
    loaded = run.stderr.rsplit(b"LOADED", 1)[1].split()
    assert b"pyarrow" in loaded
    assert [m for m in loaded if m.split(b".")[0] == b"pandas"] == []


def test_pandas_imports_once_pyspark_is_loaded() -> None:
    # GIVEN the hook the console script installs
    code = (
        "import sys\n"
        "from tailscope.cli.startup import keep_pandas_out\n"
        "keep_pandas_out()\n"
        "try:\n"
        "    import pandas\n"
        "except ImportError:\n"
        "    print('refused')\n"
        # WHEN PySpark (the engine that needs pandas) is imported
        "import pyspark\n"
        "import pandas\n"
        "print('imported', 'pandas' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    # THEN pandas was refused before and imports after
    assert out.returncode == 0, out.stderr
    assert out.stdout.split("\n")[:2] == ["refused", "imported True"]


def test_parquet_keeps_statistics_of_the_fixed_width_columns_only(tmp_path: Path) -> None:
    # GIVEN a span table converted to Parquet
    target = tmp_path / "spans.parquet"
    run = tailscope("convert", str(STEADY), "-o", str(target), "-q")
    assert run.returncode == 0, run.stderr
    # WHEN its first row group's column chunks are inspected
    group = pq.ParquetFile(target).metadata.row_group(0)
    stats = {
        group.column(i).path_in_schema: group.column(i).statistics for i in range(group.num_columns)
    }
    # THEN times and ids keep min/max for pruning; the attribute strings carry none
    start = stats["start_unix_nano"]
    assert start is not None and start.has_min_max
    assert start.min == pq.read_table(target, columns=["start_unix_nano"])[0].to_numpy().min()
    assert stats["trace_id"] is not None and stats["trace_id"].has_min_max
    value = stats["attributes.list.element.value"]
    assert value is None or not value.has_min_max
