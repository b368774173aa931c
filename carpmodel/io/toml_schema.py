"""TOML files and frozen dataclasses: read a file, map its tables onto nested dataclasses with
errors that name the file and dotted key, and write a dataclass back as TOML.

The machinery behind :mod:`carpmodel.io.config` (and the strategies and ensemble files):
:func:`from_mapping` and :func:`to_toml` handle nested dataclasses, tuples (of scalars or of
dataclasses, written as ``[[section]]``), ``Literal`` choices and ``Mapping[str, ...]`` tables
without further code; :func:`check_choices` checks ``Literal`` fields of objects built in Python.
"""

from __future__ import annotations

import dataclasses
import math
import re
import tomllib
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any, Literal, TypeVar

from carpmodel.errors import ConfigError

__all__ = ["check_choices", "from_mapping", "read_toml", "to_toml"]

T = TypeVar("T")


def check_choices(obj: Any) -> None:
    """Raise ConfigError if a ``Literal``-typed field of dataclass ``obj`` holds another value.

    Call it from ``__post_init__`` so that objects built in Python are checked like TOML.
    """
    hints = typing.get_type_hints(type(obj))
    for f in dataclasses.fields(obj):
        tp = hints[f.name]
        value = getattr(obj, f.name)
        if typing.get_origin(tp) is Literal and value not in typing.get_args(tp):
            raise ConfigError(f"{f.name}: expected {_describe(tp)}, got {value!r}")


# --------------------------------------------------------------------------- mapping -> dataclass


def _dotted(prefix: str, name: str) -> str:
    return f"{prefix}.{name}" if prefix else name


def _describe(tp: Any) -> str:
    """Human description of a type, for error messages."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in args)
    if origin in (typing.Union, types.UnionType):
        return " or ".join("nothing" if a is type(None) else _describe(a) for a in args)
    if origin is tuple:
        if len(args) == 2 and args[1] is Ellipsis:
            return f"an array of {_describe(args[0])}"
        return f"an array of {len(args)} values ({', '.join(_describe(a) for a in args)})"
    if origin in (Mapping, dict):
        return f"a table of {_describe(args[1])}" if args else "a table"
    if dataclasses.is_dataclass(tp):
        return "a table"
    names = {bool: "true or false", int: "an integer", float: "a number", str: "a string"}
    return names.get(tp, getattr(tp, "__name__", str(tp)))


def _type_error(where: str, key: str, tp: Any, value: Any) -> ConfigError:
    return ConfigError(
        f"{where}, key {key}: expected {_describe(tp)}, got {value!r} ({type(value).__name__})"
    )


def _convert(tp: Any, value: Any, where: str, key: str) -> Any:
    """Check ``value`` against type ``tp`` and convert it (lists to tuples, ints to floats)."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if tp is Any:
        return value
    if dataclasses.is_dataclass(tp):
        return from_mapping(tp, value, where, prefix=key)
    if origin is Literal:
        if any(value == a and type(value) is type(a) for a in args):
            return value
        raise _type_error(where, key, tp, value)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        for option in (a for a in args if a is not type(None)):
            try:
                return _convert(option, value, where, key)
            except ConfigError:
                continue
        raise _type_error(where, key, tp, value)
    if origin is tuple:
        if not isinstance(value, list | tuple):
            raise _type_error(where, key, tp, value)
        if len(args) == 2 and args[1] is Ellipsis:
            item_types = [args[0]] * len(value)
        elif len(args) != len(value):
            raise _type_error(where, key, tp, value)
        else:
            item_types = list(args)
        return tuple(
            _convert(t, v, where, f"{key}[{i}]")
            for i, (t, v) in enumerate(zip(item_types, value, strict=True))
        )
    if origin in (Mapping, dict):
        if not isinstance(value, Mapping):
            raise _type_error(where, key, tp, value)
        value_type = args[1] if args else Any
        return MappingProxyType(
            {str(k): _convert(value_type, v, where, _dotted(key, str(k))) for k, v in value.items()}
        )
    if tp is bool:
        if isinstance(value, bool):
            return value
    elif tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif tp is float:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
    elif tp is str:
        if isinstance(value, str):
            return value
    else:
        raise TypeError(f"config field type {tp!r} is not supported by from_mapping")
    raise _type_error(where, key, tp, value)


def from_mapping(cls: type[T], mapping: Any, where: str, *, prefix: str = "") -> T:
    """Build frozen dataclass ``cls`` (and its nested dataclasses) from a parsed TOML table.

    Parameters
    ----------
    cls : dataclass type
        Target type; field annotations decide the checks (int, float, str, bool, Literal,
        tuple, Mapping, nested dataclass, ``X | None``).
    mapping : Mapping[str, Any]
        Parsed table (``tomllib`` output).
    where : str
        Where the table came from (usually the file path); starts every error message.
    prefix : str
        Dotted key of this table inside the file ("" for the top level).

    Raises
    ------
    ConfigError
        Unknown key (message lists the valid keys), missing key without default, wrong type,
        or a value refused by the dataclass's ``__post_init__``.
    """
    valid = f"valid keys in [{prefix}]" if prefix else "valid top-level keys"
    if not isinstance(mapping, Mapping):
        raise ConfigError(
            f"{where}, key {prefix or '(top level)'}: expected a table, got {mapping!r}"
        )
    init_fields = {f.name: f for f in dataclasses.fields(cls) if f.init}  # type: ignore[arg-type]
    hints = typing.get_type_hints(cls)
    for name in mapping:
        if name not in init_fields:
            raise ConfigError(
                f"{where}, key {_dotted(prefix, name)}: unknown key; {valid}: "
                f"{', '.join(init_fields)}"
            )
    kwargs = {}
    for name, f in init_fields.items():
        key = _dotted(prefix, name)
        if name in mapping:
            kwargs[name] = _convert(hints[name], mapping[name], where, key)
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise ConfigError(f"{where}, key {key}: missing; expected {_describe(hints[name])}")
    try:
        return cls(**kwargs)
    except ConfigError as exc:
        raise ConfigError(f"{where}, key {_dotted(prefix, str(exc))}") from None


# --------------------------------------------------------------------------- files


def read_toml(path: Path, what: str) -> dict[str, Any]:
    """Parse a UTF-8 TOML file; a missing file, bad bytes or bad TOML raise ConfigError naming it
    (and the line where known). ``what`` names the kind of file in the message."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(f"{path}: {what} does not exist") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read {what}: {exc.strerror}") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise ConfigError(f"{path}, line {line}: expected UTF-8 text, got invalid bytes") from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: invalid TOML: {exc}") from None


# --------------------------------------------------------------------------- TOML writer

_BARE_KEY = re.compile(r"^[A-Za-z0-9_-]+$")
_ESCAPES = {'"': '\\"', "\\": "\\\\", "\b": "\\b", "\t": "\\t", "\n": "\\n", "\f": "\\f",
            "\r": "\\r"}


def _toml_key(key: str) -> str:
    return key if _BARE_KEY.match(key) else _toml_string(key)


def _toml_string(text: str) -> str:
    out = []
    for ch in text:
        if ch in _ESCAPES:
            out.append(_ESCAPES[ch])
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def _toml_value(value: Any) -> str:
    """Inline TOML for a scalar, array or small table."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, str):
        return _toml_string(value)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, Mapping):
        items = ", ".join(f"{_toml_key(str(k))} = {_toml_value(v)}" for k, v in value.items())
        return "{" + items + "}"
    if dataclasses.is_dataclass(value):
        return _toml_value(
            {f.name: getattr(value, f.name) for f in dataclasses.fields(value)
             if getattr(value, f.name) is not None}
        )
    raise TypeError(f"cannot write {value!r} ({type(value).__name__}) as TOML")


def _is_table(value: Any) -> bool:
    return dataclasses.is_dataclass(value) or (
        isinstance(value, Mapping) and any(dataclasses.is_dataclass(v) for v in value.values())
    )


def _is_table_array(value: Any) -> bool:
    return (
        isinstance(value, tuple | list)
        and len(value) > 0
        and all(dataclasses.is_dataclass(v) for v in value)
    )


def _items(obj: Any) -> list[tuple[str, Any]]:
    if dataclasses.is_dataclass(obj):
        return [(f.name, getattr(obj, f.name)) for f in dataclasses.fields(obj)]
    return [(str(k), v) for k, v in obj.items()]


def _write_table(obj: Any, prefix: str, lines: list[str]) -> None:
    """Append the keys of ``obj`` (scalars first, then sub-tables) to ``lines``."""
    items = [(k, v) for k, v in _items(obj) if v is not None]
    for key, value in items:
        if not _is_table(value) and not _is_table_array(value):
            lines.append(f"{_toml_key(key)} = {_toml_value(value)}")
    for key, value in items:
        name = f"{prefix}.{_toml_key(key)}" if prefix else _toml_key(key)
        if _is_table(value):
            lines.extend(["", f"[{name}]"])
            _write_table(value, name, lines)
        elif _is_table_array(value):
            for element in value:
                lines.extend(["", f"[[{name}]]"])
                _write_table(element, name, lines)


def to_toml(config: Any) -> str:
    """Return ``config`` (a dataclass, e.g. :class:`RunConfig`) as TOML text.

    ``load_config`` of the text gives back an equal object. Fields set to None are left out,
    so a None field must have None as its default to round-trip.
    """
    lines: list[str] = []
    _write_table(config, "", lines)
    return "\n".join(lines).lstrip("\n") + "\n"
