"""Small Sequences and datasets for SequenceDataLayer's edge cases and errors (named in param_str).

Batch ``idx`` of :class:`Rows` holds rows ``idx * batch_size ...``; each row is full of its
number, so a test sees which rows arrived.
"""

from __future__ import annotations

import numpy as np


class Rows:
    """``n`` rows of shape ``shape`` in batches of ``batch_size`` (the last one short);
    ``kind`` picks what __getitem__ returns (see :meth:`pack`)."""

    def __init__(self, n=10, batch_size=4, shape=(2,), kind="xy", dtype="float64"):
        self.n, self.batch_size, self.shape = n, batch_size, tuple(shape)
        self.kind, self.dtype = kind, dtype

    def __len__(self):
        return -(-self.n // self.batch_size)

    def rows(self, idx):
        return np.arange(idx * self.batch_size, min(self.n, (idx + 1) * self.batch_size))

    def __getitem__(self, idx):
        ids = self.rows(idx)
        X = np.broadcast_to(ids.reshape((-1,) + (1,) * len(self.shape)),
                            (len(ids),) + self.shape).astype(self.dtype)
        return self.pack(X, ids)

    def pack(self, X, ids):
        y = ids % 3
        return {
            "xy": lambda: (X, y),
            "xyw": lambda: (X, y, np.full(len(ids), 0.5)),
            "x": lambda: X,
            "lists": lambda: ([X, X * 2], [y, y + 1]),
            "dicts": lambda: ({"image": X, "extra": -X}, {"cls": y}),
            "four": lambda: (X, y, y, y),
            "bools": lambda: (X > 4, y.astype(np.int16)),
            "label_list": lambda: (X, [int(v) for v in y]),
            "soft": lambda: (X, np.full((len(ids), 3), 1 / 3)),
            "onehot": lambda: (X, np.eye(3)[y]),
        }[self.kind]()


class RaisesAt(Rows):
    """Batch ``bad`` raises ValueError inside a helper the traceback must show."""

    def __init__(self, bad=2, **kwargs):
        super().__init__(**kwargs)
        self.bad = bad

    def __getitem__(self, idx):
        if idx == self.bad:
            self.decode_broken_file(idx)
        return super().__getitem__(idx)

    def decode_broken_file(self, idx):
        raise ValueError(f"cannot decode file number {idx}")


class ShapeChangesAt(Rows):
    """Batch ``bad`` has rows one element wider."""

    def __init__(self, bad=1, **kwargs):
        super().__init__(**kwargs)
        self.bad = bad

    def __getitem__(self, idx):
        X, y = super().__getitem__(idx)
        if idx == self.bad:
            X = np.zeros((len(X), self.shape[0] + 1))
        return X, y


class ShortInTheMiddle(Rows):
    """Batch 1 has one row fewer (not keras' usual last one)."""

    def rows(self, idx):
        ids = super().rows(idx)
        return ids[:-1] if idx == 1 else ids


class NoLength:
    """A __getitem__ but no __len__."""

    def __getitem__(self, idx):
        return np.zeros((2, 2)), np.zeros(2)


class NoGetitem:
    """A length but no __getitem__."""

    def __len__(self):
        return 3


class PyDatasetLike(Rows):
    """keras 3's PyDataset shape: num_batches instead of __len__, and on_epoch_begin."""

    __len__ = None  # type: ignore[assignment]

    @property
    def num_batches(self):
        return -(-self.n // self.batch_size)


def image_batches(n=10, batch_size=4):
    """A generator without worker_id/workers: endless channels-last batches."""
    k = 0
    while True:
        X = np.full((batch_size, 4, 5, 3), k, np.uint8)
        yield X, np.full(batch_size, k % 3)
        k += 1


def short_batches(batch_size=4):
    """A generator whose batches are all short except the first."""
    yield np.zeros((batch_size, 2)), np.zeros(batch_size)
    while True:
        yield np.zeros((batch_size - 1, 2)), np.zeros(batch_size - 1)
