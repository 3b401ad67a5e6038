"""Sample data for the array-source layers: files written into a directory, datasets, generators.

Tests import the writers; the classes and generators are named in ``param_str`` (``dataset:
"sample_datasets:RowIds"``), so this module must be importable by workers (it is: tests/ is on
``sys.path`` under pytest, and on ``PYTHONPATH`` for the runner's subprocesses).

The examples of ``prototxt/`` have their own data, made by ``caffe-layers-demo --example NAME``
(:mod:`caffe_layers.tools._examples`).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

# --- HDF5 ----------------------------------------------------------------------------------------


def id_rows(ids: np.ndarray, row_shape=(3,)) -> np.ndarray:
    """Rows that encode their id, ``row.flat[j] == id * 10 + j``: a row shows where it came from.
    """
    width = int(np.prod(row_shape))
    return (np.asarray(ids)[:, None] * 10 + np.arange(width)).reshape((len(ids),) + row_shape)


def write_id_h5(path, first: int, count: int, *, chunks=None, row_shape=(3,),
                data_dtype="float32", label_dtype="float64", compression=None) -> str:
    """An .h5 file with rows ``first ... first + count - 1``: ``data`` (id rows), ``label`` (ids).
    """
    import h5py

    ids = np.arange(first, first + count)
    with h5py.File(path, "w") as f:
        data_chunks = None if chunks is None or count == 0 else (chunks,) + tuple(row_shape)
        f.create_dataset("data", data=id_rows(ids, row_shape).astype(data_dtype),
                         chunks=data_chunks, compression=compression)
        f.create_dataset("label", data=ids.astype(label_dtype),
                         chunks=None if chunks is None or count == 0 else (chunks,))
    return str(path)


def write_h5_source(directory, sizes=(37, 50, 13), chunks=(None, 8, 1), name="list.txt",
                    **options) -> tuple:
    """Files of ``sizes`` rows with ``chunks`` layouts and their list; ``(list path, total)``."""
    directory = Path(directory)
    paths, first = [], 0
    for number, (count, chunk) in enumerate(zip(sizes, chunks)):
        paths.append(write_id_h5(directory / f"part{number}.h5", first, count, chunks=chunk,
                                 **options))
        first += count
    listing = directory / name
    listing.write_text("\n".join(paths) + "\n")
    return str(listing), first


# --- npy -----------------------------------------------------------------------------------------


def write_npy_samples(directory, count: int, shape=(2, 3), dtype="float32", classes: int = 4,
                      name="list.txt") -> str:
    """``<directory>/npy/s<i>.npy`` filled with ``i`` and a list of ``s<i> <i % classes>``."""
    root = Path(directory) / "npy"
    root.mkdir(exist_ok=True)
    lines = []
    for i in range(count):
        np.save(root / f"s{i}.npy", np.full(shape, i, dtype))
        lines.append(f"s{i} {i % classes}")
    listing = Path(directory) / name
    listing.write_text("\n".join(lines) + "\n")
    return str(listing)


# --- images + features (multi-input) -------------------------------------------------------------


def write_image_list(directory, count: int, classes: int = 3, size: int = 8,
                     name="images.txt") -> str:
    """Tiny PNG images ``images/img<i>.png`` (pixel value ``i``) and a list of
    ``<path> <i % classes>`` lines."""
    import cv2

    lines = []
    (Path(directory) / "images").mkdir(exist_ok=True)
    for i in range(count):
        path = Path(directory) / "images" / f"img{i}.png"
        assert cv2.imwrite(str(path), np.full((size, size, 3), i % 256, np.uint8))
        lines.append(f"{path} {i % classes}")
    listing = Path(directory) / name
    listing.write_text("\n".join(lines) + "\n")
    return str(listing)


def write_features(path, count: int, classes: int = 3, width: int = 4, chunks=None) -> str:
    """``features`` rows ``[label, row, ...]`` and ``labels``: row r has label ``r % classes``."""
    import h5py

    rows = np.arange(count)
    labels = rows % classes
    features = np.zeros((count, width), np.float32)
    features[:, 0], features[:, 1] = labels, rows
    with h5py.File(path, "w") as f:
        f.create_dataset("features", data=features,
                         chunks=None if chunks is None else (chunks, width))
        f.create_dataset("labels", data=labels.astype(np.int64))
    return str(path)


# --- user datasets and generators ----------------------------------------------------------------


class RowIds:
    """Sample ``i``: ``data`` full of ``i``, ``label`` ``i``, ``noise`` from the sample's RNG, and
    ``pid``, the process that built this instance."""

    def __init__(self, n: int = 10, shape=(2,)) -> None:
        self.n = n
        self.shape = tuple(shape)
        self.pid = os.getpid()

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i, rng):
        return {"data": np.full(self.shape, i, np.float32), "label": i,
                "noise": rng.random(2), "pid": self.pid}


class OpenCVRowIds(RowIds):
    """RowIds whose instances put OpenCV on one thread, as many users' datasets (and PyTorch's
    worker_init_fn recipes) do in every worker."""

    def __init__(self, n: int = 10) -> None:
        import cv2

        cv2.setNumThreads(1)
        super().__init__(n)


class BadShapeAt(RowIds):
    """Like RowIds, but sample ``bad`` has a ``data`` one element too long."""

    def __init__(self, n: int = 10, bad: int = 7) -> None:
        super().__init__(n)
        self.bad = bad

    def __getitem__(self, i, rng):
        sample = super().__getitem__(i, rng)
        if i == self.bad:
            sample["data"] = np.zeros(len(self.shape) + 2)
        return sample


class Closing(RowIds):
    """Appends ``close <pid>`` to ``log`` when closed."""

    def __init__(self, log: str, n: int = 10) -> None:
        super().__init__(n)
        self.log = log

    def close(self) -> None:
        with open(self.log, "a") as f:
            f.write(f"close {os.getpid()}\n")


class Returns:
    """Three samples, each exactly ``value`` (to test what the layer refuses)."""

    def __init__(self, value) -> None:
        self.value = value

    def __len__(self) -> int:
        return 3

    def __getitem__(self, i, rng):
        return self.value


class NoLength:
    """Has ``__getitem__`` but no ``__len__``."""

    def __init__(self, n: int = 0) -> None:
        self.n = n

    def __getitem__(self, i, rng):
        return {"data": i}


class NoisySamples:
    """A per-sample dataset written for keras: ``__getitem__(self, i)`` without rng, drawing
    its augmentation from np.random and random."""

    def __init__(self, n=9):
        self.n = n

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        import random

        return {"data": np.random.rand(3) + i, "label": random.random()}


def counting(worker_id, workers, rng, limit=None):
    """Yields ``data = [worker_id, count, workers]``, ``label = rng.random()``; ``limit``
    samples per pass (endless without it)."""
    count = 0
    while limit is None or count < limit:
        yield {"data": [worker_id, count, workers], "label": rng.random()}
        count += 1


def nothing(worker_id, workers, rng):
    """A generator that yields no sample."""
    return iter(())
