"""The demo learns under real Caffe: `caffe train` on its solver, and `make demo` with pycaffe.

Issue 11, item 3: with the fillers and learning rate only ever run against the fake, the demo
learned nothing under real Caffe (accuracy 0.25, chance on 4 classes). The solver must reach a
test accuracy of at least 0.9 under real ``caffe train``, as the README's command runs it.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys

import pytest
import real_caffe

from caffe_layers.tools import demo

pytestmark = pytest.mark.real_caffe


@pytest.fixture
def workdir(tmp_path):
    """What `make demo` leaves: demo_data/, demo_output/ and the prototxt files."""
    demo.make_dataset(str(tmp_path / "demo_data"), demo.PER_CLASS, quiet=True)
    (tmp_path / "demo_output").mkdir()
    shutil.copytree(real_caffe.REPO / "prototxt", tmp_path / "prototxt")
    return tmp_path


@real_caffe.needs_binary
@pytest.mark.timeout(300)
def test_caffe_train_on_the_demo_solver_reaches_90_percent(workdir):
    done = real_caffe.run_tool("caffe", "train", "--solver", "prototxt/imagelist_solver.prototxt",
                               cwd=workdir, timeout=240)
    assert done.returncode == 0, done.stdout[-3000:]
    accuracy = [float(x) for x in re.findall(r"Test net output #0: accuracy = ([\d.]+)",
                                             done.stdout)]
    losses = [float(x) for x in re.findall(r"Test net output #1: loss = ([\d.]+)", done.stdout)]
    print(f"test accuracy by test: {accuracy}")  # shown with -s: the figure the issue asks for
    assert len(accuracy) == 7  # iterations 0, 250, ..., 1500
    assert accuracy[0] < 0.5  # it learned: chance on 4 classes at iteration 0
    assert accuracy[-1] >= 0.9
    assert losses[-1] < losses[0] / 4
    assert sorted(p.name for p in (workdir / "demo_output").iterdir()) == [
        "imagelist_iter_1500.caffemodel", "imagelist_iter_1500.solverstate"]


@real_caffe.needs_pycaffe
def test_the_demo_prints_loss_and_accuracy_with_pycaffe(workdir):
    env = real_caffe.binary_env()
    done = subprocess.run([sys.executable, "-m", "caffe_layers", "demo", "--iterations", "200",
                           "-q"], cwd=str(workdir), env=env, capture_output=True, text=True,
                          timeout=240, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    out = done.stdout
    assert f"with Caffe ({real_caffe.ROOT / 'python' / 'caffe' / '__init__.py'})" in out
    assert re.search(r"^  iteration 100: loss \d+\.\d{4}$", out, re.MULTILINE), out
    assert re.search(r"^  iteration 200: loss \d+\.\d{4}$", out, re.MULTILINE), out
    accuracy = re.search(r"^test: accuracy (\d\.\d{4}), loss \d+\.\d{4}$", out, re.MULTILINE)
    assert accuracy and 0 <= float(accuracy.group(1)) <= 1, out
    rate = re.search(r"^data layer: (\d+) images/s in steady state", out, re.MULTILINE)
    assert rate and int(rate.group(1)) > 0, out
    assert (workdir / "demo_output" / "preview.png").is_file()
    assert "Traceback" not in done.stderr
    assert not os.path.exists(workdir / "demo_output" / "imagelist_iter_1500.caffemodel")
