"""``analyze --engine``: the usage errors that need no Spark (exit code 2, one clear line)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from repo_paths import FIXTURES


def _cli(*args: object, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tailscope", *map(str, args)],
        capture_output=True,
        text=True,
        check=False,
        env=env,
    )


def test_spark_engine_without_java_is_a_clear_usage_error(tmp_path: Path) -> None:
    # GIVEN an environment with no java on PATH and no JAVA_HOME
    env = {k: v for k, v in os.environ.items() if k != "JAVA_HOME"}
    env["PATH"] = str(tmp_path)  # an empty directory
    # WHEN the Spark engine is asked for
    done = _cli("analyze", tmp_path, "--engine", "spark", env=env)
    # THEN exit 2 with one line naming Java and the way out, no traceback
    assert done.returncode == 2, done.stderr
    assert "needs Java" in done.stderr and "--engine local" in done.stderr
    assert "Traceback" not in done.stderr


def test_unknown_engine_lists_the_engines() -> None:
    done = _cli("analyze", FIXTURES / "steady.jsonl.gz", "--engine", "dask")
    assert done.returncode == 2
    assert "local, spark" in done.stderr and "Traceback" not in done.stderr


def test_partition_by_writes_a_hive_dataset_the_local_engine_reads(tmp_path: Path) -> None:
    out = tmp_path / "spans"
    done = _cli("convert", FIXTURES / "steady.jsonl.gz", "-o", out, "--partition-by", "hour,bucket")
    assert done.returncode == 0, done.stderr
    files = sorted(out.glob("hour=*/bucket=*/*.parquet"))
    assert len(files) > 1
    single = _cli("analyze", FIXTURES / "steady.jsonl.gz", "-f", "json", "--quiet")
    split = _cli("analyze", out, "-f", "json", "--quiet")
    assert split.returncode == 0, split.stderr
    import json

    a, b = json.loads(single.stdout), json.loads(split.stdout)
    a["input"]["files"] = b["input"]["files"] = []
    assert a == b
    bad = _cli("convert", FIXTURES / "steady.jsonl.gz", "-o", out, "--partition-by", "day")
    assert bad.returncode == 2 and "hour, bucket" in bad.stderr
