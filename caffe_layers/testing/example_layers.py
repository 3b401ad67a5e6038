"""A placeholder data layer for the example net in ``prototxt/``: deterministic random batches.

``RandomDataLayer`` behaves as a well-made Caffe data layer should (contract §1-§3): it reads
``param_str`` as YAML, checks its top count in ``setup``, fixes its top shapes there, and prints its
own traceback before re-raising (a CMake-built ``caffe`` aborts without printing it). It imports
``caffe``, so import this module only where a ``caffe`` (real or fake) is importable.
"""

from __future__ import annotations

import dataclasses
import functools
import sys
import traceback
from typing import Any, Callable

import caffe
import numpy as np

from caffe_layers.config import FLOATS, INT, load, option
from caffe_layers.errors import ConfigError


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
            return [f"shape: must be a list of positive integers (got {list(self.shape)}), "
                    f"e.g. shape: [3, 32, 32]"]
        return []


def _printing_traceback(method: Callable) -> Callable:
    """Print the traceback of an exception escaping ``method`` to stderr, then re-raise it."""

    @functools.wraps(method)
    def wrapper(self: Any, *args: Any) -> Any:
        try:
            return method(self, *args)
        except Exception:
            sys.stderr.write(f"{type(self).__name__}.{method.__name__} failed:\n")
            traceback.print_exc()
            sys.stderr.flush()
            raise

    return wrapper


class RandomDataLayer(caffe.Layer):
    """Tops ``data`` (N, *shape) and ``label`` (N,): seeded normal noise and integer labels.

    Batch ``b`` of phase ``p`` is a pure function of ``(seed, p, b)``, so runs are reproducible.
    """

    @_printing_traceback
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

    @_printing_traceback
    def reshape(self, bottom: Any, top: Any) -> None:
        """Idempotent: the shapes never change."""
        self._shape_tops(top)

    @_printing_traceback
    def forward(self, bottom: Any, top: Any) -> None:
        """Fill the next batch."""
        rng = np.random.default_rng([self.config.seed, int(self.phase), self.batches_done])
        batch = self.config.batch_size
        top[0].data[...] = rng.standard_normal((batch, *self.image_shape), dtype=np.float32)
        top[1].data[...] = rng.integers(0, self.config.classes, size=batch)
        self.batches_done += 1

    def backward(self, top: Any, propagate_down: Any, bottom: Any) -> None:
        """A data layer has nothing to propagate."""
