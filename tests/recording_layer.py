"""A Python layer that saves what it receives, to see the batches a data layer fed a training run.

``RecordBatches`` takes any bottoms and no top; every forward writes its bottoms to
``<folder>/<forward number>.npz`` (``arr_0``, ``arr_1``, ... in bottom order). It runs under real
``caffe train`` (which imports this module by name, through PYTHONPATH) and under the runner.
"""

from __future__ import annotations

import os

import caffe
import numpy as np
import yaml


class RecordBatches(caffe.Layer):
    """``param_str: "{folder: path}"``: one .npz per forward, numbered from 0."""

    def setup(self, bottom, top):
        self.folder = yaml.safe_load(self.param_str)["folder"]
        os.makedirs(self.folder, exist_ok=True)
        self.forwards = 0

    def reshape(self, bottom, top):
        pass

    def forward(self, bottom, top):
        arrays = [np.array(bottom[i].data) for i in range(len(bottom))]
        np.savez(os.path.join(self.folder, f"{self.forwards:05d}.npz"), *arrays)
        self.forwards += 1

    def backward(self, top, propagate_down, bottom):
        pass


def recorded(folder) -> list:
    """The bottoms of every recorded forward, in order: a list of lists of arrays."""
    names = sorted(n for n in os.listdir(folder) if n.endswith(".npz"))
    batches = []
    for name in names:
        with np.load(os.path.join(folder, name)) as saved:
            batches.append([saved[f"arr_{i}"] for i in range(len(saved.files))])
    return batches
