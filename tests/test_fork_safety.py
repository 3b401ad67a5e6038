"""Every layer starts and respawns its workers after the consumer has used OpenCV's thread pool.

A forked child inherits OpenCV's pool without its threads; reconfiguring it there hangs for good
(``PrefetchTimeout``). The engine prepares every native thread pool around each fork, whatever the
producer, so each layer type, composite ones included, is tested here for start and respawn, and
the tools' process pools too.
"""

from __future__ import annotations

import os
import signal
import time

import cv2
import numpy as np
import pytest
from db_data import converted
from keras_style import write_images
from layer_nets import data_net, forward
from sample_datasets import (
    write_features,
    write_h5_source,
    write_image_list,
    write_npy_samples,
)

from caffe_layers.prefetch import forksafe
from caffe_layers.tools import compute_mean

pytestmark = pytest.mark.timeout(120)

N, BATCH = 12, 4
COMMON = {"batch_size": BATCH, "workers": 2, "prefetch": 2, "timeout_s": 10,
          "on_worker_death": "respawn"}


def use_the_pool():
    """Run parallel OpenCV calls on 2 threads, then let the pool's threads go idle.

    A fork at that moment copies a pool whose threads sleep: the state in which a child that
    reconfigures the pool hangs every time (a fork during the call itself only sometimes does).
    """
    cv2.setNumThreads(2)
    image = np.random.default_rng(0).integers(0, 256, (1200, 1200, 3), np.uint8)
    cv2.GaussianBlur(cv2.resize(image, (2400, 2400)), (15, 15), 0)
    time.sleep(0.3)


@pytest.fixture
def opencv_threads():
    """The test may change OpenCV's thread count; the next test finds it as it was."""
    previous = cv2.getNumThreads()
    yield
    cv2.setNumThreads(previous)


def image_list(tmp_path):
    return {"source": write_image_list(tmp_path, N, classes=3)}, ("data", "label")


def hdf5(tmp_path):
    listing, _ = write_h5_source(tmp_path, sizes=(5, 7), chunks=(None, 2))
    return {"source": listing}, ("data", "label")


def npy(tmp_path):
    keys = {"source": write_npy_samples(tmp_path, N), "root_folder": tmp_path / "npy"}
    return keys, ("data", "label")


def dataset(tmp_path):
    return ({"dataset": "sample_datasets:OpenCVRowIds", "kwargs": {"n": N},
             "tops": "[data, label, noise]"}, ("data", "label", "noise"))


def sequence(tmp_path):
    kwargs = {"paths": write_images(tmp_path / "images", N), "labels": [k % 3 for k in range(N)],
              "batch_size": BATCH}
    return {"sequence": "keras_style:OpenCVImageSequence", "kwargs": kwargs}, ("data", "label")


def multi_input(tmp_path):
    keys, _ = image_list(tmp_path)
    features = write_features(tmp_path / "feats.h5", 30, classes=3, chunks=4)
    keys["attach"] = (f"[{{top: feat, hdf5: {features}, dataset: features, "
                      f"label_dataset: labels}}]")
    return keys, ("data", "label", "feat")


def db(tmp_path):  # encoded records: the workers decode with OpenCV
    return {"source": converted(tmp_path, N, extra=("--encoded",))[0]}, ("data", "label")


LAYERS = {"ImageListDataLayer": image_list, "HDF5DataLayer": hdf5, "NpyDataLayer": npy,
          "DatasetDataLayer": dataset, "MultiInputDataLayer": multi_input,
          "SequenceDataLayer": sequence, "DBDataLayer": db}


def param_str(keys: dict, **more) -> str:
    return "{" + ", ".join(f"{k}: {v}" for k, v in {**COMMON, **keys, **more}.items()) + "}"


def reference(tmp_path, layer, keys, tops, batches):
    with data_net(tmp_path, layer, param_str(keys, workers=0), tops) as net:
        return forward(net, batches, tops)


@pytest.mark.parametrize("layer", sorted(LAYERS))
def test_workers_start_after_the_consumer_used_opencvs_pool(tmp_path, layer, opencv_threads):
    keys, tops = LAYERS[layer](tmp_path)
    expected = reference(tmp_path, layer, keys, tops, 4)
    use_the_pool()
    with data_net(tmp_path, layer, param_str(keys), tops) as net:
        out = forward(net, 4, tops)
    for top in tops:
        assert np.array_equal(out[top], expected[top]), top


@pytest.mark.parametrize("layer", sorted(LAYERS))
def test_a_worker_respawned_after_the_consumer_used_opencvs_pool_delivers(
        tmp_path, layer, opencv_threads, capfd):
    keys, tops = LAYERS[layer](tmp_path)
    expected = reference(tmp_path, layer, keys, tops, 12)
    with data_net(tmp_path, layer, param_str(keys), tops) as net:
        first = forward(net, 1, tops)
        use_the_pool()
        os.kill(net.layers[0]._engine.pids[0], signal.SIGKILL)
        rest = forward(net, 11, tops)  # the dead worker's batches come due: it is respawned
    assert "restarted as pid" in capfd.readouterr().err
    for top in tops:
        assert np.array_equal(np.concatenate([first[top], rest[top]]), expected[top]), top


def test_the_tools_worker_pool_starts_after_the_consumer_used_opencvs_pool(
        tmp_path, opencv_threads, capsys):
    listing = write_image_list(tmp_path, 3 * compute_mean.BLOCK, classes=3)  # 3 tasks
    means = {}
    for workers in (1, 2):
        use_the_pool()
        out = tmp_path / f"mean{workers}.binaryproto"
        assert compute_mean.main([listing, "--workers", str(workers), "-q", "-o", str(out)]) == 0
        means[workers] = out.read_bytes()
    assert means[2] == means[1]


def test_a_forked_child_inherits_opencv_single_threaded_and_the_parent_keeps_its_setting(
        opencv_threads):
    use_the_pool()
    read, write = os.pipe()
    with forksafe.prepared_for_fork():
        pid = os.fork()
        if pid == 0:  # the child: report what it inherited, reconfigure, use the pool
            inherited = cv2.getNumThreads()
            cv2.setNumThreads(2)
            cv2.GaussianBlur(np.zeros((1000, 1000, 3), np.uint8), (15, 15), 0)
            os.write(write, str(inherited).encode())
            os._exit(0)
    os.close(write)
    try:
        finished = wait_for_exit(pid, timeout_s=30)
    finally:
        if not finished:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
    with os.fdopen(read, "rb") as pipe:
        reported = pipe.read()
    assert finished, "the child hung reconfiguring OpenCV"
    assert reported == b"1", "the child did not inherit OpenCV single-threaded"
    assert cv2.getNumThreads() == 2, "the parent's own setting was not restored"


def wait_for_exit(pid: int, timeout_s: float) -> bool:
    """Reap ``pid``; False if it still runs after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if os.waitpid(pid, os.WNOHANG) != (0, 0):
            return True
        time.sleep(0.05)
    return False
