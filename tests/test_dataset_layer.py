"""DatasetDataLayer: the user's dataset class and generator function, through ``caffe.Net``.

The classes and generators live in ``sample_datasets`` so that workers (forked or spawned) and
the runner's subprocess can import them by name.
"""

from __future__ import annotations

import os

import numpy as np
import pytest
from layer_nets import (
    assert_epochs_exactly_once,
    data_net,
    forward,
    read,
    setup_error,
)

from caffe_layers.errors import ConfigError, DataError, WorkerError

LAYER = "DatasetDataLayer"
N = 13


def params(**keys) -> str:
    keys = {"batch_size": 4, **keys}
    return "{" + ", ".join(f"{k}: {v}" for k, v in keys.items()) + "}"


def dataset(name="RowIds", n=N, **keys) -> str:
    kwargs = keys.pop("kwargs", f"{{n: {n}}}")
    return params(dataset=f"'sample_datasets:{name}'", kwargs=kwargs, **keys)


ROW_TOPS = ("data", "label", "noise", "pid")


# --- dataset classes ----------------------------------------------------------------------------


@pytest.mark.parametrize("workers", [0, 2])
@pytest.mark.parametrize("shuffle", [False, True])
def test_three_epochs_exactly_once(tmp_path, workers, shuffle):
    with data_net(tmp_path, LAYER, dataset(workers=workers, shuffle=str(shuffle).lower()),
                  tops=ROW_TOPS) as net:
        assert [tuple(net.blobs[t].shape) for t in ROW_TOPS] == [(4, 2), (4,), (4, 2), (4,)]
        out = forward(net, 10, ROW_TOPS)
    ids = out["label"].astype(np.int64)
    assert np.array_equal(out["data"], np.repeat(ids[:, None], 2, axis=1))
    assert_epochs_exactly_once(ids, N, epochs=3)
    assert (ids[:N].tolist() == list(range(N))) is not shuffle


def test_the_sample_rng_makes_batches_independent_of_workers(tmp_path):
    runs = [read(tmp_path, LAYER, dataset(workers=w, shuffle="true", seed=5), 8, ROW_TOPS)
            for w in (0, 1, 3)]
    for other in runs[1:]:
        assert np.array_equal(other["label"], runs[0]["label"])
        assert np.array_equal(other["noise"], runs[0]["noise"])
    ids = runs[0]["label"].astype(np.int64)
    first, second = np.flatnonzero(ids == 3)[:2]  # sample 3 in epochs 0 and 1: new draws
    assert not np.array_equal(runs[0]["noise"][first], runs[0]["noise"][second])


def test_each_worker_builds_its_own_instance(tmp_path):
    with data_net(tmp_path, LAYER, dataset(workers=2), tops=ROW_TOPS) as net:
        pids = set(forward(net, 10, ROW_TOPS)["pid"].astype(int).tolist())
        workers = set(net.layers[0]._engine.pids)
    assert pids <= workers
    assert os.getpid() not in pids


def test_the_setup_instance_is_closed_before_workers_start(tmp_path):
    log = tmp_path / "closed.txt"
    with data_net(tmp_path, LAYER, dataset("Closing", kwargs=f"{{log: '{log}'}}", workers=1),
                  tops=ROW_TOPS) as net:
        assert log.read_text() == f"close {os.getpid()}\n"
        forward(net, 1, ROW_TOPS)
        worker = net.layers[0]._engine.pids[0]
    assert log.read_text().splitlines() == [f"close {os.getpid()}", f"close {worker}"]


def test_tops_pick_and_order_the_keys(tmp_path):
    with data_net(tmp_path, LAYER, dataset(tops="[noise, data]", workers=0),
                  tops=("a", "b")) as net:
        assert tuple(net.blobs["a"].shape) == (4, 2)
        out = forward(net, 1, ("a", "b"))
    assert out["b"][:, 0].tolist() == [0, 1, 2, 3]
    assert np.all((out["a"] >= 0) & (out["a"] < 1))


def test_the_top_count_must_match_the_keys(tmp_path):
    error = setup_error(tmp_path, LAYER, dataset(), tops=("data", "label"))
    assert isinstance(error, ConfigError)
    assert "has 2 top(s) but takes 4 (data, label, noise, pid)" in str(error)


@pytest.mark.parametrize("workers", [0, 2])
def test_a_sample_of_another_shape_names_index_and_top(tmp_path, workers):
    with data_net(tmp_path, LAYER, dataset("BadShapeAt", workers=workers),
                  tops=ROW_TOPS) as net, pytest.raises(WorkerError if workers else DataError) \
            as info:
        forward(net, 3, ROW_TOPS)
    assert "dataset 'sample_datasets:BadShapeAt' sample 7: top 'data' has shape (3,), " \
           "expected (2,) (the shape of sample 0)" in str(info.value)


@pytest.mark.parametrize(("kwargs", "message"), [
    ("{}", "'sample_datasets:RowIds' sample 0: has no key 'missing'"),
])
def test_a_top_missing_from_the_sample(tmp_path, kwargs, message):
    error = setup_error(tmp_path, LAYER, dataset(kwargs=kwargs, tops="[data, missing]"))
    assert isinstance(error, DataError)
    assert message in str(error)
    assert "keys: 'data', 'label', 'noise', 'pid'" in str(error)


# --- DatasetDataLayer: keras' per-sample __getitem__(self, i) -------------------------------------


def noisy(**keys) -> str:
    return params(dataset="sample_datasets:NoisySamples", batch_size=3, **keys)


def test_a_dataset_without_rng_gets_seeded_global_generators(tmp_path):
    runs = [read(tmp_path, LAYER, noisy(workers=w, shuffle=True, seed=4), 6)
            for w in (0, 1, 3)]
    for other in runs[1:]:
        assert runs[0]["data"].tobytes() == other["data"].tobytes()
        assert runs[0]["label"].tobytes() == other["label"].tobytes()
    data = runs[0]["data"]
    ids = np.floor(data[:, 0]).astype(int)
    assert sorted(ids[:9]) == list(range(9)) and sorted(ids[9:]) == list(range(9))
    first, second = np.flatnonzero(ids == 4)  # sample 4 in epochs 0 and 1: new draws
    assert not np.array_equal(data[first], data[second])
    other_seed = read(tmp_path, LAYER, noisy(workers=1, shuffle=True, seed=5), 6)
    assert not np.array_equal(np.sort(other_seed["label"]), np.sort(runs[0]["label"]))


# --- import and key errors ----------------------------------------------------------------------


@pytest.mark.parametrize(("keys", "error", "message"), [
    ({"dataset": "'no_such_module:X'"}, ConfigError,
     "dataset: cannot import module 'no_such_module'"),
    ({"dataset": "'sample_datasets:Nope'"}, ConfigError,
     "dataset: module 'sample_datasets' has no 'Nope'"),
    ({"dataset": "'sample_datasets:N'"}, ConfigError, "dataset: module 'sample_datasets' has "
                                                      "no 'N'"),
    ({"dataset": "'sample_datasets:os.sep'"}, ConfigError, "is a str, not a class or function"),
    ({"dataset": "sample_datasets"}, ConfigError, "dataset: must be 'module:Class'"),
    ({}, ConfigError, "dataset, generator: give exactly one of them"),
    ({"dataset": "'sample_datasets:RowIds'", "generator": "'sample_datasets:counting'"},
     ConfigError, "dataset, generator: give exactly one of them"),
    ({"dataset": "'sample_datasets:RowIds'", "kwargs": "{n: 0}"}, DataError,
     "len() is 0; it needs samples"),
    ({"dataset": "'sample_datasets:RowIds'", "kwargs": "{size: 3}"}, TypeError,
     "unexpected keyword argument 'size'"),
    ({"dataset": "'sample_datasets:NoLength'"}, ConfigError, "has no __len__"),
    ({"dataset": "'sample_datasets:RowIds'", "kwargs": "[1]"}, ConfigError,
     "kwargs: must be a mapping"),
])
def test_setup_errors(tmp_path, keys, error, message):
    found = setup_error(tmp_path, LAYER, params(**keys))
    assert isinstance(found, error), repr(found)
    assert message in str(found)


@pytest.mark.parametrize(("value", "message"), [
    ("{data: text}", "sample 0: top 'data' has dtype <U4; tops are float32"),
    ("{data: [1, null]}", "sample 0: top 'data' has dtype object"),
    ("[1, 2]", "sample 0: returned list, expected a dict of top name -> array"),
    ("{1: 2}", "sample 0: keys are top names and must be strings (got [1])"),
    ("{}", "sample 0: the sample has no keys"),
])
def test_what_a_sample_must_be(tmp_path, value, message):
    found = setup_error(tmp_path, LAYER, dataset("Returns", kwargs=f"{{value: {value}}}"),
                        tops=("data",))
    assert isinstance(found, DataError), repr(found)
    assert f"dataset 'sample_datasets:Returns' {message}" in str(found)


# --- generators ---------------------------------------------------------------------------------


def generated(tmp_path, workers: int, batches: int, **keys) -> np.ndarray:
    out = read(tmp_path, LAYER, params(generator="'sample_datasets:counting'", workers=workers,
                                       **keys), batches)
    return out["data"].reshape(batches, 4, 3)


def test_each_worker_runs_its_own_generator_round_robin(tmp_path):
    batches = generated(tmp_path, 2, 6)
    for number, batch in enumerate(batches):
        worker, count = number % 2, (number // 2) * 4
        assert batch.tolist() == [[worker, count + i, 2] for i in range(4)], number


def test_in_process_generator_is_worker_0_of_1(tmp_path):
    batches = generated(tmp_path, 0, 3)
    assert batches.reshape(-1, 3).tolist() == [[0, i, 1] for i in range(12)]


def test_with_solver_ranks_generator_workers_get_global_ids(tmp_path):
    batches = generated(tmp_path, 2, 4, shard_rank=1, shard_count=3)
    for number, batch in enumerate(batches):
        worker, count = 2 + number % 2, (number // 2) * 4  # rank 1's workers are 2 and 3 of 6
        assert batch.tolist() == [[worker, count + i, 6] for i in range(4)], number


def test_generators_are_deterministic_for_a_worker_count(tmp_path):
    first = read(tmp_path, LAYER, params(generator="'sample_datasets:counting'", workers=2,
                                         seed=4), 6)
    again = read(tmp_path, LAYER, params(generator="'sample_datasets:counting'", workers=2,
                                         seed=4), 6)
    other = read(tmp_path, LAYER, params(generator="'sample_datasets:counting'", workers=2,
                                         seed=5), 6)
    assert np.array_equal(first["label"], again["label"])
    assert not np.array_equal(first["label"], other["label"])
    by_worker = first["label"].reshape(6, 4)
    assert not np.array_equal(by_worker[0], by_worker[1]), "workers share one RNG stream"


def test_an_exhausted_generator_starts_again(tmp_path):
    batches = generated(tmp_path, 0, 2, kwargs="{limit: 3}")
    assert batches.reshape(-1, 3)[:, 1].tolist() == [0, 1, 2, 0, 1, 2, 0, 1]


@pytest.mark.parametrize(("keys", "message"), [
    ({"generator": "'sample_datasets:nothing'"}, "generator 'sample_datasets:nothing' yields "
                                                  "no samples"),
    ({"generator": "'sample_datasets:counting'", "shuffle": "true"},
     "shuffle: a generator is not indexed"),
    ({"generator": "'sample_datasets:counting'", "start_iter": 3},
     "start_iter: a generator is not indexed"),
    ({"generator": "'sample_datasets:counting'", "on_worker_death": "respawn", "workers": 2},
     "respawn needs indexed samples"),
])
def test_generator_setup_errors(tmp_path, keys, message):
    found = setup_error(tmp_path, LAYER, params(**keys))
    assert isinstance(found, (ConfigError, DataError)), repr(found)
    assert message in str(found)
