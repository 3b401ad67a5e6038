"""Scale-out through the layer: ranks as pycaffe's train.py starts them, resume, worker respawn."""

import multiprocessing
import os
import signal

import caffe
import numpy as np
import pytest
from runner_harness import write_images

N, BATCH = 30, 5


def write_net(folder, phase="TRAIN", **params):
    keys = dict({"source": "train.txt", "batch_size": BATCH, "workers": 2, "prefetch": 2,
                 "shuffle": "true", "seed": 3}, **params)
    param_str = "{" + ", ".join(f"{k}: {v}" for k, v in keys.items()) + "}"
    path = folder / f"net_{phase}.prototxt"
    path.write_text(f"""
layer {{ name: "data" type: "Python" top: "data" top: "label"
  include {{ phase: {phase} }}
  python_param {{ module: "caffe_layers.layers" layer: "ImageListDataLayer"
                 param_str: "{param_str}" }} }}
""")
    return str(path)


def read_batches(prototxt, phase, batches):
    """(labels as a list of ints, data as one array) of ``batches`` forwards."""
    net = caffe.Net(prototxt, phase)
    try:
        labels, data = [], []
        for _ in range(batches):
            net.forward()
            labels.extend(net.blobs["label"].data.astype(int).tolist())
            data.append(net.blobs["data"].data.copy())
        return labels, np.concatenate(data)
    finally:
        net.layers[0].close()


def read_labels(prototxt, phase, batches):
    return read_batches(prototxt, phase, batches)[0]


def _rank(rank, count, prototxt, phase, batches, conn):
    """One solver process of train.py: daemonic, told its rank, then reading batches."""
    caffe.set_solver_count(count)
    caffe.set_solver_rank(rank)
    caffe.set_multiprocess(True)
    conn.send(read_labels(prototxt, phase, batches))


def run_ranks(prototxt, phase, count, batches):
    context = multiprocessing.get_context("fork")
    pipes, ranks = [], []
    for rank in range(count):
        ours, theirs = context.Pipe()
        process = context.Process(target=_rank, daemon=True,
                                  args=(rank, count, prototxt, phase, batches, theirs))
        process.start()
        pipes.append(ours)
        ranks.append(process)
    results = []
    for ours, process in zip(pipes, ranks):
        assert ours.poll(60), "a rank produced nothing"
        results.append(ours.recv())
        process.join(10)
        assert process.exitcode == 0
    return results


@pytest.mark.parametrize("count", [2, 3])
def test_train_ranks_read_disjoint_shards_covering_every_epoch(tmp_path, monkeypatch, count):
    write_images(tmp_path, N)
    monkeypatch.chdir(tmp_path)
    per_rank = N // count
    batches = 2 * per_rank // BATCH  # two epochs of each shard
    results = run_ranks(write_net(tmp_path), caffe.TRAIN, count, batches)
    for epoch in range(2):
        shards = [set(labels[epoch * per_rank:(epoch + 1) * per_rank]) for labels in results]
        assert all(len(shard) == per_rank for shard in shards), "a sample repeated in a shard"
        assert set().union(*shards) == set(range(N)), f"epoch {epoch} does not cover the data"
        assert sum(map(len, shards)) == N, "shards overlap"


def test_the_test_net_is_not_sharded_unless_asked(tmp_path, monkeypatch):
    write_images(tmp_path, N)
    monkeypatch.chdir(tmp_path)
    full = run_ranks(write_net(tmp_path, "TEST"), caffe.TEST, 2, N // BATCH)
    assert [sorted(labels) for labels in full] == [list(range(N))] * 2
    sharded = run_ranks(write_net(tmp_path, "TEST", shard_test="true"), caffe.TEST, 2,
                        N // 2 // BATCH)
    assert sorted(sharded[0] + sharded[1]) == list(range(N))


def test_explicit_shard_keys_override_the_solver_rank(tmp_path, monkeypatch):
    write_images(tmp_path, N)
    monkeypatch.chdir(tmp_path)
    shards = [read_labels(write_net(tmp_path, shard_rank=r, shard_count=3), caffe.TRAIN, 2)
              for r in range(3)]
    assert sorted(sum(shards, [])) == list(range(N))


def test_start_iter_resumes_exactly_where_an_uninterrupted_run_was(tmp_path, monkeypatch):
    write_images(tmp_path, N)
    monkeypatch.chdir(tmp_path)
    labels, data = read_batches(write_net(tmp_path, mirror="true", crop_size=16), caffe.TRAIN,
                                20)
    resumed_labels, resumed_data = read_batches(
        write_net(tmp_path, mirror="true", crop_size=16, start_iter=7, iter_size=2), caffe.TRAIN,
        6)
    assert resumed_labels == labels[14 * BATCH:]
    assert np.array_equal(resumed_data, data[14 * BATCH:]), "other crops or mirrors"


def test_a_killed_worker_is_respawned_and_every_epoch_stays_exactly_once(
        tmp_path, monkeypatch, capfd):
    write_images(tmp_path, N)
    monkeypatch.chdir(tmp_path)
    expected = read_labels(write_net(tmp_path, workers=0), caffe.TRAIN, 3 * N // BATCH)
    net = caffe.Net(write_net(tmp_path, on_worker_death="respawn"), caffe.TRAIN)
    try:
        labels = []
        for batch in range(3 * N // BATCH):
            if batch == 4:
                os.kill(net.layers[0]._engine.pids[0], signal.SIGKILL)
            net.forward()
            labels.extend(net.blobs["label"].data.astype(int).tolist())
    finally:
        net.layers[0].close()
    assert labels == expected
    for epoch in range(3):
        assert sorted(labels[epoch * N:(epoch + 1) * N]) == list(range(N))
    assert "restarted as pid" in capfd.readouterr().err
    assert np.unique(labels).size == N
