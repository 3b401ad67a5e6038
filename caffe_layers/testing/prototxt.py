"""A schema-less reader for protobuf text format: Caffe's ``.prototxt`` net and solver files.

It reads what Caffe's own parser reads (``#`` comments, ``name: value``, quoted strings with C
escapes and adjacent-string concatenation, ``name { }`` / ``name: { }`` / ``name < >`` messages,
``,``/``;`` separators, ``name: [a, b]`` lists, numbers, bare enum words) without knowing the
schema: every message becomes a :class:`Message`, an ordered multimap of ``(name, value)``.
Consumers interpret values with :func:`as_bool`, :func:`as_enum`, :func:`as_int`, :func:`as_float`
and :func:`as_str`.

Values are ``str`` (quoted), ``int``, ``float``, :class:`Identifier` (a bare word such as ``TRAIN``
or ``true``) or a nested :class:`Message`. Syntax errors raise :class:`PrototxtError` with the
message ``"<source>:<line>:<col>: <what> (<how to fix>)"``.
"""

from __future__ import annotations

import math
import re
from typing import Any, Iterable, Iterator, Mapping

from caffe_layers.errors import CaffeLayersError

__all__ = ["Identifier", "Message", "PrototxtError", "as_bool", "as_enum", "as_float", "as_int",
           "as_str", "parse", "parse_file", "to_text"]


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


# --------------------------------------------------------------------------------------- tokens

_SPACE = re.compile(r"(?:\s+|#[^\n]*)+")
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_NUMBER = re.compile(r"0[xX][0-9a-fA-F]+|(?:\d+\.\d*|\.\d+|\d+)(?:[eE][+-]?\d+)?[fF]?")
_NUMBER_END = re.compile(r"[A-Za-z0-9_.]")
_SYMBOLS = "{}<>[]:,;-"
_SIMPLE_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "a": "\a", "b": "\b", "f": "\f", "v": "\v",
                   "\\": "\\", "'": "'", '"': '"', "?": "?"}
_FLOAT_WORDS = {"inf": math.inf, "infinity": math.inf, "nan": math.nan}


class _Token:
    __slots__ = ("kind", "text", "value", "line", "col")

    def __init__(self, kind: str, text: str, value: Any, line: int, col: int) -> None:
        self.kind, self.text, self.value, self.line, self.col = kind, text, value, line, col

    def describe(self) -> str:
        if self.kind == "eof":
            return "the end of the file"
        if self.kind == "string":
            return "a string"
        return repr(self.text)


class _Lexer:
    """Splits text into tokens: ident, number, string, a symbol of ``{}<>[]:,;-``, eof."""

    def __init__(self, text: str, source: str) -> None:
        self.text, self.source = text, source
        self.pos = 0
        self._located, self._line, self._line_start = 0, 1, 0

    def locate(self, pos: int) -> tuple[int, int]:
        """1-based (line, column) of ``pos``; incremental, since tokens come in order."""
        if pos < self._located:
            self._located, self._line, self._line_start = 0, 1, 0
        newlines = self.text.count("\n", self._located, pos)
        if newlines:
            self._line += newlines
            self._line_start = self.text.rfind("\n", self._located, pos) + 1
        self._located = pos
        return self._line, pos - self._line_start + 1

    def error(self, what: str, fix: str, pos: int | None = None) -> PrototxtError:
        line, col = self.locate(self.pos if pos is None else pos)
        return PrototxtError(what, fix, self.source, line, col)

    def tokens(self) -> Iterator[_Token]:
        text = self.text
        while True:
            space = _SPACE.match(text, self.pos)
            if space:
                self.pos = space.end()
            line, col = self.locate(self.pos)
            if self.pos >= len(text):
                yield _Token("eof", "", None, line, col)
                return
            kind, token_text, value = self._next()
            yield _Token(kind, token_text, value, line, col)

    def _next(self) -> tuple[str, str, Any]:
        text, start = self.text, self.pos
        char = text[start]
        if char in "\"'":
            value = self._string(char)
            return "string", text[start:self.pos], value
        if char in _SYMBOLS:
            self.pos += 1
            return "symbol", char, None
        number = _NUMBER.match(text, start)
        if number:
            self.pos = number.end()
            return "number", number.group(), self._number(number.group(), start)
        ident = _IDENT.match(text, start)
        if ident:
            self.pos = ident.end()
            return "ident", ident.group(), Identifier(ident.group())
        raise self.error(f"unexpected character {char!r}",
                         "fields are written name: value or name { ... }")

    def _number(self, text: str, start: int) -> int | float:
        if _NUMBER_END.match(self.text, self.pos):
            end = self.pos
            while end < len(self.text) and _NUMBER_END.match(self.text, end):
                end += 1
            raise self.error(f"invalid number {self.text[start:end]!r}",
                             "write e.g. 42, -3, 0x1f, 0.5, 1e-3 or 2.5f", start)
        if text[:2] in ("0x", "0X"):
            return int(text, 16)
        if text[-1] in "fF" or any(c in text for c in ".eE"):
            return float(text.rstrip("fF"))
        if len(text) > 1 and text[0] == "0":
            if not set(text) <= set("01234567"):
                raise self.error(f"invalid octal number {text!r}",
                                 "a leading 0 means octal; drop the leading zeros", start)
            return int(text, 8)
        return int(text)

    def _string(self, quote: str) -> str:
        """Read one quoted string at ``pos`` with C escapes; bytes escapes are UTF-8 decoded."""
        text, start = self.text, self.pos
        out = bytearray()
        pos = start + 1
        while True:
            if pos >= len(text) or text[pos] == "\n":
                raise self.error("unterminated string",
                                 f"close it with {quote} on the same line; for a value over "
                                 f"several lines write adjacent strings \"line 1\\n\" \"line 2\"",
                                 start)
            char = text[pos]
            if char == quote:
                self.pos = pos + 1
                return out.decode("utf-8", errors="surrogateescape")
            if char == "\\":
                pos = self._escape(pos, out)
                continue
            out += char.encode("utf-8", errors="surrogateescape")
            pos += 1

    def _escape(self, pos: int, out: bytearray) -> int:
        """Decode the escape whose backslash is at ``pos`` into ``out``; return the next pos."""
        text = self.text
        char = text[pos + 1] if pos + 1 < len(text) else ""
        if char in _SIMPLE_ESCAPES:
            out += _SIMPLE_ESCAPES[char].encode()
            return pos + 2
        octal = re.match(r"[0-7]{1,3}", text[pos + 1:pos + 4])
        if octal:
            out.append(int(octal.group(), 8) & 0xFF)
            return pos + 1 + octal.end()
        hexa = re.match(r"[xX]([0-9a-fA-F]{1,2})", text[pos + 1:pos + 4])
        if hexa:
            out.append(int(hexa.group(1), 16))
            return pos + 1 + hexa.end()
        uni = re.match(r"u([0-9a-fA-F]{4})|U([0-9a-fA-F]{8})", text[pos + 1:pos + 10])
        if uni:
            out += chr(int(uni.group(1) or uni.group(2), 16)).encode("utf-8", "surrogatepass")
            return pos + 1 + uni.end()
        raise self.error(f"invalid escape '\\{char}' in string",
                         "use \\\\ for a backslash; known escapes: \\n \\t \\\\ \\\" \\' \\xNN "
                         "\\NNN", pos)


# --------------------------------------------------------------------------------------- parser

_CLOSERS = {"{": "}", "<": ">"}


class _Parser:
    def __init__(self, text: str, source: str) -> None:
        self.lexer = _Lexer(text, source)
        self.source = source
        self.stream = self.lexer.tokens()
        self.tok = next(self.stream)

    def advance(self) -> _Token:
        tok, self.tok = self.tok, next(self.stream)
        return tok

    def at(self, text: str) -> bool:
        return self.tok.kind == "symbol" and self.tok.text == text

    def error(self, what: str, fix: str, tok: _Token | None = None) -> PrototxtError:
        tok = tok or self.tok
        return PrototxtError(what, fix, self.source, tok.line, tok.col)

    def parse(self) -> Message:
        msg = Message(source=self.source, line=1, col=1)
        self.fields(msg, closer=None)
        return msg

    def fields(self, msg: Message, closer: str | None, opener: _Token | None = None) -> None:
        """Fields up to ``closer`` (consumed) or, at the top level, the end of the file."""
        while True:
            tok = self.tok
            if tok.kind == "eof":
                if closer is None:
                    return
                raise self.error(f"{opener.text!r} opened here is never closed",
                                 f"add {closer!r} before the end of the file", opener)
            if tok.kind == "symbol" and tok.text in "}>":
                self.advance()
                if tok.text == closer:
                    return
                if closer is None:
                    raise self.error(f"unexpected {tok.text!r} with no open message",
                                     "remove it or add the matching opening brace", tok)
                raise self.error(f"expected {closer!r} to close {opener.text!r} opened at line "
                                 f"{opener.line}, column {opener.col}, got {tok.text!r}",
                                 f"close with {closer!r}", tok)
            self.field(msg)
            if self.at(",") or self.at(";"):
                self.advance()

    def field(self, msg: Message) -> None:
        tok = self.tok
        if tok.kind != "ident":
            raise self.error(f"expected a field name, got {tok.describe()}",
                             "fields are written name: value or name { ... }")
        name = str(self.advance().text)
        colon = self.at(":")
        if colon:
            self.advance()
        if self.at("{") or self.at("<"):
            msg.add(name, self.message(tok), tok.line, tok.col)
        elif self.at("["):
            for value in self.list_values(tok):
                msg.add(name, value, tok.line, tok.col)
        elif colon:
            msg.add(name, self.scalar(tok), tok.line, tok.col)
        else:
            raise self.error(f"expected ':' or '{{' after {name!r}, got {self.tok.describe()}",
                             f"write {name}: value or {name} {{ ... }}")

    def message(self, name_tok: _Token | None = None) -> Message:
        """A nested message; it is located at its field name (or its brace, in a list)."""
        opener = self.advance()
        at = name_tok or opener
        msg = Message(source=self.source, line=at.line, col=at.col)
        self.fields(msg, _CLOSERS[opener.text], opener)
        return msg

    def list_values(self, name_tok: _Token) -> list:
        name = name_tok.text
        opener = self.advance()
        values: list = []
        if self.at("]"):
            self.advance()
            return values
        while True:
            values.append(self.message() if self.at("{") or self.at("<") else self.scalar(name_tok))
            if self.at("]"):
                self.advance()
                return values
            if not self.at(","):
                raise self.error(f"expected ',' or ']' in the list of {name!r} opened at line "
                                 f"{opener.line}, column {opener.col}, got {self.tok.describe()}",
                                 f"separate the values with commas, e.g. {name}: [1, 2]")
            self.advance()

    def scalar(self, name_tok: _Token) -> Any:
        """The value of field ``name_tok`` (adjacent strings joined, ``-`` applied)."""
        tok, name = self.tok, name_tok.text
        missing = PrototxtError(f"missing value for {name!r}", f"write {name}: <value>",
                                self.source, name_tok.line, name_tok.col)
        if tok.kind == "string":
            parts = []
            while self.tok.kind == "string":
                parts.append(self.advance().value)
            return "".join(parts)
        if tok.kind == "number":
            return self.advance().value
        if tok.kind == "symbol" and tok.text == "-":
            return self.negative(name)
        if tok.kind == "ident":
            self.advance()
            if self.at(":") or self.at("{") or self.at("<"):
                raise missing  # the word was the next field's name
            return _FLOAT_WORDS.get(tok.text.lower(), tok.value)
        raise missing

    def negative(self, name: str) -> int | float:
        sign = self.advance()
        tok = self.tok
        if tok.kind == "number":
            return -self.advance().value
        if tok.kind == "ident" and tok.text.lower() in _FLOAT_WORDS:
            return -_FLOAT_WORDS[self.advance().text.lower()]
        raise self.error(f"expected a number after '-' in the value of {name!r}, got "
                         f"{tok.describe()}", f"write {name}: -1.5", sign)


def parse(text: str, source: str = "<string>") -> Message:
    """Parse prototxt ``text``; ``source`` names it in error messages."""
    return _Parser(text, source).parse()


def parse_file(path: Any) -> Message:
    """Parse the prototxt file at ``path`` (UTF-8); errors name the path."""
    with open(path, encoding="utf-8") as handle:
        text = handle.read()
    return parse(text, source=str(path))


# --------------------------------------------------------------------------------------- values

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
