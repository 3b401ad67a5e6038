"""One ``.npy`` file per sample: ``<root_folder>/<id>.npy``, read with ``allow_pickle=False``.

A ``.npy`` that holds pickled objects could run code when loaded; ``allow_pickle=False`` makes
numpy refuse it, and the refusal becomes a :class:`DataError` naming the file. Every sample must
have the shape and dtype of the first one (checked by :func:`check_sample`): a silently cast or
broadcast sample is a bug in the data, not something to paper over.
"""

from __future__ import annotations

import os
from typing import Tuple

import numpy as np

from caffe_layers.errors import DataError

SUFFIX = ".npy"


def sample_path(root_folder: str, sample_id: str) -> str:
    """``<root_folder>/<id>.npy`` (just ``<id>.npy`` when ``root_folder`` is empty)."""
    return os.path.join(root_folder, sample_id + SUFFIX) if root_folder else sample_id + SUFFIX


def read_npy(path: str, where: str) -> np.ndarray:
    """The array in ``path``; DataError naming ``where`` (e.g. ``list:line``) and the problem."""
    try:
        array = np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise DataError(f"{where}: '{path}' does not exist (is root_folder right? relative "
                        f"paths start from '{os.getcwd()}')") from None
    except OSError as exc:
        raise DataError(f"{where}: cannot read '{path}': {exc.strerror or exc}") from None
    except (ValueError, EOFError) as exc:  # not .npy, truncated, or pickled objects
        raise DataError(f"{where}: '{path}' is not a readable .npy array ({exc})") from None
    if not isinstance(array, np.ndarray):  # an .npz archive
        array.close()
        raise DataError(f"{where}: '{path}' is an .npz archive; store one array per .npy file")
    return array


def describe_dtype(dtype: np.dtype) -> str:
    """``float32``; ``float32 ('>f4')`` when the byte order is not native; ``<U3`` for text."""
    dtype = np.dtype(dtype)
    if dtype.kind not in "biufc":
        return str(dtype)
    return dtype.name if dtype.isnative else f"{dtype.name} ({dtype.str!r})"


def check_sample(array: np.ndarray, shape: Tuple[int, ...], dtype: np.dtype, path: str,
                 where: str) -> None:
    """DataError unless ``array`` has exactly ``shape`` and ``dtype`` (those of sample 0)."""
    if array.shape != tuple(shape) or array.dtype != dtype:
        raise DataError(f"{where}: '{path}' holds a {describe_dtype(array.dtype)} array of shape "
                        f"{array.shape}, but every sample must be {describe_dtype(dtype)} "
                        f"{tuple(shape)} like the first one; fix or remove this sample")
