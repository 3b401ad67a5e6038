"""Caffe's image list format (``ImageData``'s ``source``): one ``path label`` sample per line.

The npy layer reads its ``id label`` lists in the same format, so the samples of such a file are
a :class:`SampleList`, whatever the paths name (images, ``.npy`` ids). Caffe's rules are kept: a
line is split at its last separator, so paths may contain spaces (leading spaces too belong to
the path), and ``root_folder`` is prepended by plain string concatenation. With
``label_columns: k`` the last ``k`` tokens are the labels. Differences, all of them for lists
Caffe would misread:

- a list written on Windows works unchanged: CRLF line ends, a UTF-8 byte-order mark, and
  backslashes in paths (turned into ``/`` on POSIX);
- blank lines are skipped (line numbers in messages still count them);
- a tab separates like a space, and runs of separators count as one;
- a label must be a decimal number (integer or float): anything else, a missing label, a label
  beyond float32 or an empty list is a :class:`DataError` naming ``list:line`` and the text,
  where Caffe's ``atoi`` silently reads 0.

The samples live in numpy-backed storage so that forked workers do not copy it page by page as
Python objects' reference counts change: the paths are one ``bytes`` buffer cut by an int64
offsets array, the labels a float32 ``(n, label_columns)`` array, the line numbers an int64 array.
"""

from __future__ import annotations

import codecs
import dataclasses
import os
import re
from typing import List, Tuple

import numpy as np

from caffe_layers.config import FLOAT32_MAX
from caffe_layers.errors import ConfigError, DataError, first_few
from caffe_layers.files import read_source

_NUMBER = re.compile(rb"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")


def _readonly(array: np.ndarray) -> np.ndarray:
    array.flags.writeable = False
    return array


def _parse_labels(tokens: List[bytes]) -> List[float] | None:
    """The tokens as floats, or ``None`` if one is not a finite float32 number."""
    values = []
    for token in tokens:
        if not token.isdigit() and _NUMBER.fullmatch(token) is None:
            return None
        value = float(token)
        if abs(value) > FLOAT32_MAX:
            return None
        values.append(value)
    return values


def _split_line(line: bytes, label_columns: int) -> Tuple[bytes, List[bytes]] | None:
    if label_columns == 0:
        return line, []
    parts = line.rsplit(None, label_columns)
    if len(parts) != label_columns + 1 or not parts[0].strip():
        return None
    return parts[0], parts[1:]


def _describe(label_columns: int) -> str:
    labels = "1 label" if label_columns == 1 else f"{label_columns} labels"
    return f"expected a path and {labels} separated by spaces"


@dataclasses.dataclass(frozen=True, eq=False)
class SampleList:
    """The samples of one list file (images or ids). Build with :meth:`read` (or :meth:`parse`).

    ``labels`` is float32 ``(n, label_columns)`` (``labels[:, 0]`` for Caffe's one label),
    ``lines`` the 1-based line of each sample, ``path_bytes[offsets[i]:offsets[i + 1]]`` the
    path of sample ``i`` as written in the list (backslashes already turned into ``/``).
    """

    source: str
    root_folder: str
    path_bytes: bytes
    offsets: np.ndarray
    labels: np.ndarray
    lines: np.ndarray

    @classmethod
    def read(cls, path: str, root_folder: str = "", label_columns: int = 1) -> SampleList:
        """Parse the list file ``path`` (see the module docstring for the rules)."""
        path = os.fspath(path)
        return cls.parse(read_source(path, "image list"), path, root_folder, label_columns)

    @classmethod
    def parse(cls, text: bytes, source: str = "<list>", root_folder: str = "",
              label_columns: int = 1) -> SampleList:
        """Parse the bytes of a list file; ``source`` names it in error messages."""
        if isinstance(label_columns, bool) or not isinstance(label_columns, int) \
                or label_columns < 0:
            raise ConfigError(f"label_columns: must be an integer >= 0 (got {label_columns!r})")
        if text.startswith(codecs.BOM_UTF8):
            text = text[len(codecs.BOM_UTF8):]
        paths: List[bytes] = []
        labels: List[float] = []
        numbers: List[int] = []
        problems: List[str] = []
        for number, raw in enumerate(text.split(b"\n"), 1):
            line = raw.rstrip()
            if not line:
                continue
            split = _split_line(line, label_columns)
            values = None if split is None else _parse_labels(split[1])
            if values is None:
                problems.append(cls._problem(source, number, line, label_columns, split))
                continue
            paths.append(split[0])
            labels.extend(values)
            numbers.append(number)
        cls._raise(source, problems)
        return cls._build(source, root_folder, paths, labels, numbers, label_columns)

    @staticmethod
    def _problem(source: str, number: int, line: bytes, label_columns: int,
                 split: Tuple[bytes, List[bytes]] | None) -> str:
        text = line.decode("utf-8", "replace")
        if split is None:
            return f"{source}:{number}: {_describe(label_columns)}, got {text!r}"
        bad = " ".join(t.decode("utf-8", "replace") for t in split[1])
        return (f"{source}:{number}: labels must be numbers (integer or float) within float32, "
                f"got {bad!r} in {text!r}")

    @staticmethod
    def _raise(source: str, problems: List[str]) -> None:
        if problems:
            raise DataError(f"{source}: {len(problems)} bad line(s) in the image list:\n  "
                            + first_few(problems, "\n  ", "bad lines"))

    @classmethod
    def _build(cls, source: str, root_folder: str, paths: List[bytes], labels: List[float],
               numbers: List[int], label_columns: int) -> SampleList:
        if not paths:
            raise DataError(f"{source}: the image list has no samples (the file is empty or has "
                            f"only blank lines)")
        buffer = b"".join(paths)
        if os.sep == "/":
            buffer = buffer.replace(b"\\", b"/")
        offsets = np.zeros(len(paths) + 1, np.int64)
        np.cumsum(np.fromiter(map(len, paths), np.int64, len(paths)), out=offsets[1:])
        label_array = np.array(labels, np.float32).reshape(len(paths), label_columns)
        return cls(source=source, root_folder=root_folder, path_bytes=buffer,
                   offsets=_readonly(offsets), labels=_readonly(label_array),
                   lines=_readonly(np.array(numbers, np.int64)))

    def __len__(self) -> int:
        return len(self.lines)

    def __repr__(self) -> str:
        return (f"SampleList(source={self.source!r}, root_folder={self.root_folder!r}, "
                f"samples={len(self)}, label_columns={self.labels.shape[1]})")

    def path(self, i: int) -> str:
        """Sample ``i``'s path, ``root_folder`` prepended as Caffe does (no separator added)."""
        count = len(self.lines)
        if not -count <= i < count:
            raise IndexError(f"sample {i} out of range for {count} samples of {self.source}")
        i %= count
        start, end = self.offsets[i], self.offsets[i + 1]
        return self.root_folder + os.fsdecode(self.path_bytes[start:end])

    def line(self, i: int) -> int:
        """The 1-based line number of sample ``i`` in the list file."""
        return int(self.lines[i])

    def where(self, i: int) -> str:
        """``'list:line'`` of sample ``i``, for error messages."""
        return f"{self.source}:{self.lines[i]}"
