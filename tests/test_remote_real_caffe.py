"""Files at URLs under real Caffe: ``caffe train`` and real pycaffe read the image list, its images
and the mean file from an HTTP server on localhost (and S3 through moto and s3fs, when installed)
and get the batches they get from local disk.

The servers run in threads of the test process; ``caffe`` is a subprocess reaching them over
localhost, as a training job reaches a store.
"""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
import real_caffe
from test_remote_layers import IMAGES, assert_same, image_files, image_params, s3_upload

from caffe_layers.testing import leaks

pytestmark = [pytest.mark.real_caffe, pytest.mark.timeout(300),
              pytest.mark.filterwarnings("ignore:This process .* is multi-threaded")]
ITERATIONS = 6


def write_solver(folder, param: str) -> None:
    """``solver.prototxt`` training an InnerProduct on the layer's batches, each batch recorded
    into ``<folder>/record`` (tests/recording_layer.py)."""
    record = json.dumps(json.dumps({"folder": str(folder / "record")}))
    (folder / "net.prototxt").write_text(f'''name: "remote"
layer {{ name: "data" type: "Python" top: "data" top: "label"
  python_param {{ module: "caffe_layers.layers" layer: "{IMAGES}"
                  param_str: {json.dumps(param)} }} }}
layer {{ name: "record" type: "Python" bottom: "data" bottom: "label"
  python_param {{ module: "recording_layer" layer: "RecordBatches" param_str: {record} }} }}
layer {{ name: "fc" type: "InnerProduct" bottom: "data" top: "fc"
  inner_product_param {{ num_output: 2 weight_filler {{ type: "gaussian" std: 0.01 }} }} }}
layer {{ name: "loss" type: "SoftmaxWithLoss" bottom: "fc" bottom: "label" top: "loss" }}
''')
    (folder / "solver.prototxt").write_text(f'''net: "{folder / 'net.prototxt'}"
base_lr: 0.01
lr_policy: "fixed"
max_iter: {ITERATIONS}
display: 0
snapshot_after_train: false
solver_mode: CPU
random_seed: 1
''')


def train(folder, param: str):
    """``caffe train`` in ``folder``; (its output, the batches it recorded)."""
    from recording_layer import recorded

    folder.mkdir()
    write_solver(folder, param)
    env = real_caffe.binary_env(*real_caffe.embedded_python_path())
    done = real_caffe.run_tool("caffe", "train", "--solver", "solver.prototxt", cwd=folder,
                               env=env)
    assert done.returncode == 0, done.stdout[-3000:]
    assert "Optimization Done." in done.stdout
    pids = re.search(rf"{IMAGES} \(TRAIN\): .* \(fork, pids ([\d, ]+)\)", done.stdout)
    assert pids, done.stdout[-3000:]
    assert not leaks.wait_gone([int(p) for p in pids.group(1).split(", ")], timeout_s=3.0)
    batches = recorded(folder / "record")
    assert len(batches) == ITERATIONS
    return done.stdout, {"data": np.concatenate([b[0] for b in batches]),
                         "label": np.concatenate([b[1] for b in batches])}


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
