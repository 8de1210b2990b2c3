"""Write a span table as a hive-partitioned Parquet dataset (``tailscope convert
--partition-by hour,bucket``): the input layout of ``tailscope analyze DIR --engine spark``.

``hour`` is the span's start (ns since the epoch) divided by 3600 s; ``bucket`` is the first 8
bytes of the trace id read as a little-endian unsigned integer, modulo the bucket count, so every
span of a trace (within an hour) is in the same bucket. Needs only pyarrow.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Final, Literal, cast

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from numpy.typing import NDArray

from tailscope import schema as s
from tailscope.errors import UsageError

PartitionKey = Literal["hour", "bucket"]
PARTITION_KEYS: Final[tuple[PartitionKey, ...]] = ("hour", "bucket")
NS_PER_HOUR: Final = 3_600_000_000_000
DEFAULT_BUCKETS: Final = 16


def parse_partition_by(text: str) -> tuple[PartitionKey, ...]:
    """``hour,bucket`` -> the keys, in the given order (UsageError naming the valid keys)."""
    keys = [k.strip() for k in text.split(",") if k.strip()]
    bad = [k for k in keys if k not in PARTITION_KEYS]
    if not keys or bad or len(set(keys)) != len(keys):
        raise UsageError(
            f"--partition-by {text!r}: give distinct keys from {', '.join(PARTITION_KEYS)} "
            "(e.g. hour,bucket)"
        )
    return tuple(cast("PartitionKey", k) for k in keys)


def trace_buckets(trace_ids: pa.ChunkedArray | pa.Array, buckets: int) -> pa.Array:
    """Bucket of each trace id: first 8 bytes as little-endian uint64, modulo ``buckets``."""
    flat = pa.chunked_array([trace_ids]) if isinstance(trace_ids, pa.Array) else trace_ids
    data = np.frombuffer(
        b"".join(
            c.buffers()[1].to_pybytes()[c.offset * 16 : (c.offset + len(c)) * 16]
            for c in flat.chunks
        ),
        dtype="<u8",
    ).reshape(-1, 2)[:, 0]
    return pa.array((data % np.uint64(buckets)).astype(np.int32))


def write_partitioned(
    table: pa.Table, directory: Path, keys: Sequence[PartitionKey], buckets: int = DEFAULT_BUCKETS
) -> None:
    """Write ``table`` (``SPAN_SCHEMA``) under ``directory`` as ``key=value/`` folders of
    zstd Parquet files (the partition columns are in the folder names only). ``directory``
    must be new or empty."""
    if buckets < 1:
        raise UsageError("--buckets must be at least 1")
    if directory.exists() and (not directory.is_dir() or any(directory.iterdir())):
        raise UsageError(f"{directory}: exists and is not an empty directory")
    columns: dict[str, NDArray[np.int64]] = {}
    if "hour" in keys:
        columns["hour"] = np.asarray(table[s.START].to_numpy()) // NS_PER_HOUR
    if "bucket" in keys:
        columns["bucket"] = np.asarray(trace_buckets(table[s.TRACE_ID], buckets)).astype(np.int64)
    stacked = np.stack([columns[k] for k in keys], axis=1)
    groups, inverse = np.unique(stacked, axis=0, return_inverse=True)
    inverse = inverse.reshape(-1)
    order = np.argsort(inverse, kind="stable")  # input order kept within a file
    bounds = np.searchsorted(inverse[order], np.arange(groups.shape[0] + 1))
    try:
        for g, values in enumerate(groups):
            folder = directory.joinpath(
                *(f"{k}={int(v)}" for k, v in zip(keys, values, strict=True))
            )
            folder.mkdir(parents=True, exist_ok=True)
            rows = pa.array(order[bounds[g] : bounds[g + 1]])
            pq.write_table(table.take(rows), folder / "part-0.parquet", compression="zstd")
    except OSError as exc:
        raise UsageError(f"{directory}: cannot write the dataset ({exc.strerror or exc})") from None
