"""HDF5 files → batches: Caffe's HDF5Data, streamed a batch at a time from each worker.

Each worker opens its own h5py handles on first use (never inherited through a fork), reads a
batch's rows file by file in increasing order (see :mod:`caffe_layers.sources.hdf5`), converts
them to float32 and scatters them into the batch rows. Memory per worker is one batch of rows
plus bounded chunk caches, whatever the size of the files.

With ``shuffle: true`` the order is :class:`~caffe_layers.sampling.BlockShuffledOrder` over the
files' chunks: blocks of ``shuffle_block`` rows (default: the chunk length of each file's widest
dataset) in random order, then a shuffle within windows of ``shuffle_window`` rows.

``on_error: skip`` (:mod:`caffe_layers.pipeline.skip`): when a batch read fails (a corrupt
compressed chunk), its rows are read one by one and each unreadable one is replaced by the next.
"""

from __future__ import annotations

import functools
import threading
from typing import Dict

import numpy as np

from caffe_layers.errors import DataError
from caffe_layers.files import is_url
from caffe_layers.params import HDF5Params
from caffe_layers.pipeline import Pipeline
from caffe_layers.pipeline.reads import FileProducer
from caffe_layers.pipeline.skip import first_loadable, load_or_skip
from caffe_layers.prefetch import TopSpec
from caffe_layers.sampling import BlockShuffledOrder
from caffe_layers.sources.arrays import Normalizer
from caffe_layers.sources.hdf5 import HDF5Files, HDF5Reader

BLOCKS_PER_WINDOW = 4


class HDF5Producer(FileProducer):
    """Fills every top's rows from the HDF5 files; handles are opened in the filling process."""

    # h5py handles never travel to another process; nor do the batches announced to this one
    per_process = ("_reader", "_announced", "_lock")

    def __init__(self, files: HDF5Files, normalizer: Normalizer, window: int = 0,
                 skip: bool = False) -> None:
        self.files = files
        self.normalizer = normalizer
        self.window = window
        self.skip_errors = skip
        self.remote = any(is_url(path) for path in files.paths)
        self._reader: HDF5Reader | None = None
        self._announced: Dict[int, np.ndarray] = {}  # batch number -> its indices
        self._lock = threading.Lock()

    def open(self, worker_id: int, workers: int) -> None:
        self._reader = HDF5Reader(self.files, self.window)
        self._announced, self._lock = {}, threading.Lock()

    def prepare(self, task) -> None:
        """Note a batch this process will fill (files at URLs: its chunks are read ahead)."""
        if self.remote and task.indices is not None:
            with self._lock:
                self._announced[task.number] = task.indices

    def fill_rows(self, out: dict, task) -> object:
        if self.remote:  # the chunks of this batch and of those sent here since, read at once
            with self._lock:
                for number in [n for n in self._announced if n <= task.number]:
                    del self._announced[number]
                upcoming = [self._announced[n] for n in sorted(self._announced)]
            self._reader.read_ahead([task.indices] + upcoming)
        return self.read(task.indices, out)

    def read(self, indices: np.ndarray, out: dict) -> object:
        """Samples ``indices`` into ``out`` (``{top: float32 batch}``), normalising the first top;
        with ``on_error: skip`` a row that cannot be read is replaced by the next one."""
        skipped: list = []
        try:
            self._reader.read(indices, out)
        except DataError:
            if not self.skip_errors:
                raise
            for row, index in enumerate(indices):  # find the bad rows one by one
                rows = {top: array[row:row + 1] for top, array in out.items()}
                load_or_skip(functools.partial(self._read_row, out=rows), int(index),
                             len(self.files), True, skipped, "rows", self.files.where)
        first = self.files.tops[0]
        if self.normalizer.active and first in out:
            self.normalizer.apply(out[first])
        return {"skipped": skipped} if skipped else None

    def _read_row(self, index: int, out: dict) -> None:
        self._reader.read(np.array([index], np.int64), out)

    def undo_normalization(self, data: np.ndarray, task) -> np.ndarray:
        """The first top of ``task``'s batch with mean and scale undone (float64)."""
        return self.normalizer.undo(data)

    def close(self) -> None:
        if self._reader is not None:
            self._reader.close()
            self._reader = None


def _window(params: HDF5Params, block: int) -> int:
    return params.shuffle_window or max(params.batch_size, BLOCKS_PER_WINDOW * block)


def _check_first_sample(producer: HDF5Producer) -> None:
    """Read the first sample (with ``on_error: skip``, the first readable one) here, so that an
    unreadable file fails in setup."""
    files = producer.files
    out = {top: np.empty((1,) + files.row_shape(top), np.float32) for top in files.tops}
    producer.open(0, 1)
    try:
        first_loadable(functools.partial(producer._read_row, out=out), len(files),
                       producer.skip_errors, "rows", files.source)
    finally:
        producer.close()


def build(params: HDF5Params, train: bool) -> Pipeline:
    """Scan the files, check every dataset's shape, read sample 0; raise here, not in a worker."""
    files = HDF5Files.scan(params.source, params.tops, params.storage_options)
    first = params.tops[0]
    normalizer = Normalizer.from_params(params.mean_file, params.mean_value, params.scale,
                                        files.row_shape(first), first, params.storage_options)
    runs, block = files.block_runs(params.shuffle_block)
    window = _window(params, block)
    producer = HDF5Producer(files, normalizer, window if params.shuffle else 0,
                            params.on_error == "skip")
    _check_first_sample(producer)
    specs = tuple(TopSpec(top, (params.batch_size,) + files.row_shape(top))
                  for top in params.tops)
    description = files.describe()
    if params.shuffle:
        description += f", shuffled in blocks of up to {block} rows within windows of {window}"
    if normalizer.active:
        description += f", {first}: {normalizer.describe()}"
    order = functools.partial(BlockShuffledOrder.from_runs, len(files), runs, window)
    return Pipeline(producer, {len(specs): specs}, len(files), description,
                    shuffled_order=order, unit="rows")
