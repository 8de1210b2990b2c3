"""The report's JSON codec: :class:`~tailscope.report.model.Report` <-> dict <-> JSON text.

The dict form uses the model's field names as keys (documented in ``docs/report-schema.md``):
tuples become lists, nested dataclasses objects, non-finite floats ``null``. Decoding is
``msgspec``'s typed decoder driven by the model's type hints, so every frozen dataclass field of
the model round-trips without codec changes: ``report_from_dict(report_to_dict(r)) == r``. A
document of another ``schema_version`` (or one with missing or mistyped keys) raises
:class:`ReportFormatError` with one line saying what is wrong and where. Unknown keys are
ignored, so readers of version 1 accept documents that later minor additions extend.

JSON has no NaN or infinity: they are written as ``null``, and a ``null`` where the model has a
plain ``float`` is read back as NaN (msgspec names the field; only that value is replaced).
"""

from __future__ import annotations

import copy
import math
import re
from typing import Any, Final

import msgspec
import orjson

from tailscope.errors import InputError
from tailscope.report.model import SCHEMA_VERSION, Report


class ReportFormatError(InputError):
    """A report document that this version of tailscope cannot read."""


class _Version(msgspec.Struct):
    schema_version: Any = None


_NULL_FLOAT: Final = re.compile(r"^Expected `float`, got `null` - at `\$(?P<path>[^`]*)`$")
_PATH_STEP: Final = re.compile(r"\.(?P<key>[A-Za-z_][A-Za-z0-9_]*)|\[(?P<index>\d+)\]")
_MAX_NULL_FLOATS: Final = 100_000


def report_to_dict(report: Report) -> dict[str, Any]:
    """The report as plain JSON-ready Python values (dicts, lists, str, int, float, bool, None)."""
    encoded = _finite(msgspec.to_builtins(report))
    assert isinstance(encoded, dict)
    return encoded


def _finite(value: Any) -> Any:
    """Tuples as lists and non-finite floats as ``None`` (what the JSON text holds)."""
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def report_from_dict(document: dict[str, Any]) -> Report:
    """Rebuild a :class:`Report` from :func:`report_to_dict` output (or parsed JSON).

    Raises:
        ReportFormatError: wrong ``schema_version``, or a missing or mistyped key.
    """
    if not isinstance(document, dict):
        raise ReportFormatError("a tailscope report must be a JSON object")
    _check_version(document.get("schema_version"))
    return _convert(document, owned=False)


def report_to_json(report: Report, indent: bool = True) -> bytes:
    """The report as UTF-8 JSON text (2-space indented unless ``indent`` is False)."""
    option = orjson.OPT_INDENT_2 if indent else 0
    # orjson writes NaN and infinity as null, like report_to_dict
    return orjson.dumps(msgspec.to_builtins(report), option=option)


def report_from_json(text: bytes | str) -> Report:
    """Parse JSON text produced by :func:`report_to_json` (one typed msgspec decode)."""
    try:
        report = msgspec.json.decode(text, type=Report)
    except msgspec.ValidationError as exc:
        _check_version(_version_of(text))
        if _NULL_FLOAT.match(str(exc)) is None:
            raise ReportFormatError(f"report: {exc}") from None
        return _convert(msgspec.json.decode(text), owned=True)
    except msgspec.DecodeError as exc:
        raise ReportFormatError(f"not a JSON report: {exc}") from None
    _check_version(report.schema_version)
    return report


def _version_of(text: bytes | str) -> Any:
    try:
        return msgspec.json.decode(text, type=_Version).schema_version
    except (msgspec.ValidationError, msgspec.DecodeError):
        return None


def _check_version(version: Any) -> None:
    if version != SCHEMA_VERSION or isinstance(version, bool):
        raise ReportFormatError(
            f"report schema_version {version!r} is not supported "
            f"(this tailscope reads version {SCHEMA_VERSION})"
        )


def _convert(document: Any, *, owned: bool) -> Report:
    """``msgspec.convert`` to a Report; each ``null`` that stands for a non-finite float is
    replaced by NaN at the path msgspec reports (in a copy unless ``owned``), then the
    conversion is retried."""
    for _ in range(_MAX_NULL_FLOATS):
        try:
            report = msgspec.convert(document, type=Report)
        except msgspec.ValidationError as exc:
            match = _NULL_FLOAT.match(str(exc))
            if match is None:
                raise ReportFormatError(f"report: {exc}") from None
            if not owned:
                document, owned = copy.deepcopy(document), True
            if not _set_nan(document, match.group("path")):
                raise ReportFormatError(f"report: {exc}") from None
            continue
        assert isinstance(report, Report)
        return report
    raise ReportFormatError("report: too many null numbers")


def _set_nan(document: Any, path: str) -> bool:
    """Replace the ``None`` at ``path`` (``.hops[3].variance_share_ci[0]``) by NaN."""
    steps: list[str | int] = []
    at = 0
    for found in _PATH_STEP.finditer(path):
        if found.start() != at:
            return False
        at = found.end()
        steps.append(int(found["index"]) if found["index"] is not None else found["key"])
    if at != len(path) or not steps:
        return False
    parent = document
    for step in steps[:-1]:
        parent = parent[step]
    last = steps[-1]
    if isinstance(parent, tuple):
        return False
    if parent[last] is not None:
        return False
    parent[last] = math.nan
    return True
