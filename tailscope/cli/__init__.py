"""Command-line interface. The only place that maps errors to exit codes (0 ok, 1 findings or
gate failed, 2 usage or input error). Command modules are thin: parse options, call the library,
hand the result to a renderer.

Usage errors (unknown option, missing argument) are typer's own and exit 2; every
:class:`~tailscope.errors.TailscopeError` a command raises becomes one ``tailscope: error: ...``
line on stderr and its ``exit_code``.
"""

from __future__ import annotations

import sys

from tailscope.cli.app import app
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


def main(argv: list[str] | None = None) -> None:
    """Entry point of the ``tailscope`` console script."""
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
