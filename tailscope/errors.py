"""Typed errors. Library code raises these; only :mod:`tailscope.cli` turns them into exit codes.

Exit codes: 0 ok, 1 gate failed / findings over threshold, 2 usage or input error.
"""

from __future__ import annotations


class TailscopeError(Exception):
    """Base class. ``exit_code`` is what the CLI exits with when this escapes a command."""

    exit_code: int = 2


class UsageError(TailscopeError):
    """The command line asked for something impossible (bad option value, missing input)."""

    exit_code = 2


class InputError(TailscopeError):
    """An input cannot be read as traces (unreadable file, unknown format, empty input,
    or a bad record under ``--strict``)."""

    exit_code = 2


class BaselineError(TailscopeError):
    """A baseline file is corrupt, of an unknown version, or does not match the input."""

    exit_code = 2


class HistogramError(TailscopeError):
    """A histogram could not record, encode, decode or merge (never fails silently)."""

    exit_code = 2


class FindingsOverThreshold(TailscopeError):
    """The gate failed, or findings exceeded a ``--fail-on-*`` threshold."""

    exit_code = 1
