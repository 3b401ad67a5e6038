"""What each example of ``prototxt/`` needs, made in the working directory by the demo.

``caffe-layers-demo --example NAME`` writes NAME's solver and net into ``prototxt/`` (the
package's copies, from ``demo_files/``; a file already there is kept, so your edits are) and its
data into ``example_data/``, then trains it::

    imagelist  ImageListDataLayer: the demo itself (coloured shapes in demo_data/)
    hdf5       HDF5DataLayer: two chunked training files and a test file of uint8 images
    npy        NpyDataLayer: one .npy per sample, and the id lists
    multi      MultiInputDataLayer: PNG images plus an HDF5 file of feature rows per class
    dataset    DatasetDataLayer: caffe_layers.testing.example_datasets (no files)

The array examples store samples of :class:`~caffe_layers.testing.example_datasets.Shapes`
(3x8x8, a bright quadrant is the label), each a pure function of its number.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Callable, Dict, List, Tuple

import numpy as np

from caffe_layers.testing.example_datasets import QUADRANTS, Shapes

DATA = "example_data"
PROTOTXT = "prototxt"
FILES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "demo_files")
SIZE = 8


@dataclasses.dataclass(frozen=True)
class Example:
    """An example: its solver, the net it names, and how to make its data (None: no files).

    ``made`` lists the files whose presence says the data is complete (written last).
    ``stretch``: the data are floats around 0..1, not pixels (``caffe-layers-preview --stretch``).
    """

    name: str
    write_data: Callable[[str], None] | None = None
    made: Tuple[str, ...] = ()
    stretch: bool = False

    @property
    def solver(self) -> str:
        return os.path.join(PROTOTXT, f"{self.name}_solver.prototxt")

    @property
    def prototxt_files(self) -> List[str]:
        net = "train_val" if self.name == "imagelist" else "net"
        return [f"{self.name}_solver.prototxt", f"{self.name}_{net}.prototxt"]

    def data_complete(self, folder: str = DATA) -> bool:
        return all(os.path.isfile(os.path.join(folder, name)) for name in self.made)


def write_prototxt(example: Example, folder: str = PROTOTXT) -> List[str]:
    """Copy the example's prototxt files from the package into ``folder`` unless already there;
    the paths written."""
    written = []
    os.makedirs(folder, exist_ok=True)
    for name in example.prototxt_files:
        target = os.path.join(folder, name)
        if os.path.exists(target):
            continue
        with open(os.path.join(FILES, name), "rb") as source, open(target, "wb") as out:
            out.write(source.read())
        written.append(target)
    return written


def _pixels(count: int, seed: int) -> Tuple[np.ndarray, np.ndarray]:
    """``count`` Shapes samples as uint8 ``(count, 3, 8, 8)`` pixels, and their labels."""
    shapes = Shapes(count, SIZE)
    images = [shapes.__getitem__(i, np.random.default_rng([seed, i]))["data"]
              for i in range(count)]
    pixels = np.clip(np.stack(images) * 200 + 28, 0, 255).astype(np.uint8)
    return pixels, (np.arange(count) % QUADRANTS).astype(np.float32)


def _write_h5(path: str, count: int, seed: int, chunks: int | None) -> None:
    import h5py

    pixels, labels = _pixels(count, seed)
    with h5py.File(path, "w") as f:
        f.create_dataset("data", data=pixels, chunks=(chunks,) + pixels.shape[1:]
                         if chunks else None)
        f.create_dataset("label", data=labels, chunks=(chunks,) if chunks else None)


def _write_lines(path: str, lines: List[str]) -> None:
    with open(path, "w") as f:
        f.write("".join(line + "\n" for line in lines))


def write_hdf5(folder: str) -> None:
    """Two training files of 96 rows chunked by 16, a test file of 32, and their lists."""
    train = [os.path.join(folder, f"hdf5_train_{k}.h5") for k in range(2)]
    for k, path in enumerate(train):
        _write_h5(path, 96, seed=k, chunks=16)
    _write_h5(os.path.join(folder, "hdf5_test.h5"), 32, seed=2, chunks=None)
    _write_lines(os.path.join(folder, "hdf5_test.txt"), [os.path.join(folder, "hdf5_test.h5")])
    _write_lines(os.path.join(folder, "hdf5_train.txt"), train)


def write_npy(folder: str) -> None:
    """``npy/s<i>.npy`` float32 Shapes samples: 48 listed for training, 16 for testing."""
    os.makedirs(os.path.join(folder, "npy"), exist_ok=True)
    shapes = Shapes(64, SIZE)
    lines = []
    for i in range(64):
        np.save(os.path.join(folder, "npy", f"s{i}.npy"),
                shapes.__getitem__(i, np.random.default_rng([3, i]))["data"])
        lines.append(f"s{i} {i % QUADRANTS}")
    _write_lines(os.path.join(folder, "npy_test.txt"), lines[48:])
    _write_lines(os.path.join(folder, "npy_train.txt"), lines[:48])


def write_multi(folder: str) -> None:
    """24 PNG images ``multi_images/img<i>.png`` (list paths relative to ``folder``), and 40
    feature rows, 10 per class: the class's one-hot vector plus noise."""
    import cv2
    import h5py

    os.makedirs(os.path.join(folder, "multi_images"), exist_ok=True)
    pixels, labels = _pixels(24, seed=4)
    lines = []
    for i, image in enumerate(pixels):
        name = f"multi_images/img{i}.png"
        if not cv2.imwrite(os.path.join(folder, name), image.transpose(1, 2, 0)):
            raise OSError(f"OpenCV could not write '{os.path.join(folder, name)}'")
        lines.append(f"{name} {int(labels[i])}")
    rows = np.arange(40) % QUADRANTS
    features = np.eye(QUADRANTS, dtype=np.float32)[rows]
    features += np.random.default_rng(5).normal(0, 0.1, features.shape).astype(np.float32)
    with h5py.File(os.path.join(folder, "multi_feats.h5"), "w") as f:
        f.create_dataset("features", data=features, chunks=(8, QUADRANTS))
        f.create_dataset("labels", data=rows.astype(np.int64))
    _write_lines(os.path.join(folder, "multi_images.txt"), lines)


EXAMPLES: Dict[str, Example] = {
    "imagelist": Example("imagelist"),
    "hdf5": Example("hdf5", write_hdf5, ("hdf5_train.txt", "hdf5_test.txt")),
    "npy": Example("npy", write_npy, ("npy_train.txt", "npy_test.txt"), stretch=True),
    "multi": Example("multi", write_multi, ("multi_images.txt",)),
    "dataset": Example("dataset", stretch=True),
}
