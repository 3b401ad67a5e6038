"""Caffe mean files (``.binaryproto``) read and written in pure Python, without protobuf.

A ``.binaryproto`` is one serialized ``BlobProto`` message and nothing else::

    num=1 channels=2 height=3 width=4   int32 varints (legacy 4-D shape)
    data=5 diff=6                       repeated float (packed or not)
    shape=7                             BlobShape { repeated int64 dim = 1; }
    double_data=8 double_diff=9         repeated double

The shape is the legacy four fields when any of them is present, else ``shape.dim``; the values come
from ``double_data`` when it is non-empty, else from ``data`` (Caffe's ``Blob::FromProto``). Unknown
fields are skipped as protobuf does (the wire format is :mod:`caffe_layers.protowire`). Every
malformed input raises :class:`DataError` naming the file and the problem, where Caffe would abort.

:func:`read_mean` loads the ``mean_file`` of a ``transform_param``: a ``.binaryproto`` or a ``.npy``
(recognised by its content, not its name).
"""

from __future__ import annotations

import io
import os
from functools import reduce
from operator import mul
from typing import Any, Dict, List, Mapping, Tuple

import numpy as np

from caffe_layers.errors import DataError
from caffe_layers.files import read_bytes, shown, write_atomically
from caffe_layers.protowire import (
    BYTES,
    FIXED32,
    FIXED64,
    GROUP_END,
    VARINT,
    Malformed,
    WireReader,
    bytes_field,
    expect,
    int32,
    int64,
    varint_field,
)

_LEGACY = {1: "num", 2: "channels", 3: "height", 4: "width"}
_DATA, _SHAPE, _DOUBLE_DATA = 5, 7, 8
_NPY_MAGIC = b"\x93NUMPY"


def _values(reader: WireReader, wire: int, name: str, dtype: str, chunks: List[np.ndarray]) -> None:
    """Read one occurrence of a repeated float/double field, packed or not."""
    itemsize = np.dtype(dtype).itemsize
    single = FIXED32 if itemsize == 4 else FIXED64
    expect(name, wire, (BYTES, single))
    size = reader.varint() if wire == BYTES else itemsize
    if size % itemsize:
        raise Malformed(f"packed field {name} has {size} bytes, not a multiple of {itemsize}")
    start, _ = reader.take(size, f"field {name}")
    if size:
        chunks.append(np.frombuffer(reader.buf, dtype=dtype, count=size // itemsize,
                                    offset=start))


def _shape_dims(reader: WireReader, dims: List[int]) -> None:
    """Read one ``BlobShape`` submessage, appending its dims (repeated int64, packed or not)."""
    start, end = reader.length_delimited("field shape")
    sub = WireReader(reader.buf, start, end)
    while not sub.done():
        field, wire = sub.tag()
        if field != 1:
            sub.skip(field, wire)
            continue
        expect("shape.dim", wire, (VARINT, BYTES))
        if wire == VARINT:
            dims.append(int64(sub.varint()))
            continue
        packed_start, packed_end = sub.length_delimited("packed field shape.dim")
        packed = WireReader(sub.buf, packed_start, packed_end)
        while not packed.done():
            dims.append(int64(packed.varint()))


def _parse(buf: bytes) -> Tuple[Dict[str, int], List[int], List[np.ndarray], List[np.ndarray]]:
    legacy: Dict[str, int] = {}
    dims: List[int] = []
    data: List[np.ndarray] = []
    doubles: List[np.ndarray] = []
    reader = WireReader(buf)
    while not reader.done():
        field, wire = reader.tag()
        if field in _LEGACY:
            expect(_LEGACY[field], wire, (VARINT,))
            legacy[_LEGACY[field]] = int32(reader.varint())
        elif field == _DATA:
            _values(reader, wire, "data", "<f4", data)
        elif field == _DOUBLE_DATA:
            _values(reader, wire, "double_data", "<f8", doubles)
        elif field == _SHAPE:
            expect("shape", wire, (BYTES,))
            _shape_dims(reader, dims)
        elif wire == GROUP_END:
            raise Malformed(f"unexpected group end for field {field}")
        else:
            reader.skip(field, wire)
    return legacy, dims, data, doubles


def _shape(legacy: Dict[str, int], dims: List[int]) -> Tuple[int, ...]:
    if legacy:
        shape = tuple(legacy.get(name, 0) for name in ("num", "channels", "height", "width"))
    else:
        shape = tuple(dims)
    if any(d < 0 for d in shape):
        raise Malformed(f"negative dimension in shape {shape}")
    return shape


def parse_blobproto(buf: bytes, name: str = "<bytes>") -> np.ndarray:
    """Decode a serialized ``BlobProto`` into a float32 array shaped as stored.

    ``name`` is used in error messages. Raises :class:`DataError` for malformed input.
    """
    try:
        legacy, dims, data, doubles = _parse(buf)
        shape = _shape(legacy, dims)
    except Malformed as exc:
        raise DataError(f"{name}: not a valid BlobProto: {exc}") from None
    chunks = doubles if any(len(c) for c in doubles) else data
    count = sum(len(c) for c in chunks)
    expected = reduce(mul, shape, 1)
    if count != expected:
        source = "double_data" if chunks is doubles else "data"
        raise DataError(f"{name}: the BlobProto's shape {shape} holds {expected} values but its "
                        f"{source} has {count}")
    values = np.concatenate(chunks) if chunks else np.zeros(0, np.float32)
    return values.astype(np.float32).reshape(shape)


def read_blobproto(path: str) -> np.ndarray:
    """Read a ``.binaryproto`` file into a float32 array shaped as stored (see module docstring)."""
    path = os.fspath(path)
    return parse_blobproto(read_bytes(path, "BlobProto file"), path)


def serialize_blobproto(array: np.ndarray) -> bytes:
    """Encode a ``(1, C, H, W)`` or ``(C, H, W)`` array as ``compute_image_mean`` does.

    Legacy ``num=1, channels, height, width`` followed by packed float32 ``data``.
    """
    array = np.asarray(array)
    if array.ndim == 3:
        array = array[np.newaxis]
    if array.ndim != 4 or array.shape[0] != 1:
        raise DataError(f"a mean blob must be shaped (1, C, H, W) or (C, H, W), got "
                        f"{np.shape(array)}")
    if array.dtype.kind not in "biuf":
        raise DataError(f"a mean blob must hold numbers, got dtype {array.dtype}")
    header = b"".join(varint_field(field, int(value))
                      for field, value in zip((1, 2, 3, 4), array.shape))
    return header + bytes_field(_DATA, np.ascontiguousarray(array, dtype="<f4").tobytes())


def write_blobproto(path: str, array: np.ndarray) -> None:
    """Write ``array`` as a ``.binaryproto`` mean file that Caffe reads (atomically replaced)."""
    write_atomically(path, serialize_blobproto(array))


def _mean_from_npy(path: str, buf: bytes) -> np.ndarray:
    try:
        array = np.load(io.BytesIO(buf), allow_pickle=False)
    except ValueError as exc:
        raise DataError(f"mean_file '{path}': not a readable .npy array: {exc}") from None
    if array.dtype.kind not in "biuf":
        raise DataError(f"mean_file '{path}': the array must hold numbers, got dtype "
                        f"{array.dtype}")
    if array.ndim == 4 and array.shape[0] == 1:
        array = array[0]
    if array.ndim != 3:
        raise DataError(f"mean_file '{path}': a .npy mean must be shaped (C, H, W) or "
                        f"(1, C, H, W), got {array.shape}")
    return array


def _mean_from_blob(path: str, buf: bytes) -> np.ndarray:
    blob = parse_blobproto(buf, path)
    if blob.ndim != 4:
        raise DataError(f"mean_file '{path}': the BlobProto is {blob.ndim}-D {blob.shape}, Caffe "
                        f"needs (1, C, H, W) and rejects it; rewrite it with "
                        f"caffe_layers.binaryproto.write_blobproto")
    if blob.shape[0] != 1:
        raise DataError(f"mean_file '{path}': the BlobProto holds {blob.shape[0]} means "
                        f"{blob.shape}, expected num = 1")
    return blob[0]


def read_mean(path: str, expected_channels: int | None = None,
              storage_options: Mapping[str, Any] | None = None) -> np.ndarray:
    """Load a mean file as a C-contiguous float32 ``(C, H, W)`` array.

    ``path`` is a ``.binaryproto`` (one ``BlobProto`` with num 1, as ``compute_image_mean`` writes)
    or a ``.npy`` of shape ``(C, H, W)`` or ``(1, C, H, W)``, told apart by content; a local path
    or a URL (``storage_options`` go to its storage client). ``expected_channels`` (3 for
    colour, 1 for gray) is checked when given.
    """
    path = os.fspath(path)
    buf = read_bytes(path, "mean_file", storage_options=storage_options)
    path = shown(path)  # for messages: a URL without its credentials
    if buf.startswith(_NPY_MAGIC):
        mean = _mean_from_npy(path, buf)
    else:
        mean = _mean_from_blob(path, buf)
    if expected_channels is not None and mean.shape[0] != expected_channels:
        raise DataError(f"mean_file '{path}': has {mean.shape[0]} channels {mean.shape}, the "
                        f"images have {expected_channels} (is_color must match the mean)")
    return np.ascontiguousarray(mean, dtype=np.float32)
