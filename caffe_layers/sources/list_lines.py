"""A list file's lines split into a path and label tokens, vectorised over chunks of the file.

The rules are those of :mod:`caffe_layers.sources.image_list` (Caffe's, plus Windows line ends):
lines end at ``\\n``; trailing ASCII whitespace is stripped and a line left empty is blank; the
last ``label_columns`` whitespace-separated tokens are the labels and the rest, leading
whitespace included, the path. Splitting a list line by line with Python objects cost about
300 bytes and 1 us a line at its peak (30 GiB and 2 minutes for 100M lines); here each chunk of
about 4 MiB of text becomes a few numpy arrays, so the peak is the text plus the result plus one
chunk's work (measured by ``scripts/bench_list_memory.py``). Nothing is copied: positions index
the text.
"""

from __future__ import annotations

import dataclasses
from typing import Iterator

import numpy as np

CHUNK_BYTES = 1 << 22
NEWLINE = 10
WHITESPACE = np.zeros(256, bool)
WHITESPACE[list(b" \t\n\r\x0b\x0c")] = True  # what bytes.split() and bytes.rstrip() take


@dataclasses.dataclass(frozen=True)
class Lines:
    """One chunk's non-blank lines: ``starts``/``path_ends``/``ends`` index the text (``ends``
    after stripping), ``numbers`` are 1-based line numbers, ``tokens[i, j]`` the ``(start, end)``
    of line ``i``'s label ``j`` (left to right), ``ok`` False where the columns are missing."""

    starts: np.ndarray
    path_ends: np.ndarray
    ends: np.ndarray
    numbers: np.ndarray
    tokens: np.ndarray
    ok: np.ndarray


def _back(data: np.ndarray, pos: np.ndarray, floor: np.ndarray, whitespace: bool) -> np.ndarray:
    """Each position moved back while the byte before it is (or is not) whitespace, not past
    ``floor``."""
    pos = pos.copy()
    active = np.flatnonzero(pos > floor)
    while active.size:
        active = active[WHITESPACE[data[pos[active] - 1]] == whitespace]
        pos[active] -= 1
        active = active[pos[active] > floor[active]]
    return pos


def _split(data: np.ndarray, starts: np.ndarray, ends: np.ndarray, label_columns: int) -> tuple:
    """``(path_ends, tokens, ok)``: ``rsplit(None, label_columns)`` of every line, vectorised."""
    tokens = np.zeros((len(starts), label_columns, 2), np.int64)
    ok = np.ones(len(starts), bool)
    cursor = ends
    for column in reversed(range(label_columns)):
        token_start = _back(data, cursor, starts, whitespace=False)
        tokens[:, column] = np.stack([token_start, cursor], axis=1)
        cursor = _back(data, token_start, starts, whitespace=True)
        ok &= (token_start > starts) & (cursor > starts)  # a separator, then something before
    return cursor, tokens, ok


def _line_bounds(data: np.ndarray, first: int, last: int, at_end: bool) -> tuple:
    """Starts and ends (before ``\\n``) of the lines of ``data[first:last]``."""
    newlines = first + np.flatnonzero(data[first:last] == NEWLINE)
    starts = np.concatenate(([first], newlines + 1))
    ends = np.append(newlines, last)
    if not at_end:  # the chunk ends just after a newline: no line begins there
        starts, ends = starts[:-1], ends[:-1]
    return starts, ends


def _chunk_end(text: bytes, first: int) -> int:
    """Where a chunk beginning at ``first`` ends: just after a newline, or at the text's end."""
    if first + CHUNK_BYTES >= len(text):
        return len(text)
    cut = text.rfind(b"\n", first, first + CHUNK_BYTES)
    if cut < 0:  # a line longer than a chunk
        cut = text.find(b"\n", first + CHUNK_BYTES)
        if cut < 0:
            return len(text)
    return cut + 1


def scan(text: bytes, first: int, label_columns: int) -> Iterator[Lines]:
    """The non-blank lines of ``text[first:]``, chunk by chunk."""
    data = np.frombuffer(text, np.uint8)
    line = 1
    while first < len(text) or line == 1:
        last = _chunk_end(text, first)
        starts, ends = _line_bounds(data, first, last, at_end=last == len(text))
        numbers = np.arange(line, line + len(starts), dtype=np.int64)
        line += len(starts)
        ends = _back(data, ends, starts, whitespace=True)  # rstrip
        keep = ends > starts
        starts, ends, numbers = starts[keep], ends[keep], numbers[keep]
        path_ends, tokens, ok = _split(data, starts, ends, label_columns)
        yield Lines(starts, path_ends, ends, numbers, tokens, ok)
        first = last
        if last == len(text):
            return
