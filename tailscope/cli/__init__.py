"""Command-line interface. The only place that maps errors to exit codes (0 ok, 1 findings or
gate failed, 2 usage or input error). Command modules are thin: parse options, call the library,
hand the result to a renderer.

Usage errors (unknown option, missing argument) are typer's own and exit 2; every
:class:`~tailscope.errors.TailscopeError` a command raises becomes one ``tailscope: error: ...``
line on stderr and its ``exit_code``.
"""

from __future__ import annotations

import contextlib
import os
import sys

from tailscope.cli.app import app
from tailscope.cli.startup import keep_pandas_out
from tailscope.errors import TailscopeError

# Importing a command module registers its command on ``app``.
from tailscope.cli import (  # noqa: F401  isort: skip
    cmd_analyze,
    cmd_baseline,
    cmd_convert,
    cmd_gate,
    cmd_generate,
    cmd_tui,
    cmd_version,
)


def run() -> None:
    """Entry point of the ``tailscope`` console script and ``python -m tailscope``: :func:`main`,
    then leave the process without tearing the interpreter down.

    A run ends holding hundreds of MB in Arrow and polars buffers, numpy and thousands of
    modules; freeing all of it one object at a time took 0.15 s (50k spans) to 0.35 s (1M)
    after the last byte was written. Every file a command writes is closed before it returns
    and no command starts a thread or ``atexit`` hook that must still run, so once stdout and
    stderr are flushed nothing is left to do: ``os._exit`` skips the teardown with the same
    exit code. pandas stays out of the process (:mod:`tailscope.cli.startup`).
    """
    keep_pandas_out()
    try:
        main()
    except SystemExit as exc:
        code = exc.code
    else:
        code = 0
    if code is None:
        status = 0
    elif isinstance(code, int):
        status = code
    else:  # sys.exit("message"): print it like the interpreter would
        print(code, file=sys.stderr)
        status = 1
    with contextlib.suppress(BrokenPipeError):  # the reader went away: nothing more to say
        sys.stdout.flush()
    with contextlib.suppress(OSError):
        sys.stderr.flush()
    os._exit(status)


def main(argv: list[str] | None = None) -> None:
    """Run the CLI on ``argv`` (default ``sys.argv[1:]``), exiting through ``SystemExit``; safe
    to call in-process (tests). The console script goes through :func:`run`."""
    try:
        app(args=argv)
    except TailscopeError as exc:
        print(f"tailscope: error: {exc}", file=sys.stderr)
        sys.exit(exc.exit_code)
    except BrokenPipeError:
        sys.exit(0)
    except KeyboardInterrupt:
        print("tailscope: interrupted", file=sys.stderr)
        sys.exit(130)
