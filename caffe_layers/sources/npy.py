"""One ``.npy`` file per sample: ``<root_folder>/<id>.npy``, read with ``allow_pickle=False``.

A ``.npy`` that holds pickled objects could run code when loaded; ``allow_pickle=False`` makes
numpy refuse it, and the refusal becomes a :class:`DataError` naming the file. Every sample must
have the shape and dtype of the first one (checked by :func:`check_sample`): a silently cast or
broadcast sample is a bug in the data, not something to paper over.
"""

from __future__ import annotations

import io
import os
from typing import Any, Mapping, Tuple

import numpy as np

from caffe_layers.errors import DataError
from caffe_layers.files import is_url, read_bytes, shown

SUFFIX = ".npy"


def sample_path(root_folder: str, sample_id: str) -> str:
    """``<root_folder>/<id>.npy`` (just ``<id>.npy`` when ``root_folder`` is empty); a URL
    ``root_folder`` is joined with ``/``."""
    if not root_folder:
        return sample_id + SUFFIX
    if is_url(root_folder):
        return f"{root_folder.rstrip('/')}/{sample_id}{SUFFIX}"
    return os.path.join(root_folder, sample_id + SUFFIX)


def _refused(path: str, where: str, exc: BaseException) -> DataError:
    """The DataError for a ``.npy`` file that cannot be read: missing, unreadable, not .npy."""
    if isinstance(exc, FileNotFoundError):
        return DataError(f"{where}: '{path}' does not exist (is root_folder right? relative "
                         f"paths start from '{os.getcwd()}')")
    if isinstance(exc, OSError):
        return DataError(f"{where}: cannot read '{path}': {exc.strerror or exc}")
    return DataError(f"{where}: '{shown(path)}' is not a readable .npy array ({exc})")


def read_npy_bytes(path: str, where: str, storage_options: Mapping[str, Any] | None = None
                   ) -> bytes:
    """The bytes of the ``.npy`` file at ``path`` (a URL, or a local path)."""
    return read_bytes(path, "sample", prefix=f"{where}: ", storage_options=storage_options)


def read_npy(path: str, where: str, data: bytes | None = None,
             storage_options: Mapping[str, Any] | None = None) -> np.ndarray:
    """The array in ``path``; DataError naming ``where`` (e.g. ``list:line``) and the problem.

    ``data`` is the file's bytes when already read (ahead of time); a URL is read with
    ``storage_options``.
    """
    if data is None and is_url(path):
        data = read_npy_bytes(path, where, storage_options)
    try:
        array = np.load(path if data is None else io.BytesIO(data), allow_pickle=False)
    except (OSError, ValueError, EOFError) as exc:  # not .npy, truncated, or pickled objects
        raise _refused(path, where, exc) from None
    if not isinstance(array, np.ndarray):  # an .npz archive
        array.close()
        raise DataError(f"{where}: '{shown(path)}' is an .npz archive; store one array per .npy "
                        f"file")
    return array


def read_header(path: str, where: str) -> Tuple[Tuple[int, ...], np.dtype]:
    """Shape and dtype of a ``.npy`` file from its header alone (the data is not read).

    A DataError, as :func:`read_npy` would raise, for a file that is missing, not ``.npy``,
    holds pickled objects, or is shorter than its header says (truncated).
    """
    try:
        with open(path, "rb") as f:
            header = _parse_header(f)
    except (OSError, ValueError, EOFError) as exc:
        raise _refused(path, where, exc) from None
    if header is None:
        raise DataError(f"{where}: '{path}' is an .npz archive; store one array per .npy file")
    shape, dtype, data_bytes, size = header
    if shape is None:  # format 3.0: rare; numpy reads it for us
        return _mapped_header(path, where)
    if dtype.hasobject:
        raise _refused(path, where, ValueError("it holds Python objects, which would need "
                                               "allow_pickle=True"))
    if size < data_bytes:
        raise DataError(f"{where}: '{path}' is truncated: {size} bytes, but its header announces "
                        f"{data_bytes}")
    return tuple(shape), dtype


def _parse_header(f) -> tuple | None:
    """``(shape, dtype, bytes the file needs, its size)``; None for an .npz (zip) archive,
    shape None for a format version numpy has no public header reader for."""
    if f.read(len(_ZIP_MAGIC)) == _ZIP_MAGIC:
        return None
    f.seek(0)
    version = np.lib.format.read_magic(f)
    if version not in _HEADER_READERS:
        return None, None, 0, 0
    shape, _, dtype = _HEADER_READERS[version](f)
    data_bytes = f.tell() + int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    return shape, dtype, data_bytes, os.fstat(f.fileno()).st_size


def _mapped_header(path: str, where: str) -> Tuple[Tuple[int, ...], np.dtype]:
    try:
        mapped = np.load(path, mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError, EOFError) as exc:
        raise _refused(path, where, exc) from None
    return mapped.shape, mapped.dtype


class HeaderReader:
    """:func:`read_header` for many files, parsing each distinct header only once.

    The files of one dataset share byte-identical headers, and parsing one (numpy's
    ``literal_eval`` of a dict) costs more than opening and reading it; a header seen before is
    recognised by its bytes, so checking a file costs an open, a small read and an ``fstat``.
    """

    def __init__(self) -> None:
        self._known: dict = {}  # header bytes -> (shape, dtype, bytes the file needs)

    def read(self, path: str, where: str) -> Tuple[Tuple[int, ...], np.dtype]:
        """``(shape, dtype)`` of the ``.npy`` file ``path``; DataError as :func:`read_header`."""
        try:
            with open(path, "rb", buffering=0) as f:
                key = _header_bytes(f.read(_PREFIX_BYTES))
                known = self._known.get(key)
                size = os.fstat(f.fileno()).st_size if known else 0
        except OSError as exc:
            raise _refused(path, where, exc) from None
        if known is None:
            shape, dtype = read_header(path, where)
            if key is not None and len(self._known) < _MAX_HEADERS:
                needed = len(key) + int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
                self._known[key] = (shape, dtype, needed)
            return shape, dtype
        shape, dtype, needed = known
        if size < needed:
            raise DataError(f"{where}: '{path}' is truncated: {size} bytes, but its header "
                            f"announces {needed}")
        return shape, dtype


def _header_bytes(prefix: bytes) -> bytes | None:
    """The magic, version and header of a ``.npy`` file's first bytes (None if not all there).
    """
    if not prefix.startswith(b"\x93NUMPY") or len(prefix) < 12:
        return None
    if prefix[6] == 1:
        end = 10 + int.from_bytes(prefix[8:10], "little")
    else:
        end = 12 + int.from_bytes(prefix[8:12], "little")
    return prefix[:end] if end <= len(prefix) else None


_PREFIX_BYTES = 256  # numpy pads headers to 64 bytes: 128 for a few dimensions
_MAX_HEADERS = 64
_ZIP_MAGIC = b"PK\x03\x04"
_HEADER_READERS = {(1, 0): np.lib.format.read_array_header_1_0,
                   (2, 0): np.lib.format.read_array_header_2_0}


def describe_dtype(dtype: np.dtype) -> str:
    """``float32``; ``float32 ('>f4')`` when the byte order is not native; ``<U3`` for text."""
    dtype = np.dtype(dtype)
    if dtype.kind not in "biufc":
        return str(dtype)
    return dtype.name if dtype.isnative else f"{dtype.name} ({dtype.str!r})"


def check_sample(found: Tuple[Tuple[int, ...], np.dtype], shape: Tuple[int, ...],
                 dtype: np.dtype, path: str, where: str) -> None:
    """DataError unless ``found``, a sample's ``(shape, dtype)`` (from the array or its header),
    is exactly ``shape`` and ``dtype`` (those of the first sample)."""
    found_shape, found_dtype = tuple(found[0]), np.dtype(found[1])
    if found_shape != tuple(shape) or found_dtype != dtype:
        raise DataError(f"{where}: '{shown(path)}' holds a {describe_dtype(found_dtype)} array "
                        f"of shape {found_shape}, but every sample must be {describe_dtype(dtype)} "
                        f"{tuple(shape)} like the first one; fix or remove this sample")
