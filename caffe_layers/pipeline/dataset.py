"""The user's own data → batches: a per-sample dataset class, or a plain generator function.

``dataset: "module:Class"`` names a class built as ``Class(**kwargs)`` with ``__len__`` and
``__getitem__(i, rng)`` returning ``{top name: array}``; ``rng`` is the sample's generator (a
function of seed, epoch and ``i``), so augmentation is the same for any number of workers. A
keras-style ``__getitem__(i)`` (told apart by its signature) gets no rng: the global ``random``
and ``numpy.random`` are seeded from ``(seed, epoch, i)`` before each call instead. The
class is built once in the layer's process at setup (to read its length and sample 0; its
``close()`` is called if it has one, before any worker starts) and once in every worker, so a
file it opens in ``__init__`` is never shared across a fork.

``generator: "module:function"`` is called in every worker as
``function(worker_id, workers, rng, **kwargs)`` and must return an iterator of samples;
``rng`` is seeded from ``(seed, worker_id, workers)``. Batch ``b`` comes from worker
``b % W``: the output is deterministic for a given number of workers but changes with it. With
several solver ranks the ids are global: worker ``w`` of rank ``r`` is worker ``r * W + w`` of
``ranks * W``, so a generator that splits its data by worker id splits it across ranks too. An
exhausted iterator is started again (the next pass); one that yields nothing is an error.

The tops are named by ``tops`` (default: the keys of sample 0, in order); sample 0 fixes every
top's shape, and every sample is checked against it (DataError naming the sample and the top).
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any, Mapping, Tuple

import numpy as np

from caffe_layers.errors import ConfigError, DataError
from caffe_layers.params import DatasetParams
from caffe_layers.pipeline import Pipeline
from caffe_layers.pipeline.global_random import GETITEM, seeded
from caffe_layers.pipeline.user_code import close_if_closable, import_object, positional_count
from caffe_layers.prefetch import Producer, TopSpec
from caffe_layers.sampling import GENERATOR_STREAM, sample_rng, stream_rng
from caffe_layers.sources.arrays import as_sample_array


def generator_rng(seed: int, worker_id: int, workers: int) -> np.random.Generator:
    """The generator function's RNG in worker ``worker_id`` of ``workers``."""
    return stream_rng(seed, GENERATOR_STREAM, worker_id, workers)


@dataclasses.dataclass(frozen=True)
class SampleLayout:
    """The tops every sample must provide and their shapes (those of sample 0)."""

    tops: Tuple[str, ...]
    shapes: Tuple[Tuple[int, ...], ...]

    @classmethod
    def from_first(cls, sample: Any, tops: Tuple[str, ...] | None, where: str) -> SampleLayout:
        _check_mapping(sample, where)
        if tops is None:
            bad = [key for key in sample if not isinstance(key, str)]
            if bad:
                raise DataError(f"{where}: keys are top names and must be strings (got {bad})")
            tops = tuple(sample)
        if not tops:
            raise DataError(f"{where}: the sample has no keys; return {{top name: array}}")
        shapes = tuple(_value(sample, top, where).shape for top in tops)
        return cls(tuple(tops), shapes)

    def write(self, sample: Any, out: dict, row: int, where: str) -> None:
        """Check ``sample`` against the layout and write it into row ``row`` of ``out``."""
        _check_mapping(sample, where)
        for top, shape in zip(self.tops, self.shapes):
            array = _value(sample, top, where)
            if array.shape != shape:
                raise DataError(f"{where}: top '{top}' has shape {array.shape}, expected {shape} "
                                f"(the shape of sample 0)")
            if top in out:
                out[top][row] = array

    def specs(self, batch_size: int) -> Tuple[TopSpec, ...]:
        return tuple(TopSpec(top, (batch_size,) + shape)
                     for top, shape in zip(self.tops, self.shapes))


def _check_mapping(sample: Any, where: str) -> None:
    if not isinstance(sample, Mapping):
        raise DataError(f"{where}: returned {type(sample).__name__}, expected a dict of "
                        f"top name -> array")


def _value(sample: Mapping, top: str, where: str) -> np.ndarray:
    if top not in sample:
        keys = ", ".join(map(repr, sample)) or "none"
        raise DataError(f"{where}: has no key '{top}' (keys: {keys}); every sample needs one "
                        f"value per top")
    return as_sample_array(sample[top], where, top)


class DatasetProducer(Producer):
    """Runs the user's dataset class; each process builds its own instance in ``open``."""

    per_process = ("_dataset",)

    def __init__(self, spec: str, kwargs: dict, layout: SampleLayout, length: int,
                 reader: SampleReader) -> None:
        self.spec = spec
        self.kwargs = kwargs
        self.layout = layout
        self.length = length
        self.reader = reader
        self._consumer_pid = os.getpid()
        self._dataset = None

    def open(self, worker_id: int, workers: int) -> None:
        self._dataset = import_object(self.spec, "dataset")(**self.kwargs)
        self._isolated = os.getpid() == self._consumer_pid
        length = len(self._dataset)
        if length != self.length:
            raise DataError(f"dataset '{self.spec}': this instance has {length} samples, the one "
                            f"built at setup had {self.length}; len() must not change")

    def fill(self, out: dict, task) -> None:
        for row, index, rng in task:
            epoch = int(task.epochs[row])
            sample = self.reader.read(self._dataset, index, rng, epoch, self._isolated)
            self.layout.write(sample, out, row, f"dataset '{self.spec}' sample {index}")

    def close(self) -> None:
        if self._dataset is not None:
            close_if_closable(self._dataset)
            self._dataset = None


@dataclasses.dataclass(frozen=True)
class SampleReader:
    """How to call the class's ``__getitem__``: with the sample's ``rng``, or keras' way.

    keras' ``__getitem__(self, i)`` gets no rng; the global ``random`` and ``numpy.random`` are
    seeded from ``(seed, epoch, i)`` just before each call instead, so a class that draws from
    them is deterministic for any number of workers too.
    """

    takes_rng: bool
    seed: int

    @classmethod
    def of(cls, dataset: Any, seed: int) -> SampleReader:
        count = positional_count(dataset.__getitem__)
        return cls(count is None or count >= 2, seed)

    def read(self, dataset: Any, index: int, rng, epoch: int, isolated: bool) -> Any:
        if self.takes_rng:
            return dataset.__getitem__(index, rng)
        with seeded(self.seed, GETITEM, epoch, index, isolated=isolated):
            return dataset[index]


class GeneratorProducer(Producer):
    """Runs the user's generator function; every worker has its own iterator."""

    per_process = ("_iterator",)

    def __init__(self, spec: str, kwargs: dict, layout: SampleLayout, seed: int) -> None:
        self.spec = spec
        self.kwargs = kwargs
        self.layout = layout
        self.seed = seed
        self.shard_rank, self.shard_count = 0, 1
        self._iterator = None

    def shard(self, shard_rank: int, shard_count: int) -> None:
        self.shard_rank, self.shard_count = shard_rank, shard_count

    def open(self, worker_id: int, workers: int) -> None:
        # Ids across all shards, so that generators sharding by worker id shard across ranks.
        self.worker_id = self.shard_rank * workers + worker_id
        self.workers = self.shard_count * workers
        self._function = import_object(self.spec, "generator")
        self._rng = generator_rng(self.seed, self.worker_id, self.workers)
        self._iterator = self._start()
        self.produced = 0

    def _start(self):
        return iter(self._function(self.worker_id, self.workers, self._rng, **self.kwargs))

    def _next(self) -> Any:
        try:
            return next(self._iterator)
        except StopIteration:
            close_if_closable(self._iterator)
            self._iterator = self._start()  # the next pass
        try:
            return next(self._iterator)
        except StopIteration:
            raise DataError(f"generator '{self.spec}' in worker {self.worker_id} yields no "
                            f"samples") from None

    def fill(self, out: dict, task) -> None:
        for row, _, _ in task:
            where = f"generator '{self.spec}' worker {self.worker_id} sample {self.produced}"
            self.layout.write(self._next(), out, row, where)
            self.produced += 1

    def close(self) -> None:
        if self._iterator is not None:
            close_if_closable(self._iterator)
            self._iterator = None


def _probe_dataset(params: DatasetParams, kwargs: dict) -> Tuple[SampleLayout, int, SampleReader]:
    dataset = import_object(params.dataset, "dataset")(**kwargs)
    try:
        try:
            length = len(dataset)
        except TypeError:
            raise ConfigError(f"dataset: '{params.dataset}' has no __len__; give the class "
                              f"__len__ and __getitem__(i, rng) or __getitem__(i)") from None
        if length < 1:
            raise DataError(f"dataset '{params.dataset}': len() is {length}; it needs samples")
        reader = SampleReader.of(dataset, params.seed)
        sample = reader.read(dataset, 0, sample_rng(params.seed, 0, 0), 0, isolated=True)
        where = f"dataset '{params.dataset}' sample 0"
        return SampleLayout.from_first(sample, params.tops, where), length, reader
    finally:
        close_if_closable(dataset)


def _probe_generator(params: DatasetParams, kwargs: dict) -> SampleLayout:
    function = import_object(params.generator, "generator")
    workers = max(1, params.workers)
    iterator = iter(function(0, workers, generator_rng(params.seed, 0, workers), **kwargs))
    try:
        sample = next(iterator)
    except StopIteration:
        raise DataError(f"generator '{params.generator}' yields no samples") from None
    finally:
        close_if_closable(iterator)
    return SampleLayout.from_first(sample, params.tops, f"generator '{params.generator}' "
                                                        f"sample 0")


def build(params: DatasetParams, train: bool) -> Pipeline:
    """Build an instance here, read sample 0 and fix the top shapes; raise before any worker."""
    kwargs = dict(params.kwargs or {})
    if params.dataset is not None:
        layout, length, reader = _probe_dataset(params, kwargs)
        producer: Producer = DatasetProducer(params.dataset, kwargs, layout, length, reader)
        samples: int | None = length
        what = f"{length} samples of dataset '{params.dataset}'"
    else:
        layout = _probe_generator(params, kwargs)
        producer = GeneratorProducer(params.generator, kwargs, layout, params.seed)
        samples = None
        what = f"generator '{params.generator}' (one per worker; batch b from worker b % W)"
    specs = layout.specs(params.batch_size)
    shapes = ", ".join(f"{top} {shape}" for top, shape in zip(layout.tops, layout.shapes))
    return Pipeline(producer, {len(specs): specs}, samples, f"{what}: {shapes}")
