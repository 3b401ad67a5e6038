"""Caffe's ``Datum``, the record of its LMDB and LevelDB databases, without protobuf.

::

    message Datum {
      optional int32 channels = 1;  optional int32 height = 2;  optional int32 width = 3;
      optional bytes data = 4;      // C x H x W uint8, or an encoded image when encoded
      optional int32 label = 5;
      repeated float float_data = 6;  // used when data is empty
      optional bool encoded = 7 [default = false];
    }

:func:`parse_datum` reads a record without copying its payload: ``data`` and ``float_data`` are
views of the record's buffer (a ``memoryview`` into an LMDB map stays valid while its transaction
is open). :func:`serialize_datum` writes the bytes ``convert_imageset`` writes: a raw image as
channels, height, width, data, label and ``encoded: false``; an encoded one as data, label and
``encoded: true``. :func:`raw_pixels` gives a raw Datum's pixels as a ``(C, H, W)`` array, as
Caffe's ``DataTransformer`` indexes them (``data`` when not empty, else ``float_data``).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from caffe_layers.errors import DataError
from caffe_layers.protowire import (
    BYTES,
    FIXED32,
    VARINT,
    Malformed,
    WireReader,
    bytes_field,
    expect,
    int32,
    varint_field,
)

_CHANNELS, _HEIGHT, _WIDTH, _DATA, _LABEL, _FLOAT_DATA, _ENCODED = 1, 2, 3, 4, 5, 6, 7
_INT_FIELDS = {_CHANNELS: "channels", _HEIGHT: "height", _WIDTH: "width", _LABEL: "label"}
_NO_FLOATS = np.zeros(0, np.float32)


class Datum(NamedTuple):
    """One parsed record; ``data`` is a view of the record's bytes, ``float_data`` float32."""

    channels: int = 0
    height: int = 0
    width: int = 0
    data: memoryview = memoryview(b"")
    label: int = 0
    float_data: np.ndarray = _NO_FLOATS
    encoded: bool = False

    def shape(self) -> tuple:
        """``(C, H, W)`` as stored in the header (meaningless for an encoded Datum)."""
        return self.channels, self.height, self.width


def _float_chunk(reader: WireReader, wire: int, view: memoryview) -> np.ndarray:
    expect("float_data", wire, (BYTES, FIXED32))
    size = reader.varint() if wire == BYTES else 4
    if size % 4:
        raise Malformed(f"packed field float_data has {size} bytes, not a multiple of 4")
    start, _ = reader.take(size, "field float_data")
    return np.frombuffer(view, dtype="<f4", count=size // 4, offset=start)


def _parse(view: memoryview) -> Datum:
    ints = {_CHANNELS: 0, _HEIGHT: 0, _WIDTH: 0, _LABEL: 0}
    data, encoded, floats = view[0:0], False, []
    reader = WireReader(view)
    while not reader.done():
        field, wire = reader.tag()
        if field in _INT_FIELDS:
            expect(_INT_FIELDS[field], wire, (VARINT,))
            ints[field] = int32(reader.varint())
        elif field == _DATA:
            expect("data", wire, (BYTES,))
            start, end = reader.length_delimited("field data")
            data = view[start:end]
        elif field == _ENCODED:
            expect("encoded", wire, (VARINT,))
            encoded = reader.varint() != 0
        elif field == _FLOAT_DATA:
            floats.append(_float_chunk(reader, wire, view))
        else:
            reader.skip(field, wire)
    float_data = floats[0] if len(floats) == 1 else (
        np.concatenate(floats) if floats else _NO_FLOATS)
    return Datum(ints[_CHANNELS], ints[_HEIGHT], ints[_WIDTH], data, ints[_LABEL], float_data,
                 encoded)


def parse_datum(record, name: str = "<record>") -> Datum:
    """Parse a serialized Datum (``bytes`` or a buffer); DataError naming ``name`` if it is not one.
    """
    view = memoryview(record).cast("B") if not isinstance(record, memoryview) else record
    try:
        return _parse(view)
    except Malformed as exc:
        raise DataError(f"{name}: not a Caffe Datum ({len(view)} bytes): {exc}") from None


def serialize_datum(data, label: int, shape: tuple | None = None) -> bytes:
    """A Datum's bytes as ``convert_imageset`` writes them.

    ``shape`` ``(C, H, W)`` makes a raw Datum (``data`` is its C x H x W uint8 bytes); without it
    ``data`` is an encoded image (JPEG, PNG, ...).
    """
    label_and_encoded = varint_field(_LABEL, int(label)) + varint_field(_ENCODED, shape is None)
    if shape is None:
        return bytes_field(_DATA, data) + label_and_encoded
    header = b"".join(varint_field(field, int(size))
                      for field, size in zip((_CHANNELS, _HEIGHT, _WIDTH), shape))
    return header + bytes_field(_DATA, data) + label_and_encoded


def raw_pixels(datum: Datum, name: str = "<record>") -> np.ndarray:
    """A raw Datum's ``(C, H, W)`` pixels: uint8 from ``data``, else float32 from ``float_data``.

    A view, no copy. DataError naming ``name`` when the header's size does not match the payload.
    """
    channels, height, width = datum.shape()
    if channels <= 0 or height <= 0 or width <= 0:
        raise DataError(f"{name}: the Datum is not encoded and its shape (channels, height, "
                        f"width) = {datum.shape()} is not positive; not an image record")
    count = channels * height * width
    if len(datum.data):
        if len(datum.data) != count:
            raise DataError(f"{name}: the Datum is {channels}x{height}x{width} (C x H x W) = "
                            f"{count} pixels but its data holds {len(datum.data)} bytes")
        return np.frombuffer(datum.data, np.uint8).reshape(channels, height, width)
    if len(datum.float_data) != count:
        raise DataError(f"{name}: the Datum is {channels}x{height}x{width} (C x H x W) = {count} "
                        f"values but its data is empty and its float_data holds "
                        f"{len(datum.float_data)}")
    return datum.float_data.reshape(channels, height, width)
