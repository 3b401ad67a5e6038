"""``.npy`` samples → batches: one ``<root_folder>/<id>.npy`` per list line, labels from the list.

The list file has Caffe's image-list syntax (``id label...``, split at the last separators; see
:mod:`caffe_layers.sources.image_list`). The first sample fixes the data top's shape and the
dtype every sample must have; values are converted to float32, then ``(x - mean) * scale``.
Labels go into a ``(N,)`` or ``(N, k)`` top, one ``(N,)`` top per column, or with ``n_classes``
a one-hot ``(N, n_classes)`` top.

Setup reads the header of every file (a few hundred bytes each, the data is not read), so a
missing, truncated or differently shaped sample is found before training, not when its batch
comes up: about 1 s per 100,000 files with a warm page cache (``scripts/bench_npy_headers.py``).
Above :data:`HEADER_CHECK_LIMIT` files only the first sample is checked, and files at URLs are
not checked at setup (a request each); each is checked when read. ``on_error: skip`` replaces a
bad sample by the next one (:mod:`caffe_layers.pipeline.skip`). With a URL ``root_folder`` each
worker reads its next batch's files ahead (:mod:`caffe_layers.pipeline.reads`).
"""

from __future__ import annotations

import sys
from typing import List, Tuple

import numpy as np

from caffe_layers.errors import DataError, first_few
from caffe_layers.files import is_url, shown
from caffe_layers.params import NpyParams
from caffe_layers.pipeline import Pipeline
from caffe_layers.pipeline.labels import label_layouts, write_labels
from caffe_layers.pipeline.reads import FileProducer, SampleFiles
from caffe_layers.pipeline.skip import first_loadable, load_or_skip
from caffe_layers.prefetch import TopSpec
from caffe_layers.sources.arrays import Normalizer, is_numeric
from caffe_layers.sources.image_list import SampleList
from caffe_layers.sources.npy import (
    HeaderReader,
    check_sample,
    describe_dtype,
    read_npy,
    sample_path,
)

HEADER_CHECK_LIMIT = 1_000_000
ROOT_FOLDER_HINT = "is root_folder right?"


class NpyProducer(FileProducer):
    """Fills data and label rows from the samples of a :class:`SampleList` of ids; with a URL
    ``root_folder``, each worker reads its next batch's files ahead."""

    def __init__(self, samples: SampleList, root_folder: str, shape: tuple, dtype: np.dtype,
                 normalizer: Normalizer, n_classes: int | None = None,
                 skip_errors: bool = False, storage_options: dict | None = None) -> None:
        self.samples = samples
        self.root_folder = root_folder
        self.shape = tuple(shape)
        self.dtype = np.dtype(dtype)
        self.normalizer = normalizer
        self.n_classes = n_classes
        self.skip_errors = skip_errors
        self.storage_options = storage_options
        self.files = SampleFiles(self.file_of, is_url(self.path(0)), storage_options)

    def path(self, index: int) -> str:
        return sample_path(self.root_folder, self.samples.path(index))

    def file_of(self, index: int) -> tuple:
        """Sample ``index``'s file: its path, what it is and its list line, for messages."""
        return self.path(index), "sample", f"{self.samples.where(index)}: "

    def load(self, index: int, out: np.ndarray, data: bytes | None = None) -> None:
        """Read sample ``index`` (``data``: its file's bytes, if already read), check its shape
        and dtype, write it into ``out`` as float32."""
        path, where = self.path(index), self.samples.where(index)
        array = read_npy(path, where, data, self.storage_options)
        check_sample((array.shape, array.dtype), self.shape, self.dtype, path, where)
        out[...] = array

    def check_header(self, index: int, headers: HeaderReader) -> None:
        """DataError unless sample ``index``'s header promises the shape and dtype of the first.
        """
        path, where = self.path(index), self.samples.where(index)
        check_sample(headers.read(path, where), self.shape, self.dtype, path, where)

    def prepare(self, task) -> None:
        self.files.prepare(task)

    def fill_rows(self, out: dict, task) -> object:
        data = out["data"]
        skipped: list = []
        with self.files.batch(task) as fetched:
            for row, index, _ in task:
                used = self._load(index, data[row], skipped, fetched)
                write_labels(out, row, self.samples.labels[used], self.n_classes)
        self.normalizer.apply(data)
        return {"skipped": skipped} if skipped else None

    def _load(self, index: int, out: np.ndarray, skipped: list, fetched) -> int:
        """Load ``index`` (its bytes read ahead, if they were), or with on_error: skip the next
        loadable sample (read now); the index used."""
        used, _ = load_or_skip(lambda i: self.load(i, out, fetched(i) if i == index else None),
                               index, len(self.samples), self.skip_errors, skipped, "samples",
                               self._where)
        return used

    def close(self) -> None:
        self.files.close()

    def _where(self, index: int) -> str:
        return f"{self.samples.where(index)}; {ROOT_FOLDER_HINT}"

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


def bad_headers(producer: NpyProducer, first: int) -> List[str]:
    """The problem of every sample but ``first`` whose header is bad or differs from it."""
    problems = []
    headers = HeaderReader()
    for index in range(len(producer.samples)):
        if index == first:
            continue
        try:
            producer.check_header(index, headers)
        except DataError as exc:
            problems.append(str(exc))
    return problems


def check_headers(producer: NpyProducer, first: int, source: str) -> str:
    """Read every file's header at setup: raise listing the bad ones (``on_error: raise``), or
    return a note saying how many will be skipped ("" when all are good)."""
    count = len(producer.samples)
    if producer.files.remote:
        return "headers not checked at setup (files at URLs: a request each); each is checked " \
               "when read"
    if count > HEADER_CHECK_LIMIT:
        return (f"headers not checked at setup ({count} files > {HEADER_CHECK_LIMIT}); each is "
                f"checked when read")
    problems = bad_headers(producer, first)
    if not problems:
        return ""
    listed = first_few(problems, "\n  ", "samples")
    if not producer.skip_errors:
        raise DataError(f"{source}: {len(problems)} of {count} .npy samples cannot be used "
                        f"(on_error: skip would skip them):\n  {listed}")
    print(f"caffe_layers: NpyDataLayer: on_error: skip: {len(problems)} of {count} .npy samples "
          f"will be skipped:\n  {listed}", file=sys.stderr, flush=True)
    return f"{len(problems)} bad samples to skip"


def _first_sample(samples: SampleList, params: NpyParams) -> Tuple[int, np.ndarray]:
    def read(index: int) -> np.ndarray:
        path = sample_path(params.root_folder, samples.path(index))
        array = read_npy(path, samples.where(index), storage_options=params.storage_options)
        if not is_numeric(array.dtype):
            raise DataError(f"{samples.where(index)}: '{shown(path)}' holds "
                            f"{describe_dtype(array.dtype)} values; tops are float32, so store "
                            f"numbers (bool, integer or float)")
        return array

    return first_loadable(read, len(samples), params.on_error == "skip", "samples",
                          params.source, ROOT_FOLDER_HINT)


def build(params: NpyParams, train: bool) -> Pipeline:
    """Read the list, load the first sample to fix shape and dtype, check every file's header;
    raise here rather than in a worker."""
    samples = SampleList.read(params.source, "", params.label_columns, params.storage_options)
    if params.n_classes is not None:
        check_classes(samples, params.n_classes)
    first_index, first = _first_sample(samples, params)
    normalizer = Normalizer.from_params(params.mean_file, params.mean_value, params.scale,
                                        first.shape, "data", params.storage_options)
    producer = NpyProducer(samples, params.root_folder, first.shape, first.dtype, normalizer,
                           params.n_classes, params.on_error == "skip", params.storage_options)
    note = check_headers(producer, first_index, params.source)
    data = TopSpec("data", (params.batch_size,) + first.shape)
    layouts = label_layouts(data, params.batch_size, params.label_columns, params.n_classes)
    description = (f"{len(samples)} .npy samples ({describe_dtype(first.dtype)} "
                   f"{first.shape}) listed in {shown(params.source)}")
    if params.n_classes is not None:
        description += f", one-hot labels of {params.n_classes} classes"
    if normalizer.active:
        description += f", {normalizer.describe()}"
    if note:
        description += f", {note}"
    return Pipeline(producer, layouts, len(samples), description)
