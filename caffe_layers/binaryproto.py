"""Caffe mean files (``.binaryproto``) read and written in pure Python, without protobuf.

A ``.binaryproto`` is one serialized ``BlobProto`` message and nothing else::

    num=1 channels=2 height=3 width=4   int32 varints (legacy 4-D shape)
    data=5 diff=6                       repeated float (packed or not)
    shape=7                             BlobShape { repeated int64 dim = 1; }
    double_data=8 double_diff=9         repeated double

The shape is the legacy four fields when any of them is present, else ``shape.dim``; the values come
from ``double_data`` when it is non-empty, else from ``data`` (Caffe's ``Blob::FromProto``). Unknown
fields are skipped as protobuf does. Every malformed input raises :class:`DataError` naming the file
and the problem, where Caffe would abort.

:func:`read_mean` loads the ``mean_file`` of a ``transform_param``: a ``.binaryproto`` or a ``.npy``
(recognised by its content, not its name).
"""

from __future__ import annotations

import io
import os
from functools import reduce
from operator import mul
from typing import Dict, List, Tuple

import numpy as np

from caffe_layers.errors import DataError
from caffe_layers.files import read_bytes

_VARINT, _FIXED64, _BYTES, _GROUP_START, _GROUP_END, _FIXED32 = 0, 1, 2, 3, 4, 5
_WIRE_NAMES = {0: "varint", 1: "fixed64", 2: "length-delimited", 3: "group start",
               4: "group end", 5: "fixed32"}
_LEGACY = {1: "num", 2: "channels", 3: "height", 4: "width"}
_DATA, _SHAPE, _DOUBLE_DATA = 5, 7, 8
_NPY_MAGIC = b"\x93NUMPY"


class _Malformed(Exception):
    """The bytes are not a valid message; the message says what is wrong."""


class _Reader:
    """A cursor over a protobuf message's bytes."""

    def __init__(self, buf: bytes, start: int = 0, end: int | None = None) -> None:
        self.buf = buf
        self.pos = start
        self.end = len(buf) if end is None else end

    def done(self) -> bool:
        return self.pos >= self.end

    def varint(self) -> int:
        result = shift = 0
        while True:
            if self.pos >= self.end:
                raise _Malformed(f"truncated varint at byte {self.pos}")
            if shift >= 70:
                raise _Malformed(f"varint longer than 10 bytes at byte {self.pos}")
            byte = self.buf[self.pos]
            self.pos += 1
            result |= (byte & 0x7F) << shift
            shift += 7
            if not byte & 0x80:
                return result & 0xFFFFFFFFFFFFFFFF

    def take(self, size: int, what: str) -> Tuple[int, int]:
        """Advance over ``size`` bytes; return their (start, end)."""
        if self.end - self.pos < size:
            raise _Malformed(f"truncated {what} at byte {self.pos}: needs {size} bytes, "
                             f"{self.end - self.pos} left")
        start = self.pos
        self.pos += size
        return start, self.pos

    def tag(self) -> Tuple[int, int]:
        at = self.pos
        key = self.varint()
        field, wire = key >> 3, key & 7
        if field == 0:
            raise _Malformed(f"field number 0 at byte {at}")
        if wire not in _WIRE_NAMES:
            raise _Malformed(f"invalid wire type {wire} for field {field} at byte {at}")
        return field, wire

    def skip(self, field: int, wire: int) -> None:
        """Skip one field's value, groups included (their nested fields up to the matching end)."""
        if wire == _VARINT:
            self.varint()
        elif wire == _FIXED64:
            self.take(8, f"fixed64 field {field}")
        elif wire == _FIXED32:
            self.take(4, f"fixed32 field {field}")
        elif wire == _BYTES:
            self.take(self.varint(), f"length-delimited field {field}")
        elif wire == _GROUP_START:
            self._skip_group(field)
        else:
            raise _Malformed(f"unexpected group end for field {field} at byte {self.pos}")

    def _skip_group(self, field: int) -> None:
        while not self.done():
            inner, wire = self.tag()
            if wire == _GROUP_END:
                if inner != field:
                    raise _Malformed(f"group {field} closed by the end of group {inner}")
                return
            self.skip(inner, wire)
        raise _Malformed(f"truncated group {field}: no group end")


def _int32(value: int) -> int:
    value &= 0xFFFFFFFF
    return value - (1 << 32) if value >= 1 << 31 else value


def _int64(value: int) -> int:
    return value - (1 << 64) if value >= 1 << 63 else value


def _expect(field: str, wire: int, allowed: Tuple[int, ...]) -> None:
    if wire not in allowed:
        names = " or ".join(_WIRE_NAMES[w] for w in allowed)
        raise _Malformed(f"field {field} has wire type {_WIRE_NAMES[wire]}, expected {names}")


def _values(reader: _Reader, wire: int, name: str, dtype: str, chunks: List[np.ndarray]) -> None:
    """Read one occurrence of a repeated float/double field, packed or not."""
    itemsize = np.dtype(dtype).itemsize
    single = _FIXED32 if itemsize == 4 else _FIXED64
    _expect(name, wire, (_BYTES, single))
    size = reader.varint() if wire == _BYTES else itemsize
    if size % itemsize:
        raise _Malformed(f"packed field {name} has {size} bytes, not a multiple of {itemsize}")
    start, _ = reader.take(size, f"field {name}")
    if size:
        chunks.append(np.frombuffer(reader.buf, dtype=dtype, count=size // itemsize,
                                    offset=start))


def _shape_dims(reader: _Reader, dims: List[int]) -> None:
    """Read one ``BlobShape`` submessage, appending its dims (repeated int64, packed or not)."""
    start, end = reader.take(reader.varint(), "field shape")
    sub = _Reader(reader.buf, start, end)
    while not sub.done():
        field, wire = sub.tag()
        if field != 1:
            sub.skip(field, wire)
            continue
        _expect("shape.dim", wire, (_VARINT, _BYTES))
        if wire == _VARINT:
            dims.append(_int64(sub.varint()))
            continue
        packed_start, packed_end = sub.take(sub.varint(), "packed field shape.dim")
        packed = _Reader(sub.buf, packed_start, packed_end)
        while not packed.done():
            dims.append(_int64(packed.varint()))


def _parse(buf: bytes) -> Tuple[Dict[str, int], List[int], List[np.ndarray], List[np.ndarray]]:
    legacy: Dict[str, int] = {}
    dims: List[int] = []
    data: List[np.ndarray] = []
    doubles: List[np.ndarray] = []
    reader = _Reader(buf)
    while not reader.done():
        field, wire = reader.tag()
        if field in _LEGACY:
            _expect(_LEGACY[field], wire, (_VARINT,))
            legacy[_LEGACY[field]] = _int32(reader.varint())
        elif field == _DATA:
            _values(reader, wire, "data", "<f4", data)
        elif field == _DOUBLE_DATA:
            _values(reader, wire, "double_data", "<f8", doubles)
        elif field == _SHAPE:
            _expect("shape", wire, (_BYTES,))
            _shape_dims(reader, dims)
        elif wire == _GROUP_END:
            raise _Malformed(f"unexpected group end for field {field}")
        else:
            reader.skip(field, wire)
    return legacy, dims, data, doubles


def _shape(legacy: Dict[str, int], dims: List[int]) -> Tuple[int, ...]:
    if legacy:
        shape = tuple(legacy.get(name, 0) for name in ("num", "channels", "height", "width"))
    else:
        shape = tuple(dims)
    if any(d < 0 for d in shape):
        raise _Malformed(f"negative dimension in shape {shape}")
    return shape


def parse_blobproto(buf: bytes, name: str = "<bytes>") -> np.ndarray:
    """Decode a serialized ``BlobProto`` into a float32 array shaped as stored.

    ``name`` is used in error messages. Raises :class:`DataError` for malformed input.
    """
    try:
        legacy, dims, data, doubles = _parse(buf)
        shape = _shape(legacy, dims)
    except _Malformed as exc:
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


def _varint_bytes(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


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
    out = bytearray()
    for field, value in zip((1, 2, 3, 4), array.shape):
        out += _varint_bytes(field << 3 | _VARINT) + _varint_bytes(int(value))
    payload = np.ascontiguousarray(array, dtype="<f4").tobytes()
    out += _varint_bytes(_DATA << 3 | _BYTES) + _varint_bytes(len(payload)) + payload
    return bytes(out)


def write_blobproto(path: str, array: np.ndarray) -> None:
    """Write ``array`` as a ``.binaryproto`` mean file that Caffe reads (atomically replaced)."""
    path = os.fspath(path)
    payload = serialize_blobproto(array)
    tmp = f"{path}.tmp{os.getpid()}"
    try:
        with open(tmp, "wb") as f:
            f.write(payload)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


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


def read_mean(path: str, expected_channels: int | None = None) -> np.ndarray:
    """Load a mean file as a C-contiguous float32 ``(C, H, W)`` array.

    ``path`` is a ``.binaryproto`` (one ``BlobProto`` with num 1, as ``compute_image_mean`` writes)
    or a ``.npy`` of shape ``(C, H, W)`` or ``(1, C, H, W)``, told apart by content.
    ``expected_channels`` (3 for colour, 1 for gray) is checked when given.
    """
    path = os.fspath(path)
    buf = read_bytes(path, "mean_file")
    if buf.startswith(_NPY_MAGIC):
        mean = _mean_from_npy(path, buf)
    else:
        mean = _mean_from_blob(path, buf)
    if expected_channels is not None and mean.shape[0] != expected_channels:
        raise DataError(f"mean_file '{path}': has {mean.shape[0]} channels {mean.shape}, the "
                        f"images have {expected_channels} (is_color must match the mean)")
    return np.ascontiguousarray(mean, dtype=np.float32)
