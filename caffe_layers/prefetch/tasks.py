"""What a worker is asked to do: fill batch number ``b``, and which worker may do it.

A *plan* turns batch numbers into small picklable :class:`BatchTask` objects (the only thing,
besides a slot id, that travels to a worker) and says whether a batch must go to one particular
worker.
"""

from __future__ import annotations

import contextlib
from typing import ContextManager, Iterable, Iterator, Tuple

import numpy as np

from caffe_layers.sampling import SampleStream, sample_rng


class BatchTask:
    """Batch ``number``: for indexed data, the dataset ``indices`` and ``epochs`` of its rows.

    Iterating yields ``(row, index, rng)`` per row and remembers the row being filled, so that a
    failure can name its sample. ``rng`` is :func:`~caffe_layers.sampling.sample_rng` of the sample:
    the same whichever process fills it. Generator batches have no indices; iterating them yields
    ``(row, None, None)``.
    """

    __slots__ = ("number", "batch_size", "indices", "epochs", "seed", "current")

    def __init__(self, number: int, batch_size: int, indices: np.ndarray | None = None,
                 epochs: np.ndarray | None = None, seed: int = 0) -> None:
        self.number = number
        self.batch_size = batch_size
        self.indices = indices
        self.epochs = epochs
        self.seed = seed
        self.current: int | None = None

    def __iter__(self) -> Iterator[tuple]:
        return self.rows(range(self.batch_size))

    def rows(self, order: Iterable[int]) -> Iterator[tuple]:
        """Like iterating, but over the rows in ``order`` (e.g. sorted by storage position)."""
        for row in order:
            row = int(row)
            self.current = row
            if self.indices is None:
                yield row, None, None
            else:
                index, epoch = int(self.indices[row]), int(self.epochs[row])
                yield row, index, sample_rng(self.seed, epoch, index)
        self.current = None

    def current_sample(self) -> int | None:
        """The dataset index of the row being filled, if any."""
        if self.current is None or self.indices is None:
            return None
        return int(self.indices[self.current])

    def __getstate__(self) -> tuple:
        return self.number, self.batch_size, self.indices, self.epochs, self.seed

    def __setstate__(self, state: tuple) -> None:
        self.number, self.batch_size, self.indices, self.epochs, self.seed = state
        self.current = None

    def __repr__(self) -> str:
        return f"BatchTask(number={self.number}, batch_size={self.batch_size})"


class SamplePlan:
    """Indexed data: batch ``b`` holds the samples ``stream.batch(b)``; any worker may fill it."""

    def __init__(self, stream: SampleStream, seed: int) -> None:
        self.stream = stream
        self.seed = int(seed)
        self.batch_size = stream.batch_size

    def task(self, number: int) -> BatchTask:
        indices, epochs = self.stream.batch(number)
        return BatchTask(number, self.batch_size, indices, epochs, self.seed)

    def worker_for(self, number: int, workers: int) -> int | None:
        return None


class RoundRobinPlan:
    """Generator data: each worker runs its own generator; batch ``b`` comes from worker b % W.

    The output is deterministic for a given number of workers (batch ``b`` is batch ``b // W`` of
    worker ``b % W``'s generator) but, unlike indexed data, changes with the number of workers.
    """

    def __init__(self, batch_size: int) -> None:
        self.batch_size = int(batch_size)

    def task(self, number: int) -> BatchTask:
        return BatchTask(number, self.batch_size)

    def worker_for(self, number: int, workers: int) -> int | None:
        return number % workers if workers else None


class IndexedBatchTask:
    """Batch ``number`` of the stream: whole batch ``index`` of ``epoch`` (a keras Sequence's idx).

    The producer fills all its rows with one call of the user's code, so there is no sample to
    name on failure; its own message names the batch index.
    """

    __slots__ = ("number", "epoch", "index")

    def __init__(self, number: int, epoch: int, index: int) -> None:
        self.number = number
        self.epoch = epoch
        self.index = index

    def current_sample(self) -> None:
        return None

    def __repr__(self) -> str:
        return f"IndexedBatchTask(number={self.number}, epoch={self.epoch}, index={self.index})"


class IndexedBatchPlan:
    """Batch-level data: stream batch ``b`` is one batch index of one epoch; any worker fills it.

    ``stream`` is a :class:`~caffe_layers.sampling.SampleStream` of ``batch_size`` 1 over the
    batch indices (its order, shard and epochs), so batch ``b`` maps to ``(epoch, index)`` as a
    pure function of the seed: every index once per epoch, disjoint across shards, exact on resume.
    ``batch_size`` is the rows each whole batch fills (the engine checks it against the arrays).
    """

    def __init__(self, stream: SampleStream, batch_size: int) -> None:
        if stream.batch_size != 1:
            raise ValueError(f"IndexedBatchPlan needs a stream of batch_size 1 (one batch index "
                             f"per position), got {stream.batch_size}")
        self.stream = stream
        self.batch_size = int(batch_size)

    def task(self, number: int) -> IndexedBatchTask:
        indices, epochs = self.stream.batch(number)
        return IndexedBatchTask(number, int(epochs[0]), int(indices[0]))

    def worker_for(self, number: int, workers: int) -> int | None:
        return None


class Producer:
    """What workers run: subclass it (it must pickle for spawn/forkserver).

    ``open`` runs once in each worker after it starts (open files here, never before a fork);
    ``forking`` wraps each fork in the consumer, inside the engine's own preparation of every
    native thread pool (:mod:`~caffe_layers.prefetch.forksafe`), which no producer has to ask for;
    ``prepare`` is told of each task as soon as it reaches the worker, while earlier ones are
    still being filled (to start slow reads early); ``fill`` writes every row of every array of
    ``out`` (``{top name: array of the batch shape}``, views of a shared-memory slot) for ``task``
    and may return a small picklable report (e.g. the samples it had to skip), handed to the
    consumer with the batch; ``close`` runs at the end. With ``workers: 0`` the same methods run
    in the consumer's process, and ``prepare`` is never called.
    """

    #: Attributes that ``open`` makes in the process that fills batches (open files, readers, the
    #: user's object): pickled as None for a spawn or forkserver worker, which opens its own.
    per_process: Tuple[str, ...] = ()

    def __getstate__(self) -> dict:
        return dict(self.__dict__, **dict.fromkeys(self.per_process))

    def forking(self) -> ContextManager:
        """Entered in the consumer around each fork of a worker (default: nothing).

        For process-global state of this producer's own that a forked child must inherit in a
        safe configuration. Native thread pools (OpenCV's) are already prepared by the engine
        around every fork, for every producer; a producer wrapping others enters theirs.
        """
        return contextlib.nullcontext()

    def shard(self, shard_rank: int, shard_count: int) -> None:
        """Told, before any worker starts, that this consumer is shard ``shard_rank`` of
        ``shard_count``.

        Indexed data is sharded by its plan, so the default does nothing; a producer that is not
        indexed (a generator) shards itself.
        """

    def open(self, worker_id: int, workers: int) -> None:
        """Called once in the process that will fill batches."""

    def prepare(self, task) -> None:
        """Told, in a worker, of a task it will fill after the ones it is filling or holds.

        Called from the worker's receiving thread, at the same time as ``fill`` runs in its main
        thread: only start work here (reads ahead), and keep what it shares with ``fill`` under a
        lock. An exception raised here becomes that batch's error. Default: nothing.
        """

    def fill(self, out: dict, task: BatchTask) -> object:
        raise NotImplementedError

    def close(self) -> None:
        """Called once when the process stops filling batches."""
