"""The report's JSON codec: :class:`~tailscope.report.model.Report` <-> dict <-> JSON text.

The dict form uses the model's field names as keys (documented in ``docs/report-schema.md``):
tuples become lists, nested dataclasses objects, non-finite floats ``null``. Decoding is driven by
the model's type hints, so ``report_from_dict(report_to_dict(r)) == r`` for every report, and a
document of another ``schema_version`` (or one with missing or mistyped keys) raises
:class:`ReportFormatError` with one line saying what is wrong. Unknown keys are ignored, so
readers of version 1 accept documents that later minor additions extend.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from typing import Any, Literal, TypeVar, Union, get_args, get_origin

import orjson

from tailscope.errors import InputError
from tailscope.report.model import SCHEMA_VERSION, Report

T = TypeVar("T")


class ReportFormatError(InputError):
    """A report document that this version of tailscope cannot read."""


def report_to_dict(report: Report) -> dict[str, Any]:
    """The report as plain JSON-ready Python values (dicts, lists, str, int, float, bool, None)."""
    encoded = _encode(report)
    assert isinstance(encoded, dict)
    return encoded


def _encode(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _encode(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, tuple | list):
        return [_encode(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _encode(v) for k, v in value.items()}
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
    version = document.get("schema_version")
    if version != SCHEMA_VERSION:
        raise ReportFormatError(
            f"report schema_version {version!r} is not supported "
            f"(this tailscope reads version {SCHEMA_VERSION})"
        )
    report = _decode(Report, document, "report")
    assert isinstance(report, Report)
    return report


def report_to_json(report: Report, indent: bool = True) -> bytes:
    """The report as UTF-8 JSON text (2-space indented unless ``indent`` is False)."""
    option = orjson.OPT_INDENT_2 if indent else 0
    return orjson.dumps(report_to_dict(report), option=option)


def report_from_json(text: bytes | str) -> Report:
    """Parse JSON text produced by :func:`report_to_json`."""
    try:
        document = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        raise ReportFormatError(f"not a JSON report: {exc}") from exc
    return report_from_dict(document)


def _decode(kind: Any, value: Any, where: str) -> Any:
    origin = get_origin(kind)
    if dataclasses.is_dataclass(kind) and isinstance(kind, type):
        if not isinstance(value, dict):
            raise ReportFormatError(f"{where}: expected an object, got {type(value).__name__}")
        hints = typing.get_type_hints(kind)
        kwargs: dict[str, Any] = {}
        for f in dataclasses.fields(kind):
            if f.name not in value:
                has_default = (
                    f.default is not dataclasses.MISSING
                    or f.default_factory is not dataclasses.MISSING
                )
                if has_default:
                    continue
                raise ReportFormatError(f"{where}: missing key {f.name!r}")
            kwargs[f.name] = _decode(hints[f.name], value[f.name], f"{where}.{f.name}")
        return kind(**kwargs)
    if origin in (Union, types.UnionType):
        options = get_args(kind)
        if value is None and type(None) in options:
            return None
        inner = [o for o in options if o is not type(None)]
        if len(inner) == 1:
            return _decode(inner[0], value, where)
        raise ReportFormatError(f"{where}: unsupported union type {kind}")
    if origin is tuple:
        args = get_args(kind)
        if not isinstance(value, list):
            raise ReportFormatError(f"{where}: expected a list, got {type(value).__name__}")
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_decode(args[0], v, f"{where}[{i}]") for i, v in enumerate(value))
        if len(value) != len(args):
            raise ReportFormatError(f"{where}: expected {len(args)} items, got {len(value)}")
        return tuple(
            _decode(a, v, f"{where}[{i}]") for i, (a, v) in enumerate(zip(args, value, strict=True))
        )
    if origin is dict:
        key_type, value_type = get_args(kind)
        if not isinstance(value, dict):
            raise ReportFormatError(f"{where}: expected an object, got {type(value).__name__}")
        return {
            _decode(key_type, k, where): _decode(value_type, v, f"{where}.{k}")
            for k, v in value.items()
        }
    if origin is Literal:
        if value not in get_args(kind):
            raise ReportFormatError(
                f"{where}: {value!r} is not one of {', '.join(map(str, get_args(kind)))}"
            )
        return value
    if kind is float:
        if value is None:
            return math.nan
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ReportFormatError(f"{where}: expected a number, got {type(value).__name__}")
        return float(value)
    if kind is int or kind is bool or kind is str:
        if type(value) is not kind:
            raise ReportFormatError(
                f"{where}: expected {kind.__name__}, got {type(value).__name__}"
            )
        return value
    raise ReportFormatError(f"{where}: unsupported type {kind}")
