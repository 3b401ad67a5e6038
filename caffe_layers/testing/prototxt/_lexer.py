"""The prototxt tokenizer: text to tokens with their line and column, strings unescaped."""

from __future__ import annotations

import re
from typing import Any, Iterator

from caffe_layers.testing.prototxt._message import Identifier, PrototxtError

__all__ = ["Lexer", "Token"]

_SPACE = re.compile(r"(?:\s+|#[^\n]*)+")
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_NUMBER = re.compile(r"0[xX][0-9a-fA-F]+|(?:\d+\.\d*|\.\d+|\d+)(?:[eE][+-]?\d+)?[fF]?")
_NUMBER_END = re.compile(r"[A-Za-z0-9_.]")
_SYMBOLS = "{}<>[]:,;-"
_SIMPLE_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "a": "\a", "b": "\b", "f": "\f", "v": "\v",
                   "\\": "\\", "'": "'", '"': '"', "?": "?"}


class Token:
    """One token: its kind, its text, its value (numbers, strings, words) and where it starts."""

    __slots__ = ("kind", "text", "value", "line", "col")

    def __init__(self, kind: str, text: str, value: Any, line: int, col: int) -> None:
        self.kind, self.text, self.value, self.line, self.col = kind, text, value, line, col

    def describe(self) -> str:
        if self.kind == "eof":
            return "the end of the file"
        if self.kind == "string":
            return "a string"
        return repr(self.text)


class Lexer:
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

    def tokens(self) -> Iterator[Token]:
        text = self.text
        while True:
            space = _SPACE.match(text, self.pos)
            if space:
                self.pos = space.end()
            line, col = self.locate(self.pos)
            if self.pos >= len(text):
                yield Token("eof", "", None, line, col)
                return
            kind, token_text, value = self._next()
            yield Token(kind, token_text, value, line, col)

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

