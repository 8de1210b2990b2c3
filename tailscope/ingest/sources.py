"""Input sources: expand paths, open files or stdin, undo gzip, and hand out bytes in blocks.

Gzip is recognised by its magic bytes, not the file name. Decompression streams, so a large
``.jsonl.gz`` never has to sit in memory whole; a gzip stream that ends early keeps what was
decompressed and reports one ``truncated gzip`` problem at the compressed byte offset.
"""

from __future__ import annotations

import os
import sys
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from tailscope.errors import InputError
from tailscope.ingest.model import ProgressSink
from tailscope.ingest.problems import ProblemLog
from tailscope.ingest.sniff import strip_bom

GZIP_MAGIC: Final = b"\x1f\x8b"
HEAD_BYTES: Final = 64 * 1024
"""How much decompressed content format sniffers see."""
READ_BYTES: Final = 8 * 1024 * 1024
"""Compressed/raw bytes read per step (progress granularity and memory per block)."""
STDIN: Final = "-"


@dataclass(frozen=True, slots=True)
class InputRef:
    """One input to read: a file path or stdin; ``explicit`` when named on the command line
    (a non-trace file found while walking a directory is skipped, not fatal)."""

    name: str
    explicit: bool


def expand_inputs(inputs: Sequence[str]) -> list[InputRef]:
    """Files as given, directories walked recursively in sorted order (hidden files and
    directories skipped), ``-`` for stdin."""
    refs: list[InputRef] = []
    for item in inputs:
        if item == STDIN:
            refs.append(InputRef(STDIN, True))
            continue
        path = Path(item)
        if path.is_dir():
            found = sorted(
                p
                for p in path.rglob("*")
                if p.is_file()
                and not any(part.startswith(".") for part in p.relative_to(path).parts)
            )
            if not found:
                raise InputError(f"{item}: empty input (directory has no files)")
            refs.extend(InputRef(str(p), False) for p in found)
        elif path.exists():
            refs.append(InputRef(item, True))
        else:
            raise InputError(f"{item}: unreadable file (no such file or directory)")
    if not refs:
        raise InputError("empty input: no input files given")
    return refs


class Source:
    """The decompressed bytes of one input, readable as a head (for sniffing) and then as
    blocks. Progress is reported in raw (on-disk) bytes."""

    def __init__(self, ref: InputRef, progress: ProgressSink) -> None:
        self.name = ref.name
        self.explicit = ref.explicit
        self._progress = progress
        self._stdin_data: bytes | None = None
        try:
            if ref.name == STDIN:
                self._stdin_data = sys.stdin.buffer.read()
                self.size: int | None = len(self._stdin_data)
                first = self._stdin_data[:2]
            else:
                self.size = os.path.getsize(ref.name)
                with open(ref.name, "rb") as fh:
                    first = fh.read(2)
        except OSError as exc:
            raise InputError(f"{ref.name}: unreadable file ({exc.strerror or exc})") from None
        self.compressed = first == GZIP_MAGIC
        self._head: bytes | None = None

    def _raw_chunks(self) -> Iterator[bytes]:
        if self._stdin_data is not None:
            data = self._stdin_data
            for i in range(0, len(data), READ_BYTES):
                yield data[i : i + READ_BYTES]
            return
        try:
            with open(self.name, "rb") as fh:
                while chunk := fh.read(READ_BYTES):
                    yield chunk
        except OSError as exc:
            raise InputError(f"{self.name}: unreadable file ({exc.strerror or exc})") from None

    def chunks(self, log: ProblemLog | None = None, report: bool = True) -> Iterator[bytes]:
        """Decompressed content in chunks of arbitrary size (not aligned to lines)."""
        if not self.compressed:
            for chunk in self._raw_chunks():
                if report:
                    self._progress.advance(len(chunk))
                yield chunk
            return
        decomp = zlib.decompressobj(wbits=31)
        in_member = False
        consumed = 0
        for chunk in self._raw_chunks():
            data = chunk
            while data:
                in_member = True
                # Output is bounded per call: a well-compressed chunk would otherwise become
                # one block many times its size (memory, and no parallelism downstream).
                while True:
                    try:
                        out = decomp.decompress(data, READ_BYTES)
                    except zlib.error as exc:
                        if log is not None:
                            log.bad(None, "truncated gzip", f"corrupt gzip: {exc}", consumed)
                        return
                    if out:
                        yield out
                    data = decomp.unconsumed_tail
                    if decomp.eof or (not data and len(out) < READ_BYTES):
                        break
                if not decomp.eof:
                    break
                # Concatenated gzip members (what `cat a.gz b.gz` makes) are one stream.
                data = decomp.unused_data
                decomp = zlib.decompressobj(wbits=31)
                in_member = False
                if len(data) >= 2 and data[:2] != GZIP_MAGIC:
                    return  # trailing padding after the last member
            consumed += len(chunk)
            if report:
                self._progress.advance(len(chunk))
        if in_member and log is not None:
            log.bad(
                None, "truncated gzip", "truncated gzip: compressed stream ends early", consumed
            )

    def head(self) -> bytes:
        """The first :data:`HEAD_BYTES` of decompressed content (without reporting progress)."""
        if self._head is None:
            parts: list[bytes] = []
            total = 0
            for chunk in self.chunks(None, report=False):
                parts.append(chunk)
                total += len(chunk)
                if total >= HEAD_BYTES:
                    break
            self._head = b"".join(parts)[:HEAD_BYTES]
        return self._head

    def read_all(self, log: ProblemLog) -> bytes:
        """The whole decompressed content."""
        return b"".join(self.chunks(log))

    def line_blocks(self, log: ProblemLog) -> Iterator[bytes | memoryview]:
        """Blocks of whole lines, BOM removed; the last block may end without a newline.
        Blocks of a plain file are read straight into their own buffers (memoryviews, no
        copy on the way). Line numbers are the reader's to count (the native scanner does,
        off the main thread)."""
        if self.compressed or self._stdin_data is not None:
            yield from _whole_lines(self.chunks(log))
            return
        yield from self._file_line_blocks()

    def _file_line_blocks(self) -> Iterator[memoryview | bytes]:
        pending = b""  # the start of a line cut by the previous read
        first = True
        try:
            with open(self.name, "rb") as fh:
                while True:
                    buf = bytearray(len(pending) + READ_BYTES)
                    buf[: len(pending)] = pending
                    got = fh.readinto(memoryview(buf)[len(pending) :])
                    if not got:
                        break
                    self._progress.advance(got)
                    filled = len(pending) + got
                    start = 3 if first and buf.startswith(b"\xef\xbb\xbf") else 0
                    first = False
                    cut = buf.rfind(b"\n", start, filled)
                    if cut < 0:
                        pending = bytes(buf[start:filled])
                        continue
                    yield memoryview(buf)[start : cut + 1]
                    pending = bytes(buf[cut + 1 : filled])
        except OSError as exc:
            raise InputError(f"{self.name}: unreadable file ({exc.strerror or exc})") from None
        if pending:
            yield pending


def _whole_lines(chunks: Iterator[bytes]) -> Iterator[bytes]:
    """Re-cut chunks at line ends (BOM removed); the last block may end without a newline."""
    pending: list[bytes] = []  # the start of a line cut by the chunk boundary
    first = True
    for chunk in chunks:
        if first:
            chunk = strip_bom(chunk)
            first = False
        cut = chunk.rfind(b"\n")
        if cut < 0:
            pending.append(chunk)
            continue
        # Copy each byte at most once: the common block is the chunk itself or one join.
        if pending:
            block = b"".join([*pending, memoryview(chunk)[: cut + 1]])
        elif cut + 1 == len(chunk):
            block = chunk
        else:
            block = chunk[: cut + 1]
        pending = [chunk[cut + 1 :]] if cut + 1 < len(chunk) else []
        yield block
    if pending:
        yield b"".join(pending)
