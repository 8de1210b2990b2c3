"""``tailscope tui`` on the command line, where no app can start: one clear line and exit 2."""

from __future__ import annotations

import subprocess
import sys

from repo_paths import REPO as _REPO

REPO = _REPO
STEADY = REPO / "fixtures" / "steady.jsonl.gz"


def run_tui(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tailscope", "tui", *args],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
    )


def test_without_a_terminal_says_so_in_one_line() -> None:
    # GIVEN stdin and stdout that are not a terminal WHEN tui is started
    done = run_tui(str(STEADY))
    # THEN it exits 2 with one line pointing at 'analyze', and no traceback
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "tailscope: error: tailscope tui needs a terminal; use 'tailscope analyze' for text output"
    ]


def test_stdin_input_is_refused() -> None:
    done = run_tui("-")
    assert done.returncode == 2
    assert "reads the keyboard from stdin" in done.stderr
    assert "Traceback" not in done.stderr


def test_unknown_input_format_lists_the_valid_ones() -> None:
    done = run_tui(str(STEADY), "--input-format", "csv")
    assert done.returncode == 2
    assert "unknown --input-format 'csv'" in done.stderr and "otlp-json" in done.stderr
