"""Every example of ``prototxt/`` trains under the real ``caffe`` binary, on the data the demo
makes for it (``caffe-layers-demo --example NAME`` writes the same files)."""

from __future__ import annotations

import re

import pytest
import real_caffe

from caffe_layers.tools import _examples

pytestmark = [pytest.mark.real_caffe, real_caffe.needs_binary]
ITERATIONS = 12


@pytest.mark.timeout(300)
@pytest.mark.parametrize("name", ["hdf5", "npy", "multi", "dataset"])
def test_the_example_trains_under_caffe(tmp_path, monkeypatch, name):
    monkeypatch.chdir(tmp_path)
    example = _examples.EXAMPLES[name]
    _examples.write_prototxt(example)
    if example.write_data is not None:
        (tmp_path / _examples.DATA).mkdir()
        example.write_data(_examples.DATA)
    (tmp_path / "demo_output").mkdir()
    solver = tmp_path / example.solver
    solver.write_text(solver.read_text().replace("max_iter: 40", f"max_iter: {ITERATIONS}"))
    done = real_caffe.run_tool("caffe", "train", "-solver", example.solver, cwd=tmp_path)
    assert done.returncode == 0, done.stdout[-3000:]
    assert re.search(r"\] Iteration 10 \(.*\), loss = [0-9.]+\n", done.stdout)  # display: 5
    assert "Optimization Done." in done.stdout
