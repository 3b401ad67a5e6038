"""The Datum record: parsed as protobuf parses it, written as convert_imageset writes it.

Messages are built with the independent encoder of test_binaryproto. That pycaffe's generated
``caffe_pb2.Datum`` agrees byte for byte is in test_db_real_caffe.py.
"""

from __future__ import annotations

import struct

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_binaryproto import key, lfield, varint, vfield

from caffe_layers.datum import parse_datum, raw_pixels, serialize_datum
from caffe_layers.errors import DataError
from caffe_layers.sources.db import KeyIndex

INT32 = st.integers(-(1 << 31), (1 << 31) - 1)


def test_a_raw_datum_in_convert_imageset_s_field_order():
    pixels = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
    value = serialize_datum(pixels.tobytes(), 7, pixels.shape)
    assert value == (vfield(1, 2) + vfield(2, 3) + vfield(3, 4) + lfield(4, pixels.tobytes())
                     + vfield(5, 7) + vfield(7, 0))
    datum = parse_datum(value)
    assert (datum.shape(), datum.label, datum.encoded) == ((2, 3, 4), 7, False)
    assert np.array_equal(raw_pixels(datum), pixels)


def test_an_encoded_datum_has_no_shape():
    value = serialize_datum(b"\x89PNG...", -1)
    assert value == lfield(4, b"\x89PNG...") + vfield(5, -1) + vfield(7, 1)
    assert len(vfield(5, -1)) == 11  # a negative int32 is a 10-byte varint, as protobuf writes
    datum = parse_datum(value)
    assert (datum.shape(), datum.label, datum.encoded, bytes(datum.data)) == \
        ((0, 0, 0), -1, True, b"\x89PNG...")


@settings(max_examples=200, deadline=None)
@given(shape=st.tuples(*[st.integers(1, 5)] * 3), label=INT32, data=st.data())
def test_raw_round_trip(shape, label, data):
    pixels = np.frombuffer(data.draw(st.binary(min_size=int(np.prod(shape)),
                                               max_size=int(np.prod(shape)))), np.uint8)
    datum = parse_datum(serialize_datum(pixels.tobytes(), label, shape))
    assert (datum.shape(), datum.label) == (shape, label)
    assert np.array_equal(raw_pixels(datum).ravel(), pixels)


def test_protobuf_rules_last_scalar_wins_repeated_floats_concatenate_unknown_skipped():
    floats = [1.5, -2.0, 3.25, 4.0]
    value = (vfield(5, 1) + vfield(1, 1) + vfield(2, 2) + vfield(3, 2)
             + key(6, 5) + struct.pack("<f", floats[0])                   # unpacked float
             + lfield(6, struct.pack("<3f", *floats[1:]))                 # then packed floats
             + lfield(99, b"unknown") + key(98, 1) + b"\0" * 8           # unknown fields
             + key(97, 3) + vfield(1, 5) + key(97, 4)                     # an unknown group
             + vfield(5, 9) + lfield(4, b"old") + lfield(4, b""))         # later ones win
    datum = parse_datum(value)
    assert datum.label == 9 and bytes(datum.data) == b""
    assert np.array_equal(raw_pixels(datum), np.array(floats, np.float32).reshape(1, 2, 2))


def test_parsing_copies_nothing():
    value = bytearray(serialize_datum(b"\x01\x02\x03", 0, (3, 1, 1)))
    pixels = raw_pixels(parse_datum(value))
    value[-5] = 9  # the last pixel, before label and encoded (two bytes each)
    assert pixels.tolist() == [[[1]], [[2]], [[9]]]


@pytest.mark.parametrize(("value", "problem"), [
    (b"\x08", "truncated varint at byte 1"),
    (key(4, 2) + varint(10) + b"abc", "truncated field data at byte 2: needs 10 bytes, 3 left"),
    (key(1, 2) + varint(0), "field channels has wire type length-delimited, expected varint"),
    (key(4, 0) + varint(3), "field data has wire type varint, expected length-delimited"),
    (lfield(6, b"\0" * 6), "packed field float_data has 6 bytes, not a multiple of 4"),
    (key(0, 0) + varint(1), "field number 0 at byte 0"),
    (varint(7 << 3 | 6), "invalid wire type 6 for field 7 at byte 0"),
])
def test_malformed_records_name_the_record(value, problem):
    with pytest.raises(DataError) as info:
        parse_datum(value, "record 3 'k' of 'db'")
    assert str(info.value) == f"record 3 'k' of 'db': not a Caffe Datum ({len(value)} bytes): " \
                              f"{problem}"


@pytest.mark.parametrize(("value", "problem"), [
    (serialize_datum(b"\0" * 5, 0, (1, 2, 3)),
     "the Datum is 1x2x3 (C x H x W) = 6 pixels but its data holds 5 bytes"),
    (vfield(1, 1) + vfield(2, 1) + vfield(3, 2) + lfield(6, struct.pack("<f", 1)),
     "the Datum is 1x1x2 (C x H x W) = 2 values but its data is empty and its float_data holds 1"),
    (vfield(5, 3), "the Datum is not encoded and its shape (channels, height, width) = (0, 0, 0) "
                   "is not positive; not an image record"),
])
def test_raw_pixels_must_match_the_header(value, problem):
    with pytest.raises(DataError) as info:
        raw_pixels(parse_datum(value), "r")
    assert str(info.value) == f"r: {problem}"


@settings(max_examples=50, deadline=None)
@given(st.lists(st.binary(min_size=1, max_size=12), max_size=300))
def test_the_key_index_keeps_every_key_compactly(keys):
    index = KeyIndex.collect(iter(keys))
    assert len(index) == len(keys)
    assert [index.key(i) for i in range(len(keys))] == keys
    assert index.nbytes() == sum(map(len, keys)) + 8 * (len(keys) + 1)
