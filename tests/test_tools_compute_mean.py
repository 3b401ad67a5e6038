"""caffe-layers-compute-mean: streaming mean of an image list, written as Caffe's mean file."""

from __future__ import annotations

import struct
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml
from image_data import BAD_FOLDER_LINES, write_bad_folder

from caffe_layers.binaryproto import read_blobproto, read_mean
from caffe_layers.tools import compute_mean


def write_images(folder: Path, sizes, seed: int = 0, ext: str = ".png") -> list:
    """Random images (one of them a JPEG when ext is .png) and their list lines."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    names = []
    for i, (height, width) in enumerate(sizes):
        name = f"img {i}{'.jpg' if i == 1 and ext == '.png' else ext}"
        assert cv2.imwrite(str(folder / name), rng.integers(0, 256, (height, width, 3), np.uint8))
        names.append(name)
    return names


def write_list(path: Path, names, labels=None) -> Path:
    labels = labels or [i % 3 for i in range(len(names))]
    path.write_text("".join(f"{n} {label}\n" for n, label in zip(names, labels)))
    return path


def run(argv, capsys) -> tuple:
    status = compute_mean.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return status, out, err


@pytest.fixture
def dataset(tmp_path):
    names = write_images(tmp_path / "images", [(12, 10)] * 7)
    return tmp_path, write_list(tmp_path / "train.txt", names)


def decoded(folder: Path, names, flags=cv2.IMREAD_COLOR) -> np.ndarray:
    return np.stack([cv2.imread(str(folder / n), flags) for n in names]).astype(np.float64)


def test_mean_equals_numpy_mean_and_round_trips(dataset, capsys):
    root, list_file = dataset
    names = [line.rsplit(" ", 1)[0] for line in list_file.read_text().splitlines()]
    status, out, err = run([list_file, "--root-folder", f"{root}/images/", "-o",
                            root / "mean.binaryproto"], capsys)
    assert status == 0, err
    expected = decoded(root / "images", names).mean(axis=0).transpose(2, 0, 1)
    mean = read_mean(str(root / "mean.binaryproto"), expected_channels=3)
    assert mean.shape == (3, 12, 10)
    assert mean.dtype == np.float32
    np.testing.assert_allclose(mean, expected, rtol=0, atol=1e-4)
    blob = read_blobproto(str(root / "mean.binaryproto"))
    assert blob.shape == (1, 3, 12, 10)
    # Legacy fields first, as compute_image_mean writes: num=1, channels=3, height=12, width=10.
    assert (root / "mean.binaryproto").read_bytes()[:8] == bytes([8, 1, 16, 3, 24, 12, 32, 10])
    values = [float(v) for v in out.split("mean_value: [")[1].split("]")[0].split(",")]
    np.testing.assert_allclose(values, expected.mean(axis=(1, 2)), atol=1e-4)
    assert "(B, G, R)" in out
    assert "1 x 3 x 12 x 10" in out


def test_values_out_is_yaml_for_param_str(dataset, capsys):
    root, list_file = dataset
    out_file = root / "values" / "mean.yaml"
    assert run([list_file, "--root-folder", f"{root}/images/", "--values-out", out_file],
               capsys)[0] == 0
    values = yaml.safe_load(out_file.read_text())["mean_value"]
    mean = read_mean(str(root / "mean.binaryproto"))
    np.testing.assert_allclose(values, mean.astype(np.float64).mean(axis=(1, 2)), atol=1e-4)


def test_png_shows_the_mean_as_is_and_stretched(dataset, capsys):
    from caffe_layers.tools import _grid

    root, list_file = dataset
    status, out, err = run([list_file, "--root-folder", f"{root}/images/", "-o",
                            root / "mean.binaryproto", "--png", root / "pictures" / "mean.png"],
                           capsys)
    assert status == 0, err
    mean = read_mean(str(root / "mean.binaryproto")).astype(np.float64)
    zoom = _grid.auto_zoom(12, 10)
    assert f"mean image -> {root / 'pictures' / 'mean.png'} (3 x 12 x 10 shown {zoom}x, as is " \
           f"and stretched)" in out
    png = cv2.imread(str(root / "pictures" / "mean.png"))
    gap, height, width = _grid.GAP, 12 * zoom, 10 * zoom
    as_is = png[gap:gap + height:zoom, gap:gap + width:zoom]
    np.testing.assert_array_equal(as_is, np.rint(mean).transpose(1, 2, 0))  # BGR, as written
    left = 2 * gap + width
    stretched = png[gap:gap + height:zoom, left:left + width:zoom].astype(int)
    assert stretched.min() == 0
    assert stretched.max() == 255
    low, high = mean.min(), mean.max()
    expected = np.rint((mean - low) * 255 / (high - low)).transpose(1, 2, 0)
    np.testing.assert_array_equal(stretched, expected)
    grid_height = gap + height + _grid.CAPTION_HEIGHT + gap
    assert png.shape[0] > grid_height  # the size is written under the pictures
    assert png[grid_height:].max() > 200


def test_png_needs_a_png_name(dataset, capsys):
    root, list_file = dataset
    status, _, err = run([list_file, "--root-folder", f"{root}/images/", "--png", "mean.jpg"],
                         capsys)
    assert status == 2
    assert err == "caffe-layers-compute-mean: error: --png 'mean.jpg': give a file name ending " \
                  "in .png\n"


def test_default_output_is_beside_the_list(dataset, capsys):
    root, list_file = dataset
    assert run([list_file, "--root-folder", f"{root}/images/"], capsys)[0] == 0
    assert (root / "mean.binaryproto").is_file()


def test_workers_give_the_same_bytes(tmp_path, capsys):
    names = write_images(tmp_path / "images", [(9, 8)] * 150, seed=1)
    list_file = write_list(tmp_path / "list.txt", names)
    for workers in (1, 2):
        assert run([list_file, "--root-folder", f"{tmp_path}/images/", "--workers", workers,
                    "-o", tmp_path / f"w{workers}.binaryproto"], capsys)[0] == 0
    assert (tmp_path / "w1.binaryproto").read_bytes() == \
        (tmp_path / "w2.binaryproto").read_bytes()
    expected = decoded(tmp_path / "images", names).mean(axis=0).transpose(2, 0, 1)
    np.testing.assert_allclose(read_mean(str(tmp_path / "w2.binaryproto")), expected, atol=1e-4)


def test_resize_gives_the_mean_at_the_new_size(tmp_path, capsys):
    names = write_images(tmp_path / "images", [(30, 20), (17, 41), (64, 64)], seed=2)
    list_file = write_list(tmp_path / "list.txt", names)
    status, _, err = run([list_file, "--root-folder", f"{tmp_path}/images/",
                          "--new-height", 16, "--new-width", 24], capsys)
    assert status == 0, err
    images = [cv2.resize(cv2.imread(str(tmp_path / "images" / n)), (24, 16)) for n in names]
    expected = np.mean(np.stack(images).astype(np.float64), axis=0).transpose(2, 0, 1)
    mean = read_mean(str(tmp_path / "mean.binaryproto"))
    assert mean.shape == (3, 16, 24)
    np.testing.assert_allclose(mean, expected, atol=1e-4)


def test_gray(dataset, capsys):
    root, list_file = dataset
    names = [line.rsplit(" ", 1)[0] for line in list_file.read_text().splitlines()]
    status, out, _ = run([list_file, "--root-folder", f"{root}/images/", "--gray"], capsys)
    assert status == 0
    mean = read_mean(str(root / "mean.binaryproto"), expected_channels=1)
    expected = decoded(root / "images", names, cv2.IMREAD_GRAYSCALE).mean(axis=0)
    np.testing.assert_allclose(mean[0], expected, atol=1e-4)
    assert "(gray)" in out
    assert "1 x 1 x 12 x 10" in out


def test_the_mean_of_a_large_list_is_exact(tmp_path, capsys):
    """Float64 sums of 8-bit pixels are exact: constant images give exactly their value."""
    folder = tmp_path / "images"
    folder.mkdir()
    for value in (0, 255, 101):
        cv2.imwrite(str(folder / f"{value}.png"), np.full((4, 4, 3), value, np.uint8))
    lines = ["0.png 0\n", "255.png 0\n"] * 2000 + ["101.png 0\n"] * 1
    (tmp_path / "list.txt").write_text("".join(lines))
    assert run([tmp_path / "list.txt", "--root-folder", f"{folder}/"], capsys)[0] == 0
    expected = (255 * 2000 + 101) / 4001
    assert np.all(read_mean(str(tmp_path / "mean.binaryproto")) == np.float32(expected))


def test_format_values():
    assert compute_mean.format_values([104.0, 116.66666, 122.5]) == \
        "mean_value: [104.0000, 116.6667, 122.5000]"


# --- bad input --------------------------------------------------------------------------------

def assert_error(status: int, err: str, code: int, *parts: str) -> None:
    assert status == code
    assert err.startswith("caffe-layers-compute-mean: error: ") or "usage:" in err
    assert "Traceback" not in err
    for part in parts:
        assert part in err


def test_different_sizes_without_resize_name_the_tools_flags(tmp_path, capsys):
    names = write_images(tmp_path / "images", [(12, 10), (12, 10), (10, 12)])
    list_file = write_list(tmp_path / "list.txt", names)
    status, _, err = run([list_file, "--root-folder", f"{tmp_path}/images/"], capsys)
    assert status == 1
    assert err == (f"caffe-layers-compute-mean: error: {list_file}:3: image "
                   f"'{tmp_path}/images/img 2.png' is 10x12 (HxW) but the first image is 12x10; "
                   f"pass --new-height and --new-width (and give the layer the same new_height "
                   f"and new_width) to resize every image to one size\n")
    assert not (tmp_path / "mean.binaryproto").exists()


def test_a_root_folder_without_its_slash(dataset, capsys):
    root, list_file = dataset
    status, _, err = run([list_file, "--root-folder", f"{root}/images"], capsys)
    assert status == 1
    assert err == (f"caffe-layers-compute-mean: error: {list_file}:1: image '{root}/imagesimg 0"
                   f".png' does not exist; --root-folder is '{root}/images' without a trailing "
                   f"'/', and '{root}/images/img 0.png' exists: end --root-folder with '/' (the "
                   f"list's paths are appended to it as written, as in Caffe)\n")


def good_images(folder) -> np.ndarray:
    """The images of BAD_FOLDER_LINES that decode, as the layer reads them, in list order."""
    names = [text.rsplit(" ", 1)[0] for text, reason in BAD_FOLDER_LINES.values()
             if text and reason is None]
    return decoded(folder, names)


def test_skip_bad_leaves_out_and_lists_every_bad_image(tmp_path, capsys):
    photos = write_bad_folder(tmp_path / "photos")
    listing = photos / "images.txt"  # the malformed lines left out (the layer refuses them)
    listing.write_text("".join(text + "\n" for text, reason in BAD_FOLDER_LINES.values()
                               if not (reason or "").startswith("malformed")))
    status, _, err = run([listing, "--root-folder", f"{photos}/"], capsys)
    assert status == 1
    assert err == (f"caffe-layers-compute-mean: error: {listing}:3: image "
                   f"'{photos}/circle/empty.jpg' is empty (0 bytes)\n")
    status, out, err = run([listing, "--root-folder", f"{photos}/", "--skip-bad", "--workers",
                            2], capsys)
    assert status == 0, err
    lines = out.splitlines()
    assert lines[0] == f"mean of 5 images (5 skipped) -> {photos}/mean.binaryproto (1 x 3 x 6 x " \
                       f"5, N x C x H x W)"
    assert lines[2] == ("--skip-bad: 5 image(s) the layer cannot read, left out of the mean "
                        "(caffe-layers-check-list lists them all and writes a list without "
                        "them):")
    assert lines[3:] == [
        f"  {listing}:3  {photos}/circle/empty.jpg  empty: 0 bytes",
        f"  {listing}:6  {photos}/cross/trunc.jpg  truncated: cut short: no end-of-image marker",
        f"  {listing}:7  {photos}/cross/junk.png  undecodable: OpenCV cannot decode it: corrupt, "
        f"or not an image",
        f"  {listing}:8  {photos}/square/gone.png  missing: no such file",
        f"  {listing}:11  {photos}/cross/folder.png  unreadable: cannot be read (a folder? "
        f"permissions?)"]
    expected = good_images(photos).mean(axis=0).transpose(2, 0, 1)
    np.testing.assert_allclose(read_mean(str(photos / "mean.binaryproto")), expected, atol=1e-4)


def test_skip_bad_skips_a_bad_first_image_and_other_sizes(tmp_path, capsys):
    names = write_images(tmp_path / "images", [(12, 10), (12, 10), (10, 12), (12, 10)])
    (tmp_path / "images" / "empty.png").write_bytes(b"")
    list_file = write_list(tmp_path / "list.txt", ["empty.png"] + names)
    status, out, _ = run([list_file, "--root-folder", f"{tmp_path}/images/", "--skip-bad"],
                         capsys)
    assert status == 0
    assert out.splitlines()[3:] == [
        f"  {list_file}:1  {tmp_path}/images/empty.png  empty: 0 bytes",
        f"  {list_file}:4  {tmp_path}/images/img 2.png  other size: 10x12, the first image is "
        f"12x10 (HxW)"]
    kept = [names[0], names[1], names[3]]
    expected = decoded(tmp_path / "images", kept).mean(axis=0).transpose(2, 0, 1)
    np.testing.assert_allclose(read_mean(str(tmp_path / "mean.binaryproto")), expected,
                               atol=1e-4)


def test_missing_image_names_the_list_line(dataset, capsys):
    root, list_file = dataset
    list_file.write_text(list_file.read_text() + "\nmissing.png 1\n")
    status, _, err = run([list_file, "--root-folder", f"{root}/images/"], capsys)
    assert_error(status, err, 1, f"{list_file}:9", "missing.png", "does not exist",
                 "--root-folder")


def test_wrong_root_folder_says_so(dataset, capsys):
    _, list_file = dataset
    status, _, err = run([list_file], capsys)
    assert_error(status, err, 1, f"{list_file}:1", "--root-folder (now '')")


def test_bad_list_line(dataset, capsys):
    root, list_file = dataset
    list_file.write_text("img 0.png 0\nimg 3.png cat\n")
    status, _, err = run([list_file, "--root-folder", f"{root}/images/"], capsys)
    assert_error(status, err, 1, f"{list_file}:2", "labels must be numbers")


def test_missing_list(tmp_path, capsys):
    status, _, err = run([tmp_path / "nope.txt"], capsys)
    assert_error(status, err, 2, "image list", "nope.txt", "does not exist")


def test_half_a_resize(dataset, capsys):
    _, list_file = dataset
    status, _, err = run([list_file, "--new-height", 8], capsys)
    assert_error(status, err, 2, "--new-height and --new-width", "got 8 and 0")


@pytest.mark.parametrize(("argv", "part"), [(["--workers", "0"], "argument --workers"),
                                        (["--new-width", "-3"], "argument --new-width")])
def test_bad_numbers(dataset, capsys, argv, part):
    _, list_file = dataset
    status, _, err = run([list_file, *argv], capsys)
    assert_error(status, err, 2, part)


def test_output_in_a_file_instead_of_a_folder(dataset, capsys):
    root, list_file = dataset
    (root / "blocker").write_text("")
    status, _, err = run([list_file, "--root-folder", f"{root}/images/", "-o",
                          root / "blocker" / "mean.binaryproto"], capsys)
    assert_error(status, err, 2, "is a file, not a folder")


def test_help(capsys):
    status, out, _ = run(["--help"], capsys)
    assert status == 0
    assert out.startswith("usage: caffe-layers-compute-mean")


def test_legacy_header_decodes_independently(dataset, capsys):
    """The header bytes decoded by hand: field 1..4 varints, then packed float32 field 5."""
    root, list_file = dataset
    assert run([list_file, "--root-folder", f"{root}/images/"], capsys)[0] == 0
    raw = (root / "mean.binaryproto").read_bytes()
    assert raw[8] == (5 << 3 | 2)
    size = raw[9] | (raw[10] & 0x7F) << 7  # 3 * 12 * 10 * 4 = 1440 bytes: a 2-byte varint
    assert size == 1440
    assert len(raw) == 11 + size
    values = struct.unpack(f"<{size // 4}f", raw[11:])
    np.testing.assert_array_equal(np.array(values, np.float32).reshape(1, 3, 12, 10),
                                  read_blobproto(str(root / "mean.binaryproto")))
