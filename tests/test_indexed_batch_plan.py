"""IndexedBatchPlan: stream batch b -> (epoch, batch index), for whole batches (keras)."""

from __future__ import annotations

import pickle

import pytest
from hypothesis import given
from hypothesis import strategies as st

from caffe_layers.errors import ConfigError
from caffe_layers.prefetch import IndexedBatchPlan, Prefetcher, Producer, TopSpec
from caffe_layers.sampling import Order, SampleStream, ShuffledOrder


@given(n=st.integers(1, 40), shard_count=st.integers(1, 4), shuffle=st.booleans(),
       seed=st.integers(0, 2**31))
def test_each_epoch_hands_out_every_batch_index_once_across_shards(n, shard_count, shuffle,
                                                                   seed):
    shard_count = min(shard_count, n)
    order = ShuffledOrder(n, seed) if shuffle else Order(n)
    seen = {}
    for shard_rank in range(shard_count):
        plan = IndexedBatchPlan(SampleStream(order, 1, shard_rank, shard_count), 8)
        per_epoch = len(range(shard_rank, n, shard_count))
        for number in range(3 * per_epoch):
            task = plan.task(number)
            assert task.epoch == number // per_epoch
            assert plan.worker_for(number, 3) is None  # any worker, so respawn works
            seen.setdefault(task.epoch, []).append(task.index)
    for epoch in range(3):
        assert sorted(seen[epoch]) == list(range(n))


def test_a_task_is_small_and_pickles():
    plan = IndexedBatchPlan(SampleStream(ShuffledOrder(10, 3), 1), 8)
    task = pickle.loads(pickle.dumps(plan.task(13)))
    assert (task.number, task.epoch) == (13, 1)
    assert task.index == ShuffledOrder(10, 3)(1)[3]
    assert task.current_sample() is None
    assert len(pickle.dumps(task)) < 200


def test_the_stream_must_have_one_index_per_position():
    with pytest.raises(ValueError, match="batch_size 1"):
        IndexedBatchPlan(SampleStream(Order(10), 4), 4)


def test_the_engine_holds_its_batch_size_against_the_arrays():
    plan = IndexedBatchPlan(SampleStream(Order(10), 1), 4)
    assert plan.batch_size == 4  # the rows of each whole batch, not the stream's 1 index
    with pytest.raises(ConfigError, match=r"batch_size: the plan fills batches of 4 but array "
                                          r"'data' holds 5 rows \(5, 3\)"):
        Prefetcher(Producer(), [TopSpec("data", (5, 3))], plan, workers=0)
