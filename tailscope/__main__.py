"""Allow ``python -m tailscope``."""

from tailscope.cli import main

main()
