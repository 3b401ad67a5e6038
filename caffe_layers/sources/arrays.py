"""Helpers shared by the array sources (HDF5, npy, user datasets): dtype checks and mean/scale.

Caffe's tops are float32 and its HDF5 layer converts integer data to float; every array source
here does the same and refuses what has no sensible float value (strings, objects, complex).
"""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping, Sequence, Tuple

import numpy as np

from caffe_layers.errors import ConfigError, DataError
from caffe_layers.files import shown
from caffe_layers.normalization import check_exclusive, mean_values, read_mean_file, scale_float32

NUMERIC_KINDS = "biuf"  # bool, signed, unsigned, floating point: all convert to float32


def is_numeric(dtype: np.dtype) -> bool:
    """Whether values of ``dtype`` convert to float32 the way Caffe's would (bool, int, float)."""
    return np.dtype(dtype).kind in NUMERIC_KINDS


def as_sample_array(value, where: str, top: str) -> np.ndarray:
    """``value`` (array, number or nested list) as a numeric ndarray; DataError naming ``where``."""
    try:
        array = np.asarray(value)
    except (TypeError, ValueError) as exc:  # ragged nested lists
        raise DataError(f"{where}: top '{top}' is not an array ({exc})") from None
    if not is_numeric(array.dtype):
        raise DataError(f"{where}: top '{top}' has dtype {array.dtype}; tops are float32, so give "
                        f"numbers (bool, integer or float arrays)")
    return array


@dataclasses.dataclass(frozen=True, eq=False)
class Normalizer:
    """``(x - mean) * scale`` in place on a float32 batch, Caffe's DataTransformer order.

    ``mean`` is None, or a float32 array broadcastable to one row (a mean value per channel is
    shaped ``(C, 1, ..., 1)``); ``scale`` is rounded to float32 as Caffe's proto field.
    """

    mean: np.ndarray | None = None
    scale: float = 1.0

    @classmethod
    def from_params(cls, mean_file: str, mean_value: Sequence[float], scale: float,
                    row_shape: Tuple[int, ...], top: str,
                    storage_options: Mapping[str, Any] | None = None) -> Normalizer:
        """Check the mean against the shape of one row of ``top``; ConfigError saying how to fix.

        ``mean_file`` may be a URL, read with ``storage_options``.
        """
        rounded_scale = scale_float32(scale)
        check_exclusive(mean_file, mean_value)
        mean = None
        if mean_file:
            mean = _mean_from_file(mean_file, row_shape, top, storage_options)
        elif len(mean_value):
            mean = _mean_from_values(mean_value, row_shape, top)
        return cls(mean, float(rounded_scale))

    @property
    def active(self) -> bool:
        return self.mean is not None or self.scale != 1.0

    def apply(self, batch: np.ndarray) -> None:
        """Normalise every row of the float32 ``batch`` in place."""
        if self.mean is not None:
            np.subtract(batch, self.mean, out=batch)
        if self.scale != 1.0:
            np.multiply(batch, np.float32(self.scale), out=batch)

    def undo(self, batch: np.ndarray) -> np.ndarray:
        """``batch / scale + mean`` in float64: the values :meth:`apply` started from."""
        values = np.array(batch, np.float64)
        if self.scale != 1.0:
            values /= float(np.float32(self.scale))
        if self.mean is not None:
            values += self.mean
        return values

    def describe(self) -> str:
        parts = []
        if self.mean is not None:
            parts.append("mean subtracted")
        if self.scale != 1.0:
            parts.append(f"scaled by {self.scale:g}")
        return ", ".join(parts)


def _mean_from_values(values: Sequence[float], row_shape: Tuple[int, ...], top: str) -> np.ndarray:
    means = np.array(mean_values(values), np.float32)
    if len(means) == 1:
        return means.reshape(())
    channels = row_shape[0] if row_shape else 1
    if not row_shape or len(means) != channels:
        raise ConfigError(f"mean_value: give 1 value or one per channel (axis 1 of top '{top}', "
                          f"whose rows are shaped {row_shape}); got {len(means)} values")
    return means.reshape((channels,) + (1,) * (len(row_shape) - 1))


def _mean_from_file(path: str, row_shape: Tuple[int, ...], top: str,
                    storage_options: Mapping[str, Any] | None) -> np.ndarray:
    mean = read_mean_file(path, storage_options=storage_options)
    if mean.shape != tuple(row_shape):
        raise ConfigError(f"mean_file: '{shown(path)}' holds a {mean.shape} mean but the rows of "
                          f"top '{top}' are shaped {tuple(row_shape)}; compute the mean over rows "
                          f"of that shape")
    return mean
