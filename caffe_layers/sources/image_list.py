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
Python objects' reference counts change: the paths stay in the list's own bytes, found by an
int64 start and a uint16 length per sample; the labels are a float32 ``(n, label_columns)``
array; line numbers are kept only where blank lines shift them. The file is split vectorised
(:mod:`caffe_layers.sources.list_lines`), never into a Python object per line, so parsing a
100M-line list needs little more memory than the result.
"""

from __future__ import annotations

import codecs
import dataclasses
import os
import re
from typing import Any, List, Mapping, Tuple

import numpy as np

from caffe_layers.config import FLOAT32_MAX
from caffe_layers.errors import MAX_REPORTED, ConfigError, DataError, first_few
from caffe_layers.files import is_url, read_source, shown
from caffe_layers.sources.images import read_image
from caffe_layers.sources.list_lines import Lines, scan

_NUMBER = re.compile(rb"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")
_MAX_DECIMAL_CHARS = 17  # a sign, 15 digits and a point
_MAX_PATH_BYTES = 65535  # paths are stored with uint16 lengths (PATH_MAX is 4096)


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


def _decimal_labels(data: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> tuple:
    """``(values, parsed)``: tokens ``[+-]digits[.digits]`` of at most 15 digits read vectorised
    (``parsed`` is False for every other token). Such a value is ``M / 10**k`` with ``M`` and
    ``10**k`` exact in float64, so the division gives exactly ``float(token)``."""
    length = ends - starts
    parsed = (length >= 1) & (length <= _MAX_DECIMAL_CHARS)
    mantissa = np.zeros(len(starts), np.int64)
    digits, fraction = np.zeros_like(mantissa), np.zeros_like(mantissa)
    negative, dot = np.zeros(len(starts), bool), np.zeros(len(starts), bool)
    for position in range(_MAX_DECIMAL_CHARS):
        at = np.flatnonzero(parsed & (length > position))
        if not at.size:
            break
        char = data[starts[at] + position].astype(np.int64)
        digit = (char >= 48) & (char <= 57)
        sign = (position == 0) & ((char == 43) | (char == 45))
        point = (char == 46) & ~dot[at]
        parsed[at[~(digit | sign | point)]] = False
        negative[at[sign & (char == 45)]] = True
        dot[at[point]] = True
        number = at[digit]
        mantissa[number] = mantissa[number] * 10 + char[digit] - 48
        digits[number] += 1
        fraction[number] += dot[number]
    parsed &= (digits >= 1) & (digits <= 15)
    values = mantissa / 10.0 ** np.where(parsed, fraction, 0)
    return np.where(negative, -values, values), parsed


def _token_labels(text: bytes, lines: Lines) -> tuple:
    """``(labels (m, k) float32, valid per line)`` of a chunk's structurally valid lines."""
    count, columns = lines.tokens.shape[:2]
    starts, ends = lines.tokens[..., 0].ravel(), lines.tokens[..., 1].ravel()
    values, parsed = _decimal_labels(np.frombuffer(text, np.uint8), starts, ends)
    valid = np.ones(len(starts), bool)
    rest = np.flatnonzero(~parsed & np.repeat(lines.ok, columns))  # exponents, junk
    for token, start, end in zip(rest.tolist(), starts[rest].tolist(), ends[rest].tolist()):
        value = _parse_labels([text[start:end]])
        valid[token] = value is not None
        values[token] = value[0] if value is not None else 0.0
    valid = valid.reshape(count, columns).all(axis=1) & lines.ok
    return values.reshape(count, columns).astype(np.float32), valid


@dataclasses.dataclass(frozen=True)
class BadLine:
    """A malformed line of a list file: its 1-based ``number``, its ``text`` and the ``message``
    (``list:line: what is wrong, got '...'``)."""

    number: int
    text: str
    message: str


class _Samples:
    """The samples found so far, in arrays allocated once for every line of the text (chunks'
    arrays concatenated at the end would leave as much freed memory behind in the heap).

    ``lenient`` (for a tool that reports every problem): every bad line is kept as a
    :class:`BadLine` and the good lines are still collected.
    """

    def __init__(self, text: bytes, label_columns: int, lenient: bool = False) -> None:
        lines = text.count(b"\n") + 1
        self.starts = np.empty(lines, np.int64)
        self.lengths = np.empty(lines, np.uint16)
        self.labels = np.empty((lines, label_columns), np.float32)
        self.count, self.skipped = 0, 0
        self.gaps: List[Tuple[int, int]] = []  # (first sample, lines skipped before it)
        self.problems: List[str] = []
        self.bad = 0
        self.lenient = lenient
        self.bad_lines: List[BadLine] = []

    def add(self, starts: np.ndarray, lengths: np.ndarray, labels: np.ndarray,
            numbers: np.ndarray) -> None:
        end = self.count + len(starts)
        self.starts[self.count:end], self.lengths[self.count:end] = starts, lengths
        self.labels[self.count:end] = labels
        skipped = numbers - np.arange(self.count + 1, end + 1)
        for at in np.flatnonzero(np.diff(skipped, prepend=self.skipped)).tolist():
            self.gaps.append((self.count + at, int(skipped[at])))
        self.skipped = int(skipped[-1]) if len(skipped) else self.skipped
        self.count = end

    def arrays(self) -> tuple:
        """``(starts, lengths, labels, line_gaps)``, read-only."""
        gaps = np.array(self.gaps, np.int64).reshape(-1, 2).T
        return tuple(_readonly(a) for a in (self.starts[:self.count], self.lengths[:self.count],
                                            self.labels[:self.count], gaps))


@dataclasses.dataclass(frozen=True, eq=False)
class SampleList:
    """The samples of one list file (images or ids). Build with :meth:`read` (or :meth:`parse`).

    ``labels`` is float32 ``(n, label_columns)`` (``labels[:, 0]`` for Caffe's one label). The
    paths stay in the list's own bytes, ``text``: sample ``i``'s is ``text[starts[i]:starts[i] +
    lengths[i]]`` as written in the list. ``line_gaps`` gives the line numbers: ``(first sample,
    lines skipped before it)`` wherever blank lines shift them. About 54 bytes a line for a
    typical list (the text, 8 + 2 bytes of position, 4 per label), shared by forked workers.
    """

    source: str
    root_folder: str
    text: bytes
    starts: np.ndarray
    lengths: np.ndarray
    labels: np.ndarray
    line_gaps: np.ndarray

    @classmethod
    def read(cls, path: str, root_folder: str = "", label_columns: int = 1,
             storage_options: Mapping[str, Any] | None = None) -> SampleList:
        """Parse the list file ``path``, a local path or a URL (see the module docstring for the
        rules); messages name a URL without its credentials."""
        path = os.fspath(path)
        return cls.parse(read_source(path, "image list", storage_options), shown(path),
                         root_folder, label_columns)

    @classmethod
    def parse(cls, text: bytes, source: str = "<list>", root_folder: str = "",
              label_columns: int = 1) -> SampleList:
        """Parse the bytes of a list file; ``source`` names it in error messages."""
        text = bytes(text)
        samples = cls._scan(text, source, label_columns, lenient=False)
        cls._raise(source, samples.problems, samples.bad)
        if not samples.count:
            raise DataError(f"{source}: the image list has no samples (the file is empty or has "
                            f"only blank lines)")
        starts, lengths, labels, gaps = samples.arrays()
        return cls(source, root_folder, text, starts, lengths, labels, gaps)

    @classmethod
    def read_lenient(cls, path: str, root_folder: str = "", label_columns: int = 1
                     ) -> Tuple[SampleList | None, List[BadLine]]:
        """The samples of the good lines (None if there is none) and every malformed line, for
        a tool that reports them all instead of stopping at the first."""
        path = os.fspath(path)
        text = read_source(path, "image list")
        samples = cls._scan(text, path, label_columns, lenient=True)
        if not samples.count:
            return None, samples.bad_lines
        starts, lengths, labels, gaps = samples.arrays()
        return cls(path, root_folder, text, starts, lengths, labels, gaps), samples.bad_lines

    @classmethod
    def _scan(cls, text: bytes, source: str, label_columns: int, lenient: bool) -> _Samples:
        if isinstance(label_columns, bool) or not isinstance(label_columns, int) \
                or label_columns < 0:
            raise ConfigError(f"label_columns: must be an integer >= 0 (got {label_columns!r})")
        first = len(codecs.BOM_UTF8) if text.startswith(codecs.BOM_UTF8) else 0
        samples = _Samples(text, label_columns, lenient)
        for lines in scan(text, first, label_columns):
            cls._collect(text, lines, label_columns, source, samples)
        return samples

    @classmethod
    def _collect(cls, text: bytes, lines: Lines, label_columns: int, source: str,
                 samples: _Samples) -> None:
        labels, valid = _token_labels(text, lines)
        lengths = lines.path_ends - lines.starts
        too_long = valid & (lengths > _MAX_PATH_BYTES)
        valid &= ~too_long
        if samples.lenient:
            for i in np.flatnonzero(~valid).tolist():
                samples.bad_lines.append(cls._bad_line(text, lines, i, label_columns, source,
                                                       bool(too_long[i])))
            samples.add(lines.starts[valid], lengths[valid], labels[valid], lines.numbers[valid])
            return
        for i in np.flatnonzero(~valid)[:max(0, MAX_REPORTED - len(samples.problems))]:
            line = text[lines.starts[i]:lines.ends[i]]
            samples.problems.append(cls._problem(source, int(lines.numbers[i]), line,
                                                 label_columns, bool(too_long[i])))
        samples.bad += int((~valid).sum())
        if not samples.bad:  # once a line is bad, only the problems are still wanted
            samples.add(lines.starts[valid], lengths[valid], labels[valid], lines.numbers[valid])

    @classmethod
    def _bad_line(cls, text: bytes, lines: Lines, i: int, label_columns: int, source: str,
                  too_long: bool) -> BadLine:
        line, number = text[lines.starts[i]:lines.ends[i]], int(lines.numbers[i])
        return BadLine(number, line.decode("utf-8", "replace"),
                       cls._problem(source, number, line, label_columns, too_long))

    @staticmethod
    def _problem(source: str, number: int, line: bytes, label_columns: int,
                 too_long: bool = False) -> str:
        text = line.decode("utf-8", "replace")
        split = _split_line(line, label_columns)
        if too_long:
            return (f"{source}:{number}: the path is {len(split[0])} bytes long; paths are at "
                    f"most {_MAX_PATH_BYTES} bytes")
        if split is None:
            return f"{source}:{number}: {_describe(label_columns)}, got {text!r}"
        bad = " ".join(t.decode("utf-8", "replace") for t in split[1])
        return (f"{source}:{number}: labels must be numbers (integer or float) within float32, "
                f"got {bad!r} in {text!r}")

    @staticmethod
    def _raise(source: str, problems: List[str], bad: int) -> None:
        """``problems`` describe the first bad lines, ``bad`` counts them all."""
        if bad:
            raise DataError(f"{source}: {bad} bad line(s) in the image list:\n  "
                            + first_few(problems, "\n  ", "bad lines", total=bad))

    def __len__(self) -> int:
        return len(self.starts)

    def __repr__(self) -> str:
        return (f"SampleList(source={self.source!r}, root_folder={self.root_folder!r}, "
                f"samples={len(self)}, label_columns={self.labels.shape[1]})")

    def listed(self, i: int) -> str:
        """Sample ``i``'s path as the list writes it (without ``root_folder``; backslashes
        turned into ``/`` on POSIX)."""
        count = len(self)
        if not -count <= i < count:
            raise IndexError(f"sample {i} out of range for {count} samples of {self.source}")
        raw = self.written_path(i % count)
        if os.sep == "/":
            raw = raw.replace(b"\\", b"/")
        return os.fsdecode(raw)

    def path(self, i: int) -> str:
        """Sample ``i``'s path, ``root_folder`` prepended as Caffe does (no separator added)."""
        return self.root_folder + self.listed(i)

    def missing_hint(self, i: int, key: str = "root_folder") -> str:
        """What to fix when sample ``i``'s file does not exist ("" when it does): a
        ``root_folder`` (named ``key``, e.g. ``--root-folder`` in a tool) missing its trailing
        '/' when the file is there with one, else what the list's paths are appended to (unless
        the path is absolute and there is no ``root_folder``)."""
        root, listed = self.root_folder, self.listed(i)
        if is_url(root + listed) or os.path.lexists(root + listed):
            return ""  # a URL is not looked for again: its own error said what is wrong
        if root and not root.endswith(("/", os.sep)) and os.path.exists(f"{root}/{listed}"):
            return (f"; {key} is '{root}' without a trailing '/', and '{root}/{listed}' exists: "
                    f"end {key} with '/' (the list's paths are appended to it as written, as in "
                    f"Caffe)")
        if not root and os.path.isabs(listed):
            return ""
        return f"; the list's paths are appended to {key} (now '{root}')"

    def written_path(self, i: int) -> bytes:
        """Sample ``i``'s path exactly as the list writes it (e.g. for Caffe's database keys)."""
        start = int(self.starts[i])
        return self.text[start:start + int(self.lengths[i])]

    def line(self, i: int) -> int:
        """The 1-based line number of sample ``i`` in the list file."""
        i %= len(self)
        gap = np.searchsorted(self.line_gaps[0], i, side="right") - 1
        return i + 1 + (int(self.line_gaps[1][gap]) if gap >= 0 else 0)

    def where(self, i: int) -> str:
        """``'list:line'`` of sample ``i``, for error messages."""
        return f"{self.source}:{self.line(i)}"


def read_listed_image(images: SampleList, i: int, is_color: bool = True, reduce: int = 1,
                      min_hw: Tuple[int, int] | None = None, key: str = "root_folder",
                      data: bytes | None = None,
                      storage_options: Mapping[str, Any] | None = None) -> np.ndarray:
    """Sample ``i`` of an image list, decoded as ImageData does
    (:func:`~caffe_layers.sources.images.read_image`; ``data``: its file's bytes if already
    read, ``storage_options`` for a URL); when its file is missing, the error says what to fix
    in ``root_folder`` (:meth:`SampleList.missing_hint`; ``key`` names it)."""
    try:
        return read_image(images.path(i), is_color, reduce, images.where(i), min_hw, data=data,
                          storage_options=storage_options)
    except DataError as exc:
        hint = images.missing_hint(i, key)
        if not hint:
            raise
        raise DataError(f"{exc}{hint}") from None
