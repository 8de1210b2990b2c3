"""A/B of two git revisions, whole process: ``tailscope analyze`` and ``tailscope convert``.

Each revision's ``tailscope`` package is exported with ``git archive`` into a temporary
directory and its native scanners are built there (``setup.py build_ext --inplace``); every run
is a fresh ``python -m tailscope`` process with ``PYTHONPATH`` on that copy, the revisions
interleaved, ``--repeat`` times each. Prints medians of wall and CPU (user + system) seconds
and the change. The inputs are the analyze and ingest benchmarks' own files (generated there;
pass ``--analyze-file``/``--convert-file`` to choose others).

Run:  flock /tmp/tailscope-heavy.lock python benchmarks/before_after.py main HEAD
      python benchmarks/before_after.py 8596b99 HEAD --repeat 5 \
          --analyze-file /tmp/tailscope-bench-analyze/gc-cascade-300000-seed3.jsonl
"""

from __future__ import annotations

import argparse
import io
import os
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def export(revision: str, into: Path) -> Path:
    """``tailscope/`` and ``setup.py`` of ``revision`` under ``into``, native scanners built."""
    archive = subprocess.run(
        ["git", "-C", str(REPO), "archive", revision, "tailscope", "setup.py", "pyproject.toml"],
        capture_output=True,
        check=True,
    ).stdout
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(into, filter="data")
    subprocess.run(
        [sys.executable, "setup.py", "-q", "build_ext", "--inplace"],
        cwd=into,
        check=True,
        capture_output=True,
    )
    return into


def timed(argv: list[str], env: dict[str, str]) -> tuple[float, float]:
    """(wall, CPU) seconds of one process, run in its ``PYTHONPATH`` (``python -m`` puts the
    working directory first on ``sys.path``: run elsewhere, it could import another copy)."""
    started = time.perf_counter()
    child = subprocess.Popen(
        argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env, cwd=env["PYTHONPATH"]
    )
    _, status, usage = os.wait4(child.pid, 0)
    wall = time.perf_counter() - started
    if os.waitstatus_to_exitcode(status) != 0:
        assert child.stderr is not None
        raise SystemExit(f"failed: {' '.join(argv)}\n{child.stderr.read().decode()[-2000:]}")
    return wall, usage.ru_utime + usage.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("before")
    parser.add_argument("after")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument(
        "--analyze-file",
        type=Path,
        action="append",
        help="default: the analyze benchmark's 50k and 300k files",
    )
    parser.add_argument(
        "--convert-file", type=Path, action="append", help="default: the ingest benchmark's 300k"
    )
    args = parser.parse_args()
    analyze_files = args.analyze_file or [
        Path(f"/tmp/tailscope-bench-analyze/gc-cascade-{n}-seed3.jsonl") for n in (50_000, 300_000)
    ]
    analyze_files = [p.resolve() for p in analyze_files]
    convert_files = args.convert_file or [
        Path("/tmp/tailscope-bench-ingest/ingest-300000-seed7.jsonl")
    ]
    convert_files = [p.resolve() for p in convert_files]
    for path in [*analyze_files, *convert_files]:
        if not path.exists():
            raise SystemExit(f"{path} missing: run benchmarks/analyze.py or ingest.py once first")
    work = Path(tempfile.mkdtemp(prefix="tailscope-ab-"))
    try:
        envs = {}
        for label, revision in (("before", args.before), ("after", args.after)):
            tree = export(revision, work / label)
            env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
            env["PYTHONPATH"] = str(tree)
            env["PYTHONPYCACHEPREFIX"] = str(work / f"pycache-{label}")
            subprocess.run([sys.executable, "-m", "compileall", "-q", str(tree / "tailscope")])
            envs[label] = env
        cases: list[tuple[str, list[str]]] = []
        for path in analyze_files:
            cases.append(
                (f"analyze {path.name}", ["analyze", str(path), "-f", "json", "-o", os.devnull])
            )
        for path in convert_files:
            for suffix in ("arrow", "parquet"):
                out = str(work / f"out.{suffix}")
                cases.append(
                    (f"convert {path.name} -> .{suffix}", ["convert", str(path), "-o", out])
                )
        print(f"{args.before} -> {args.after}, median of {args.repeat}, {os.cpu_count()} cores")
        print(f"{'case':<52}{'before':>9}{'after':>9}{'change':>8}{'CPU before':>12}{'after':>7}")
        for label, command in cases:
            runs: dict[str, list[tuple[float, float]]] = {"before": [], "after": []}
            for _ in range(args.repeat):
                for side in ("before", "after"):
                    argv = [sys.executable, "-m", "tailscope", *command, "-q"]
                    runs[side].append(timed(argv, envs[side]))
            wall = {k: statistics.median(w for w, _ in v) for k, v in runs.items()}
            cpu = {k: statistics.median(c for _, c in v) for k, v in runs.items()}
            print(
                f"{label:<52}{wall['before']:8.2f}s{wall['after']:8.2f}s"
                f"{wall['after'] / wall['before'] - 1:+7.0%}"
                f"{cpu['before']:11.2f}s{cpu['after']:6.2f}s"
            )
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
