"""``.binaryproto`` mean files: hand-built BlobProto bytes, round trips and every malformed case."""

from __future__ import annotations

import struct

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from caffe_layers.binaryproto import (
    parse_blobproto,
    read_blobproto,
    read_mean,
    serialize_blobproto,
    write_blobproto,
)
from caffe_layers.errors import DataError

# --- a minimal protobuf encoder, written independently of the module under test -------------


def varint(value: int) -> bytes:
    value &= (1 << 64) - 1
    out = b""
    while value >= 0x80:
        out += bytes([value & 0x7F | 0x80])
        value >>= 7
    return out + bytes([value])


def key(field: int, wire: int) -> bytes:
    return varint(field << 3 | wire)


def vfield(field: int, value: int) -> bytes:
    return key(field, 0) + varint(value)


def lfield(field: int, payload: bytes) -> bytes:
    return key(field, 2) + varint(len(payload)) + payload


def packed_floats(field: int, values) -> bytes:
    return lfield(field, struct.pack(f"<{len(values)}f", *values))


def unpacked_floats(field: int, values) -> bytes:
    return b"".join(key(field, 5) + struct.pack("<f", v) for v in values)


def packed_doubles(field: int, values) -> bytes:
    return lfield(field, struct.pack(f"<{len(values)}d", *values))


def unpacked_doubles(field: int, values) -> bytes:
    return b"".join(key(field, 1) + struct.pack("<d", v) for v in values)


def legacy(num: int, channels: int, height: int, width: int) -> bytes:
    return vfield(1, num) + vfield(2, channels) + vfield(3, height) + vfield(4, width)


def shape_packed(*dims: int) -> bytes:
    return lfield(7, lfield(1, b"".join(varint(d) for d in dims)))


def shape_unpacked(*dims: int) -> bytes:
    return lfield(7, b"".join(vfield(1, d) for d in dims))


VALUES = [0.5, -1.25, 3.0, 1e-3, 255.0, 7.75]


def write(tmp_path, data: bytes, name: str = "mean.binaryproto") -> str:
    path = tmp_path / name
    path.write_bytes(data)
    return str(path)


def assert_bits(actual: np.ndarray, expected) -> None:
    expected = np.asarray(expected, np.float32)
    assert actual.dtype == np.float32
    assert actual.shape == expected.shape
    assert actual.tobytes() == expected.tobytes()


# --- well-formed input ------------------------------------------------------------------------


@pytest.mark.parametrize("shape", [(1, 3, 4, 5), (3, 2, 2), (1, 1, 1, 1), (1, 3, 17, 9)])
def test_round_trip(tmp_path, shape):
    array = np.random.default_rng(1).normal(100, 50, shape).astype(np.float32)
    path = str(tmp_path / "m.binaryproto")
    write_blobproto(path, array)
    blob = read_blobproto(path)
    assert_bits(blob, array.reshape((1,) + array.shape[-3:]))
    assert_bits(read_mean(path), array.reshape(array.shape[-3:]))


@settings(deadline=None, max_examples=60, database=None)
@given(channels=st.integers(1, 4), height=st.integers(1, 6), width=st.integers(1, 6),
       data=st.data())
def test_round_trip_is_bit_exact(channels, height, width, data):
    count = channels * height * width
    values = data.draw(st.lists(st.floats(width=32, allow_nan=True), min_size=count,
                                max_size=count))
    array = np.array(values, np.float32).reshape(channels, height, width)
    blob = parse_blobproto(serialize_blobproto(array))
    assert blob.shape == (1, channels, height, width)
    assert blob.tobytes() == array.tobytes()


def test_writes_what_compute_image_mean_writes():
    array = np.array([1.0, 2.0], np.float32).reshape(1, 1, 1, 2)
    expected = legacy(1, 1, 1, 2) + packed_floats(5, [1.0, 2.0])
    assert serialize_blobproto(array) == expected


def test_write_replaces_an_existing_file_and_leaves_no_temporary(tmp_path):
    path = tmp_path / "m.binaryproto"
    path.write_bytes(b"old")
    write_blobproto(str(path), np.ones((1, 2, 2), np.float32))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.binaryproto"]
    assert_bits(read_blobproto(str(path)), np.ones((1, 1, 2, 2)))


@pytest.mark.parametrize("shape", [(2, 3, 4, 5), (4, 5), (1, 1, 2, 3, 4)])
def test_write_rejects_other_shapes(tmp_path, shape):
    with pytest.raises(DataError, match=r"\(1, C, H, W\) or \(C, H, W\)"):
        write_blobproto(str(tmp_path / "m.binaryproto"), np.zeros(shape, np.float32))


@pytest.mark.parametrize("encode", [packed_floats, unpacked_floats])
def test_packed_and_unpacked_floats(tmp_path, encode):
    data = legacy(1, 1, 2, 3) + encode(5, VALUES)
    assert_bits(read_blobproto(write(tmp_path, data)), np.reshape(VALUES, (1, 1, 2, 3)))


def test_mixed_packed_chunks_and_single_floats_concatenate():
    data = (legacy(1, 1, 2, 3) + packed_floats(5, VALUES[:2]) + unpacked_floats(5, VALUES[2:3])
            + packed_floats(5, VALUES[3:]))
    assert_bits(parse_blobproto(data), np.reshape(VALUES, (1, 1, 2, 3)))


@pytest.mark.parametrize("encode", [packed_doubles, unpacked_doubles])
def test_double_data_wins_over_data(encode):
    doubles = [0.1, 0.2, 1.0 / 3, -2.5, 1e10, 6.0]
    data = legacy(1, 1, 2, 3) + packed_floats(5, VALUES) + encode(8, doubles)
    assert_bits(parse_blobproto(data), np.array(doubles, np.float64).astype(np.float32)
                .reshape(1, 1, 2, 3))


def test_empty_double_data_falls_back_to_data():
    data = legacy(1, 1, 2, 3) + packed_doubles(8, []) + packed_floats(5, VALUES)
    assert_bits(parse_blobproto(data), np.reshape(VALUES, (1, 1, 2, 3)))


@pytest.mark.parametrize("shape", [shape_packed, shape_unpacked])
def test_shape_dim_packed_and_unpacked(shape):
    data = shape(1, 2, 3) + packed_floats(5, VALUES)
    assert_bits(parse_blobproto(data), np.reshape(VALUES, (1, 2, 3)))


def test_shape_dims_from_several_shape_fields_append():
    data = shape_unpacked(2) + shape_packed(3) + packed_floats(5, VALUES)
    assert parse_blobproto(data).shape == (2, 3)


def test_large_int64_dims_are_read():
    data = shape_packed(1 << 33, 0)
    assert parse_blobproto(data).shape == (1 << 33, 0)


def test_legacy_fields_win_over_shape_and_default_to_zero():
    data = shape_packed(6) + vfield(2, 1) + vfield(3, 2) + vfield(4, 3) + packed_floats(5, [])
    blob = parse_blobproto(data)
    assert blob.shape == (0, 1, 2, 3)
    data = shape_packed(6) + legacy(1, 1, 2, 3) + packed_floats(5, VALUES)
    assert parse_blobproto(data).shape == (1, 1, 2, 3)


def test_later_legacy_value_wins():
    data = vfield(2, 7) + legacy(1, 1, 2, 3) + packed_floats(5, VALUES)
    assert parse_blobproto(data).shape == (1, 1, 2, 3)


def group(field: int, body: bytes) -> bytes:
    return key(field, 3) + body + key(field, 4)


UNKNOWN_FIELDS = {
    "varint": vfield(20, 300),
    "fixed64": key(21, 1) + b"\x01" * 8,
    "length-delimited": lfield(22, b"\xff\x00anything"),
    "group": group(23, vfield(1, 5) + group(2, lfield(3, b"xy")) + key(4, 5) + b"abcd"),
    "fixed32": key(24, 5) + b"\x02" * 4,
    "diff": packed_floats(6, [9.0, 9.0]) + unpacked_floats(6, [9.0]),
    "double_diff": packed_doubles(9, [9.0]) + unpacked_doubles(9, [9.0]),
    "large field number": vfield(536870911, 1),
}


@pytest.mark.parametrize("name", sorted(UNKNOWN_FIELDS))
def test_unknown_and_ignored_fields_are_skipped(name):
    extra = UNKNOWN_FIELDS[name]
    data = extra + legacy(1, 1, 2, 3) + extra + packed_floats(5, VALUES) + extra
    assert_bits(parse_blobproto(data), np.reshape(VALUES, (1, 1, 2, 3)))


def test_unknown_fields_inside_shape_are_skipped():
    body = vfield(2, 9) + lfield(1, varint(2) + varint(3)) + key(3, 5) + b"abcd" + vfield(1, 1)
    data = lfield(7, body) + packed_floats(5, VALUES)
    assert parse_blobproto(data).shape == (2, 3, 1)


def test_empty_shape_holds_one_value():
    assert_bits(parse_blobproto(packed_floats(5, [4.5])), np.float32(4.5))


# --- malformed input --------------------------------------------------------------------------

MALFORMED = {
    "truncated varint": (vfield(1, 1) + b"\x10\x83", "truncated varint"),
    "truncated tag": (vfield(1, 1) + b"\x80", "truncated varint"),
    "varint too long": (b"\x08" + b"\xff" * 10 + b"\x01", "longer than 10 bytes"),
    "truncated packed data": (legacy(1, 1, 1, 2) + key(5, 2) + varint(8) + b"\0\0\0\0",
                              "truncated field data"),
    "truncated fixed32": (legacy(1, 1, 1, 1) + key(5, 5) + b"\0\0", "truncated field data"),
    "truncated fixed64 double": (key(8, 1) + b"\0" * 7, "truncated field double_data"),
    "packed floats not a multiple of 4": (legacy(1, 1, 1, 1) + lfield(5, b"\0" * 6),
                                          "not a multiple of 4"),
    "packed doubles not a multiple of 8": (lfield(8, b"\0" * 12), "not a multiple of 8"),
    "invalid wire type 6": (key(20, 6) + b"\0", "invalid wire type 6"),
    "invalid wire type 7": (key(1, 7), "invalid wire type 7"),
    "field number 0": (b"\x00\x01", "field number 0"),
    "num as length-delimited": (lfield(1, b"\x01"), "field num has wire type length-delimited"),
    "data as varint": (vfield(5, 1), "field data has wire type varint"),
    "shape as varint": (vfield(7, 1), "field shape has wire type varint"),
    "dim as fixed32": (lfield(7, key(1, 5) + b"\0\0\0\0"), "field shape.dim has wire type"),
    "truncated shape": (key(7, 2) + varint(5) + b"\x08", "truncated field shape"),
    "truncated packed dims": (lfield(7, lfield(1, b"\x82")), "truncated varint"),
    "truncated unknown bytes": (key(22, 2) + varint(10) + b"abc", "truncated length-delimited"),
    "truncated unknown fixed64": (key(21, 1) + b"\0", "truncated fixed64"),
    "truncated unknown fixed32": (key(24, 5) + b"\0", "truncated fixed32"),
    "unterminated group": (key(23, 3) + vfield(1, 1), "no group end"),
    "mismatched group end": (key(23, 3) + key(24, 4), "group 23 closed by the end of group 24"),
    "stray group end": (key(23, 4), "unexpected group end"),
    "negative legacy dim": (legacy(1, -3, 1, 1), r"negative dimension in shape \(1, -3, 1, 1\)"),
    "negative shape dim": (shape_packed(2, -1), "negative dimension"),
    "count below shape": (legacy(1, 1, 2, 3) + packed_floats(5, VALUES[:5]),
                          r"shape \(1, 1, 2, 3\) holds 6 values but its data has 5"),
    "count above shape": (legacy(1, 1, 1, 1) + packed_floats(5, VALUES[:2]),
                          "holds 1 values but its data has 2"),
    "double count mismatch": (legacy(1, 1, 1, 2) + packed_doubles(8, [1.0]),
                              "double_data has 1"),
    "empty file": (b"", r"shape \(\) holds 1 values but its data has 0"),
    "text file": (b"hello, world\n", "not a valid BlobProto"),
}


@pytest.mark.parametrize("name", sorted(MALFORMED))
def test_malformed_input_names_file_and_problem(tmp_path, name):
    data, message = MALFORMED[name]
    path = write(tmp_path, data)
    with pytest.raises(DataError, match=message) as info:
        read_blobproto(path)
    assert path in str(info.value)


def test_missing_file(tmp_path):
    path = str(tmp_path / "nope.binaryproto")
    with pytest.raises(DataError, match="does not exist") as info:
        read_blobproto(path)
    assert path in str(info.value)


def test_directory_is_not_a_file(tmp_path):
    with pytest.raises(DataError, match="cannot read"):
        read_blobproto(str(tmp_path))


# --- read_mean ----------------------------------------------------------------------------------


def test_mean_from_legacy_binaryproto_with_num_1(tmp_path):
    path = write(tmp_path, legacy(1, 2, 1, 3) + packed_floats(5, VALUES))
    mean = read_mean(path, expected_channels=2)
    assert_bits(mean, np.reshape(VALUES, (2, 1, 3)))
    assert mean.flags.c_contiguous


def test_mean_from_4d_shape_dim(tmp_path):
    path = write(tmp_path, shape_packed(1, 3, 2, 1) + packed_floats(5, VALUES))
    assert_bits(read_mean(path), np.reshape(VALUES, (3, 2, 1)))


def test_3d_mean_blob_is_rejected(tmp_path):
    path = write(tmp_path, shape_packed(3, 2, 1) + packed_floats(5, VALUES))
    with pytest.raises(DataError, match=r"3-D \(3, 2, 1\).*rejects it") as info:
        read_mean(path)
    assert path in str(info.value)


def test_mean_with_num_above_1_is_rejected(tmp_path):
    path = write(tmp_path, legacy(2, 1, 1, 3) + packed_floats(5, VALUES))
    with pytest.raises(DataError, match="holds 2 means"):
        read_mean(path)


def test_mean_channel_check(tmp_path):
    path = write(tmp_path, legacy(1, 3, 1, 2) + packed_floats(5, VALUES))
    with pytest.raises(DataError, match="has 3 channels .* the images have 1"):
        read_mean(path, expected_channels=1)


@pytest.mark.parametrize("shape", [(3, 4, 5), (1, 3, 4, 5)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.uint8])
def test_mean_from_npy(tmp_path, shape, dtype):
    array = (np.arange(60).reshape(shape) * 1.5).astype(dtype)
    path = tmp_path / "mean.npy"
    np.save(path, array)
    assert_bits(read_mean(str(path), expected_channels=3),
                array.astype(np.float32).reshape(3, 4, 5))


def test_npy_and_binaryproto_are_told_apart_by_content(tmp_path):
    array = np.full((1, 2, 2), 3.5, np.float32)
    npy_named_proto = tmp_path / "mean.binaryproto"
    with open(npy_named_proto, "wb") as f:
        np.save(f, array)
    proto_named_npy = tmp_path / "mean.npy"
    write_blobproto(str(proto_named_npy), array)
    assert_bits(read_mean(str(npy_named_proto)), array)
    assert_bits(read_mean(str(proto_named_npy)), array)


@pytest.mark.parametrize(("array", "message"), [
    (np.zeros((4, 5), np.float32), r"\(C, H, W\) or \(1, C, H, W\), got \(4, 5\)"),
    (np.zeros((2, 3, 4, 5), np.float32), r"got \(2, 3, 4, 5\)"),
    (np.array(["a", "b"]).reshape(1, 1, 2), "must hold numbers"),
    (np.array([{}], dtype=object).reshape(1, 1, 1), "not a readable .npy"),
])
def test_bad_npy_means(tmp_path, array, message):
    path = tmp_path / "mean.npy"
    np.save(path, array, allow_pickle=True)
    with pytest.raises(DataError, match=message) as info:
        read_mean(str(path))
    assert str(path) in str(info.value)


@pytest.mark.parametrize("cut", [100, 300])
def test_truncated_npy(tmp_path, cut):
    path = tmp_path / "mean.npy"
    np.save(path, np.zeros((3, 8, 8), np.float32))
    path.write_bytes(path.read_bytes()[:cut])
    with pytest.raises(DataError, match="not a readable .npy"):
        read_mean(str(path))


def test_missing_mean_file(tmp_path):
    with pytest.raises(DataError, match="mean_file .* does not exist"):
        read_mean(str(tmp_path / "missing.binaryproto"))
