"""``caffe.Blob`` and the ``BlobVec`` of a layer's parameter blobs.

A blob's data and diff live in :class:`_Memory` buffers that other blobs may share
(``ShareData``, as Split layers and ``Net.share_with`` do). When the last owner drops a buffer,
real Caffe frees it and every numpy view taken of it dangles. The fake's stand-in for dangling
memory: the old buffer is filled with NaN and every view handed out since it was allocated is made
read-only, so reading a stale view shows NaN and writing through one raises numpy's ValueError.
(A slice taken *of* a view is not tracked: it reads NaN but stays writable.)
"""

from __future__ import annotations

import weakref
from typing import Sequence

import numpy as np

from caffe_layers.testing.fake_caffe._errors import (
    CaffeAbort,
    NotComputedError,
    check,
    extract_int,
)
from caffe_layers.testing.fake_caffe._vectors import IntVec, _StdVector

MAX_BLOB_AXES = 32
INT_MAX = 2**31 - 1


class _Memory:
    """One float32 buffer (a ``SyncedMemory``), zero-filled, with the views handed out of it."""

    __slots__ = ("buffer", "owners", "_views", "_prune_at")

    def __init__(self, size: int) -> None:
        self.buffer = np.zeros(size, dtype=np.float32)
        self.owners = 0
        self._views: list = []
        self._prune_at = 64

    def view(self, count: int, shape: Sequence[int]) -> np.ndarray:
        """A fresh C-contiguous view of the first ``count`` values, remembered weakly."""
        array = self.buffer[:count].reshape(tuple(shape))
        self._views.append(weakref.ref(array))
        if len(self._views) >= self._prune_at:
            self._views = [ref for ref in self._views if ref() is not None]
            self._prune_at = 2 * len(self._views) + 64
        return array

    def release(self) -> None:
        """Drop one owner; the last one 'frees' the buffer (NaN, views read-only)."""
        self.owners -= 1
        if self.owners > 0:
            return
        self.buffer.fill(np.nan)
        for ref in self._views:
            array = ref()
            if array is not None:
                array.flags.writeable = False
        self._views = []


class Blob:
    """An N-d float32 array with data and diff, as pycaffe's ``caffe._caffe.Blob`` behaves.

    ``data``/``diff`` give a fresh float32 C-contiguous writable view on every access and cannot
    be assigned; ``reshape(*dims)`` takes positional Python ints only and reallocates only when
    the count grows; ``shape`` is an :class:`IntVec`. Touching ``data``/``diff`` of a blob that
    never held memory (never reshaped, or reshaped to 0 elements only) raises
    :class:`CaffeAbort`, or :class:`NotComputedError` for the top of a layer the fake does not
    compute. See the module docstring for what happens to stale views.
    """

    def __init__(self) -> None:
        self._uncomputed_source = ""  # "layer 'ip' (InnerProduct)" when such a layer makes it
        self._shape: list = []
        self._count = 0
        self._capacity = 0
        self._data: _Memory | None = None
        self._diff: _Memory | None = None

    # ---------------------------------------------------------------------------- pycaffe API

    def reshape(self, *dims: int, **kwargs: object) -> None:
        """Reshape to ``dims`` (Python ints); contents are kept only if the count did not grow."""
        if kwargs:
            raise RuntimeError("Blob.reshape takes no kwargs")
        self._reshape_to([extract_int(dim) for dim in dims])

    @property
    def data(self) -> np.ndarray:
        return self._memory(self._data, "data_").view(self._count, self._shape)

    @property
    def diff(self) -> np.ndarray:
        return self._memory(self._diff, "diff_").view(self._count, self._shape)

    @property
    def _readable(self) -> bool:
        """Whether ``data`` can be read (False: it would raise)."""
        return self._data is not None

    @property
    def shape(self) -> IntVec:
        return IntVec(self._shape)

    @property
    def count(self) -> int:
        return self._count

    @property
    def num(self) -> int:
        return self._legacy_shape(0)

    @property
    def channels(self) -> int:
        return self._legacy_shape(1)

    @property
    def height(self) -> int:
        return self._legacy_shape(2)

    @property
    def width(self) -> int:
        return self._legacy_shape(3)

    # -------------------------------- what the fake's C++ side calls (not in real pycaffe)

    def _reshape_to(self, dims: Sequence[int]) -> None:
        """``Blob::Reshape(vector<int>)`` with its checks."""
        check(len(dims) <= MAX_BLOB_AXES,
              f"Check failed: shape.size() <= kMaxBlobAxes ({len(dims)} vs. {MAX_BLOB_AXES})")
        count = 1
        for dim in dims:
            check(dim >= 0, f"Check failed: shape[i] >= 0 ({dim} vs. 0)")
            if count != 0:
                check(dim <= INT_MAX // count, "blob size exceeds INT_MAX")
            count *= dim
        self._shape, self._count = list(dims), count
        if count > self._capacity:
            self._capacity = count
            self._own(_Memory(count), "_data")
            self._own(_Memory(count), "_diff")

    def _reshape_like(self, other: Blob) -> None:
        self._reshape_to(other._shape)

    def _share_data(self, other: Blob) -> None:
        """``Blob::ShareData``: use ``other``'s data memory from now on (diff stays separate)."""
        check(self._count == other._count,
              f"Check failed: count_ == other.count() ({self._count} vs. {other._count})")
        self._own(other._data, "_data")

    def _shape_string(self) -> str:
        return " ".join(str(dim) for dim in self._shape) + f" ({self._count})"

    # --------------------------------------------------------------------------------- inner

    def _own(self, memory: _Memory | None, slot: str) -> None:
        old = getattr(self, slot)
        if memory is old:
            return
        if memory is not None:
            memory.owners += 1
        setattr(self, slot, memory)
        if old is not None:
            old.release()

    def _memory(self, memory: _Memory | None, name: str) -> _Memory:
        if memory is None and self._uncomputed_source:
            raise NotComputedError(f"this blob is a top of {self._uncomputed_source}, which the "
                                   f"fake caffe does not compute: it holds no data")
        if memory is None:
            raise CaffeAbort(f"Check failed: {name} (the blob holds no memory: reshape it to a "
                             f"non-empty shape before touching .data or .diff)")
        return memory

    def _legacy_shape(self, index: int) -> int:
        axes = len(self._shape)
        check(axes <= 4, f"Check failed: num_axes() <= 4 ({axes} vs. 4) "
                         f"Cannot use legacy accessors on Blobs with > 4 axes.")
        return self._shape[index] if index < axes else 1

    def __repr__(self) -> str:
        return f"<fake caffe Blob shape={tuple(self._shape)}>"


class BlobVec(_StdVector):
    """``vector<shared_ptr<Blob>>``: a layer's ``blobs`` (iterable) with ``add_blob(*dims)``."""

    __slots__ = ()

    def add_blob(self, *dims: int, **kwargs: object) -> None:
        """Append a new zero-filled parameter blob of shape ``dims`` (Python ints)."""
        if kwargs:
            raise RuntimeError("BlobVec.add_blob takes no kwargs")
        blob = Blob()
        blob._reshape_to([extract_int(dim) for dim in dims])
        self.append(blob)
