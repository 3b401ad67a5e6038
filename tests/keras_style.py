"""Data code as keras users write it, for SequenceDataLayer's tests: none of it knows Caffe.

- :class:`DataGenerator`: the ``.npy``-per-sample Sequence of the well-known keras tutorial
  pattern: ids and a label dict, ``on_epoch_end`` reshuffling an index array with
  ``np.random.shuffle``, float64 channels-last ``X`` and ``to_categorical`` labels.
- :class:`ImageSequence`: a channels-last image Sequence reading PNGs with OpenCV, flipping at
  random with ``np.random``.
- :func:`npy_batches`: an endless generator of batches behind a lock-based "threadsafe" decorator;
  it takes ``worker_id``/``workers`` and yields only its share.
- :func:`one_pass`: a generator that reshuffles and ends after one pass (StopIteration).

The data they read is written by the ``write_*`` helpers: sample ``k`` holds the value ``k``
everywhere (and images a gradient), so a test sees which sample reached the net.
keras is not imported: these classes would subclass ``keras.utils.Sequence`` in user code, and
SequenceDataLayer takes them by duck typing.
"""

from __future__ import annotations

import functools
import os
import threading
from pathlib import Path

import numpy as np

CLASSES = 4
DIM = (6, 5)  # height, width: different, so a wrong transpose shows


def to_categorical(y, num_classes):
    """keras.utils.to_categorical: integer labels -> one-hot float rows."""
    return np.eye(num_classes, dtype="float32")[np.asarray(y, dtype=int)]


def sample_id(k: int) -> str:
    return f"id-{k}"


def write_npy_samples(folder, n: int, dim=DIM, channels: int = 3) -> dict:
    """``<folder>/id-<k>.npy`` (H, W, C) full of ``k``; the kwargs of :class:`DataGenerator`."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for k in range(n):
        np.save(folder / f"{sample_id(k)}.npy", np.full(tuple(dim) + (channels,), k, "float32"))
    ids = [sample_id(k) for k in range(n)]
    return {"list_IDs": ids, "labels": {sample_id(k): k % CLASSES for k in range(n)},
            "root": str(folder)}


class DataGenerator:  # keras.utils.Sequence
    """Generates data for Keras."""

    def __init__(self, list_IDs, labels, root, batch_size=8, dim=DIM, n_channels=3,
                 n_classes=CLASSES, shuffle=True):
        self.dim = tuple(dim)
        self.batch_size = batch_size
        self.labels = labels
        self.list_IDs = list_IDs
        self.root = root
        self.n_channels = n_channels
        self.n_classes = n_classes
        self.shuffle = shuffle
        self.on_epoch_end()

    def __len__(self):
        """Denotes the number of batches per epoch."""
        return int(np.ceil(len(self.list_IDs) / self.batch_size))

    def __getitem__(self, index):
        """Generate one batch of data."""
        indexes = self.indexes[index * self.batch_size:(index + 1) * self.batch_size]
        list_IDs_temp = [self.list_IDs[k] for k in indexes]
        return self.__data_generation(list_IDs_temp)

    def on_epoch_end(self):
        """Updates indexes after each epoch."""
        self.indexes = np.arange(len(self.list_IDs))
        if self.shuffle:
            np.random.shuffle(self.indexes)

    def __data_generation(self, list_IDs_temp):
        X = np.empty((len(list_IDs_temp), *self.dim, self.n_channels))
        y = np.empty((len(list_IDs_temp)), dtype=int)
        for i, ID in enumerate(list_IDs_temp):
            X[i, ] = np.load(os.path.join(self.root, ID + ".npy"))
            y[i] = self.labels[ID]
        return X, to_categorical(y, num_classes=self.n_classes)


class CountingEpochs(DataGenerator):
    """Also returns, per row, how many times on_epoch_end and on_epoch_begin (keras 3's
    PyDataset) were called on this copy, and its pid: a batch of epoch e must show e and e + 1.
    Inputs as a dict: tops data, ends, begins, pid, then label."""

    def __init__(self, *args, **kwargs):
        self.ends, self.begins = -1, 0  # the constructor's own on_epoch_end call is not one
        super().__init__(*args, **kwargs)

    def on_epoch_end(self):
        self.ends += 1
        super().on_epoch_end()

    def on_epoch_begin(self):
        self.begins += 1

    def __getitem__(self, index):
        X, y = super().__getitem__(index)
        rows = np.ones(len(X))
        inputs = {"data": X, "ends": rows * self.ends, "begins": rows * self.begins,
                  "pid": rows * os.getpid()}
        return inputs, y


def training_generator(root, n, batch_size=8):
    """A factory, as keras scripts build their generator: ``sequence:`` may name it."""
    ids = [sample_id(k) for k in range(n)]
    labels = {sample_id(k): k % CLASSES for k in range(n)}
    return DataGenerator(ids, labels, root, batch_size=batch_size)


# --- a channels-last image Sequence -------------------------------------------------------------


def write_images(folder, n: int, height: int = 10, width: int = 12) -> list:
    """PNG ``img<k>.png``: red = k, green = row, blue = column (in RGB terms); their paths."""
    import cv2

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    rows, cols = np.mgrid[0:height, 0:width]
    for k in range(n):
        rgb = np.stack([np.full((height, width), k), rows, cols], axis=-1).astype(np.uint8)
        path = folder / f"img{k}.png"
        assert cv2.imwrite(str(path), rgb[..., ::-1])  # OpenCV writes BGR
        paths.append(str(path))
    return paths


class ImageSequence:  # keras.utils.Sequence
    """Images in channels-last RGB, scaled to [0, 1], flipped left-right at random."""

    def __init__(self, paths, labels, batch_size=6, flip=True):
        self.paths, self.labels = paths, labels
        self.batch_size = batch_size
        self.flip = flip

    def __len__(self):
        return -(-len(self.paths) // self.batch_size)

    def __getitem__(self, idx):
        import cv2

        batch = slice(idx * self.batch_size, (idx + 1) * self.batch_size)
        images = []
        for path in self.paths[batch]:
            image = cv2.cvtColor(cv2.imread(path), cv2.COLOR_BGR2RGB)
            if self.flip and np.random.rand() < 0.5:
                image = image[:, ::-1]
            images.append(image)
        return np.array(images, dtype="float32") / 255.0, np.array(self.labels[batch])


class OpenCVImageSequence(ImageSequence):
    """ImageSequence putting OpenCV on one thread in ``__init__``, as many users' Sequences do
    (each worker builds its own copy, so this runs in every worker)."""

    def __init__(self, *args, **kwargs):
        import cv2

        cv2.setNumThreads(1)
        super().__init__(*args, **kwargs)


# --- generators of batches -----------------------------------------------------------------------


class threadsafe_iter:  # noqa: N801 (the name these snippets have)
    """Takes an iterator/generator and makes it thread-safe by serializing calls to next."""

    def __init__(self, it):
        self.it = it
        self.lock = threading.Lock()

    def __iter__(self):
        return self

    def __next__(self):
        with self.lock:
            return next(self.it)


def threadsafe_generator(f):
    """A decorator that takes a generator function and makes it thread-safe."""

    @functools.wraps(f)
    def g(*a, **kw):
        return threadsafe_iter(f(*a, **kw))

    return g


def threadsafe_generator_unwrapped(f):
    """The same decorator as often copied: without functools.wraps, its signature is lost."""

    def g(*a, **kw):
        return threadsafe_iter(f(*a, **kw))

    return g


def _epoch_batches(root, n, batch_size, worker_id, workers):
    """Global batch b = worker_id + j * workers, forever; epoch e visits the samples in
    RandomState(e)'s order, ``n // batch_size`` batches per epoch."""
    per_epoch = n // batch_size
    b = worker_id
    while True:
        epoch, k = divmod(b, per_epoch)
        order = np.random.RandomState(epoch).permutation(n)
        ids = order[k * batch_size:(k + 1) * batch_size]
        X = np.stack([np.load(os.path.join(root, sample_id(i) + ".npy")) for i in ids])
        yield X, to_categorical(ids % CLASSES, CLASSES)
        b += workers


@threadsafe_generator
def npy_batches(root, n, batch_size=5, worker_id=0, workers=1):
    """Endless batches of the .npy samples; each worker yields its share of the batch stream."""
    return _epoch_batches(root, n, batch_size, worker_id, workers)


@threadsafe_generator
def npy_batches_num_workers(root, n, batch_size=5, worker_id=0, num_workers=1):
    """:func:`npy_batches` with the worker count spelled as keras and PyTorch spell it."""
    return _epoch_batches(root, n, batch_size, worker_id, num_workers)


@threadsafe_generator_unwrapped
def npy_batches_unwrapped(root, n, batch_size=5, worker_id=0, workers=1):
    """:func:`npy_batches` behind the decorator that hides the signature."""
    return _epoch_batches(root, n, batch_size, worker_id, workers)


def one_pass(root, n, batch_size=5):
    """One shuffled pass over the samples (np.random.shuffle), then StopIteration; the last
    batch is short when batch_size does not divide n."""
    order = np.arange(n)
    np.random.shuffle(order)
    for start in range(0, n, batch_size):
        ids = order[start:start + batch_size]
        X = np.stack([np.load(os.path.join(root, sample_id(i) + ".npy")) for i in ids])
        yield X, to_categorical(ids % CLASSES, CLASSES)
