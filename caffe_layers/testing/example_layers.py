"""A placeholder data layer for the example net in ``prototxt/``: deterministic random batches.

``RandomDataLayer`` behaves as a well-made Caffe data layer should (CAFFE.md): it reads
``param_str`` as YAML, checks its top count in ``setup``, fixes its top shapes there, and prints its
own traceback before re-raising where nobody else will (a CMake-built ``caffe`` aborts without
printing it; :func:`~caffe_layers.pycaffe.printing_errors`). Like
:mod:`caffe_layers.layers` it subclasses the ``caffe`` of
:func:`~caffe_layers.pycaffe.import_caffe`: real pycaffe when usable, else the fake.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from caffe_layers.config import FLOATS, INT, Problem, load, option
from caffe_layers.errors import ConfigError
from caffe_layers.pycaffe import import_caffe, printing_errors

caffe = import_caffe()


@dataclasses.dataclass(frozen=True)
class RandomDataConfig:
    """``param_str`` of :class:`RandomDataLayer`."""

    batch_size: int = option(INT, 8, minimum=1, example="8", doc="images per batch")
    shape: tuple = option(FLOATS, (3.0, 32.0, 32.0), example="[3, 32, 32]",
                          doc="shape of one image, e.g. channels, height, width")
    classes: int = option(INT, 4, minimum=1, example="4", doc="labels are drawn from 0..classes-1")
    seed: int = option(INT, 0, minimum=0, example="1", doc="seed of the data")

    def problems(self) -> list:
        if not self.shape or any(d != int(d) or d < 1 for d in self.shape):
            return [Problem(("shape",), f"must be a list of positive integers (got "
                                        f"{list(self.shape)}), e.g. shape: [3, 32, 32]")]
        return []


class RandomDataLayer(caffe.Layer):
    """Tops ``data`` (N, *shape) and ``label`` (N,): seeded normal noise and integer labels.

    Batch ``b`` of phase ``p`` is a pure function of ``(seed, p, b)``, so runs are reproducible.
    """

    @printing_errors
    def setup(self, bottom: Any, top: Any) -> None:
        """Check the tops and ``param_str``; fix the top shapes."""
        if len(bottom) != 0 or len(top) != 2:
            raise ConfigError(f"RandomDataLayer: needs no bottom and exactly 2 tops (data, label), "
                              f"got {len(bottom)} bottoms and {len(top)} tops; write "
                              f"top: \"data\" top: \"label\" in the prototxt")
        self.config = load(RandomDataConfig, self.param_str)
        self.image_shape = tuple(int(d) for d in self.config.shape)
        self.batches_done = 0
        self._shape_tops(top)

    def _shape_tops(self, top: Any) -> None:
        top[0].reshape(self.config.batch_size, *self.image_shape)
        top[1].reshape(self.config.batch_size)

    @printing_errors
    def reshape(self, bottom: Any, top: Any) -> None:
        """Idempotent: the shapes never change."""
        self._shape_tops(top)

    @printing_errors
    def forward(self, bottom: Any, top: Any) -> None:
        """Fill the next batch."""
        rng = np.random.default_rng([self.config.seed, int(self.phase), self.batches_done])
        batch = self.config.batch_size
        top[0].data[...] = rng.standard_normal((batch, *self.image_shape), dtype=np.float32)
        top[1].data[...] = rng.integers(0, self.config.classes, size=batch)
        self.batches_done += 1

    def backward(self, top: Any, propagate_down: Any, bottom: Any) -> None:
        """A data layer has nothing to propagate."""
