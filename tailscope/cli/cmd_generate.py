"""``tailscope generate``."""

from __future__ import annotations

from tailscope.cli.app import app
from tailscope.cli.not_built import not_built


@app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def generate() -> None:
    """Not built yet."""
    raise not_built("generate")
