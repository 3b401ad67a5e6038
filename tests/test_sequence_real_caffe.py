"""SequenceDataLayer under real ``caffe train`` (BVLC Caffe found through CAFFE_ROOT).

The keras-style sources of tests/sequence_nets.py train an InnerProduct + SoftmaxWithLoss (so
Caffe's own loss takes the class indices made from one-hot labels) while a recording layer saves
every batch: each sample once per epoch over 3 epochs for 1, 2 and 3 workers, the same bytes
for any number of workers, no worker left once ``caffe`` exits; a failing ``__getitem__`` ends the
run with its class, batch index and traceback in the log.
"""

from __future__ import annotations

import re

import pytest
import real_caffe
from sequence_nets import (
    SOURCES,
    assert_each_epoch_exactly_once,
    batch_ids,
    param_str,
    recorded_arrays,
    write_solver,
)

from caffe_layers.testing import leaks

pytestmark = [pytest.mark.real_caffe, real_caffe.needs_binary]
EPOCHS = 3


def worker_pids(log: str) -> list:
    found = re.search(r"SequenceDataLayer \(TRAIN\): .* \(fork, pids ([\d, ]+)\)", log)
    assert found, log[-3000:]
    return [int(pid) for pid in found.group(1).split(", ")]


def caffe_train(folder, param: str, iterations: int):
    folder.mkdir()
    solver = write_solver(folder, param, iterations)
    done = real_caffe.run_tool("caffe", "train", "--solver", solver, cwd=folder, timeout=300)
    assert not leaks.wait_gone(worker_pids(done.stdout), timeout_s=3.0), "workers outlived caffe"
    return done


@pytest.mark.parametrize("name", sorted(SOURCES))
def test_caffe_train_gets_every_sample_once_per_epoch_the_same_for_1_2_3_workers(tmp_path, name):
    source = SOURCES[name](tmp_path)
    iterations = EPOCHS * source.batches_per_epoch
    runs = []
    for workers in (1, 2, 3):
        folder = tmp_path / f"workers{workers}"
        done = caffe_train(folder, source.params(workers=workers), iterations)
        assert done.returncode == 0, done.stdout[-3000:]
        assert "Optimization Done." in done.stdout
        data, label = recorded_arrays(folder)
        assert len(data) == iterations * source.batch_size
        assert_each_epoch_exactly_once(source, batch_ids(source, data, label))
        runs.append((data.tobytes(), label.tobytes()))
    assert runs[0] == runs[1] == runs[2]


def test_a_failing_getitem_ends_caffe_train_with_class_index_and_traceback(tmp_path):
    param = param_str(sequence="sequence_cases:RaisesAt", kwargs={"bad": 1, "shape": [6]},
                      workers=2)
    done = caffe_train(tmp_path / "run", param, 4)
    assert done.returncode != 0
    assert "sequence 'sequence_cases:RaisesAt' batch index 1 (epoch 0): __getitem__(1) raised " \
           "ValueError: cannot decode file number 1" in done.stdout
    assert "in decode_broken_file" in done.stdout  # the worker's traceback
