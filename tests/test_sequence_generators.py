"""SequenceDataLayer's generators of batches.

An unmodified generator runs in one worker; several workers (or solver ranks) need a function
taking worker_id/workers; StopIteration ends a pass (an epoch) and the generator is called
again, on global generators seeded per pass.
"""

from __future__ import annotations

import numpy as np
import pytest
from keras_style import write_npy_samples
from layer_nets import data_net, forward, read, setup_error
from sequence_nets import LAYER, assert_each_epoch_exactly_once, batch_ids, param_str
from sequence_nets import threadsafe_generator as threadsafe_source

from caffe_layers.errors import ConfigError, DataError, WorkerError

N, BATCH = 12, 5


def one_pass(tmp_path, **keys) -> str:
    root = write_npy_samples(tmp_path / "npy", N)["root"]
    return param_str(generator="keras_style:one_pass",
                     kwargs={"root": root, "n": N, "batch_size": BATCH}, **keys)


def ids_of(out) -> np.ndarray:
    return out["data"][:, 0, 0, 0].astype(int).reshape(-1, BATCH)


def test_an_unmodified_generator_runs_in_one_worker_and_says_so(tmp_path, capsys):
    with data_net(tmp_path, LAYER, param_str(generator="sequence_cases:image_batches")) as net:
        assert net.layers[0]._engine.workers == 1
        assert tuple(net.blobs["data"].shape) == (4, 3, 4, 5)
        assert forward(net, 3)["data"][::4, 0, 0, 0].tolist() == [0, 1, 2]
    assert "generator 'sequence_cases:image_batches' in one process (it takes no worker_id/" \
           "workers: an unmodified generator cannot be split between processes)" \
           in capsys.readouterr().out


@pytest.mark.parametrize(("keys", "message"), [
    ({"generator": "sequence_cases:image_batches", "workers": 2},
     "generator: 'sequence_cases:image_batches' takes no worker_id and workers arguments, so "
     "each of 2 workers would yield the same batches; give it those parameters (or worker_id and "
     "num_workers) and yield only its share, or use sequence: 'module:Class', or one worker "
     "(workers: 1)"),
    ({"generator": "keras_style:npy_batches_unwrapped", "workers": 3, "kwargs": {"root": "x",
                                                                                "n": 5}},
     "takes **kwargs without naming worker_id and workers (a decorator's wrapper?), so it "
     "cannot be told whether it accepts them; decorate the wrapper with functools.wraps"),
    ({"generator": "sequence_cases:image_batches", "shard_rank": 1, "shard_count": 2},
     "so each of 2 solver ranks would yield the same batches"),
])
def test_splitting_a_generator_needs_worker_id_and_workers(tmp_path, keys, message):
    found = setup_error(tmp_path, LAYER, param_str(**keys))
    assert isinstance(found, ConfigError), repr(found)
    assert message in str(found)


def test_the_unwrapped_threadsafe_generator_runs_in_one_worker(tmp_path):
    source = threadsafe_source(tmp_path)
    wrapped = read(tmp_path, LAYER, source.params(workers=1), 8)
    source.keys["generator"] = "keras_style:npy_batches_unwrapped"
    unwrapped = read(tmp_path, LAYER, source.params(), 8)
    assert unwrapped["data"].tobytes() == wrapped["data"].tobytes()
    assert_each_epoch_exactly_once(source, batch_ids(source, unwrapped["data"],
                                                     unwrapped["label"]), epochs=2)


def test_a_generator_may_spell_the_worker_count_num_workers(tmp_path, capsys):
    source = threadsafe_source(tmp_path)
    whole = read(tmp_path, LAYER, source.params(workers=1), 6)
    source.keys["generator"] = "keras_style:npy_batches_num_workers"
    split = read(tmp_path, LAYER, source.params(workers=3), 6)
    assert "one per worker (worker_id, num_workers;" in capsys.readouterr().out
    assert split["data"].tobytes() == whole["data"].tobytes()


def test_solver_ranks_get_their_share_of_a_worker_aware_generator(tmp_path):
    source = threadsafe_source(tmp_path)
    shares = [batch_ids(source, *read(tmp_path, LAYER, source.params(
        shard_rank=r, shard_count=2, workers=2), 4).values()) for r in (0, 1)]
    whole = batch_ids(source, *read(tmp_path, LAYER, source.params(workers=1), 8).values())
    # rank r's workers are r * 2 + w of 4, and global worker g yields batches g, g + 4, ...
    assert np.array_equal(shares[0], whole[[0, 1, 4, 5]])
    assert np.array_equal(shares[1], whole[[2, 3, 6, 7]])


@pytest.mark.parametrize("workers", [0, 1])
def test_stop_iteration_ends_a_pass_and_the_generator_starts_again(tmp_path, workers):
    out = read(tmp_path, LAYER, one_pass(tmp_path, workers=workers), 9)
    ids = ids_of(out)
    passes = ids.reshape(3, 3, BATCH)
    for batches in passes:  # 12 samples in batches of 5: the third padded with 2 of 5 rows
        assert np.array_equal(batches[2], batches[2][[0, 1, 0, 1, 0]])
        assert sorted(np.concatenate([batches[0], batches[1], batches[2][:2]])) == list(range(N))
    assert len({tuple(p.ravel()) for p in passes}) == 3  # each pass reshuffled, seeded per pass
    assert np.array_equal(ids, ids_of(read(tmp_path, LAYER, one_pass(tmp_path, workers=1 - workers),
                                           9)))


def test_drop_skips_the_short_batch_of_each_pass(tmp_path):
    ids = ids_of(read(tmp_path, LAYER, one_pass(tmp_path, partial_batch="drop"), 6))
    for first, second in ids.reshape(3, 2, BATCH):
        assert len(set(first) | set(second)) == 2 * BATCH


def test_generator_short_batches_refused_by_error_or_after_one_drop(tmp_path):
    with data_net(tmp_path, LAYER, one_pass(tmp_path, partial_batch="error")) as net, \
            pytest.raises(WorkerError) as info:
        forward(net, 3)
    assert "generator 'keras_style:one_pass' worker 0 batch 2 (pass 0): has 2 rows, fewer than " \
           "the batch size 5; partial_batch: error refuses it" in str(info.value)
    keys = {"generator": "sequence_cases:short_batches", "partial_batch": "drop", "workers": 0}
    with data_net(tmp_path, LAYER, param_str(**keys)) as net, pytest.raises(DataError) as info:
        forward(net, 2)
    assert "batch 2 (pass 0): has 3 rows, fewer than the batch size 4; the batch before was " \
           "short too, but partial_batch: drop skips only the last batch of a pass" \
           in str(info.value)
