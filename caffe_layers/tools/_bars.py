"""Per-class counts as text bars, where a glance tells a balanced dataset from a lopsided one::

    0 circle    ##############################  150
    1 cross     ########################        120  (96 train, 24 val)

Used by ``make-list`` and ``check-list``. Labels are class numbers (integers >= 0); classes are
shown in label order, a class without samples too (a gap in the numbering is worth seeing).
Beyond :data:`MAX_BARS` classes only the smallest are drawn, after a one-line summary.
"""

from __future__ import annotations

from typing import List, Sequence

import numpy as np

BAR_WIDTH = 30
MAX_BARS = 40
SMALLEST_SHOWN = 10


def class_counts(labels: np.ndarray) -> np.ndarray | None:
    """Samples per class ``0..max`` of integer ``labels``; None if a label is not a class
    number (negative, or not an integer: a regression target, say)."""
    labels = np.asarray(labels, np.float64).reshape(-1)
    if len(labels) == 0 or np.any(labels < 0) or np.any(labels != np.round(labels)):
        return None
    return np.bincount(labels.astype(np.int64))


def bar(count: int, largest: int, width: int = BAR_WIDTH) -> str:
    """``'#' * n`` proportional to ``count / largest``, at least one ``#`` for a count > 0."""
    if count <= 0 or largest <= 0:
        return ""
    return "#" * max(1, int(round(width * count / largest)))


def class_bars(counts: Sequence[int], names: Sequence[str] = (),
               notes: Sequence[str] = (), width: int = BAR_WIDTH) -> List[str]:
    """One line per class: label, name (from ``names``, if given), bar, count, and ``notes``.

    Beyond :data:`MAX_BARS` classes: a summary line, then the :data:`SMALLEST_SHOWN` smallest.
    """
    counts = [int(c) for c in counts]
    if not counts:
        return []
    shown = list(range(len(counts)))
    lines = []
    if len(counts) > MAX_BARS:
        ordered = sorted(shown, key=lambda k: (counts[k], k))
        lines.append(f"{len(counts)} classes, {min(counts)} to {max(counts)} samples each "
                     f"(median {int(np.median(counts))}); the {SMALLEST_SHOWN} smallest:")
        shown = ordered[:SMALLEST_SHOWN]
    label_width = len(str(len(counts) - 1))
    name_width = max((len(names[k]) for k in shown if k < len(names)), default=0)
    count_width = len(str(max(counts)))
    for k in shown:
        head = f"{k:>{label_width}}"
        if name_width:
            head += f" {names[k] if k < len(names) else '':<{name_width}}"
        note = f"  {notes[k]}" if k < len(notes) and notes[k] else ""
        lines.append(f"{head}  {bar(counts[k], max(counts), width):<{width}}  "
                     f"{counts[k]:>{count_width}}{note}")
    return lines
