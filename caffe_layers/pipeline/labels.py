"""Label tops shared by the list-based pipelines (image list, npy): their layouts and rows.

A list line carries k labels. With 2 tops they go into one ``label`` top, ``(N,)`` for k = 1 and
``(N, k)`` otherwise (``(N, n_classes)`` one-hot when ``n_classes`` is set); with 1 + k tops into
one ``(N,)`` top per column (``label0``, ``label1``, ...); with 1 top they are not used.
"""

from __future__ import annotations

import numpy as np

from caffe_layers.prefetch import TopSpec


def label_layouts(data: TopSpec, batch: int, columns: int,
                  n_classes: int | None = None) -> dict:
    """The accepted top layouts after ``data``, by number of tops."""
    if columns == 0:
        return {1: (data,)}
    if n_classes is not None:
        return {1: (data,), 2: (data, TopSpec("label", (batch, n_classes)))}
    label_shape = (batch,) if columns == 1 else (batch, columns)
    layouts = {1: (data,), 2: (data, TopSpec("label", label_shape))}
    if columns > 1:
        layouts[1 + columns] = (data,) + tuple(TopSpec(f"label{c}", (batch,))
                                               for c in range(columns))
    return layouts


def write_labels(out: dict, row: int, labels: np.ndarray, n_classes: int | None = None) -> None:
    """Write one sample's ``labels`` into whichever label tops ``out`` holds."""
    if "label" in out:
        if n_classes is not None:
            out["label"][row] = 0
            out["label"][row, int(labels[0])] = 1
        else:
            out["label"][row] = labels if out["label"].ndim == 2 else labels[0]
    for column in range(len(labels)):
        name = f"label{column}"
        if name in out:
            out[name][row] = labels[column]
