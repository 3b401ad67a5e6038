"""The prototxt data model: :class:`Message`, :class:`Identifier`, :class:`PrototxtError`.

Also :func:`to_text`, the message written back as prototxt text (its ``str`` and ``repr``).
"""

from __future__ import annotations

from typing import Any, Iterable, Iterator

from caffe_layers.errors import CaffeLayersError

__all__ = ["Identifier", "Message", "PrototxtError", "to_text"]


class PrototxtError(CaffeLayersError, ValueError):
    """A prototxt file is malformed, or a value does not have the type its consumer needs.

    ``source``, ``line`` and ``col`` locate syntax errors (``line``/``col`` are 0 when unknown).
    """

    def __init__(self, what: str, fix: str = "", source: str = "", line: int = 0,
                 col: int = 0) -> None:
        where = f"{source}:{line}:{col}: " if source and line else (f"{source}: " if source else "")
        super().__init__(f"{where}{what}" + (f" ({fix})" if fix else ""))
        self.source, self.line, self.col = source, line, col
        self.what, self.fix = what, fix


class Identifier(str):
    """A bare word in a prototxt value position: an enum name (``TRAIN``) or ``true``/``false``."""

    __slots__ = ()

    def __repr__(self) -> str:
        return f"Identifier({str.__repr__(self)})"


class Message:
    """One prototxt message: an ordered multimap of ``(name, value)`` pairs in file order.

    ``name: [a, b]`` is stored as two fields ``name: a``, ``name: b``, as protobuf does for repeated
    fields. ``source``/``line``/``col`` say where the message starts, for consumers' errors.
    """

    def __init__(self, fields: Iterable[tuple[str, Any]] = (), *, source: str = "",
                 line: int = 0, col: int = 0) -> None:
        self.fields: list[tuple[str, Any]] = []
        self._places: list[tuple[int, int]] = []
        self.source, self.line, self.col = source, line, col
        for name, value in fields:
            self.add(name, value)

    def add(self, name: str, value: Any, line: int = 0, col: int = 0) -> None:
        """Append field ``name`` (``line``/``col``: where it was written, 0 if unknown)."""
        self.fields.append((name, value))
        self._places.append((line, col))

    def get(self, name: str, default: Any = None) -> Any:
        """The value of the last occurrence of ``name`` (protobuf's rule for singular fields)."""
        for field_name, value in reversed(self.fields):
            if field_name == name:
                return value
        return default

    def getall(self, name: str) -> list:
        """Every value of ``name``, in file order."""
        return [value for field_name, value in self.fields if field_name == name]

    def names(self) -> list:
        """The distinct field names, in order of first occurrence."""
        return list(dict.fromkeys(name for name, _ in self.fields))

    def location(self, name: str | None = None) -> tuple[str, int, int]:
        """``(source, line, col)`` of the last ``name`` field, or of the message; 0 if unknown."""
        line, col = self.line, self.col
        if name is not None:
            for (field_name, _), place in zip(reversed(self.fields), reversed(self._places)):
                if field_name == name:
                    line, col = place
                    break
        return self.source, line, col

    def where(self, name: str | None = None) -> str:
        """``"source:line:col"`` of the last ``name`` field (or of the message itself)."""
        source, line, col = self.location(name)
        source = source or "<message>"
        return f"{source}:{line}:{col}" if line else source

    def __contains__(self, name: object) -> bool:
        return any(field_name == name for field_name, _ in self.fields)

    def __iter__(self) -> Iterator[tuple[str, Any]]:
        return iter(self.fields)

    def __len__(self) -> int:
        return len(self.fields)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Message):
            return NotImplemented
        return _typed(self.fields) == _typed(other.fields)

    __hash__ = None  # mutable

    def __repr__(self) -> str:
        return f"Message({to_text(self, indent=None)})"

    def __str__(self) -> str:
        return to_text(self)


def _typed(fields: list) -> list:
    """Fields with each value's kind, so ``"TRAIN"`` != ``TRAIN`` and ``1`` != ``1.0``."""
    return [(name, type(value), value) for name, value in fields]


# ------------------------------------------------------------------------------------ formatting

def _quote(text: str) -> str:
    out = []
    for char in text.encode("utf-8", errors="surrogateescape"):
        if char in b'"\\':
            out.append("\\" + chr(char))
        elif 32 <= char < 127:
            out.append(chr(char))
        else:
            out.append(f"\\{char:03o}")
    return '"' + "".join(out) + '"'


def _scalar_text(value: Any) -> str:
    if isinstance(value, Identifier):
        return str(value)
    if isinstance(value, str):
        return _quote(value)
    if isinstance(value, float):
        return repr(value)
    if type(value) is int:
        return str(value)
    raise TypeError(f"cannot write a {type(value).__name__} as a prototxt value")


def to_text(msg: Message, indent: int | None = 2) -> str:
    """``msg`` as prototxt text that :func:`parse` reads back equal; one line if indent is None."""
    lines = list(_text_lines(msg, 0, indent or 0))
    if indent is None:
        return " ".join(line.strip() for line in lines)
    return "\n".join(lines) + ("\n" if lines else "")


def _text_lines(msg: Message, depth: int, indent: int) -> Iterator[str]:
    pad = " " * (depth * indent)
    for name, value in msg.fields:
        if isinstance(value, Message):
            yield f"{pad}{name} {{"
            yield from _text_lines(value, depth + 1, indent)
            yield f"{pad}}}"
        else:
            yield f"{pad}{name}: {_scalar_text(value)}"
