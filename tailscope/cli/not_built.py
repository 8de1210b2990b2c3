"""Commands that exist in the interface but are not built yet say so and exit 2."""

from __future__ import annotations

from tailscope.errors import UsageError


def not_built(command: str) -> UsageError:
    """The error a not-yet-built command raises (exit 2, one clear line)."""
    return UsageError(f"'tailscope {command}' is not built yet in this version")
