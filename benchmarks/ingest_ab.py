"""Ingest A/B between two checkouts: ``read_spans`` on the same files, each run in a fresh process.

    git worktree add /tmp/before <rev> && (cd /tmp/before && python setup.py build_ext --inplace)
    python benchmarks/ingest_ab.py --before /tmp/before --after . FILE [FILE ...] --repeat 7

Runs are interleaved (before, after, before, ...) so that load on a shared machine hits both
alike. Prints, per file, the median wall time and the median CPU time (user + system of the
process, all threads) of ``read_spans`` alone (imports excluded), the rows read, and the speed
ratio after/before (> 1: after is faster). CPU time is the steadier figure on a loaded machine.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
from pathlib import Path

CODE = (
    "import sys, time\n"
    "from tailscope.ingest import read_spans\n"
    "w, c = time.perf_counter(), time.process_time()\n"
    "r = read_spans([sys.argv[1]])\n"
    "print(time.perf_counter() - w, time.process_time() - c, r.table.num_rows)\n"
)


def one_run(tree: Path, path: Path) -> tuple[float, float, int]:
    env = dict(os.environ, PYTHONPATH=str(tree.resolve()), PYTHONSAFEPATH="1")
    out = subprocess.run(
        [sys.executable, "-c", CODE, str(path)], env=env, capture_output=True, text=True, check=True
    ).stdout.split()
    return float(out[0]), float(out[1]), int(out[2])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("files", nargs="+", type=Path)
    parser.add_argument("--before", type=Path, required=True, help="checkout with its extension")
    parser.add_argument("--after", type=Path, default=Path("."))
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    trees = {"before": args.before, "after": args.after}
    runs: dict[tuple[Path, str], list[tuple[float, float, int]]] = {}
    for _ in range(args.repeat):
        for path in args.files:
            for name, tree in trees.items():
                runs.setdefault((path, name), []).append(one_run(tree, path))
    for path in args.files:
        line = [path.name]
        medians = {}
        for name in trees:
            wall = statistics.median(r[0] for r in runs[(path, name)])
            cpu = statistics.median(r[1] for r in runs[(path, name)])
            rows = runs[(path, name)][0][2]
            medians[name] = (wall, cpu)
            line.append(f"{name}: {rows:,} rows, wall {wall:.3f} s, CPU {cpu:.3f} s")
        speed_wall = medians["before"][0] / medians["after"][0]
        speed_cpu = medians["before"][1] / medians["after"][1]
        line.append(f"after/before speed: wall {speed_wall:.3f}, CPU {speed_cpu:.3f}")
        print("; ".join(line))


if __name__ == "__main__":
    main()
