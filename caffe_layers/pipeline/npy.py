"""``.npy`` samples → batches: one ``<root_folder>/<id>.npy`` per list line, labels from the list.

The list file has Caffe's image-list syntax (``id label...``, split at the last separators; see
:mod:`caffe_layers.sources.image_list`). The first sample fixes the data top's shape and the
dtype every sample must have; values are converted to float32, then ``(x - mean) * scale``.
Labels go into a ``(N,)`` or ``(N, k)`` top, one ``(N,)`` top per column, or with ``n_classes``
a one-hot ``(N, n_classes)`` top.
"""

from __future__ import annotations

import numpy as np

from caffe_layers.errors import DataError, first_few
from caffe_layers.params import NpyParams
from caffe_layers.pipeline import Pipeline
from caffe_layers.pipeline.labels import label_layouts, write_labels
from caffe_layers.prefetch import Producer, TopSpec
from caffe_layers.sources.arrays import Normalizer, is_numeric
from caffe_layers.sources.image_list import SampleList
from caffe_layers.sources.npy import check_sample, describe_dtype, read_npy, sample_path


class NpyProducer(Producer):
    """Fills data and label rows from the samples of a :class:`SampleList` of ids."""

    def __init__(self, samples: SampleList, root_folder: str, shape: tuple, dtype: np.dtype,
                 normalizer: Normalizer, n_classes: int | None = None) -> None:
        self.samples = samples
        self.root_folder = root_folder
        self.shape = tuple(shape)
        self.dtype = np.dtype(dtype)
        self.normalizer = normalizer
        self.n_classes = n_classes

    def path(self, index: int) -> str:
        return sample_path(self.root_folder, self.samples.path(index))

    def load(self, index: int, out: np.ndarray) -> None:
        """Read sample ``index``, check its shape and dtype, write it into ``out`` as float32."""
        path, where = self.path(index), self.samples.where(index)
        array = read_npy(path, where)
        check_sample(array, self.shape, self.dtype, path, where)
        out[...] = array

    def fill(self, out: dict, task) -> None:
        data = out["data"]
        for row, index, _ in task:
            self.load(index, data[row])
            write_labels(out, row, self.samples.labels[index], self.n_classes)
        self.normalizer.apply(data)

    def undo_normalization(self, data: np.ndarray, task) -> np.ndarray:
        """The first top of ``task``'s batch with mean and scale undone (float64)."""
        return self.normalizer.undo(data)


def check_classes(samples: SampleList, n_classes: int) -> None:
    """DataError listing the lines whose label is not an integer in ``[0, n_classes)``."""
    labels = samples.labels[:, 0]
    bad = np.flatnonzero((labels != np.round(labels)) | (labels < 0) | (labels >= n_classes))
    if len(bad):
        shown = first_few([f"{samples.where(int(i))} ({labels[i]:g})" for i in bad])
        raise DataError(f"n_classes: {n_classes}: one-hot labels must be integers in [0, "
                        f"{n_classes}); {len(bad)} line(s) are not: {shown}")


def build(params: NpyParams, train: bool) -> Pipeline:
    """Read the list, load sample 0 to fix shape and dtype; raise here rather than in a worker."""
    samples = SampleList.read(params.source, "", params.label_columns)
    if params.n_classes is not None:
        check_classes(samples, params.n_classes)
    first_path = sample_path(params.root_folder, samples.path(0))
    first = read_npy(first_path, samples.where(0))
    if not is_numeric(first.dtype):
        raise DataError(f"{samples.where(0)}: '{first_path}' holds {describe_dtype(first.dtype)}"
                        f" values; tops are float32, so store numbers (bool, integer or float)")
    normalizer = Normalizer.from_params(params.mean_file, params.mean_value, params.scale,
                                        first.shape, "data")
    producer = NpyProducer(samples, params.root_folder, first.shape, first.dtype, normalizer,
                           params.n_classes)
    producer.load(0, np.empty(first.shape, np.float32))
    data = TopSpec("data", (params.batch_size,) + first.shape)
    layouts = label_layouts(data, params.batch_size, params.label_columns, params.n_classes)
    description = (f"{len(samples)} .npy samples ({describe_dtype(first.dtype)} "
                   f"{first.shape}) listed in {params.source}")
    if params.n_classes is not None:
        description += f", one-hot labels of {params.n_classes} classes"
    if normalizer.active:
        description += f", {normalizer.describe()}"
    return Pipeline(producer, layouts, len(samples), description)
