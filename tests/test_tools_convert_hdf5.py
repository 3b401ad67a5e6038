"""caffe-layers-convert-hdf5: image list -> HDF5 shards in Caffe's HDF5Data format, read back."""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import h5py
import numpy as np
import pytest
from image_data import BAD_FOLDER_LINES, write_bad_folder

from caffe_layers.tools import convert_hdf5


def write_dataset(root: Path, count: int, size=(10, 12), seed: int = 0) -> tuple:
    """``count`` distinct PNGs and a list labelling image ``i`` with ``i % 5``."""
    rng = np.random.default_rng(seed)
    (root / "images").mkdir(parents=True)
    images, lines = [], []
    for i in range(count):
        image = rng.integers(0, 256, size + (3,), np.uint8)
        cv2.imwrite(str(root / "images" / f"{i}.png"), image)
        images.append(image)
        lines.append(f"{i}.png {i % 5}\n")
    (root / "train.txt").write_text("".join(lines))
    return root / "train.txt", images


def run(argv, capsys) -> tuple:
    status = convert_hdf5.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return status, out, err


def read_source(path: Path) -> list:
    return path.read_text().split()


def test_shards_datasets_and_source_list(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    list_file, images = write_dataset(tmp_path, 10)
    status, out, err = run(["train.txt", "out", "--root-folder", "images/", "--shard-size", 4],
                           capsys)
    assert status == 0, err
    shards = read_source(tmp_path / "out" / "train.txt")
    assert shards == ["out/train_000.h5", "out/train_001.h5", "out/train_002.h5"]
    row = 0
    for shard, expected_rows in zip(shards, (4, 4, 2)):
        with h5py.File(shard, "r") as f:
            assert sorted(f) == ["data", "label"]
            data, label = f["data"], f["label"]
            assert data.shape == (expected_rows, 3, 10, 12)
            assert data.dtype == np.float32
            assert label.shape == (expected_rows,)
            assert label.dtype == np.float32
            assert data.chunks == (expected_rows, 3, 10, 12)  # min(64, 1 MiB // 1440 B, rows)
            assert data.compression is None
            for k in range(expected_rows):
                np.testing.assert_array_equal(data[k], images[row].transpose(2, 0, 1))
                assert label[k] == row % 5
                row += 1
    assert row == 10
    assert "source list: out/train.txt" in out
    assert not [p for p in os.listdir(tmp_path / "out") if ".tmp" in p]


def test_uint8_gzip_and_chunks_of_whole_rows(tmp_path, capsys):
    list_file, images = write_dataset(tmp_path, 70, size=(64, 64))
    status, _, err = run([list_file, tmp_path / "h5", "--root-folder", f"{tmp_path}/images/",
                          "--dtype", "uint8", "--compression", "gzip", "--name", "pixels"],
                         capsys)
    assert status == 0, err
    with h5py.File(tmp_path / "h5" / "pixels_000.h5", "r") as f:
        data = f["data"]
        assert data.dtype == np.uint8
        assert data.compression == "gzip"
        assert data.chunks == (64, 3, 64, 64)  # 64 rows of 12 KiB = 768 KiB <= 1 MiB
        np.testing.assert_array_equal(data[69], images[69].transpose(2, 0, 1))
        np.testing.assert_array_equal(f["label"][:], np.arange(70) % 5)


@pytest.mark.parametrize(("row_bytes", "rows", "expected"), [
    (3 * 227 * 227 * 4, 1000, 1),       # 618 KB rows: one per chunk
    (3 * 64 * 64, 1000, 64),           # 12 KiB rows: the 64-row cap
    (3 * 64 * 64 * 4, 1000, 21),       # 48 KiB rows: the 1 MiB cap
    (100, 7, 7),                       # no chunk beyond the dataset
    (4 << 20, 10, 1),                  # a row above 1 MiB: still whole rows
])
def test_chunk_rows(row_bytes, rows, expected):
    assert convert_hdf5.chunk_rows(row_bytes, rows) == expected


def test_auto_shard_size_keeps_caffe_memory_under_1_gib():
    assert convert_hdf5.auto_shard_size((3, 227, 227)) == (1 << 30) // (4 * 3 * 227 * 227)


def test_shuffle_keeps_images_with_their_labels(tmp_path, capsys):
    list_file, images = write_dataset(tmp_path, 23)
    assert run([list_file, tmp_path / "h5", "--root-folder", f"{tmp_path}/images/",
                "--shuffle", "--seed", 4, "--shard-size", 10], capsys)[0] == 0
    by_bytes = {img.transpose(2, 0, 1).astype(np.float32).tobytes(): i
                for i, img in enumerate(images)}
    seen = []
    for shard in read_source(tmp_path / "h5" / "train.txt"):
        with h5py.File(shard, "r") as f:
            for data, label in zip(f["data"][:], f["label"][:]):
                index = by_bytes[data.tobytes()]
                assert label == index % 5
                seen.append(index)
    assert sorted(seen) == list(range(23))
    assert seen != list(range(23))


def test_resize_gray_and_label_columns(tmp_path, capsys):
    (tmp_path / "images").mkdir()
    rng = np.random.default_rng(3)
    lines = []
    for i, size in enumerate([(20, 30), (31, 17), (16, 16)]):
        cv2.imwrite(str(tmp_path / "images" / f"{i}.png"), rng.integers(0, 256, size, np.uint8))
        lines.append(f"{i}.png {i} {10 * i}\n")
    (tmp_path / "list.txt").write_text("".join(lines))
    status, _, err = run([tmp_path / "list.txt", tmp_path / "h5", "--root-folder",
                          f"{tmp_path}/images/", "--gray", "--new-height", 8, "--new-width", 6,
                          "--label-columns", 2, "--absolute-paths"], capsys)
    assert status == 0, err
    (shard,) = read_source(tmp_path / "h5" / "list.txt")
    assert os.path.isabs(shard)
    with h5py.File(shard, "r") as f:
        assert f["data"].shape == (3, 1, 8, 6)
        expected = cv2.resize(cv2.imread(str(tmp_path / "images" / "1.png"), 0), (6, 8))
        np.testing.assert_array_equal(f["data"][1, 0], expected)
        np.testing.assert_array_equal(f["label"][:], [[0, 0], [1, 10], [2, 20]])


def test_lzf_is_readable_by_h5py_and_flagged(tmp_path, capsys):
    list_file, images = write_dataset(tmp_path, 3)
    status, out, _ = run([list_file, tmp_path / "h5", "--root-folder", f"{tmp_path}/images/",
                          "--compression", "lzf", "--workers", 2], capsys)
    assert status == 0
    assert "not by real Caffe" in out
    with h5py.File(tmp_path / "h5" / "train_000.h5", "r") as f:
        assert f["data"].compression == "lzf"
        np.testing.assert_array_equal(f["data"][2], images[2].transpose(2, 0, 1))


def test_workers_write_the_same_data(tmp_path, capsys):
    list_file, _ = write_dataset(tmp_path, 40, size=(64, 64))
    for workers in (1, 2):
        assert run([list_file, tmp_path / f"w{workers}", "--root-folder", f"{tmp_path}/images/",
                    "--workers", workers, "--dtype", "uint8"], capsys)[0] == 0
    with h5py.File(tmp_path / "w1" / "train_000.h5", "r") as one, \
            h5py.File(tmp_path / "w2" / "train_000.h5", "r") as two:
        np.testing.assert_array_equal(one["data"][:], two["data"][:])


# --- bad input --------------------------------------------------------------------------------

def assert_error(status: int, err: str, code: int, *parts: str) -> None:
    assert status == code
    assert err.startswith("caffe-layers-convert-hdf5: error: ") or "usage:" in err
    assert "Traceback" not in err
    for part in parts:
        assert part in err


def test_different_sizes_without_resize(tmp_path, capsys):
    list_file, _ = write_dataset(tmp_path, 3)
    cv2.imwrite(str(tmp_path / "images" / "2.png"), np.zeros((5, 5, 3), np.uint8))
    status, _, err = run([list_file, tmp_path / "h5", "--root-folder", f"{tmp_path}/images/"],
                         capsys)
    assert_error(status, err, 1, f"{list_file}:3", "2.png", "5x5", "new_height")
    assert not list((tmp_path / "h5").glob("*.tmp*"))


def test_whitespace_in_the_output_path(tmp_path, capsys):
    list_file, _ = write_dataset(tmp_path, 2)
    status, _, err = run([list_file, tmp_path / "my shards", "--root-folder",
                          f"{tmp_path}/images/"], capsys)
    assert_error(status, err, 2, "whitespace", "HDF5Data")


def test_missing_image(tmp_path, capsys):
    list_file, _ = write_dataset(tmp_path, 2)
    status, _, err = run([list_file, tmp_path / "h5"], capsys)
    assert_error(status, err, 1, f"{list_file}:1", "does not exist", "--root-folder")


def test_missing_list_and_bad_choices(tmp_path, capsys):
    status, _, err = run([tmp_path / "none.txt", tmp_path / "h5"], capsys)
    assert_error(status, err, 2, "image list", "does not exist")
    status, _, err = run([tmp_path / "none.txt", tmp_path / "h5", "--dtype", "int16"], capsys)
    assert_error(status, err, 2, "argument --dtype", "invalid choice")
    status, _, err = run([tmp_path / "none.txt", tmp_path / "h5", "--shard-size", "0"], capsys)
    assert_error(status, err, 2, "argument --shard-size", ">= 1")


def test_output_folder_is_a_file(tmp_path, capsys):
    list_file, _ = write_dataset(tmp_path, 2)
    (tmp_path / "taken").write_text("")
    status, _, err = run([list_file, tmp_path / "taken", "--root-folder", f"{tmp_path}/images/"],
                         capsys)
    assert_error(status, err, 2, "is a file")


def test_skip_bad_leaves_bad_images_out_of_the_shards(tmp_path, capsys):
    photos = write_bad_folder(tmp_path / "photos")
    listing = photos / "images.txt"  # the malformed lines left out (the layer refuses them)
    texts = [text for text, reason in BAD_FOLDER_LINES.values()
             if text and not (reason or "").startswith("malformed")]
    listing.write_text("".join(text + "\n" for text in texts))
    status, _, err = run([listing, tmp_path / "h5", "--root-folder", f"{photos}/"], capsys)
    assert status == 1
    assert err.startswith(f"caffe-layers-convert-hdf5: error: {listing}:3: image ")
    status, out, err = run([listing, tmp_path / "h5", "--root-folder", f"{photos}/",
                            "--skip-bad", "--shard-size", 4, "--dtype", "uint8"], capsys)
    assert status == 0, err
    lines = out.splitlines()
    assert lines[0] == ("5 images -> 3 shard(s) of at most 4 samples: data (5, 3, 6, 5) uint8, "
                        "label (5,) float32")
    assert lines[3].startswith("--skip-bad: 5 image(s) the layer cannot read, left out of the "
                               "shards")
    assert [line.split("  ")[2] for line in lines[4:]] == [
        f"{photos}/circle/empty.jpg", f"{photos}/cross/trunc.jpg", f"{photos}/cross/junk.png",
        f"{photos}/square/gone.png", f"{photos}/cross/folder.png"]
    # the shard of samples 4-7 (trunc, junk, gone, e) keeps e; that of 8-9 (d, folder) keeps d;
    # the first (a, b, empty, c) keeps three
    shards = read_source(tmp_path / "h5" / "images.txt")
    assert [Path(p).name for p in shards] == ["images_000.h5", "images_001.h5", "images_002.h5"]
    good = [text.rsplit(" ", 1) for text, reason in BAD_FOLDER_LINES.values()
            if text and reason is None]
    rows, labels = [], []
    for shard in shards:
        with h5py.File(shard, "r") as f:
            rows += list(f["data"][...])
            labels += f["label"][...].tolist()
    assert labels == [float(label) for _, label in good]
    for row, (name, _) in zip(rows, good):
        np.testing.assert_array_equal(row, cv2.imread(str(photos / name)).transpose(2, 0, 1))


def test_a_shard_of_only_bad_images_is_not_written(tmp_path, capsys):
    list_file, _ = write_dataset(tmp_path, 6)
    for i in (2, 3):
        (tmp_path / "images" / f"{i}.png").write_bytes(b"")
    status, out, _ = run([list_file, tmp_path / "h5", "--root-folder", f"{tmp_path}/images/",
                          "--skip-bad", "--shard-size", 2], capsys)
    assert status == 0
    assert read_source(tmp_path / "h5" / "train.txt") == [
        str(tmp_path / "h5" / "train_000.h5"), str(tmp_path / "h5" / "train_002.h5")]
    assert not (tmp_path / "h5" / "train_001.h5").exists()
    assert out.splitlines()[0].startswith("4 images -> 2 shard(s) of at most 2 samples")
