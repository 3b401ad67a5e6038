"""The user dataset and generator of the ``DatasetDataLayer`` example (``prototxt/dataset_*``).

Shipped in the package so that the example runs wherever the package is installed
(``caffe-layers-demo --example dataset``); your own class lives in your own module on
``PYTHONPATH``, named the same way: ``dataset: 'my_module:MyClass'``. The other array examples
(``--example hdf5``, ``npy``) store samples of :class:`Shapes` too, so every example learns the
same task: which quadrant of a small noisy image is bright.
"""

from __future__ import annotations

from typing import Dict, Iterator

import numpy as np

QUADRANTS = 4


class Shapes:
    """Sample ``i``: ``data`` ``(3, size, size)`` float32 noise plus a bright square, ``label``
    its quadrant ``i % 4`` (0 top left, 1 top right, 2 bottom left, 3 bottom right)."""

    def __init__(self, n: int = 64, size: int = 8) -> None:
        self.n, self.size = n, size

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int, rng: np.random.Generator) -> Dict[str, np.ndarray]:
        half = self.size // 2
        label = i % QUADRANTS
        image = rng.normal(0, 0.1, (3, self.size, self.size)).astype(np.float32)
        top, left = (label // 2) * half, (label % 2) * half
        image[:, top:top + half, left:left + half] += 1
        return {"data": image, "label": np.float32(label)}


def noise_samples(worker_id: int, workers: int, rng: np.random.Generator,
                  size: int = 8) -> Iterator[Dict[str, np.ndarray]]:
    """The example generator: endless :class:`Shapes` samples drawn from the worker's RNG."""
    shapes = Shapes(QUADRANTS, size)
    while True:
        yield shapes.__getitem__(int(rng.integers(QUADRANTS)), rng)
