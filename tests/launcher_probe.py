"""A Python layer for tests/test_launchers.py, and a pycaffe-style training script.

``LabelRecorder`` appends the labels of every forward (the sample ids) to
``<record_dir>/<pid>.txt``, one batch per line. Run as a script,
``python launcher_probe.py NET SOLVERS ITERATIONS`` does what pycaffe's ``train.py`` does: one
process per solver, each told its ``solver_rank``/``solver_count``, each running the TRAIN net.
"""

from __future__ import annotations

import multiprocessing
import os
import sys

import yaml

import caffe_layers.testing

caffe = caffe_layers.testing.install_fake_caffe()  # real pycaffe when importable


class LabelRecorder(caffe.Layer):
    """Records the ``label`` bottom of every forward (param_str: ``{record_dir: path}``)."""

    def setup(self, bottom, top):
        folder = yaml.safe_load(self.param_str)["record_dir"]
        self.path = os.path.join(folder, f"{os.getpid()}.txt")

    def reshape(self, bottom, top):
        pass

    def forward(self, bottom, top):
        with open(self.path, "a") as out:
            out.write(" ".join(str(int(v)) for v in bottom[0].data.ravel()) + "\n")

    def backward(self, top, propagate_down, bottom):
        pass


def _solver(net: str, rank: int, count: int, iterations: int) -> None:
    caffe.set_solver_count(count)
    caffe.set_solver_rank(rank)
    caffe.set_multiprocess(True)
    solver_net = caffe.Net(net, caffe.TRAIN)
    try:
        for _ in range(iterations):
            solver_net.forward()
    finally:
        solver_net.layers[0].close()


def main(net: str, solvers: int, iterations: int) -> None:
    """train.py's shape: fork one process per solver and wait for them all."""
    context = multiprocessing.get_context("fork")
    processes = [context.Process(target=_solver, args=(net, rank, solvers, iterations))
                 for rank in range(solvers)]
    for process in processes:
        process.start()
    for process in processes:
        process.join(120)
    sys.exit(max(abs(process.exitcode or 0) for process in processes))


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]))
