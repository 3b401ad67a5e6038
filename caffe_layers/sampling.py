"""Which samples go into which batch: seeded epoch orders, sharding by rank, resume position.

The sample stream of a shard is an endless sequence of epochs; each epoch is the shard's part of a
permutation of ``range(n)`` (or of the identity without shuffling). Batch ``b`` is stream positions
``[b * batch_size, (b + 1) * batch_size)``, so a batch may span an epoch boundary (as in Caffe) and
resuming at batch ``b`` is exact. Everything is a pure function of ``(seed, epoch, index)``:
never of time, pid or which worker asks.
"""

from __future__ import annotations

from collections import OrderedDict

import numpy as np

from caffe_layers.errors import ConfigError

# The second word of every seed sequence, one per use, so that no two random streams collide.
SHUFFLE_STREAM = 0  # epoch orders: (seed, SHUFFLE_STREAM, epoch)
SAMPLE_STREAM = 1  # a sample's augmentation: (seed, SAMPLE_STREAM, epoch, index)
ATTACH_STREAM = 2  # MultiInputDataLayer's attached rows: (seed, ATTACH_STREAM, epoch, index, item)
GENERATOR_STREAM = 3  # a user generator: (seed, GENERATOR_STREAM, worker_id, workers)


def stream_rng(seed: int, stream: int, *words: int) -> np.random.Generator:
    """The generator of ``(seed, stream, *words)``: the same in every process and run."""
    entropy = (int(seed), stream) + tuple(int(word) for word in words)
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence(entropy)))


def sample_rng(seed: int, epoch: int, index: int) -> np.random.Generator:
    """The augmentation RNG of sample ``index`` in ``epoch``: the same in every process."""
    return stream_rng(seed, SAMPLE_STREAM, epoch, index)


class Order:
    """The order of ``range(n)`` in each epoch: the identity."""

    def __init__(self, n: int) -> None:
        self.n = int(n)

    def __call__(self, epoch: int) -> np.ndarray:
        return np.arange(self.n, dtype=np.int64)


class ShuffledOrder(Order):
    """A fresh permutation of ``range(n)`` in every epoch, from ``(seed, epoch)``."""

    def __init__(self, n: int, seed: int) -> None:
        super().__init__(n)
        self.seed = int(seed)

    def __call__(self, epoch: int) -> np.ndarray:
        return stream_rng(self.seed, SHUFFLE_STREAM, epoch).permutation(self.n)


class SampleStream:
    """Batches of sample indices cut from the epochs of one shard.

    Shard ``shard_rank`` of ``shard_count`` takes every ``shard_count``-th element of each epoch's
    order, starting at ``shard_rank``: the shards of one epoch are disjoint and together hold
    every sample once.
    """

    def __init__(self, order: Order, batch_size: int, shard_rank: int = 0,
                 shard_count: int = 1) -> None:
        if not 0 <= shard_rank < shard_count:
            raise ConfigError(f"shard_rank must be in [0, shard_count) (got {shard_rank} of "
                              f"{shard_count})")
        self.order = order
        self.batch_size = int(batch_size)
        self.shard_rank = int(shard_rank)
        self.shard_count = int(shard_count)
        self.epoch_length = len(range(shard_rank, order.n, shard_count))
        if self.epoch_length == 0:
            raise ConfigError(f"shard {shard_rank} of {shard_count} is empty: the dataset has only "
                              f"{order.n} samples; use fewer shards")
        self._cache: OrderedDict = OrderedDict()

    def epoch_indices(self, epoch: int) -> np.ndarray:
        """This shard's sample indices in ``epoch``, in stream order."""
        if epoch not in self._cache:
            self._cache[epoch] = self.order(epoch)[self.shard_rank::self.shard_count]
            if len(self._cache) > 2:  # a batch spans at most two epochs (unless tiny)
                self._cache.popitem(last=False)
        return self._cache[epoch]

    def batch(self, number: int) -> tuple:
        """``(indices, epochs)`` of batch ``number``: two int64 arrays of ``batch_size``."""
        start = int(number) * self.batch_size
        positions = np.arange(start, start + self.batch_size, dtype=np.int64)
        epochs = positions // self.epoch_length
        offsets = positions % self.epoch_length
        indices = np.empty(self.batch_size, dtype=np.int64)
        for epoch in np.unique(epochs):
            mask = epochs == epoch
            indices[mask] = self.epoch_indices(int(epoch))[offsets[mask]]
        return indices, epochs


class BlockShuffledOrder(Order):
    """A shuffle that keeps reads local: blocks in random order, then a bounded window shuffle.

    ``block_starts`` are the sorted first indices of consecutive blocks covering ``range(n)``
    (for HDF5: one block per chunk of rows). Each epoch permutes the blocks, lays their indices
    end to end, cuts that sequence into windows of ``window`` positions and permutes each window.
    Every epoch is a permutation of ``range(n)``; a window holds whole blocks except at its two
    ends, so ``window`` consecutive samples come from at most ``ceil(window / block) + 1``
    blocks. A pure function of ``(seed, epoch)``, like :class:`ShuffledOrder`.
    """

    def __init__(self, n: int, block_starts, window: int, seed: int) -> None:
        super().__init__(n)
        starts = np.asarray(block_starts, dtype=np.int64)
        if self.n < 1 or len(starts) == 0 or starts[0] != 0 or np.any(np.diff(starts) <= 0) \
                or starts[-1] >= self.n:
            raise ConfigError(f"block_starts must rise strictly from 0 to below n={self.n}")
        if int(window) < 1:
            raise ConfigError(f"window must be >= 1 (got {window})")
        self.starts = starts
        self.lengths = np.diff(np.append(starts, self.n))
        self.window = int(window)
        self.seed = int(seed)

    def __call__(self, epoch: int) -> np.ndarray:
        rng = stream_rng(self.seed, SHUFFLE_STREAM, epoch)
        blocks = rng.permutation(len(self.starts))
        lengths = self.lengths[blocks]
        first_position = np.cumsum(lengths) - lengths
        sequence = np.repeat(self.starts[blocks] - first_position, lengths)
        sequence += np.arange(self.n, dtype=np.int64)
        whole = self.n - self.n % self.window
        head = rng.permuted(sequence[:whole].reshape(-1, self.window), axis=1).ravel()
        return np.concatenate([head, rng.permutation(sequence[whole:])])
