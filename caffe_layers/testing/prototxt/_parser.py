"""The prototxt parser: tokens to nested :class:`Message` objects, errors located in the text."""

from __future__ import annotations

import math
from typing import Any

from caffe_layers.testing.prototxt._lexer import Lexer, Token
from caffe_layers.testing.prototxt._message import Message, PrototxtError

__all__ = ["parse", "parse_file"]

_FLOAT_WORDS = {"inf": math.inf, "infinity": math.inf, "nan": math.nan}
_CLOSERS = {"{": "}", "<": ">"}


class _Parser:
    def __init__(self, text: str, source: str) -> None:
        self.lexer = Lexer(text, source)
        self.source = source
        self.stream = self.lexer.tokens()
        self.tok = next(self.stream)

    def advance(self) -> Token:
        tok, self.tok = self.tok, next(self.stream)
        return tok

    def at(self, text: str) -> bool:
        return self.tok.kind == "symbol" and self.tok.text == text

    def error(self, what: str, fix: str, tok: Token | None = None) -> PrototxtError:
        tok = tok or self.tok
        return PrototxtError(what, fix, self.source, tok.line, tok.col)

    def parse(self) -> Message:
        msg = Message(source=self.source, line=1, col=1)
        self.fields(msg, closer=None)
        return msg

    def fields(self, msg: Message, closer: str | None, opener: Token | None = None) -> None:
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

    def message(self, name_tok: Token | None = None) -> Message:
        """A nested message; it is located at its field name (or its brace, in a list)."""
        opener = self.advance()
        at = name_tok or opener
        msg = Message(source=self.source, line=at.line, col=at.col)
        self.fields(msg, _CLOSERS[opener.text], opener)
        return msg

    def list_values(self, name_tok: Token) -> list:
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

    def scalar(self, name_tok: Token) -> Any:
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
