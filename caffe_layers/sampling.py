"""Which samples go into which batch: seeded epoch orders, sharding by rank, resume position.

The sample stream of a shard is an endless sequence of epochs; each epoch is the shard's part of a
permutation of ``range(n)`` (or of the identity without shuffling). Batch ``b`` is stream positions
``[b * batch_size, (b + 1) * batch_size)``, so a batch may span an epoch boundary (as in Caffe) and
resuming at batch ``b`` is exact. Everything is a pure function of ``(seed, epoch, index)``:
never of time, pid or which worker asks.

Nothing here grows with the dataset: an order gives the samples at given positions of an epoch
(:meth:`Order.at`) from a seeded bijection (:mod:`caffe_layers.bijections`), so a batch costs the
same at 100 samples as at 100 million, in every rank and worker.
"""

from __future__ import annotations

import functools
from collections import OrderedDict

import numpy as np

from caffe_layers import bijections
from caffe_layers.errors import ConfigError

# The second word of every seed sequence, one per use, so that no two random streams collide.
SHUFFLE_STREAM = 0  # epoch orders: (seed, SHUFFLE_STREAM, epoch)
SAMPLE_STREAM = 1  # a sample's augmentation: (seed, SAMPLE_STREAM, epoch, index)
ATTACH_STREAM = 2  # MultiInputDataLayer's attached rows: (seed, ATTACH_STREAM, epoch, index, item)
GENERATOR_STREAM = 3  # a user generator: (seed, GENERATOR_STREAM, worker_id, workers)
LEGACY_STREAM = 4  # user code's global random/numpy.random: (seed, LEGACY_STREAM, event, ...)


def stream_rng(seed: int, stream: int, *words: int) -> np.random.Generator:
    """The generator of ``(seed, stream, *words)``: the same in every process and run."""
    entropy = (int(seed), stream) + tuple(int(word) for word in words)
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence(entropy)))


def sample_rng(seed: int, epoch: int, index: int) -> np.random.Generator:
    """The augmentation RNG of sample ``index`` in ``epoch``: the same in every process."""
    return stream_rng(seed, SAMPLE_STREAM, epoch, index)


@functools.lru_cache(maxsize=16)
def epoch_keys(seed: int, epoch: int, sets: int = 1) -> np.ndarray:
    """``sets`` independent round keys for ``epoch``'s shuffle, ``(sets, ROUNDS)``: from
    ``(seed, SHUFFLE_STREAM, epoch)``, the same in every process (read-only, cached)."""
    entropy = (int(seed), SHUFFLE_STREAM, int(epoch))
    words = np.random.SeedSequence(entropy).generate_state(sets * bijections.ROUNDS, np.uint64)
    words.flags.writeable = False
    return words.reshape(sets, bijections.ROUNDS)


class Order:
    """The order of ``range(n)`` in each epoch: the identity.

    :meth:`at` gives the sample at some positions of an epoch, in memory independent of ``n``;
    calling the order gives a whole epoch (for tests and small ``n``).
    """

    def __init__(self, n: int) -> None:
        self.n = int(n)

    def at(self, epoch: int, positions: np.ndarray) -> np.ndarray:
        """The samples at ``positions`` (each in ``range(n)``) of ``epoch``'s order."""
        return np.array(positions, dtype=np.int64, copy=True).reshape(-1)

    def __call__(self, epoch: int) -> np.ndarray:
        return self.at(epoch, np.arange(self.n, dtype=np.int64))


class ShuffledOrder(Order):
    """A fresh pseudo-random permutation of ``range(n)`` in every epoch, from ``(seed, epoch)``.

    Position ``p`` holds ``sigma_epoch(p)``, a Feistel bijection (:mod:`caffe_layers.bijections`)
    keyed by the seed and the epoch: nothing of size ``n`` is ever built.
    """

    def __init__(self, n: int, seed: int) -> None:
        super().__init__(n)
        self.seed = int(seed)

    def at(self, epoch: int, positions: np.ndarray) -> np.ndarray:
        return bijections.permute(positions, self.n, epoch_keys(self.seed, epoch)[0])


class SampleStream:
    """Batches of sample indices cut from the epochs of one shard.

    Shard ``shard_rank`` of ``shard_count`` takes every ``shard_count``-th element of each epoch's
    order, starting at ``shard_rank``: the shards of one epoch are disjoint and together hold
    every sample once. A batch's indices are computed from its positions alone
    (:meth:`Order.at`): no epoch is materialised.
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

    def batch(self, number: int) -> tuple:
        """``(indices, epochs)`` of batch ``number``: two int64 arrays of ``batch_size``."""
        start = int(number) * self.batch_size
        positions = np.arange(start, start + self.batch_size, dtype=np.int64)
        epochs = positions // self.epoch_length
        in_epoch = self.shard_rank + (positions % self.epoch_length) * self.shard_count
        indices = np.empty(self.batch_size, dtype=np.int64)
        for epoch in np.unique(epochs):
            mask = epochs == epoch
            indices[mask] = self.order.at(int(epoch), in_epoch[mask])
        return indices, epochs


class _BlockTable:
    """Consecutive blocks covering ``range(n)``, held as runs of blocks of one length.

    ``runs`` are ``(first sample, block length, number of blocks)``. For HDF5 a file's blocks
    are its chunks, all of one length but the last, so millions of blocks are a few runs per
    file: the table's memory grows with the number of files, not of samples.
    """

    def __init__(self, n: int, runs) -> None:
        table = np.asarray(runs, dtype=np.int64).reshape(-1, 3)
        first, length, count = table.T
        ends = first + length * count
        if len(table) == 0 or first[0] != 0 or ends[-1] != n or np.any(first[1:] != ends[:-1]) \
                or np.any(length < 1) or np.any(count < 1):
            raise ConfigError(f"block runs must cover range({n}) in order with blocks of >= 1 "
                              f"sample (got {table.tolist()[:5]}...)")
        self.run_start, self.run_length = first, length
        self.run_first = np.cumsum(count) - count  # the number of each run's first block
        self.count = int(count.sum())
        self.largest = int(length.max())
        short = np.flatnonzero(length < self.largest)  # runs of blocks shorter than a slot
        self.short = np.concatenate([np.arange(self.run_first[r], self.run_first[r] + count[r])
                                     for r in short] or [np.zeros(0, np.int64)])
        self.short_deficit = self.largest - np.repeat(length[short], count[short])

    @staticmethod
    def runs_of(starts: np.ndarray, n: int) -> np.ndarray:
        """The runs of the blocks beginning at ``starts``."""
        lengths = np.diff(np.append(starts, n))
        begins = np.flatnonzero(np.diff(lengths, prepend=-1))  # where the block length changes
        counts = np.diff(np.append(begins, len(starts)))
        return np.stack([starts[begins], lengths[begins], counts], axis=1)

    def start(self, blocks: np.ndarray) -> np.ndarray:
        run = np.searchsorted(self.run_first, blocks, side="right") - 1
        return self.run_start[run] + (blocks - self.run_first[run]) * self.run_length[run]


class BlockShuffledOrder(Order):
    """A shuffle that keeps reads local: blocks in random order, then a bounded window shuffle.

    ``block_starts`` are the sorted first indices of consecutive blocks covering ``range(n)``
    (for HDF5: one block per chunk of rows). Each epoch permutes the blocks, lays their indices
    end to end, cuts that sequence into windows of ``window`` positions and permutes each window.
    Every epoch is a permutation of ``range(n)``; a window holds whole blocks except at its two
    ends, so ``window`` consecutive samples come from at most ``ceil(window / block) + 1``
    blocks. A pure function of ``(seed, epoch)``, like :class:`ShuffledOrder`.

    Lazily: the block order is a Feistel bijection of the block numbers and each window's a
    bijection keyed by its number. Position ``p`` is found by laying every block in a slot of the
    largest block's length and removing the gaps the shorter blocks leave, which only needs the
    slots of the shorter blocks (one per file for HDF5): per epoch 16 bytes per shorter block.
    """

    def __init__(self, n: int, block_starts, window: int, seed: int) -> None:
        super().__init__(n)
        starts = np.asarray(block_starts, dtype=np.int64)
        if self.n < 1 or len(starts) == 0 or starts[0] != 0 or np.any(np.diff(starts) <= 0) \
                or starts[-1] >= self.n:
            raise ConfigError(f"block_starts must rise strictly from 0 to below n={self.n}")
        self._setup(_BlockTable(self.n, _BlockTable.runs_of(starts, self.n)), window, seed)

    @classmethod
    def from_runs(cls, n: int, runs, window: int, seed: int) -> BlockShuffledOrder:
        """The order of the blocks given as runs ``(first sample, block length, blocks)``,
        without a list of every block (e.g. from :meth:`HDF5Files.block_runs`)."""
        order = cls.__new__(cls)
        Order.__init__(order, n)
        order._setup(_BlockTable(order.n, runs), window, seed)
        return order

    def _setup(self, blocks: _BlockTable, window: int, seed: int) -> None:
        if int(window) < 1:
            raise ConfigError(f"window must be >= 1 (got {window})")
        self.blocks = blocks
        self.window = int(window)
        self.seed = int(seed)
        self._layouts: OrderedDict = OrderedDict()  # epoch -> its keys and short-block gaps

    def at(self, epoch: int, positions: np.ndarray) -> np.ndarray:
        block_keys, window_keys, ends, gaps = self._layout(epoch)
        sequence = self._unwindow(np.asarray(positions, np.int64).reshape(-1), window_keys)
        passed = np.searchsorted(ends, sequence, side="right")  # short blocks ending before
        slotted = sequence + gaps[passed]
        slots, offsets = np.divmod(slotted, self.blocks.largest)
        blocks = bijections.permute(slots, self.blocks.count, block_keys)
        return self.blocks.start(blocks) + offsets

    def _unwindow(self, positions: np.ndarray, window_keys: np.ndarray) -> np.ndarray:
        """Where each position's sample sits in the block sequence before the window shuffle."""
        windows, within = np.divmod(positions, self.window)
        full = self.n // self.window
        sizes = np.where(windows < full, self.window, self.n - full * self.window)
        out = np.empty_like(positions)
        for size in np.unique(sizes):  # at most two: whole windows and the last, shorter one
            mask = sizes == size
            keys = bijections.derive_keys(window_keys, windows[mask])
            out[mask] = windows[mask] * self.window + bijections.permute(within[mask], size, keys)
        return out

    def _layout(self, epoch: int) -> tuple:
        """``(block keys, window keys, ends, gaps)`` of ``epoch``: the short blocks, in slot
        order, end at sequence position ``ends[i]`` having left ``gaps[i + 1]`` empty slot
        places (``gaps[0]`` is 0: before the first short block nothing is left empty)."""
        if epoch not in self._layouts:
            block_keys, window_keys = epoch_keys(self.seed, epoch, sets=2)
            table = self.blocks
            slots = bijections.invert(table.short, table.count, block_keys)
            order = np.argsort(slots)
            gaps = np.concatenate(([0], np.cumsum(table.short_deficit[order])))
            ends = (slots[order] + 1) * table.largest - gaps[1:]
            self._layouts[epoch] = (block_keys, window_keys, ends, gaps)
            if len(self._layouts) > 2:
                self._layouts.popitem(last=False)
        return self._layouts[epoch]
