"""Epoch orders and sample streams: exactly once per epoch across shards, exact resume, lazy
evaluation in memory independent of the dataset size, and the block order's locality."""

import tracemalloc

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from caffe_layers import bijections
from caffe_layers.errors import ConfigError
from caffe_layers.sampling import (
    BlockShuffledOrder,
    Order,
    SampleStream,
    ShuffledOrder,
    epoch_keys,
)

ORDERS = st.sampled_from(["identity", "shuffled", "blocks"])


def make_order(kind, n, seed, block=3, window=5):
    if kind == "identity":
        return Order(n)
    if kind == "shuffled":
        return ShuffledOrder(n, seed)
    return BlockShuffledOrder(n, np.arange(0, n, block), window, seed)


@settings(max_examples=80, deadline=None)
@given(kind=ORDERS, n=st.integers(1, 300), count=st.integers(1, 9), batch=st.integers(1, 17),
       seed=st.integers(0, 5))
def test_each_epoch_is_split_disjointly_and_completely_across_shards(kind, n, count, batch, seed):
    count = min(count, n)
    order = make_order(kind, n, seed)
    streams = [SampleStream(order, batch, rank, count) for rank in range(count)]
    for epoch in range(2):
        seen = []
        for stream in streams:
            length = stream.epoch_length
            first, last = epoch * length, (epoch + 1) * length  # stream positions of the epoch
            rows = [stream.batch(b) for b in range(first // batch, (last - 1) // batch + 1)]
            indices = np.concatenate([r[0] for r in rows])[first % batch:][:length]
            epochs = np.concatenate([r[1] for r in rows])[first % batch:][:length]
            assert (epochs == epoch).all()
            seen.append(indices)
        assert sorted(np.concatenate(seen).tolist()) == list(range(n))


@settings(max_examples=40, deadline=None)
@given(kind=ORDERS, n=st.integers(1, 200), batch=st.integers(1, 13), seed=st.integers(0, 3))
def test_the_stream_deals_each_epoch_of_the_order_rank_by_rank(kind, n, batch, seed):
    order = make_order(kind, n, seed)
    count = min(3, n)
    for rank in range(count):
        stream = SampleStream(order, batch, rank, count)
        epochs = 4 * batch // stream.epoch_length + 2
        expected = np.concatenate([order(e)[rank::count] for e in range(epochs)])
        got = np.concatenate([stream.batch(b)[0] for b in range(4)])
        assert np.array_equal(got, expected[:len(got)])


def test_a_batch_is_a_pure_function_of_its_number():
    """Resume (start_iter) is exact: batch b does not depend on the batches asked before it."""
    order = ShuffledOrder(10 ** 6, 3)
    walked = SampleStream(order, 64, 5, 8)
    for number in range(50):
        walked.batch(number)
    fresh = SampleStream(ShuffledOrder(10 ** 6, 3), 64, 5, 8)
    for number in (49, 50, 12345):
        assert all(np.array_equal(a, b) for a, b in zip(walked.batch(number),
                                                         fresh.batch(number)))


def traced(make) -> tuple:
    """``(result of make(), bytes it still holds, bytes at its peak)`` by tracemalloc."""
    tracemalloc.start()
    try:
        result = make()
        kept, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return result, kept, peak


def build_huge(kind: str) -> SampleStream:
    """10^11 samples: for blocks, 100 files of 10^9 + 10 rows in chunks of 64 (the last short)."""
    rows = 10 ** 9 + 10
    if kind == "blocks":
        runs = [run for f in range(100)
                for run in ((f * rows, 64, 10 ** 9 // 64), (f * rows + 10 ** 9, 10, 1))]
        order = BlockShuffledOrder.from_runs(100 * rows, runs, 256, 0)
    else:
        order = ShuffledOrder(100 * rows, 0)
    return SampleStream(order, 64, 511, 512)


@pytest.mark.parametrize("kind", ["shuffled", "blocks"])
def test_memory_does_not_grow_with_the_dataset(kind):
    """A 10^11-sample order keeps kilobytes (the block order is built from its runs, not from a
    list of blocks), and a batch allocates kilobytes."""
    SampleStream(make_order(kind, 1000, 0), 64).batch(0)  # first-call costs of numpy's functions
    stream, kept, _ = traced(lambda: build_huge(kind))
    assert kept < 64 * 1024, f"the order keeps {kept} bytes"
    (indices, _), _, peak = traced(lambda: (stream.batch(10 ** 9), stream.batch(3 * 10 ** 9))[0])
    assert peak < 256 * 1024, f"a batch allocated {peak} bytes"
    assert ((indices >= 0) & (indices < stream.order.n)).all() and len(np.unique(indices)) == 64


# --- the block order --------------------------------------------------------------------------

def eager_block_order(n, starts, window, seed, epoch):
    """The definition, materialised: blocks permuted, laid end to end, each window permuted."""
    starts = np.asarray(starts)
    lengths = np.diff(np.append(starts, n))
    block_keys, window_keys = epoch_keys(seed, epoch, sets=2)
    blocks = bijections.permute(np.arange(len(starts)), len(starts), block_keys)
    sequence = np.concatenate([np.arange(starts[b], starts[b] + lengths[b]) for b in blocks])
    out = np.empty(n, np.int64)
    for first in range(0, n, window):
        size = min(window, n - first)
        keys = bijections.derive_keys(window_keys, np.full(size, first // window))
        out[first:first + size] = sequence[first + bijections.permute(np.arange(size), size,
                                                                      keys)]
    return out


@settings(max_examples=100, deadline=None)
@given(sizes=st.lists(st.integers(1, 70), min_size=1, max_size=60), window=st.integers(1, 300),
       seed=st.integers(0, 3), epoch=st.integers(0, 3))
def test_the_lazy_block_order_is_the_materialised_one_and_keeps_its_bounds(sizes, window, seed,
                                                                            epoch):
    starts = np.cumsum([0] + sizes[:-1])
    n = int(sum(sizes))
    order = BlockShuffledOrder(n, starts, window, seed)
    epoch_order = order(epoch)
    assert np.array_equal(epoch_order, eager_block_order(n, starts, window, seed, epoch))
    positions = np.random.default_rng(seed).integers(0, n, 20)
    assert np.array_equal(order.at(epoch, positions), epoch_order[positions])
    block_of = np.searchsorted(starts, np.arange(n), side="right") - 1
    for first in range(0, n, window):  # a window holds whole blocks but at its two ends
        blocks = set(block_of[epoch_order[first:first + window]].tolist())
        assert len(blocks) <= -(-window // min(sizes)) + 1
    position = np.empty(n, np.int64)
    position[epoch_order] = np.arange(n)
    for block, size in enumerate(sizes):  # a block's rows stay within size + 2 windows
        where = position[block_of == block]
        assert where.max() - where.min() < size + 2 * window


def test_block_order_with_window_one_moves_whole_blocks():
    order = BlockShuffledOrder(10, [0, 4, 7], 1, seed=2)
    blocks = {0: [0, 1, 2, 3], 4: [4, 5, 6], 7: [7, 8, 9]}
    seen = set()
    for epoch in range(6):
        epoch_order = order(epoch).tolist()
        position = 0
        while position < 10:
            block = blocks[epoch_order[position]]
            assert epoch_order[position:position + len(block)] == block
            position += len(block)
        seen.add(tuple(epoch_order))
    assert len(seen) > 1, "the blocks never moved"


@pytest.mark.parametrize(("starts", "window", "message"), [
    ([1, 4], 2, "block_starts must rise strictly from 0"),
    ([0, 4, 4], 2, "block_starts must rise strictly"),
    ([0, 12], 2, "below n=10"),
    ([0], 0, "window must be >= 1"),
])
def test_block_order_arguments(starts, window, message):
    with pytest.raises(ConfigError, match=message):
        BlockShuffledOrder(10, starts, window, 0)


def test_runs_and_starts_describe_the_same_order():
    runs = [(0, 64, 3), (192, 8, 1), (200, 64, 2), (328, 5, 1)]
    starts = np.concatenate([np.arange(first, first + length * count, length)
                             for first, length, count in runs])
    by_starts = BlockShuffledOrder(333, starts, 100, 4)
    by_runs = BlockShuffledOrder.from_runs(333, runs, 100, 4)
    assert np.array_equal(by_starts(2), by_runs(2))
    with pytest.raises(ConfigError, match="runs must cover"):
        BlockShuffledOrder.from_runs(333, runs[:-1], 100, 4)
