"""Caffe's mean and scale keys (``mean_file``, ``mean_value``, ``scale``), checked in one place.

Every layer that takes them (the image transform of the image-list layers, the array sources
HDF5 and npy) checks and loads them here, so each key means the same and a mistake gets the same
message whichever layer it is given to. Numbers are rounded to float32, as Caffe's proto fields.
What the mean must match (an image's channels, a row's shape) is the caller's to check.
"""

from __future__ import annotations

import os
from typing import Any, List, Mapping, Sequence, Tuple

import numpy as np

from caffe_layers.config import FLOAT32_MAX, Problem, problem
from caffe_layers.errors import ConfigError, DataError


def as_float32(value: Any) -> np.float32 | None:
    """``value`` rounded to float32 as a proto ``float`` field, or None if not a finite number."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.number)):
        return None
    if not np.isfinite(float(value)) or abs(float(value)) > FLOAT32_MAX:
        return None
    return np.float32(value)


def exclusive_problems(mean_file: str, mean_value: Sequence[float]) -> List[Problem]:
    """Both ``mean_file`` and ``mean_value`` given: Caffe refuses that, so do we."""
    if mean_file and len(mean_value):
        return [problem("mean_file, mean_value", "give one of them, not both")]
    return []


def check_exclusive(mean_file: str, mean_value: Sequence[float]) -> None:
    """ConfigError when both are given (see :func:`exclusive_problems`)."""
    problems = exclusive_problems(mean_file, mean_value)
    if problems:
        raise ConfigError(problems[0])


def scale_float32(scale: Any) -> np.float32:
    """``scale`` as float32; ConfigError if it is not a finite number float32 can hold."""
    rounded = as_float32(scale)
    if rounded is None:
        raise ConfigError(f"scale: must be a finite float32 number (got {scale!r})")
    return rounded


def mean_values(values: Sequence[Any]) -> Tuple[float, ...]:
    """``mean_value`` numbers rounded to float32; ConfigError if none or one is not finite."""
    floats = tuple(as_float32(v) for v in values)
    if not floats:
        raise ConfigError("mean_value: give 1 value or one per channel, got none")
    if any(v is None for v in floats):
        raise ConfigError(f"mean_value: must be finite numbers (got {list(values)!r})")
    return tuple(float(v) for v in floats)


def read_mean_file(path: str, channels: int | None = None,
                   storage_options: Mapping[str, Any] | None = None) -> np.ndarray:
    """The ``mean_file`` as a read-only float32 ``(C, H, W)`` array; ConfigError naming the file.

    ``channels`` (3 for colour, 1 for gray), when given, must be the mean's. ``path`` may be a
    URL, read with ``storage_options``.
    """
    from caffe_layers.binaryproto import read_mean

    try:
        mean = read_mean(os.fspath(path), expected_channels=channels,
                         storage_options=storage_options)
    except DataError as exc:
        raise ConfigError(str(exc)) from None
    mean.flags.writeable = False
    return mean
