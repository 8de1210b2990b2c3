"""Allow ``python -m tailscope``."""

from tailscope.cli import run

run()
