"""``on_error: skip``: a sample that cannot be read is replaced by the next readable one.

Deterministic (the replacement depends only on the dataset), reported with the batch (never a
silent zero image), and bounded: after ``MAX_SKIPS_IN_A_ROW`` unreadable samples in a row the
source is probably wrong as a whole, and that is an error.
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
