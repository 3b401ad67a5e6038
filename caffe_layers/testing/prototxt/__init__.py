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

The parts: ``_message`` (the types and :func:`to_text`), ``_lexer`` and ``_parser`` (text to
messages), ``_values`` (the typed reads). Import everything from this package.
"""

from __future__ import annotations

from caffe_layers.testing.prototxt._message import Identifier, Message, PrototxtError, to_text
from caffe_layers.testing.prototxt._parser import parse, parse_file
from caffe_layers.testing.prototxt._values import as_bool, as_enum, as_float, as_int, as_str

__all__ = ["Identifier", "Message", "PrototxtError", "as_bool", "as_enum", "as_float", "as_int",
           "as_str", "parse", "parse_file", "to_text"]
