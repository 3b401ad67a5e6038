"""The ``caffe.Layer`` adapters: the only module of the package that imports ``caffe``.

Use them from a prototxt::

    layer {
      name: "data" type: "Python" top: "data" top: "label"
      include { phase: TRAIN }
      python_param {
        module: "caffe_layers.layers" layer: "ImageListDataLayer"
        param_str: "{source: train.txt, batch_size: 64, new_height: 256, new_width: 256,"
                   " crop_size: 227, mirror: true, mean_value: [104, 117, 123], shuffle: true}"
      }
    }

``setup`` validates every key, opens and transforms the first sample, fixes the top shapes and
only then starts the workers; ``reshape`` only shapes the tops; ``forward`` copies the next batch
from shared memory into the tops. A ``caffe`` binary built with CMake aborts on a layer's exception
without printing it (CAFFE.md, "Errors"), so there every method that can fail (setup, reshape,
forward) prints its traceback to stderr before raising; where the caller prints it (pycaffe, a
Make-built binary) it does not (:func:`~caffe_layers.pycaffe.printing_errors`).
``caffe`` is real Caffe when importable, else the package's fake (:mod:`caffe_layers.testing`).
"""

from __future__ import annotations

import dataclasses
import importlib
import sys
import time

from caffe_layers import config
from caffe_layers.errors import ConfigError
from caffe_layers.files import describe_options, take_retries
from caffe_layers.params import (
    DatasetParams,
    DBParams,
    HDF5Params,
    ImageListParams,
    MultiInputParams,
    NpyParams,
    PrefetchParams,
    SequenceParams,
)
from caffe_layers.pipeline import Pipeline
from caffe_layers.prefetch import IndexedBatchPlan, Prefetcher, RoundRobinPlan, SamplePlan
from caffe_layers.pycaffe import import_caffe, printing_errors
from caffe_layers.ranks import Shard, global_shard
from caffe_layers.sampling import SampleStream

caffe = import_caffe()
RETRIES_PRINTED_EVERY_S = 60.0  # the count of retried reads, at most this often


def _solver_rank() -> tuple:
    """pycaffe's ``(solver_rank(), solver_count())`` within this process group; (0, 1) for a
    Caffe whose pycaffe has no multi-solver API."""
    if not hasattr(caffe, "solver_count"):
        return 0, 1
    return int(caffe.solver_rank()), int(caffe.solver_count())


class PrefetchDataLayer(caffe.Layer):
    """Base of the data layers: ``param_str`` → pipeline → prefetch engine → tops.

    Subclasses set ``params_class`` and ``pipeline``, the module of :mod:`caffe_layers.pipeline`
    whose ``build(params, train) -> Pipeline`` opens their source (imported at setup, so that
    importing this module stays light).
    """

    params_class = PrefetchParams
    pipeline = ""

    def build(self, params, train: bool) -> Pipeline:
        return importlib.import_module(f"caffe_layers.pipeline.{self.pipeline}").build(params,
                                                                                      train)

    @printing_errors
    def setup(self, bottom, top) -> None:
        name = type(self).__name__
        if len(bottom):
            raise ConfigError(f"{name} takes no bottoms, got {len(bottom)}; remove its `bottom:`")
        params = config.load(self.params_class, self.param_str, where=f"{name} param_str",
                             elsewhere=_keys_of_other_layers(type(self)))
        train = self.phase == caffe.TRAIN
        self._skipped, self._skipped_samples = 0, set()
        self.retried_reads, self._retries_printed_at = 0, None
        pipeline = self.build(params, train)
        self._specs = pipeline.specs_for(len(top), name)
        self._log_retries(*take_retries(), during="setup")
        self._engine = self._start(params, pipeline, train)
        print(f"caffe_layers: {name} ({'TRAIN' if train else 'TEST'}): {pipeline.description}; "
              f"{self._describe(params, train)}", flush=True)
        warning = self._small_dataset(params.batch_size, pipeline)
        if warning:
            print(f"caffe_layers: {name} ({'TRAIN' if train else 'TEST'}): warning: {warning}",
                  file=sys.stderr, flush=True)

    @printing_errors
    def reshape(self, bottom, top) -> None:
        for i in range(len(top)):
            top[i].reshape(*(int(d) for d in self._specs[i].shape))

    @printing_errors
    def forward(self, bottom, top) -> None:
        report = self._engine.next_into([top[i].data for i in range(len(top))])
        if report:
            self._log(report)

    def backward(self, top, propagate_down, bottom) -> None:
        """A data layer has nothing to propagate (Caffe calls this under ``caffe time``)."""

    @property
    def engine(self) -> Prefetcher:
        """The prefetch engine behind the tops (after setup): tools read its ``producer``,
        ``specs``, ``plan`` and :meth:`~caffe_layers.prefetch.Prefetcher.last_task`."""
        return self._engine

    def close(self) -> None:
        """Stop the workers now (Caffe never does; the workers' watchdog covers that)."""
        engine = getattr(self, "_engine", None)
        if engine is not None:
            engine.close()

    def _shard(self, params: PrefetchParams, train: bool) -> Shard:
        """Explicit keys, else in TRAIN (or with shard_test) the launcher x solver rank."""
        if params.shard_count is not None:
            return Shard(params.shard_rank, params.shard_count, "shard_rank, shard_count")
        if train or params.shard_test:
            return global_shard(*_solver_rank())
        return Shard(0, 1)

    def _start(self, params: PrefetchParams, pipeline: Pipeline, train: bool) -> Prefetcher:
        self._shard_of = self._shard(params, train)
        shard_rank, shard_count = self._shard_of.shard_rank, self._shard_of.shard_count
        plan = self._plan(params, pipeline, shard_rank, shard_count)
        first_batch = params.start_iter * params.iter_size if train else 0
        return Prefetcher(
            pipeline.producer, self._specs, plan, workers=params.workers,
            prefetch=params.prefetch, start_method=params.start_method, first_batch=first_batch,
            timeout_s=params.timeout_s, on_worker_death=params.on_worker_death,
            name=type(self).__name__)

    def _plan(self, params: PrefetchParams, pipeline: Pipeline, shard_rank: int,
              shard_count: int):
        """Samples, whole batches (a keras Sequence) or a generator's round robin."""
        batch_size = params.batch_size or self._specs[0].shape[0]  # None: a Sequence's batch 0
        if pipeline.samples is None:
            pipeline.producer.shard(shard_rank, shard_count)
            return RoundRobinPlan(batch_size)
        order = pipeline.order(params.shuffle, params.seed)
        if pipeline.whole_batches:
            return IndexedBatchPlan(SampleStream(order, 1, shard_rank, shard_count), batch_size)
        return SamplePlan(SampleStream(order, batch_size, shard_rank, shard_count), params.seed)

    def _describe(self, params: PrefetchParams, train: bool) -> str:
        engine = self._engine
        pids = f", pids {', '.join(map(str, engine.pids))}" if engine.pids else ""
        parts = [f"batch {self._specs[0].shape}",
                 f"{engine.workers} worker{'' if engine.workers == 1 else 's'} "
                 f"({engine.start_method}{pids}), "
                 f"prefetch {params.prefetch}"]
        if params.shuffle:
            parts.append(f"shuffled (seed {params.seed})")
        if self._shard_of.shard_count > 1:
            parts.append(self._shard_of.describe())
        if train and params.start_iter:
            parts.append(f"resuming at iteration {params.start_iter}")
        if getattr(params, "storage_options", None):
            parts.append(f"storage_options {describe_options(params.storage_options)}")
        return ", ".join(parts)

    def _small_dataset(self, batch_size: int, pipeline: Pipeline) -> str:
        """What a batch holds when it is larger than the samples it is cut from ("" if not)."""
        if pipeline.samples is None or pipeline.whole_batches or not batch_size:
            return ""  # a generator, or a keras Sequence (whose indices are batches)
        rank, count = self._shard_of.shard_rank, self._shard_of.shard_count
        length = len(range(rank, pipeline.samples, count))
        if batch_size <= length:
            return ""
        unit = pipeline.unit
        of = "the dataset" if count == 1 else \
            f"shard {rank} of {count} ({pipeline.samples} in the dataset)"
        return (f"batch_size {batch_size} is larger than the {length} {unit} of {of}: each batch "
                f"of {batch_size} holds the {length} {unit} {batch_size / length:.1f} times; "
                f"lower batch_size, or add {unit}")

    def _log_retries(self, count: int, latest: str, during: str = "") -> None:
        """Count retried reads; print the count the first time and then at most once a minute.
        """
        if not count:
            return
        self.retried_reads += count
        now = time.monotonic()
        if self._retries_printed_at is not None \
                and now - self._retries_printed_at < RETRIES_PRINTED_EVERY_S:
            return
        self._retries_printed_at = now
        when = f" during {during}" if during else ""
        print(f"caffe_layers: {type(self).__name__} retried {self.retried_reads} read"
              f"{'' if self.retried_reads == 1 else 's'} so far{when} (latest: {latest})",
              file=sys.stderr, flush=True)

    def _log(self, report: dict) -> None:
        """Print each skipped sample the first time; count every skip and retried read."""
        self._log_retries(*report.get("retries", (0, "")))
        for index, message in report.get("skipped", ()):
            self._skipped += 1
            if index not in self._skipped_samples:
                self._skipped_samples.add(index)
                distinct = len(self._skipped_samples)
                print(f"caffe_layers: {type(self).__name__} skipped sample {index}: {message} "
                      f"(skips so far: {self._skipped}, of {distinct} distinct "
                      f"sample{'' if distinct == 1 else 's'})", file=sys.stderr, flush=True)


def _keys_of_other_layers(layer: type) -> dict:
    """Every key another data layer takes and ``layer`` does not -> the names of those layers.

    Lets a key given to the wrong layer be answered with the layer that takes it.
    """
    own = {field.name for field in dataclasses.fields(layer.params_class)}
    found: dict = {}
    for other in _data_layers(PrefetchDataLayer):
        for field in dataclasses.fields(other.params_class):
            if field.name not in own:
                found.setdefault(field.name, []).append(other.__name__)
    return found


def _data_layers(base: type) -> list:
    """The concrete data layers below ``base``, in definition order."""
    found = []
    for layer in base.__subclasses__():
        if layer.pipeline:
            found.append(layer)
        found += _data_layers(layer)
    return found


class ImageListDataLayer(PrefetchDataLayer):
    """Caffe's ImageData, from a list of ``path label...`` lines; see README for the keys."""

    params_class = ImageListParams
    pipeline = "image_list"


class DBDataLayer(PrefetchDataLayer):
    """Caffe's Data: Datum records of an LMDB or LevelDB, in key order or shuffled; see README."""

    params_class = DBParams
    pipeline = "db"


class HDF5DataLayer(PrefetchDataLayer):
    """Caffe's HDF5Data, streamed: one dataset per top, named by ``tops``; see README."""

    params_class = HDF5Params
    pipeline = "hdf5"


class NpyDataLayer(PrefetchDataLayer):
    """One ``<root>/<id>.npy`` per sample, ids and labels from a list file; see README."""

    params_class = NpyParams
    pipeline = "npy"


class DatasetDataLayer(PrefetchDataLayer):
    """The user's per-sample dataset class or generator function; see README."""

    params_class = DatasetParams
    pipeline = "dataset"


class SequenceDataLayer(PrefetchDataLayer):
    """keras data code unchanged: a Sequence class or a generator of batches; see README."""

    params_class = SequenceParams
    pipeline = "sequence"


class MultiInputDataLayer(PrefetchDataLayer):
    """An image list plus extra tops attached to every sample (``attach``); see README."""

    params_class = MultiInputParams
    pipeline = "multi"
