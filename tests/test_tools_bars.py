"""The per-class bars of make-list and check-list."""

from __future__ import annotations

import numpy as np

from caffe_layers.tools import _bars


def test_bars_are_proportional_with_at_least_one_mark():
    assert _bars.class_bars([60, 30, 1, 0], ["a", "bb"]) == [
        "0 a   " + "#" * 30 + "  60",
        "1 bb  " + "#" * 15 + " " * 15 + "  30",
        "2     #" + " " * 29 + "   1",
        "3     " + " " * 30 + "   0",
    ]


def test_many_classes_show_the_smallest_after_a_summary():
    lines = _bars.class_bars(list(range(100, 150)))
    assert lines[0] == "50 classes, 100 to 149 samples each (median 124); the 10 smallest:"
    assert [line.split()[0] for line in lines[1:]] == [f"{k:>2}".strip() for k in range(10)]


def test_class_counts_only_of_class_numbers():
    assert _bars.class_counts(np.array([0, 2, 2, 0, 2], np.float32)).tolist() == [2, 0, 3]
    assert _bars.class_counts(np.array([0, 1.5])) is None
    assert _bars.class_counts(np.array([-1, 0])) is None
    assert _bars.class_counts(np.array([])) is None
