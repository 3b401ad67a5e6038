"""Drive a data layer the way a user does: a prototxt with one Python layer, ``caffe.Net``, forward.

Layers are never collected under pycaffe, so :func:`data_net` closes every engine when the block
ends (``caffe_layers.prefetch.close_all``), also when the net fails to build.
"""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path

import caffe
import numpy as np

from caffe_layers.prefetch import close_all

TESTS = Path(__file__).resolve().parent
REPO = TESTS.parent
# Subprocesses find the package and the sample datasets without an install.
SUBPROCESS_ENV = dict(os.environ, PYTHONPATH=os.pathsep.join(
    filter(None, [str(REPO), str(TESTS), os.environ.get("PYTHONPATH")])))


def write_net(directory, layer: str, param_str: str, tops=("data", "label"),
              name: str = "net.prototxt") -> str:
    tops_text = " ".join(f'top: "{top}"' for top in tops)
    path = Path(directory) / name
    path.write_text(f'''name: "test"
layer {{
  name: "source" type: "Python" {tops_text}
  python_param {{ module: "caffe_layers.layers" layer: "{layer}"
                  param_str: {json.dumps(param_str)} }}
}}
''')
    return str(path)


@contextlib.contextmanager
def data_net(directory, layer: str, param_str: str, tops=("data", "label"), phase=None):
    """A ``caffe.Net`` holding only the data layer; every engine is closed at the end."""
    path = write_net(directory, layer, param_str, tops)
    try:
        yield caffe.Net(path, caffe.TRAIN if phase is None else phase)
    finally:
        close_all()


def forward(net, batches: int, tops=("data", "label")) -> dict:
    """``{top: concatenation of that many batches}``, copied out of the blobs."""
    seen = {top: [] for top in tops}
    for _ in range(batches):
        net.forward()
        for top in tops:
            seen[top].append(net.blobs[top].data.copy())
    return {top: np.concatenate(arrays) for top, arrays in seen.items()}


def read(directory, layer: str, param_str: str, batches: int, tops=("data", "label")) -> dict:
    with data_net(directory, layer, param_str, tops) as net:
        return forward(net, batches, tops)


def setup_error(directory, layer: str, param_str: str, tops=("data", "label")) -> Exception:
    """The exception building the net raises (fails the test if none)."""
    try:
        with data_net(directory, layer, param_str, tops):
            pass
    except Exception as exc:  # any failure is what we are after; the caller checks its type
        return exc
    raise AssertionError("building the net did not fail")


def assert_epochs_exactly_once(ids: np.ndarray, n: int, epochs: int) -> None:
    for epoch in range(epochs):
        seen = np.sort(ids[epoch * n:(epoch + 1) * n])
        assert seen.tolist() == list(range(n)), f"epoch {epoch} is not a permutation of {n}"
