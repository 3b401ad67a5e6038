"""Issue 11, item 2: pycaffe on PYTHONPATH (as Caffe's install guide says) in a numpy-2 virtualenv.

That pycaffe was built against numpy 1.x and cannot load there. The package must say why once, and
carry on with the fake: ``make demo`` and the test suite work in that venv. The venv is the
development one (``CAFFE_LAYERS_DEV_PYTHON``, set by ``make test-real``). CAFFE.md, "Finding
pycaffe".
"""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest
import real_caffe

DEV_PYTHON = real_caffe.dev_python()
pytestmark = [pytest.mark.real_caffe, real_caffe.needs_binary,
              pytest.mark.skipif(DEV_PYTHON is None, reason="no Python with numpy 2: set "
                                 "CAFFE_LAYERS_DEV_PYTHON (make test-real sets it to .venv's)")]
EXPLAINED = "_caffe.so was built against numpy 1.x and this Python"


def numpy2_env() -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("CAFFE_LAYERS_FAKE_CAFFE",
                                                            "VIRTUAL_ENV")}
    env["PYTHONPATH"] = os.pathsep.join([str(real_caffe.ROOT / "python"), str(real_caffe.REPO)])
    return env


def test_make_demo_runs_on_the_fake_and_says_why_once(tmp_path):
    shutil.copytree(real_caffe.REPO / "prototxt", tmp_path / "prototxt")
    done = subprocess.run([DEV_PYTHON, "-m", "caffe_layers", "demo", "--iterations", "20", "-q"],
                          cwd=str(tmp_path), env=numpy2_env(), capture_output=True, text=True,
                          timeout=120, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stderr.count(EXPLAINED) == 1, done.stderr[-3000:]
    assert "-m venv --system-site-packages" in done.stderr
    assert "Traceback" not in done.stderr and "_ARRAY_API" not in done.stderr
    assert "with caffe_layers' runner" in done.stdout
    assert "trained 20 iterations" in done.stdout


def test_the_suite_passes(tmp_path):
    """A part of ``make test`` that starts layers in subprocesses and through the runner."""
    done = subprocess.run(
        [DEV_PYTHON, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-m", "not real_caffe",
         "tests/test_pycaffe.py", "tests/test_npy_layer.py", "tests/test_fault_matrix.py",
         "-k", "not killed and not deleted and not truncated", "--basetemp", str(tmp_path)],
        cwd=str(real_caffe.REPO), env=numpy2_env(), capture_output=True, text=True, timeout=300,
        check=False)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert " passed" in done.stdout and " failed" not in done.stdout
