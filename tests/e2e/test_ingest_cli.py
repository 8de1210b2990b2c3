"""``tailscope convert`` and the shared input loading: exit codes, messages, progress policy."""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

import pytest
from repo_paths import OTLP_CORPUS as OTLP
from tables import plain
from typer.testing import CliRunner

from tailscope.cli.app import app
from tailscope.cli.inputs import load, summary_line
from tailscope.cli.progress import RichProgress, progress_enabled
from tailscope.errors import InputError, UsageError
from tailscope.ingest import read_spans

DEMO = OTLP / "otel-demo-otel-tui.jsonl"


def tailscope(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tailscope", *args], capture_output=True, text=True
    )


def test_convert_writes_parquet_and_reports_counts(tmp_path: Path) -> None:
    out = tmp_path / "spans.parquet"
    run = tailscope("convert", str(DEMO), "-o", str(out))
    assert run.returncode == 0
    assert run.stdout == ""
    assert run.stderr.strip() == (
        f"wrote {out}: 547 spans from 1 file(s); 56 metric/log line(s) ignored"
    )
    assert read_spans([str(out)]).table.num_rows == 547


def test_convert_quiet_prints_nothing(tmp_path: Path) -> None:
    run = tailscope("convert", str(DEMO), "-o", str(tmp_path / "s.arrow"), "--quiet")
    assert (run.returncode, run.stdout, run.stderr) == (0, "", "")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["convert", str(DEMO)], "convert needs -o/--output FILE"),
        (["convert", str(DEMO), "-o", "out.csv"], "cannot tell the output format"),
        (
            ["convert", str(DEMO), "-o", "o.arrow", "--input-format", "xml"],
            "unknown --input-format",
        ),
        (["convert", "/no/such/file.json", "-o", "o.arrow"], "unreadable file"),
    ],
)
def test_convert_usage_and_input_errors_exit_2(
    tmp_path: Path, args: list[str], message: str
) -> None:
    run = subprocess.run(
        [sys.executable, "-m", "tailscope", *args], capture_output=True, text=True, cwd=tmp_path
    )
    assert run.returncode == 2
    assert run.stderr.startswith("tailscope: error: ")
    assert message in run.stderr
    assert "Traceback" not in run.stderr


def test_forced_input_format(tmp_path: Path) -> None:
    pb = OTLP / "otlp2parquet-traces.pb"
    forced = load([str(pb)], "otlp-proto", quiet=True)
    assert plain(forced.table).equals(plain(read_spans([str(pb)]).table))
    # forcing the wrong reader is a counted bad record, and nothing read is an input error
    with pytest.raises(InputError, match="not JSON"):
        load([str(pb)], "otlp-json", quiet=True)


def test_load_rejects_bad_options() -> None:
    with pytest.raises(UsageError, match="choose one of auto, otlp-json"):
        load([str(DEMO)], "yaml")
    with pytest.raises(UsageError, match="no inputs"):
        load([], "auto")


def test_summary_line_names_first_problem(tmp_path: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_bytes(DEMO.read_bytes().split(b"\n", 1)[0] + b"\n{broken\n")
    result = load([str(DEMO), str(bad)], quiet=True)
    line = summary_line(result)
    assert "1 bad record(s) skipped" in line
    assert f"(first: {bad}:2: " in line


def test_progress_only_for_a_human_on_a_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CI", raising=False)
    monkeypatch.setattr(sys, "stderr", io.StringIO())  # not a terminal
    assert progress_enabled(quiet=False) is False

    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    monkeypatch.setattr(sys, "stderr", Tty())
    assert progress_enabled(quiet=False) is True
    assert progress_enabled(quiet=True) is False
    monkeypatch.setenv("CI", "true")
    assert progress_enabled(quiet=False) is False


def test_progress_bar_stays_hidden_for_fast_inputs() -> None:
    sink = RichProgress()
    sink.start("small.json", 100)
    sink.advance(100)
    sink.finish()
    sink.close()
    assert sink._progress is None  # never drawn: the input took well under a second


def test_cli_runner_convert_arrow(tmp_path: Path) -> None:
    out = tmp_path / "x.arrow"
    run = CliRunner().invoke(app, ["convert", str(OTLP), "-o", str(out), "-q"])
    assert run.exit_code == 0
    assert read_spans([str(out)]).table.num_rows == read_spans([str(OTLP)]).table.num_rows
