"""``caffe time`` on each example net: every data layer survives Caffe's benchmark mode.

``caffe time`` builds the TRAIN net, runs forward and backward through every layer (a data
layer's ``backward`` included) and times each; it never tears anything down, so the workers must
leave on their own when it exits. The example nets of prototxt/, and nets of SequenceDataLayer
and DBDataLayer.
CAFFE.md, "Life of a Python layer".
"""

from __future__ import annotations

import os
import re
import shutil

import pytest
import real_caffe
from db_data import converted
from db_data import params as db_params
from image_data import write_demo_data
from sequence_nets import npy_sequence, write_solver

from caffe_layers.testing import leaks
from caffe_layers.tools import _examples

pytestmark = [pytest.mark.real_caffe, real_caffe.needs_binary]

NETS = {"imagelist_train_val.prototxt": "ImageListDataLayer",
        "hdf5_net.prototxt": "HDF5DataLayer",
        "npy_net.prototxt": "NpyDataLayer",
        "dataset_net.prototxt": "DatasetDataLayer",
        "multi_net.prototxt": "MultiInputDataLayer",
        "example_net.prototxt": None}  # RandomDataLayer (caffe_layers.testing): no workers


@pytest.fixture(scope="module")
def examples(tmp_path_factory):
    folder = tmp_path_factory.mktemp("examples")
    (folder / _examples.DATA).mkdir()
    before = os.getcwd()
    os.chdir(folder)  # the lists name example_data/... relative to it, as the demo writes them
    try:
        for example in _examples.EXAMPLES.values():  # what caffe-layers-demo --example writes
            if example.write_data is not None:
                example.write_data(_examples.DATA)
    finally:
        os.chdir(before)
    write_demo_data(folder)
    for name in NETS:
        shutil.copy(real_caffe.REPO / "prototxt" / name, folder / name)
    return folder


def caffe_time(folder, net: str, env: dict | None = None) -> str:
    done = real_caffe.run_tool("caffe", "time", "--model", net, "--iterations", "4",
                               cwd=folder, timeout=120, env=env)
    assert done.returncode == 0, done.stdout[-3000:]
    assert re.search(r"\]\s+data\s+forward: [\d.]+ ms\.", done.stdout)
    assert re.search(r"\]\s+data\s+backward: [\d.]+ ms\.", done.stdout)
    assert "Average Forward-Backward:" in done.stdout
    assert "Traceback" not in done.stdout
    return done.stdout


def assert_workers_gone(output: str, layer: str) -> None:
    [setup] = [line for line in output.splitlines()
               if line.startswith(f"caffe_layers: {layer} (TRAIN)")]
    pids = re.search(r"pids ([\d, ]+)\)", setup)
    assert pids, f"the TRAIN layer should start workers: {setup}"
    workers = {int(pid) for pid in pids.group(1).split(", ")}
    assert not leaks.wait_gone(workers, 2.0), "workers outlived caffe time"


@pytest.mark.parametrize("net", list(NETS))
def test_caffe_time_runs_each_data_layer(examples, net):
    output = caffe_time(examples, net)
    if NETS[net] is not None:
        assert_workers_gone(output, NETS[net])


def test_caffe_time_runs_the_sequence_layer(tmp_path):
    source = npy_sequence(tmp_path)
    write_solver(tmp_path, source.params(workers=2), max_iter=1)
    assert_workers_gone(caffe_time(tmp_path, "net.prototxt"), "SequenceDataLayer")


def test_caffe_time_runs_the_db_layer(tmp_path):
    database, _ = converted(tmp_path, backend="lmdb")
    (tmp_path / "net.prototxt").write_text(
        f'layer {{ name: "data" type: "Python" top: "data" top: "label" python_param {{ '
        f'module: "caffe_layers.layers" layer: "DBDataLayer" '
        f"param_str: '{db_params(database, workers=2)}' }} }}\n"
        f'layer {{ name: "ip" type: "InnerProduct" bottom: "data" top: "ip" '
        f'inner_product_param {{ num_output: 2 }} }}\n'
        f'layer {{ name: "out" type: "Silence" bottom: "ip" bottom: "label" }}\n')
    env = real_caffe.binary_env(*real_caffe.embedded_python_path())  # lmdb
    assert_workers_gone(caffe_time(tmp_path, "net.prototxt", env), "DBDataLayer")
