"""``on_error: skip``: a sample that cannot be read is replaced by the next readable one.

The one policy of every layer that reads files (image lists, npy, HDF5, databases).
Deterministic (the replacement depends only on the dataset), reported with the batch (never a
silent zero image), and bounded: after ``MAX_SKIPS_IN_A_ROW`` unreadable samples in a row the
source is probably wrong as a whole, and that is an error. At setup, :func:`first_loadable`
finds the sample that fixes the shapes the same way.
"""

from __future__ import annotations

from typing import Callable, List, Tuple, TypeVar

from caffe_layers.errors import DataError

MAX_SKIPS_IN_A_ROW = 100
T = TypeVar("T")


def load_or_skip(load: Callable[[int], T], index: int, count: int, skip: bool, skipped: List[tuple],
                 noun: str, where: Callable[[int], str]) -> Tuple[int, T]:
    """``(index used, load(index used))``: ``load(index)``, or with ``skip`` the first of
    ``index + 1, index + 2, ...`` (modulo ``count``) that loads. Each failure is appended to
    ``skipped`` as ``(index, message)``. The final error names the ``noun`` (``images``) and
    ``where(index)`` the run started (with a hint)."""
    for attempt in range(MAX_SKIPS_IN_A_ROW + 1):
        candidate = (index + attempt) % count
        try:
            return candidate, load(candidate)
        except DataError as exc:
            if not skip:
                raise
            skipped.append((candidate, str(exc)))
    raise DataError(f"on_error: skip gave up after {MAX_SKIPS_IN_A_ROW + 1} unreadable {noun} in "
                    f"a row, starting at {where(index)}")


def first_loadable(load: Callable[[int], T], count: int, skip: bool, noun: str, source: str,
                   hint: str = "") -> Tuple[int, T]:
    """``(index, load(index))`` of the sample that fixes the shapes at setup: sample 0, or with
    ``skip`` the first of the first ``MAX_SKIPS_IN_A_ROW + 1`` that loads (a bad first sample is
    skipped like any other). ``hint`` (e.g. ``is root_folder right?``) ends the final error."""
    tries = min(count, MAX_SKIPS_IN_A_ROW + 1) if skip else 1
    first_error = None
    for index in range(tries):
        try:
            return index, load(index)
        except DataError as exc:
            if tries == 1:
                raise
            first_error = first_error or exc
    raise DataError(f"on_error: skip gave up: none of the first {tries} {noun} of {source} can "
                    f"be read (the first: {first_error}){'; ' + hint if hint else ''}")
