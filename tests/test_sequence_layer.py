"""SequenceDataLayer with keras data code as users write it (tests/keras_style.py), unchanged.

For each of a .npy-per-sample DataGenerator (on_epoch_end reshuffling, one-hot labels), a
channels-last image Sequence (random flips from np.random) and an endless lock-wrapped generator:
every sample once per epoch over 3 epochs with 1, 2 and 3 workers, byte-identical batches for any
number of workers, through ``caffe.Net`` and through the runner as ``caffe train`` drives it.
Then what makes that hold for a Sequence: on_epoch_end replayed in every copy (also after a
respawn and on resume), the layer's own shuffle, shards.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import numpy as np
import pytest
from layer_nets import SUBPROCESS_ENV, data_net, forward, read
from sequence_nets import (
    LAYER,
    SOURCES,
    assert_each_epoch_exactly_once,
    batch_ids,
    flips,
    npy_sequence,
    recorded_arrays,
    write_solver,
)

from caffe_layers.testing import leaks

EPOCHS = 3


def read_epochs(tmp_path, source, epochs=EPOCHS, tops=("data", "label"), **keys) -> dict:
    return read(tmp_path, LAYER, source.params(**keys), epochs * source.batches_per_epoch, tops)


@pytest.fixture(params=sorted(SOURCES))
def source(request, tmp_path):
    return SOURCES[request.param](tmp_path)


@pytest.mark.parametrize("workers", [1, 2, 3])
def test_every_sample_once_per_epoch(tmp_path, source, workers):
    out = read_epochs(tmp_path, source, workers=workers)
    assert out["data"].dtype == np.float32
    ids = batch_ids(source, out["data"], out["label"])
    assert_each_epoch_exactly_once(source, ids)


def test_batches_are_byte_identical_for_any_number_of_workers(tmp_path, source):
    runs = [read_epochs(tmp_path, source, workers=w) for w in (1, 3, 0)]
    for other in runs[1:]:
        for top in ("data", "label"):
            assert runs[0][top].tobytes() == other[top].tobytes()


def test_the_sequences_own_randomness_is_seeded(tmp_path, source):
    """on_epoch_end's np.random.shuffle and __getitem__'s np.random flips follow the seed."""
    first = read_epochs(tmp_path, source, workers=2, seed=1)
    other = read_epochs(tmp_path, source, workers=2, seed=2)
    ids = batch_ids(source, first["data"], first["label"])
    if "generator" in source.keys:  # its order comes from its own RandomState(epoch)
        assert np.array_equal(first["data"], other["data"])
        return
    assert not np.array_equal(first["data"], other["data"])
    if source.keys["sequence"].endswith("ImageSequence"):
        flipped = flips(first["data"])
        assert 0.2 < flipped.mean() < 0.8  # random, not all or none
    else:  # DataGenerator reshuffles its index array after each epoch
        per_epoch = source.batches_per_epoch
        assert not np.array_equal(ids[:per_epoch], ids[per_epoch:2 * per_epoch])


def test_through_the_runner_as_caffe_train_drives_it(tmp_path, source):
    iterations = EPOCHS * source.batches_per_epoch
    solver = write_solver(tmp_path, source.params(workers=2), iterations)
    done = subprocess.run([sys.executable, "-m", "caffe_layers.testing.runner", str(solver)],
                          cwd=tmp_path, env=SUBPROCESS_ENV, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    assert f"caffe_layers: {LAYER} (TRAIN)" in done.stdout
    data, label = recorded_arrays(tmp_path)
    assert len(data) == iterations * source.batch_size
    assert_each_epoch_exactly_once(source, batch_ids(source, data, label))
    direct = read_epochs(tmp_path, source, workers=1)
    assert direct["data"].tobytes() == data.tobytes()
    assert direct["label"].tobytes() == label.tobytes()


# --- what keeps every copy of a Sequence in step ----------------------------------------------


COUNTING = ("data", "ends", "begins", "pid", "label")


def counting(source, **keys) -> str:
    return source.params(**{**keys, "sequence": "keras_style:CountingEpochs"})


@pytest.mark.parametrize("workers", [0, 1, 3])
def test_on_epoch_end_is_called_once_per_epoch_boundary_in_every_copy(tmp_path, workers):
    source = npy_sequence(tmp_path)
    with data_net(tmp_path, LAYER, counting(source, workers=workers), COUNTING) as net:
        out = forward(net, EPOCHS * source.batches_per_epoch, COUNTING)
        pids = set(net.layers[0]._engine.pids) or {os.getpid()}
    epoch = np.arange(len(out["ends"])) // (source.batches_per_epoch * source.batch_size)
    assert np.array_equal(out["ends"], epoch)  # crossed every boundary once
    assert np.array_equal(out["begins"], epoch + 1)  # PyDataset's on_epoch_begin too
    assert set(out["pid"].astype(int).tolist()) == pids


def test_a_respawned_worker_replays_the_epochs_and_nothing_changes(tmp_path):
    source = npy_sequence(tmp_path)
    keys = {"workers": 2, "prefetch": 1, "shuffle": True}
    expected = read(tmp_path, LAYER, counting(source, **keys), 9, COUNTING)
    with data_net(tmp_path, LAYER, counting(source, on_worker_death="respawn", **keys),
                  COUNTING) as net:
        first = forward(net, 5, COUNTING)  # into epoch 1
        engine = net.layers[0]._engine
        os.kill(engine.pids[0], signal.SIGKILL)
        assert not leaks.wait_gone([engine.pids[0]], timeout_s=2.0)
        rest = forward(net, 4, COUNTING)
        assert engine.stats["respawns"] == 1
    for top in ("data", "label", "ends", "begins"):
        got = np.concatenate([first[top], rest[top]])
        assert got.tobytes() == expected[top].tobytes(), top


def test_start_iter_resumes_exactly_across_epochs(tmp_path):
    source = npy_sequence(tmp_path)
    keys = {"workers": 2, "shuffle": True, "seed": 7}
    whole = read_epochs(tmp_path, source, **keys)
    start = source.batches_per_epoch + 1  # inside epoch 1: one on_epoch_end to replay
    resumed = read(tmp_path, LAYER, source.params(start_iter=start, **keys),
                   EPOCHS * source.batches_per_epoch - start)
    skip = start * source.batch_size
    assert resumed["data"].tobytes() == whole["data"][skip:].tobytes()
    assert resumed["label"].tobytes() == whole["label"][skip:].tobytes()


def fixed_order(tmp_path, **keys) -> tuple:
    """The DataGenerator without its own shuffle: batch index = first id // batch size."""
    source = npy_sequence(tmp_path, n=24, batch_size=4)
    source.keys["kwargs"]["shuffle"] = False
    return source, read_epochs(tmp_path, source, **keys)


def batch_indices(source, out) -> np.ndarray:
    ids = batch_ids(source, out["data"], out["label"])
    return (ids[:, 0] // source.batch_size).reshape(EPOCHS, source.batches_per_epoch)


def test_shuffle_permutes_the_batch_indices_every_epoch(tmp_path):
    source, plain = fixed_order(tmp_path, workers=1)
    assert batch_indices(source, plain).tolist() == [list(range(6))] * EPOCHS
    _, shuffled = fixed_order(tmp_path, workers=1, shuffle=True, seed=3)
    _, again = fixed_order(tmp_path, workers=3, shuffle=True, seed=3)
    orders = batch_indices(source, shuffled)
    assert all(sorted(order) == list(range(6)) for order in orders.tolist())
    assert len({tuple(order) for order in orders.tolist()}) > 1
    assert shuffled["data"].tobytes() == again["data"].tobytes()


def test_shards_take_disjoint_batch_indices(tmp_path):
    source, _ = fixed_order(tmp_path)
    shards = [read(tmp_path, LAYER, source.params(shard_rank=r, shard_count=2, shuffle=True,
                                                  workers=2), 3) for r in (0, 1)]
    indices = [set(batch_ids(source, s["data"], s["label"])[:, 0] // 4) for s in shards]
    assert not indices[0] & indices[1]
    assert indices[0] | indices[1] == set(range(6))


def test_a_copy_asked_for_a_past_epoch_is_rebuilt_and_replayed(tmp_path):
    from caffe_layers.pipeline.keras_sequence import SequenceCopy

    source = npy_sequence(tmp_path)
    copy = SequenceCopy("keras_style:CountingEpochs", source.keys["kwargs"], 5, isolated=True)
    later = copy.batch(1, 2)[0]
    assert (later["ends"][0], later["begins"][0]) == (2, 3)
    again = copy.batch(1, 0)[0]
    assert (again["ends"][0], again["begins"][0]) == (0, 1)
    fresh = SequenceCopy("keras_style:CountingEpochs", source.keys["kwargs"], 5, isolated=True)
    assert np.array_equal(fresh.batch(1, 0)[0]["data"], again["data"])
    copy.close()
    fresh.close()
