"""The protobuf wire format, read and written in pure Python: Caffe's messages without protobuf.

Pycaffe's generated ``caffe_pb2`` is tied to the protobuf runtime Caffe was built with, so the
package never imports protobuf; the messages it needs (``BlobProto`` in
:mod:`caffe_layers.binaryproto`, ``Datum`` in :mod:`caffe_layers.datum`) are a handful of fields,
read with :class:`WireReader` and written with :func:`varint_field` and :func:`bytes_field`.

A message is a sequence of fields, each a varint key ``field_number << 3 | wire_type`` and a value:
a varint (0), 8 bytes (1), a varint length and that many bytes (2), a group (3 ... 4, deprecated,
skipped) or 4 bytes (5). Malformed bytes raise :class:`Malformed` with the byte offset; the
message modules turn it into a :class:`~caffe_layers.errors.DataError` naming the file or record.
"""

from __future__ import annotations

from typing import Tuple

VARINT, FIXED64, BYTES, GROUP_START, GROUP_END, FIXED32 = 0, 1, 2, 3, 4, 5
WIRE_NAMES = {0: "varint", 1: "fixed64", 2: "length-delimited", 3: "group start",
              4: "group end", 5: "fixed32"}


class Malformed(Exception):
    """The bytes are not a valid message; the message says what is wrong and where."""


class WireReader:
    """A cursor over a message's bytes (``bytes``, ``bytearray`` or ``memoryview``)."""

    __slots__ = ("buf", "pos", "end")

    def __init__(self, buf, start: int = 0, end: int | None = None) -> None:
        self.buf = buf
        self.pos = start
        self.end = len(buf) if end is None else end

    def done(self) -> bool:
        return self.pos >= self.end

    def varint(self) -> int:
        """The next varint as an unsigned 64-bit integer."""
        buf, pos, end = self.buf, self.pos, self.end
        if pos < end and buf[pos] < 0x80:  # one byte: field keys, sizes, labels below 128
            self.pos = pos + 1
            return buf[pos]
        result = shift = 0
        while True:
            if pos >= end:
                raise Malformed(f"truncated varint at byte {self.pos}")
            if shift >= 70:
                raise Malformed(f"varint longer than 10 bytes at byte {self.pos}")
            byte = buf[pos]
            pos += 1
            result |= (byte & 0x7F) << shift
            shift += 7
            if not byte & 0x80:
                self.pos = pos
                return result & 0xFFFFFFFFFFFFFFFF

    def take(self, size: int, what: str) -> Tuple[int, int]:
        """Advance over ``size`` bytes; return their (start, end)."""
        if self.end - self.pos < size:
            raise Malformed(f"truncated {what} at byte {self.pos}: needs {size} bytes, "
                            f"{self.end - self.pos} left")
        start = self.pos
        self.pos += size
        return start, self.pos

    def tag(self) -> Tuple[int, int]:
        """The next field's ``(number, wire type)``."""
        at = self.pos
        key = self.varint()
        field, wire = key >> 3, key & 7
        if field == 0:
            raise Malformed(f"field number 0 at byte {at}")
        if wire not in WIRE_NAMES:
            raise Malformed(f"invalid wire type {wire} for field {field} at byte {at}")
        return field, wire

    def length_delimited(self, what: str) -> Tuple[int, int]:
        """The (start, end) of the next length-delimited value."""
        return self.take(self.varint(), what)

    def skip(self, field: int, wire: int) -> None:
        """Skip one field's value, groups included (their nested fields up to the matching end)."""
        if wire == VARINT:
            self.varint()
        elif wire == FIXED64:
            self.take(8, f"fixed64 field {field}")
        elif wire == FIXED32:
            self.take(4, f"fixed32 field {field}")
        elif wire == BYTES:
            self.length_delimited(f"length-delimited field {field}")
        elif wire == GROUP_START:
            self._skip_group(field)
        else:
            raise Malformed(f"unexpected group end for field {field} at byte {self.pos}")

    def _skip_group(self, field: int) -> None:
        while not self.done():
            inner, wire = self.tag()
            if wire == GROUP_END:
                if inner != field:
                    raise Malformed(f"group {field} closed by the end of group {inner}")
                return
            self.skip(inner, wire)
        raise Malformed(f"truncated group {field}: no group end")


def int32(value: int) -> int:
    """A varint read as protobuf's ``int32`` (negative values are 10-byte varints)."""
    value &= 0xFFFFFFFF
    return value - (1 << 32) if value >= 1 << 31 else value


def int64(value: int) -> int:
    """A varint read as protobuf's ``int64``."""
    return value - (1 << 64) if value >= 1 << 63 else value


def expect(field: str, wire: int, allowed: Tuple[int, ...]) -> None:
    """Raise :class:`Malformed` unless field ``field`` came with one of the ``allowed`` types."""
    if wire not in allowed:
        names = " or ".join(WIRE_NAMES[w] for w in allowed)
        raise Malformed(f"field {field} has wire type {WIRE_NAMES[wire]}, expected {names}")


def varint_bytes(value: int) -> bytes:
    """``value`` as a varint; negative values as their 64-bit two's complement (``int32``)."""
    value &= 0xFFFFFFFFFFFFFFFF
    out = bytearray()
    while value > 0x7F:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def varint_field(field: int, value: int) -> bytes:
    """One varint field (``int32``, ``int64``, ``bool``), key and value."""
    return varint_bytes(field << 3 | VARINT) + varint_bytes(value)


def bytes_field(field: int, payload) -> bytes:
    """One length-delimited field (``bytes``, ``string``, a submessage, a packed array)."""
    return varint_bytes(field << 3 | BYTES) + varint_bytes(len(payload)) + bytes(payload)
