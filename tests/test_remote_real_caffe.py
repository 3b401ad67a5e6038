"""Files at URLs under real Caffe: ``caffe train`` and real pycaffe read the image list, its images
and the mean file from an HTTP server on localhost (and S3 through moto and s3fs, when installed)
and get the batches they get from local disk.

The servers run in threads of the test process; ``caffe`` is a subprocess reaching them over
localhost, as a training job reaches a store.
"""

from __future__ import annotations

import json
import re

import pytest
import real_caffe
from sequence_nets import recorded_arrays, write_solver
from test_remote_layers import IMAGES, assert_same, image_files, image_params, s3_upload

from caffe_layers.testing import leaks

pytestmark = [pytest.mark.real_caffe, pytest.mark.timeout(300),
              pytest.mark.filterwarnings("ignore:This process .* is multi-threaded")]
ITERATIONS = 6
BATCH = json.loads(image_params(""))["batch_size"]


def train(folder, param: str):
    """``caffe train`` in ``folder``; (its output, the batches it recorded)."""
    folder.mkdir()
    write_solver(folder, param, ITERATIONS, layer=IMAGES)
    env = real_caffe.binary_env(*real_caffe.embedded_python_path())
    done = real_caffe.run_tool("caffe", "train", "--solver", "solver.prototxt", cwd=folder,
                               env=env)
    assert done.returncode == 0, done.stdout[-3000:]
    assert "Optimization Done." in done.stdout
    pids = re.search(rf"{IMAGES} \(TRAIN\): .* \(fork, pids ([\d, ]+)\)", done.stdout)
    assert pids, done.stdout[-3000:]
    assert not leaks.wait_gone([int(p) for p in pids.group(1).split(", ")], timeout_s=3.0)
    data, label = recorded_arrays(folder)
    assert len(data) == ITERATIONS * BATCH
    return done.stdout, {"data": data, "label": label}


@real_caffe.needs_binary
def test_caffe_train_reads_from_http_what_it_reads_from_disk(tmp_path, http_store):
    pytest.importorskip("fsspec", reason="the Caffe venv needs fsspec and aiohttp (make "
                                         "test-real installs them)")
    image_files(http_store.root, classes=2)
    http_store.faults.latency_s = 0.02
    _, local = train(tmp_path / "local", image_params(str(http_store.root)))
    log, remote = train(tmp_path / "http", image_params(http_store.url))
    assert_same(local, remote)
    assert http_store.url in log  # the setup line names the source it read
    assert http_store.faults.requests["list.txt"] >= 1


@real_caffe.needs_pycaffe
def test_pycaffe_net_reads_from_http_what_it_reads_from_disk(tmp_path, http_store):
    from layer_nets import read

    image_files(http_store.root)
    local = read(tmp_path, IMAGES, image_params(str(http_store.root)), 7)
    remote = read(tmp_path, IMAGES, image_params(http_store.url), 7)
    assert_same(local, remote)


@real_caffe.needs_pycaffe
def test_pycaffe_net_reads_from_s3_what_it_reads_from_disk(tmp_path, s3_store):
    from layer_nets import read

    root = tmp_path / "data"
    image_files(root)
    url = s3_upload(s3_store, tmp_path, root)
    local = read(tmp_path, IMAGES, image_params(str(root)), 7)
    remote = read(tmp_path, IMAGES, image_params(url, storage_options=s3_store.storage_options),
                  7)
    assert_same(local, remote)


@real_caffe.needs_pycaffe
def test_pycaffe_net_reads_hdf5_chunks_ahead_from_http_what_it_reads_from_disk(tmp_path,
                                                                              http_store):
    """HDF5 files at URLs, their chunks read ahead (tests/test_remote_layers.py), 2 workers."""
    from layer_nets import read
    from test_remote_layers import h5_lists, h5_params

    root = http_store.root
    h5_lists(root, {"local": str(root), "http": http_store.url})
    http_store.faults.latency_s = 0.02
    local = read(tmp_path, "HDF5DataLayer", h5_params(str(root / "list_local.txt")), 14)
    remote = read(tmp_path, "HDF5DataLayer", h5_params(f"{http_store.url}/list_http.txt"), 14)
    assert_same(local, remote)
