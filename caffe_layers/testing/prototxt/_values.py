"""Typed reads of prototxt values for consumers that know the schema: bool, enum, int, ..."""

from __future__ import annotations

from typing import Any, Mapping

from caffe_layers.testing.prototxt._message import Identifier, Message, PrototxtError

__all__ = ["as_bool", "as_enum", "as_float", "as_int", "as_str"]

_TRUE = {"true", "True", "t"}
_FALSE = {"false", "False", "f"}


def _shown(value: Any) -> str:
    if isinstance(value, Message):
        return "a message { ... }"
    if isinstance(value, Identifier):
        return str(value)
    return repr(value)


def as_bool(value: Any, name: str = "value") -> bool:
    """``true``/``false`` (also ``True``/``False``/``t``/``f``) or ``1``/``0`` as a bool."""
    if isinstance(value, Identifier) and value in _TRUE | _FALSE:
        return value in _TRUE
    if type(value) is int and value in (0, 1):
        return bool(value)
    raise PrototxtError(f"{name}: expected true or false, got {_shown(value)}",
                        f"write {name}: true or {name}: false")


def as_enum(value: Any, names: Mapping[str, int], name: str = "value") -> int:
    """An enum value given by name (``TRAIN``) or number (``0``), checked against ``names``."""
    choices = ", ".join(f"{key} ({number})" for key, number in names.items())
    if isinstance(value, Identifier) and value in names:
        return names[value]
    if type(value) is int and value in names.values():
        return value
    fix = f"write one of {choices} without quotes" if isinstance(value, str) else \
        f"write one of {choices}"
    raise PrototxtError(f"{name}: unknown value {_shown(value)}", fix)


def as_int(value: Any, name: str = "value") -> int:
    """An integer value."""
    if type(value) is int:
        return value
    raise PrototxtError(f"{name}: expected an integer, got {_shown(value)}",
                        f"write e.g. {name}: 100")


def as_float(value: Any, name: str = "value") -> float:
    """A number (an int is accepted, as protobuf does for float fields)."""
    if type(value) in (int, float):
        return float(value)
    raise PrototxtError(f"{name}: expected a number, got {_shown(value)}",
                        f"write e.g. {name}: 0.01")


def as_str(value: Any, name: str = "value") -> str:
    """A quoted string value."""
    if type(value) is str:
        return value
    raise PrototxtError(f"{name}: expected a quoted string, got {_shown(value)}",
                        f"write {name}: \"...\"")
