"""keras data code, unchanged: a Sequence class or a generator of batches -> Caffe's tops.

``sequence: "module:Class"`` names a keras ``Sequence`` (or keras 3 ``PyDataset``) by duck
typing: ``Class(**kwargs)`` with ``__len__`` (batches per epoch), ``__getitem__(idx)`` returning
one batch, and optionally ``on_epoch_end``/``on_epoch_begin``. Batch indices are handed out by
:class:`~caffe_layers.prefetch.IndexedBatchPlan`: every index once per epoch, in the Sequence's
order (or permuted per epoch with ``shuffle``), disjoint across shards, exact on resume. Every
process has its own :class:`~caffe_layers.pipeline.keras_sequence.SequenceCopy`, replayed to
the batch's epoch, so the batches are byte-identical for any number of workers.

``generator: "module:function"`` returns an iterator of batches, endless or ending a pass (an
epoch) with StopIteration, after which it is called again. An unmodified generator cannot be
split between processes without duplicating data, so it runs in one worker unless ``workers``
says otherwise, which needs a function taking ``worker_id`` and ``workers`` (told apart by
its signature); then batch ``b`` comes from worker ``b % W``, as for DatasetDataLayer.

:mod:`~caffe_layers.pipeline.batches` turns each batch into the tops (names, NCHW, class
indices, float32); batch 0 is read at setup and fixes them all, and the last batch index too, to
apply ``partial_batch`` (keras' last batch is usually short).
"""

from __future__ import annotations

import os
from typing import Any

from caffe_layers.errors import ConfigError, DataError
from caffe_layers.params import SequenceParams
from caffe_layers.pipeline import Pipeline
from caffe_layers.pipeline.batches import BatchLayout
from caffe_layers.pipeline.global_random import GENERATOR_PASS, GlobalRandom
from caffe_layers.pipeline.keras_sequence import SequenceCopy
from caffe_layers.pipeline.user_code import accepts_keywords, close_if_closable, import_object
from caffe_layers.prefetch import Producer

COUNT_NAMES = ("workers", "num_workers")  # this package's name, and keras'/PyTorch's


def worker_count_name(function) -> str | bool | None:
    """The name under which ``function`` takes the worker count beside ``worker_id``.

    False when it takes neither spelling; None when it cannot be told (a bare ``**kwargs``).
    """
    unknown = False
    for name in COUNT_NAMES:
        takes = accepts_keywords(function, ("worker_id", name))
        if takes:
            return name
        unknown = unknown or takes is None
    return None if unknown else False


def short_batch(where: str, rows: int, batch_size: int, fix: str) -> DataError:
    """The error for a batch of ``rows`` rows that ``partial_batch`` does not let through."""
    return DataError(f"{where}: has {rows} rows, fewer than the batch size {batch_size}; {fix}")


PAD_OR_DROP = "partial_batch: error refuses it; set partial_batch: pad (repeat its rows) or drop"
DROP_ONLY_LAST = ("partial_batch: drop leaves out only the last batch index, found short at "
                  "setup; use pad")
DROP_ONE_PER_PASS = ("the batch before was short too, but partial_batch: drop skips only the "
                     "last batch of a pass; use pad")


class SequenceProducer(Producer):
    """Fills batch ``task.index`` of ``task.epoch`` from this process's copy of the Sequence."""

    per_process = ("_copy",)

    def __init__(self, spec: str, kwargs: dict, layout: BatchLayout, seed: int, length: int,
                 partial: str) -> None:
        self.spec = spec
        self.kwargs = kwargs
        self.layout = layout
        self.seed = seed
        self.length = length
        self.partial = partial
        self._consumer_pid = os.getpid()
        self._copy: SequenceCopy | None = None

    def open(self, worker_id: int, workers: int) -> None:
        self._copy = SequenceCopy(self.spec, self.kwargs, self.seed, length=self.length,
                                  isolated=os.getpid() == self._consumer_pid)
        self._copy.build()

    def fill(self, out: dict, task) -> None:
        where = f"sequence '{self.spec}' batch index {task.index} (epoch {task.epoch})"
        arrays, rows = self.layout.read(self._copy.batch(task.index, task.epoch), where)
        if rows < self.layout.batch_size and self.partial != "pad":
            fix = PAD_OR_DROP if self.partial == "error" else DROP_ONLY_LAST
            raise short_batch(where, rows, self.layout.batch_size, fix)
        self.layout.write(arrays, rows, out, where)

    def close(self) -> None:
        if self._copy is not None:
            self._copy.close()
            self._copy = None


class BatchGeneratorProducer(Producer):
    """Runs the user's generator of batches; each worker has its own, restarted at each pass.

    Each pass draws from the global generators seeded from ``(seed, worker, workers, pass)``.
    """

    per_process = ("_iterator", "_random", "_function")

    def __init__(self, spec: str, kwargs: dict, layout: BatchLayout | None, seed: int,
                 partial: str, count_name: str | None) -> None:
        self.spec = spec
        self.kwargs = kwargs
        self.layout = layout
        self.seed = seed
        self.partial = partial
        self.count_name = count_name  # None: the function takes no worker arguments
        self.shard_rank, self.shard_count = 0, 1
        self._consumer_pid = os.getpid()
        self._iterator = None

    def shard(self, shard_rank: int, shard_count: int) -> None:
        if shard_count > 1 and not self.count_name:
            raise ConfigError(cannot_split(self.spec, f"{shard_count} solver ranks"))
        self.shard_rank, self.shard_count = shard_rank, shard_count

    def open(self, worker_id: int, workers: int) -> None:
        # Ids across all shards, so that generators sharding by worker id shard across ranks.
        self.worker_id = self.shard_rank * workers + worker_id
        self.workers = self.shard_count * workers
        self._function = import_object(self.spec, "generator")
        self._isolated = os.getpid() == self._consumer_pid
        self.passes, self.count, self._short_in_a_row = -1, 0, 0
        self._start_pass()

    def _start_pass(self) -> None:
        close_if_closable(self._iterator)
        self.passes += 1
        self._yielded = 0
        self._random = GlobalRandom(self.seed, GENERATOR_PASS, self.worker_id, self.workers,
                                    self.passes, isolated=self._isolated)
        arguments = dict(self.kwargs)
        if self.count_name:
            arguments.update({"worker_id": self.worker_id, self.count_name: self.workers})
        with self._random.active():
            self._iterator = iter(self._function(**arguments))

    def _where(self) -> str:
        return (f"generator '{self.spec}' worker {self.worker_id} batch {self.count} "
                f"(pass {self.passes})")

    def next_batch(self) -> Any:
        """The next batch; StopIteration ends the pass and the generator is called again."""
        while True:
            with self._random.active():
                try:
                    batch = next(self._iterator)
                except StopIteration:
                    batch = StopIteration
                except Exception as exc:
                    raise DataError(f"{self._where()}: raised {type(exc).__name__}: "
                                    f"{exc}") from exc
            if batch is not StopIteration:
                self._yielded += 1
                return batch
            if not self._yielded:
                raise DataError(f"{self._where()}: a pass yielded no batch")
            self._start_pass()

    def fill(self, out: dict, task) -> None:
        while True:
            where = self._where()
            arrays, rows = self.layout.read(self.next_batch(), where)
            self.count += 1
            if rows == self.layout.batch_size or self.partial == "pad":
                break
            self._short_in_a_row += 1
            if self.partial == "error" or self._short_in_a_row > 1:
                fix = PAD_OR_DROP if self.partial == "error" else DROP_ONE_PER_PASS
                raise short_batch(where, rows, self.layout.batch_size, fix)
        self._short_in_a_row = 0
        self.layout.write(arrays, rows, out, where)

    def close(self) -> None:
        close_if_closable(self._iterator)
        self._iterator = None


def cannot_split(spec: str, between: str, takes: bool | None = False) -> str:
    """Why a generator without worker_id/workers cannot run in several processes."""
    if takes is None:
        why = (f"'{spec}' takes **kwargs without naming worker_id and workers (a decorator's "
               f"wrapper?), so it cannot be told whether it accepts them; decorate the wrapper "
               f"with functools.wraps(function)")
    else:
        why = (f"'{spec}' takes no worker_id and workers arguments, so each of {between} would "
               f"yield the same batches; give it those parameters (or worker_id and num_workers) "
               f"and yield only its share")
    return f"generator: {why}, or use sequence: 'module:Class', or one worker (workers: 1)"


def _sequence_pipeline(params: SequenceParams, kwargs: dict) -> Pipeline:
    spec = params.sequence
    copy = SequenceCopy(spec, kwargs, params.seed, isolated=True)
    try:
        copy.build()
        layout = BatchLayout.from_first(
            copy.batch(0, 0), tops=params.tops, layout=params.layout, labels=params.labels,
            batch_size=params.batch_size, where=f"sequence '{spec}' batch index 0")
        length = last = copy.length
        if length > 1:
            where = f"sequence '{spec}' batch index {length - 1}, the last"
            _, last = layout.read(copy.batch(length - 1, 0), where)
    finally:
        copy.close()
    indices, note = _last_batch(params.partial_batch, layout.batch_size, length, last, spec)
    producer = SequenceProducer(spec, kwargs, layout, params.seed, length, params.partial_batch)
    specs = layout.specs()
    return Pipeline(producer, {len(specs): specs}, indices,
                    f"sequence '{spec}': {length} batches per epoch{note}; {layout.describe()}",
                    whole_batches=True)


def _last_batch(policy: str, batch_size: int, length: int, rows: int, spec: str) -> tuple:
    """The batch indices of an epoch and what the setup line says about the last, short one."""
    if rows == batch_size:
        return length, ""
    where = f"sequence '{spec}' batch index {length - 1}, the last,"
    if policy == "error":
        raise ConfigError(str(short_batch(where, rows, batch_size, PAD_OR_DROP)))
    if policy == "drop":
        return length - 1, f" (the last has {rows} of {batch_size} rows: left out)"
    return length, f" (the last has {rows} of {batch_size} rows: padded by repeating them)"


def _generator_pipeline(params: SequenceParams, kwargs: dict) -> Pipeline:
    spec = params.generator
    takes = worker_count_name(import_object(spec, "generator"))
    workers = params.workers
    if workers > 1 and not takes:
        raise ConfigError(cannot_split(spec, f"{workers} workers", takes))
    producer = BatchGeneratorProducer(spec, kwargs, None, params.seed, params.partial_batch,
                                      takes or None)
    producer.open(0, max(1, workers))  # worker 0's first batch, in this process
    try:
        first = producer.next_batch()
    finally:
        producer.close()
    producer.layout = BatchLayout.from_first(
        first, tops=params.tops, layout=params.layout, labels=params.labels,
        batch_size=params.batch_size, where=f"generator '{spec}' batch 0")
    if takes:
        what = f"generator '{spec}', one per worker (worker_id, {takes}; batch b from b % W)"
    else:
        what = (f"generator '{spec}' in one process (it takes no worker_id/workers: an "
                f"unmodified generator cannot be split between processes)")
    specs = producer.layout.specs()
    return Pipeline(producer, {len(specs): specs}, None, f"{what}; {producer.layout.describe()}")


def build(params: SequenceParams, train: bool) -> Pipeline:
    """Read batch 0 (and a Sequence's last) here, fix the tops; raise before any worker starts."""
    kwargs = dict(params.kwargs or {})
    if params.sequence is not None:
        return _sequence_pipeline(params, kwargs)
    return _generator_pipeline(params, kwargs)
