"""The keras-style data sources of the SequenceDataLayer tests, as param_str, and what to expect.

Each source (:func:`npy_sequence`, :func:`image_sequence`, :func:`threadsafe_generator`) writes
its files into a folder and returns a :class:`Source`: the layer's keys, the batches per epoch,
and ``ids(data, label)``, which checks every row's content and returns the sample it came from.
:func:`write_solver` makes a solver that trains on a source and records every batch
(:mod:`recording_layer`), for the runner and for real ``caffe train``.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Callable

import keras_style
import numpy as np

LAYER = "SequenceDataLayer"


def param_str(**keys) -> str:
    """A one-line YAML mapping; values in JSON (a subset of YAML)."""
    return "{" + ", ".join(f"{key}: {json.dumps(value)}" for key, value in keys.items()) + "}"


@dataclasses.dataclass
class Source:
    keys: dict
    samples: int
    batch_size: int
    batches_per_epoch: int
    ids: Callable  # (data, label) of some batches -> the sample id of every row (checked)

    def params(self, **more) -> str:
        return param_str(**{**self.keys, **more})


def _npy_ids(data: np.ndarray, label: np.ndarray) -> np.ndarray:
    ids = data[:, 0, 0, 0]
    assert np.all(data == ids[:, None, None, None]), "a row mixes samples"
    assert np.array_equal(label, ids % keras_style.CLASSES), "labels do not match the samples"
    return ids.astype(np.int64)


def npy_sequence(folder, n: int = 21, batch_size: int = 8) -> Source:
    """keras_style.DataGenerator: on_epoch_end reshuffles; the last batch is short (5 of 8)."""
    kwargs = dict(keras_style.write_npy_samples(Path(folder) / "npy", n), batch_size=batch_size)
    return Source({"sequence": "keras_style:DataGenerator", "kwargs": kwargs}, n, batch_size,
                  -(-n // batch_size), _npy_ids)


def _image_ids(data: np.ndarray, label: np.ndarray) -> np.ndarray:
    assert data.shape[1:] == (3, 10, 12), data.shape  # channels first now
    ids = np.rint(data[:, 0, 0, 0] * 255).astype(np.int64)
    rows, cols = np.mgrid[0:10, 0:12].astype(np.float32)
    for image, k in zip(data, ids):
        assert np.array_equal(image[0], np.full((10, 12), np.float32(k)) / 255)
        assert np.array_equal(image[1], rows / 255)
        flipped = np.array_equal(image[2], cols[:, ::-1] / 255)
        assert flipped or np.array_equal(image[2], cols / 255)
    assert np.array_equal(label, ids % keras_style.CLASSES)
    return ids


def flips(data: np.ndarray) -> np.ndarray:
    """Which rows of image batches were flipped left-right."""
    return data[:, 2, 0, 0] > data[:, 2, 0, -1]


def image_sequence(folder, n: int = 20, batch_size: int = 6) -> Source:
    """keras_style.ImageSequence: PNGs, channels-last RGB, random flips from np.random."""
    paths = keras_style.write_images(Path(folder) / "images", n)
    kwargs = {"paths": paths, "labels": [k % keras_style.CLASSES for k in range(n)],
              "batch_size": batch_size}
    return Source({"sequence": "keras_style:ImageSequence", "kwargs": kwargs}, n, batch_size,
                  -(-n // batch_size), _image_ids)


def threadsafe_generator(folder, n: int = 20, batch_size: int = 5) -> Source:
    """keras_style.npy_batches: endless, lock-wrapped, yields its worker's share."""
    root = keras_style.write_npy_samples(Path(folder) / "npy", n)["root"]
    kwargs = {"root": root, "n": n, "batch_size": batch_size}
    return Source({"generator": "keras_style:npy_batches", "kwargs": kwargs}, n, batch_size,
                  n // batch_size, _npy_ids)


SOURCES = {"npy_sequence": npy_sequence, "image_sequence": image_sequence,
           "threadsafe_generator": threadsafe_generator}


def batch_ids(source: Source, data: np.ndarray, label: np.ndarray) -> np.ndarray:
    """The sample ids of consecutive batches, shaped (batches, batch_size)."""
    return source.ids(data, label).reshape(-1, source.batch_size)


def assert_each_epoch_exactly_once(source: Source, ids: np.ndarray, epochs: int = 3) -> None:
    """Every sample once per epoch; a short batch padded by repeating its rows in order."""
    per_epoch = source.batches_per_epoch
    assert len(ids) >= epochs * per_epoch
    for epoch in range(epochs):
        seen = []
        for batch in ids[epoch * per_epoch:(epoch + 1) * per_epoch]:
            rows = len(np.unique(batch))
            assert np.array_equal(batch, batch[np.arange(len(batch)) % rows]), batch
            seen.extend(batch[:rows].tolist())
        assert sorted(seen) == list(range(source.samples)), f"epoch {epoch}: {sorted(seen)}"


def write_solver(folder, param: str, max_iter: int, layer: str = LAYER) -> Path:
    """``solver.prototxt`` training an InnerProduct + SoftmaxWithLoss (4 classes) on the batches
    of data layer ``layer`` and recording each into ``<folder>/record``."""
    folder = Path(folder)
    record = json.dumps(param_str(folder=str(folder / "record")))
    (folder / "net.prototxt").write_text(f'''name: "keras"
layer {{ name: "data" type: "Python" top: "data" top: "label"
  python_param {{ module: "caffe_layers.layers" layer: "{layer}"
                  param_str: {json.dumps(param)} }} }}
layer {{ name: "record" type: "Python" bottom: "data" bottom: "label"
  python_param {{ module: "recording_layer" layer: "RecordBatches" param_str: {record} }} }}
layer {{ name: "fc" type: "InnerProduct" bottom: "data" top: "fc"
  inner_product_param {{ num_output: 4 weight_filler {{ type: "gaussian" std: 0.01 }} }} }}
layer {{ name: "loss" type: "SoftmaxWithLoss" bottom: "fc" bottom: "label" top: "loss" }}
''')
    solver = folder / "solver.prototxt"
    solver.write_text(f'''net: "{folder / 'net.prototxt'}"
base_lr: 0.01
lr_policy: "fixed"
max_iter: {max_iter}
display: 0
snapshot_after_train: false
solver_mode: CPU
random_seed: 1
''')
    return solver


def recorded_arrays(folder) -> tuple:
    """(data, label) of every batch the recording layer saw, concatenated."""
    from recording_layer import recorded

    batches = recorded(Path(folder) / "record")
    return (np.concatenate([b[0] for b in batches]), np.concatenate([b[1] for b in batches]))
