"""What the ``caffe`` binary does around our layers, for both ways of building it.

The Make build (``$CAFFE_ROOT/build/tools/caffe``, ``WITH_PYTHON_LAYER := 1``) catches a Python
layer's exception in ``main``, prints it with ``PyErr_Print`` and exits 1. A CMake build defines
``WITH_PYTHON_LAYER`` for libcaffe only, so its tool has no such catch: the exception aborts the
process (SIGABRT) unprinted. The CMake tool is compiled here from the same ``tools/caffe.cpp``
without the definition (:func:`real_caffe.cmake_build_binary`). Either way the traceback must
appear exactly once, and a missing pycaffe must be named with the fix. CAFFE.md, "Errors" and
"Finding pycaffe".
"""

from __future__ import annotations

import os
import signal

import pytest
import real_caffe
from runner_harness import write_images, write_solver

from caffe_layers import pycaffe
from caffe_layers.testing import leaks

pytestmark = [pytest.mark.real_caffe, real_caffe.needs_binary]

ABORTED = -signal.SIGABRT


@pytest.fixture(scope="session")
def cmake_caffe(tmp_path_factory):
    binary = real_caffe.cmake_build_binary(tmp_path_factory.mktemp("cmake-caffe"))
    if binary is None:
        pytest.skip("tools/caffe.cpp could not be compiled again (needs make, g++ and the tree's "
                    "Make build)")
    return binary


@pytest.fixture(params=["make", "cmake"])
def build(request):
    """(binary, exit status after a layer's exception, whether our layer prints it)."""
    if request.param == "make":
        return real_caffe.tool("caffe"), 1, False
    return request.getfixturevalue("cmake_caffe"), ABORTED, True


def test_the_make_build_prints_python_errors_and_the_cmake_build_does_not(cmake_caffe):
    assert pycaffe.binary_prints_python_errors(os.path.realpath(real_caffe.tool("caffe")))
    assert not pycaffe.binary_prints_python_errors(str(cmake_caffe))
    assert not pycaffe.binary_prints_python_errors(str(real_caffe.tool("compute_image_mean")))


def test_without_pycaffe_on_pythonpath_the_binary_says_how_to_fix_it(tmp_path, build):
    """Issue 11, item 1: the fake must never stand in for pycaffe inside the binary."""
    binary, failed, _ = build
    write_images(tmp_path)
    write_solver(tmp_path, "{source: train.txt, batch_size: 4}", max_iter=3)
    env = real_caffe.binary_env(tmp_path)
    env["PYTHONPATH"] = os.pathsep.join([str(real_caffe.REPO), str(tmp_path)])
    runner = real_caffe.caffe_train(tmp_path, env=env, binary=binary)
    assert runner.finish() == failed
    output = runner.output
    assert output.count("PycaffeError: this process is the caffe binary") == 1, output[-3000:]
    assert f"PYTHONPATH={real_caffe.ROOT / 'python'}:" in output
    assert "No to_python" not in output and "fake" not in output
    assert not runner.group_alive()


def test_a_layer_exception_is_printed_exactly_once(tmp_path, build):
    """Issue 11, item 4: the Make build prints it, so our layer does not; CMake's does not."""
    binary, failed, layer_prints = build
    write_images(tmp_path)
    (tmp_path / "img" / "3.jpg").write_text("not an image")
    write_solver(tmp_path, "{source: train.txt, batch_size: 4, workers: 2}")
    runner = real_caffe.caffe_train(tmp_path, binary=binary)
    assert runner.finish() == failed
    output = runner.output
    assert output.count("\ncaffe_layers.errors.WorkerError: ") == 1, output[-3000:]
    assert output.count("caffe_layers: ImageListDataLayer.forward failed:") == int(layer_prints)
    assert "train.txt:4: cannot decode image 'img/3.jpg'" in output
    if failed == ABORTED:
        assert "terminate called after throwing an instance of " \
               "'boost::python::error_already_set'" in output
    assert not leaks.wait_gone(runner.workers, 2.0)
    assert not runner.group_alive()
