"""Caffe's image list and image decoding, on real files written in ``tmp_path``."""

from __future__ import annotations

import os
import pickle
import re
import struct

import cv2
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from caffe_layers.errors import ConfigError, DataError
from caffe_layers.sources import list_lines
from caffe_layers.sources.image_list import SampleList
from caffe_layers.sources.images import (
    check_size,
    jpeg_is_complete,
    read_image,
    reduce_factor,
    stored_size,
)

# --- the list file -----------------------------------------------------------------------------


def parse(text: bytes, label_columns: int = 1, root_folder: str = "") -> SampleList:
    return SampleList.parse(text, "list.txt", root_folder, label_columns)


def paths(samples: SampleList) -> list:
    return [samples.path(i) for i in range(len(samples))]


def test_caffe_rules_split_at_the_last_space():
    samples = parse(b"a.jpg 0\nsub dir/b c.jpg 7\n")
    assert len(samples) == 2
    assert paths(samples) == ["a.jpg", "sub dir/b c.jpg"]
    assert samples.labels.tolist() == [[0.0], [7.0]]
    assert [samples.line(i) for i in range(2)] == [1, 2]
    assert samples.source == "list.txt"


def test_root_folder_is_prepended_by_plain_concatenation():
    assert parse(b"a.jpg 1\n", root_folder="/data/").path(0) == "/data/a.jpg"
    assert parse(b"a.jpg 1\n", root_folder="imgs").path(0) == "imgsa.jpg"


@pytest.mark.skipif(os.sep != "/", reason="backslashes are turned into / on POSIX only")
def test_a_list_written_on_windows_works():
    text = b"\xef\xbb\xbfdir\\a b.jpg 1\r\ndir\\sub\\c.jpg 2\r\n\r\n"
    samples = parse(text, root_folder="/data/")
    assert paths(samples) == ["/data/dir/a b.jpg", "/data/dir/sub/c.jpg"]
    assert samples.labels.ravel().tolist() == [1.0, 2.0]


def test_blank_lines_are_skipped_and_lines_still_counted():
    samples = parse(b"\n\na.jpg 1\n   \t \nb.jpg 2")
    assert paths(samples) == ["a.jpg", "b.jpg"]
    assert [samples.line(i) for i in range(2)] == [3, 5]
    assert samples.where(1) == "list.txt:5"
    assert samples.where(-1) == "list.txt:5"


def test_tabs_and_runs_of_separators():
    samples = parse(b"a.jpg\t3\nb.jpg   \t 4  \nc\td.jpg 5\n")
    assert paths(samples) == ["a.jpg", "b.jpg", "c\td.jpg"]
    assert samples.labels.ravel().tolist() == [3.0, 4.0, 5.0]


def test_several_label_columns():
    samples = parse(b"x y.jpg 1 2.5 -3e2\nz.jpg 0 0 1\n", label_columns=3)
    assert paths(samples) == ["x y.jpg", "z.jpg"]
    assert samples.labels.shape == (2, 3)
    assert samples.labels.tolist() == [[1.0, 2.5, -300.0], [0.0, 0.0, 1.0]]


@pytest.mark.parametrize(("token", "value"), [
    (b"7", 7.0), (b"-2", -2.0), (b"+1", 1.0), (b"0.25", 0.25), (b".5", 0.5), (b"5.", 5.0),
    (b"1e3", 1000.0), (b"2.5E-1", 0.25), (b"007", 7.0),
])
def test_integer_and_float_labels(token, value):
    assert parse(b"a.jpg " + token).labels[0, 0] == np.float32(value)


def test_no_labels():
    samples = parse(b"a b.jpg\nc.jpg\n", label_columns=0)
    assert paths(samples) == ["a b.jpg", "c.jpg"]
    assert samples.labels.shape == (2, 0)


@pytest.mark.parametrize("token", [b"cat", b"nan", b"inf", b"-inf", b"0x10", b"1_0", b"1e39",
                                   b"3,5", b"1.2.3", b"\xc3\xa9"])
def test_a_label_that_is_not_a_number_is_an_error(token):
    with pytest.raises(DataError, match="list.txt:2: labels must be numbers") as info:
        parse(b"a.jpg 1\nb.jpg " + token + b"\n")
    assert repr(token.decode("utf-8"))[1:-1] in str(info.value)


@pytest.mark.parametrize(("text", "columns", "expected"), [
    (b"a.jpg\n", 1, "expected a path and 1 label separated by spaces, got 'a.jpg'"),
    (b"a.jpg 1 2\n", 3, "expected a path and 3 labels"),
    (b"   7\n", 1, "expected a path and 1 label"),
])
def test_a_line_with_too_few_columns_is_an_error(text, columns, expected):
    with pytest.raises(DataError, match="list.txt:1: " + expected):
        parse(text, label_columns=columns)


def test_many_bad_lines_are_reported_together():
    text = b"".join(b"img%d.jpg x\n" % i for i in range(12)) + b"ok.jpg 1\n"
    with pytest.raises(DataError, match="12 bad line") as info:
        parse(text)
    message = str(info.value)
    assert "list.txt:1:" in message
    assert "list.txt:10:" in message
    assert "list.txt:11:" not in message
    assert "and 2 more bad lines" in message


@pytest.mark.parametrize("text", [b"", b"\n\n", b"  \r\n\t\n", b"\xef\xbb\xbf"])
def test_an_empty_list_is_an_error(text):
    with pytest.raises(DataError, match="list.txt: the image list has no samples"):
        parse(text)


@pytest.mark.parametrize("columns", [-1, True, "1", 1.0])
def test_bad_label_columns(columns):
    with pytest.raises(ConfigError, match="label_columns: must be an integer >= 0"):
        parse(b"a.jpg 1\n", label_columns=columns)


def test_read_from_a_file(tmp_path):
    listing = tmp_path / "train.txt"
    listing.write_bytes("caf\u00e9/\u732b 1.jpg 3\n".encode())
    samples = SampleList.read(str(listing), root_folder="/r/")
    assert samples.source == str(listing)
    assert samples.path(0) == "/r/caf\u00e9/\u732b 1.jpg"
    assert samples.where(0) == f"{listing}:1"


def test_missing_list_file_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="source: the image list .* does not exist"):
        SampleList.read(str(tmp_path / "nope.txt"))
    with pytest.raises(ConfigError, match="source: cannot read the image list"):
        SampleList.read(str(tmp_path))


def test_storage_is_numpy_backed_and_picklable():
    samples = parse(b"a.jpg 1 2\nbb.jpg 3 4\nccc.jpg 5 6\n", label_columns=2)
    for name, value in vars(samples).items():
        assert isinstance(value, (str, bytes, np.ndarray)), name
        if isinstance(value, np.ndarray):
            assert value.dtype != object, name
            assert not value.flags.writeable, name
    assert samples.text == b"a.jpg 1 2\nbb.jpg 3 4\nccc.jpg 5 6\n"  # the list's own bytes
    assert samples.starts.dtype == np.int64
    assert samples.starts.tolist() == [0, 10, 21]
    assert samples.lengths.dtype == np.uint16
    assert samples.lengths.tolist() == [5, 6, 7]
    assert samples.labels.dtype == np.float32
    assert samples.labels.shape == (3, 2)
    assert samples.line_gaps.size == 0  # no blank lines: line i + 1, nothing stored
    copy = pickle.loads(pickle.dumps(samples))
    assert paths(copy) == paths(samples)
    assert copy.labels.tolist() == samples.labels.tolist()
    assert "samples=3" in repr(samples)


def test_path_index():
    samples = parse(b"a.jpg 1\nb.jpg 2\n")
    assert samples.path(-1) == "b.jpg"
    assert samples.path(-2) == "a.jpg"
    for bad in (2, -3):
        with pytest.raises(IndexError, match="out of range for 2 samples"):
            samples.path(bad)


def reference_parse(text: bytes, label_columns: int) -> tuple:
    """The list rules written plainly, line by line: ``(samples, bad line numbers)``."""
    if text.startswith(b"\xef\xbb\xbf"):
        text = text[3:]
    samples, bad = [], []
    for number, raw in enumerate(text.split(b"\n"), 1):
        line = raw.rstrip()
        if not line:
            continue
        parts = line.rsplit(None, label_columns) if label_columns else [line]
        values = [] if len(parts) == label_columns + 1 and parts[0].strip() else None
        for token in parts[1:] if values is not None else ():
            if not NUMBER.fullmatch(token) or abs(float(token)) > FLOAT32_MAX:
                values = None
                break
            values.append(float(token))
        if values is None:
            bad.append(number)
        else:
            path = parts[0].replace(b"\\", b"/") if os.sep == "/" else parts[0]
            samples.append((os.fsdecode(path), np.float32(values).tolist(), number))
    return samples, bad


FLOAT32_MAX = float(np.finfo(np.float32).max)
NUMBER = re.compile(rb"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")
PIECES = [b"a", b"b.jpg", b"dir\\c", b" ", b"  ", b"\t", b"\r", b"\x0b", b"1", b"23", b"007",
          b"-4", b"+5", b"5.5", b".5", b".", b"-", b"0", b"1e3", b"1e39", b"x", b"1_0",
          b"\xc3\xa9", b"123456789", b"1234567890", b"0.1000000000000001", b"9007199254740993"]
LINES = st.lists(st.lists(st.sampled_from(PIECES), max_size=8).map(b"".join), max_size=12)


@settings(max_examples=400, deadline=None)
@given(lines=LINES, columns=st.integers(0, 3), bom=st.booleans(), newline=st.booleans(),
       chunk=st.sampled_from([1, 7, 64, 1 << 24]))
def test_the_vectorised_parse_follows_the_rules_line_by_line(lines, columns, bom, newline, chunk):
    text = (b"\xef\xbb\xbf" if bom else b"") + b"\n".join(lines) + (b"\n" if newline else b"")
    expected, bad = reference_parse(text, columns)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(list_lines, "CHUNK_BYTES", chunk)  # chunk boundaries everywhere
        check_parse(text, columns, expected, bad)


def check_parse(text: bytes, columns: int, expected: list, bad: list) -> None:
    if bad:
        with pytest.raises(DataError, match=f"{len(bad)} bad line") as info:
            parse(text, label_columns=columns)
        assert f"list.txt:{bad[0]}:" in str(info.value)
    elif not expected:
        with pytest.raises(DataError, match="has no samples"):
            parse(text, label_columns=columns)
    else:
        samples = parse(text, label_columns=columns)
        got = [(samples.path(i), samples.labels[i].tolist(), samples.line(i))
               for i in range(len(samples))]
        assert got == expected


@settings(max_examples=200, deadline=None)
@given(tokens=st.lists(st.from_regex(rb"\A[+-]?[0-9]{0,9}\.?[0-9]{0,9}\Z"), min_size=1,
                       max_size=50))
def test_decimal_labels_are_read_exactly_as_python_reads_them(tokens):
    tokens = [t for t in tokens if NUMBER.fullmatch(t)]
    if tokens:
        samples = parse(b"".join(b"a.jpg " + t + b"\n" for t in tokens))
        expected = np.array([float(t) for t in tokens], np.float32)
        assert samples.labels[:, 0].tobytes() == expected.tobytes()  # -0.0 too


def test_a_path_too_long_to_store_is_an_error():
    with pytest.raises(DataError, match="list.txt:2: the path is 70000 bytes long; paths are at "
                                        "most 65535 bytes"):
        parse(b"a.jpg 1\n" + b"p" * 70000 + b" 2\n")


# --- image files -------------------------------------------------------------------------------


def photo(height=375, width=500, channels=3, seed=0):
    """A smooth image with some noise, so that JPEG has real work to do."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width]
    planes = [(np.sin(x / (17 + 5 * c)) + np.cos(y / (23 + 3 * c))) * 60 + 128
              for c in range(channels)]
    image = np.stack(planes, axis=2) + rng.normal(0, 8, (height, width, channels))
    return np.clip(image, 0, 255).astype(np.uint8)


def save(path, image, ext=None, params=()):
    ok, encoded = cv2.imencode(ext or os.path.splitext(str(path))[1], image, list(params))
    assert ok
    path.write_bytes(encoded.tobytes())
    return str(path)


def raw(path) -> bytes:
    with open(path, "rb") as f:
        return f.read()


@pytest.fixture
def jpeg(tmp_path):
    return save(tmp_path / "photo.jpg", photo(), params=[cv2.IMWRITE_JPEG_QUALITY, 90])


@pytest.mark.parametrize("ext", [".jpg", ".png", ".bmp"])
@pytest.mark.parametrize("is_color", [True, False])
def test_read_matches_opencv_imread(tmp_path, ext, is_color):
    path = save(tmp_path / f"img{ext}", photo(61, 83))
    image = read_image(path, is_color=is_color)
    expected = cv2.imread(path, cv2.IMREAD_COLOR if is_color else cv2.IMREAD_GRAYSCALE)
    assert image.dtype == np.uint8
    assert image.shape == (61, 83, 3 if is_color else 1)
    assert np.array_equal(image.reshape(expected.shape), expected)


def test_alpha_is_dropped(tmp_path):
    bgra = np.concatenate([photo(20, 30), np.full((20, 30, 1), 7, np.uint8)], axis=2)
    path = save(tmp_path / "alpha.png", bgra)
    assert np.array_equal(read_image(path), bgra[:, :, :3])


def test_gray_png_read_in_colour_is_expanded(tmp_path):
    gray = photo(20, 30, channels=1)[:, :, 0]
    path = save(tmp_path / "gray.png", gray)
    image = read_image(path, is_color=True)
    assert image.shape == (20, 30, 3)
    for c in range(3):
        assert np.array_equal(image[:, :, c], gray)
    assert np.array_equal(read_image(path, is_color=False)[:, :, 0], gray)


@pytest.mark.parametrize("name", ["with space.jpg", "dir with space/x y.jpg",
                                  "caf\u00e9 \u732b.jpg"])
def test_awkward_paths(tmp_path, name):
    path = tmp_path / name
    path.parent.mkdir(exist_ok=True)
    save(path, photo(10, 12), ext=".jpg")
    assert read_image(str(path)).shape == (10, 12, 3)


def test_missing_file_names_path_and_list_line(tmp_path):
    path = str(tmp_path / "missing.jpg")
    with pytest.raises(DataError, match=f"^train.txt:17: image '{path}' does not exist$"):
        read_image(path, where="train.txt:17")


def test_empty_file(tmp_path):
    path = tmp_path / "empty.jpg"
    path.write_bytes(b"")
    with pytest.raises(DataError, match="is empty"):
        read_image(str(path))


def test_directory_and_bad_parent(tmp_path):
    with pytest.raises(DataError, match="is a directory"):
        read_image(str(tmp_path))
    (tmp_path / "file").write_bytes(b"x")
    with pytest.raises(DataError, match="cannot read image .*: Not a directory"):
        read_image(str(tmp_path / "file" / "x.jpg"))


def read_as_nobody(path: str) -> str:
    """The error message of ``read_image`` in a forked child that gave up root (root reads all)."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - child
        try:
            os.close(read_end)
            os.setgid(65534)
            os.setuid(65534)
            try:
                read_image(path, where="l.txt:2")
                message = "no error"
            except DataError as exc:
                message = str(exc)
            os.write(write_end, message.encode())
        finally:
            os._exit(0)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as f:
        message = f.read().decode()
    os.waitpid(pid, 0)
    return message


def test_unreadable_file_is_told_apart(tmp_path, jpeg):
    os.chmod(jpeg, 0)
    if os.geteuid() == 0:
        message = read_as_nobody(jpeg)
    else:
        with pytest.raises(DataError) as info:
            read_image(jpeg, where="l.txt:2")
        message = str(info.value)
    assert message == f"l.txt:2: cannot read image '{jpeg}': Permission denied"


def test_not_an_image(tmp_path):
    path = tmp_path / "notes.jpg"
    path.write_text("this is not a JPEG\n")
    with pytest.raises(DataError, match=f"a.txt:3: cannot decode image '{path}' "
                                        r"\(19 bytes\): corrupt"):
        read_image(str(path), where="a.txt:3")


@pytest.mark.parametrize("progressive", [False, True])
@pytest.mark.parametrize("fraction", [0.3, 0.5, 0.9, "all but 1"])
def test_truncated_jpeg(tmp_path, progressive, fraction):
    full = save(tmp_path / "full.jpg", photo(),
                params=[cv2.IMWRITE_JPEG_QUALITY, 90, cv2.IMWRITE_JPEG_PROGRESSIVE,
                        int(progressive)])
    data = raw(full)
    cut = len(data) - 1 if fraction == "all but 1" else int(len(data) * fraction)
    path = tmp_path / "cut.jpg"
    path.write_bytes(data[:cut])
    with pytest.raises(DataError, match=f"x:1: image '{path}' is a truncated JPEG"):
        read_image(str(path), where="x:1")
    assert read_image(full).shape == (375, 500, 3)


def test_jpeg_with_bytes_after_the_end_marker_is_read(tmp_path, jpeg):
    data = raw(jpeg)
    path = tmp_path / "trailing.jpg"
    path.write_bytes(data + b"\x00\xffjunk after the image" * 3)
    assert not path.read_bytes().endswith(b"\xff\xd9")
    assert np.array_equal(read_image(str(path)), read_image(jpeg))


def exif_app1(orientation: int, extra: bytes = b"") -> bytes:
    tiff = (b"II*\x00" + struct.pack("<I", 8) + struct.pack("<H", 1)
            + struct.pack("<HHII", 0x0112, 3, 1, orientation) + struct.pack("<I", 0))
    payload = b"Exif\x00\x00" + tiff + extra
    return b"\xff\xe1" + struct.pack(">H", len(payload) + 2) + payload


def test_end_marker_inside_a_header_segment_is_not_the_end(tmp_path, jpeg):
    data = raw(jpeg)
    with_thumbnail_end = data[:2] + exif_app1(1, extra=b"\xff\xd8 thumbnail \xff\xd9") + data[2:]
    assert jpeg_is_complete(with_thumbnail_end)
    assert jpeg_is_complete(with_thumbnail_end + b"trailing")
    assert not jpeg_is_complete(with_thumbnail_end[:len(with_thumbnail_end) // 2])
    assert not jpeg_is_complete(with_thumbnail_end[:40])


def test_truncated_png(tmp_path):
    data = raw(save(tmp_path / "full.png", photo(40, 50)))
    path = tmp_path / "cut.png"
    path.write_bytes(data[:len(data) // 2])
    with pytest.raises(DataError, match="cannot decode image"):
        read_image(str(path))


# --- reduced decoding --------------------------------------------------------------------------


@pytest.mark.parametrize("factor", [2, 4, 8])
@pytest.mark.parametrize("is_color", [True, False])
def test_reduced_decoding_matches_opencv(jpeg, factor, is_color):
    kind = "COLOR" if is_color else "GRAYSCALE"
    expected = cv2.imread(jpeg, getattr(cv2, f"IMREAD_REDUCED_{kind}_{factor}"))
    image = read_image(jpeg, is_color=is_color, reduce=factor)
    sizes = {2: (188, 250), 4: (94, 125), 8: (47, 63)}  # libjpeg rounds up
    assert image.shape == sizes[factor] + (3 if is_color else 1,)
    assert np.array_equal(image.reshape(expected.shape), expected)


def test_reduce_applies_to_jpeg_only(tmp_path):
    path = save(tmp_path / "img.png", photo(40, 50))
    assert np.array_equal(read_image(path, reduce=4), read_image(path))


def test_reduce_is_lowered_to_keep_the_target_size(jpeg):
    assert read_image(jpeg, reduce=8, min_hw=(100, 100)).shape == (188, 250, 3)
    assert read_image(jpeg, reduce=8, min_hw=(40, 60)).shape == (47, 63, 3)
    assert read_image(jpeg, reduce=2, min_hw=(40, 60)).shape == (188, 250, 3)
    assert read_image(jpeg, reduce=8, min_hw=(256, 256)).shape == (375, 500, 3)


def test_exif_rotation_never_undershoots(tmp_path):
    stored = photo(256, 64)
    data = raw(save(tmp_path / "plain.jpg", stored))
    path = tmp_path / "rotated.jpg"
    path.write_bytes(data[:2] + exif_app1(6) + data[2:])
    assert stored_size(path.read_bytes()) == (256, 64)
    full = cv2.imread(str(path), cv2.IMREAD_COLOR)
    assert full.shape == (64, 256, 3)  # OpenCV applies the orientation
    image = read_image(str(path), reduce=2, min_hw=(60, 30))
    assert np.array_equal(image, full)


def test_bad_reduce():
    with pytest.raises(ConfigError, match=r"reduce: must be one of \(1, 2, 4, 8\), got 3"):
        read_image("whatever.jpg", reduce=3)


@settings(deadline=None, max_examples=300, database=None)
@given(stored_h=st.integers(1, 5000), stored_w=st.integers(1, 5000), data=st.data())
def test_reduce_factor_is_the_largest_that_never_undershoots(stored_h, stored_w, data):
    new_h = data.draw(st.integers(0, stored_h))
    new_w = data.draw(st.integers(0 if new_h == 0 else 1, stored_w))
    factor = reduce_factor(stored_h, stored_w, new_h, new_w)
    assert factor in (1, 2, 4, 8)
    if new_h == 0 or new_w == 0:
        assert factor == 1
        return
    assert stored_h // factor >= new_h
    assert stored_w // factor >= new_w
    if factor < 8:
        assert stored_h // (2 * factor) < new_h or stored_w // (2 * factor) < new_w


def test_reduce_factor_is_1_when_the_target_is_larger():
    assert reduce_factor(375, 500, 400, 400) == 1
    assert reduce_factor(375, 500, 256, 256) == 1
    assert reduce_factor(375, 500, 187, 250) == 2
    assert reduce_factor(375, 500, 188, 250) == 1


@pytest.mark.parametrize("ext", [".jpg", ".png"])
@pytest.mark.parametrize(("size", "target"), [
    ((375, 500), (187, 250)), ((257, 513), (32, 64)), ((100, 99), (12, 12)), ((61, 1001), (7, 9)),
    ((33, 33), (4, 4)), ((17, 9), (2, 1)),
])
def test_reduce_factor_never_undershoots_real_decoders(tmp_path, ext, size, target):
    path = save(tmp_path / f"img{ext}", photo(*size))
    factor = reduce_factor(*size, *target)
    assert factor > 1
    flag = getattr(cv2, f"IMREAD_REDUCED_COLOR_{factor}")
    decoded = cv2.imread(path, flag)  # OpenCV's own reduced decoding, every format
    assert decoded.shape[0] >= target[0]
    assert decoded.shape[1] >= target[1]
    image = read_image(path, reduce=8, min_hw=target)
    assert image.shape[0] >= target[0]
    assert image.shape[1] >= target[1]


def test_stored_size(tmp_path, jpeg):
    assert stored_size(raw(jpeg)) == (375, 500)
    png = save(tmp_path / "img.png", photo(21, 34))
    assert stored_size(raw(png)) == (21, 34)
    bmp = save(tmp_path / "img.bmp", photo(21, 34))
    assert stored_size(raw(bmp)) is None
    assert stored_size(raw(jpeg)[:20]) is None
    assert stored_size(b"not an image") is None


# --- size check and the list end to end ------------------------------------------------------


def test_check_size():
    image = np.zeros((30, 40, 3), np.uint8)
    check_size(image, (30, 40), "a.jpg")
    with pytest.raises(DataError, match=r"^t.txt:4: image 'a.jpg' is 30x40 \(HxW\) but the first "
                                        r"image is 30x41; set new_height and new_width"):
        check_size(image, (30, 41), "a.jpg", "t.txt:4")


def test_list_and_images_end_to_end(tmp_path):
    root = tmp_path / "images"
    (root / "sub dir").mkdir(parents=True)
    expected = {}
    for i, name in enumerate(["a.jpg", "sub dir/b c.png", "sub dir/\u732b.jpg"]):
        expected[name] = photo(30 + i, 20, seed=i)
        save(root / name, expected[name])
    listing = tmp_path / "train.txt"
    listing.write_bytes(("a.jpg 0\r\n\r\nsub dir\\b c.png 1\r\nsub dir/\u732b.jpg 2\r\n"
                         "missing.jpg 3\r\n").encode())
    samples = SampleList.read(str(listing), root_folder=str(root) + "/")
    assert samples.labels.ravel().tolist() == [0, 1, 2, 3]
    for i, name in enumerate(expected):
        image = read_image(samples.path(i), where=samples.where(i))
        assert image.shape == (30 + i, 20, 3)
        if name.endswith(".png"):
            assert np.array_equal(image, expected[name])
    with pytest.raises(DataError, match=f"train.txt:5: image '{root}/missing.jpg' does not"):
        read_image(samples.path(3), where=samples.where(3))
