"""caffe-layers-convert-db: image list -> LMDB/LevelDB of Datums, as convert_imageset writes them.

Records are read back with lmdb/plyvel and parsed independently of the layer. That real Caffe's
convert_imageset writes the same bytes and its Data layer reads ours is in test_db_real_caffe.py.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import cv2
import numpy as np
import pytest
from db_data import read_records
from image_data import write_dataset, write_image, write_list
from layer_nets import SUBPROCESS_ENV

from caffe_layers.datum import parse_datum, raw_pixels
from caffe_layers.tools import convert_db


def run(capsys, *argv) -> tuple:
    status = convert_db.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return status, out, err


def dataset(tmp_path, count=6, size=(9, 11), **options):
    return write_dataset(tmp_path, count, size, root_folder=str(tmp_path), **options)


@pytest.mark.parametrize("backend", ["lmdb", "leveldb"])
def test_raw_records_keys_and_fields_as_convert_imageset(tmp_path, capsys, backend):
    data = dataset(tmp_path, classes=4)
    status, out, err = run(capsys, f"{tmp_path}/", data.list_path, tmp_path / "db",
                           "--backend", backend, "--workers", 2)
    assert status == 0, err
    found = read_records(tmp_path / "db", backend)
    assert [key for key, _ in found] == [b"%08d_%s" % (i, name.encode())
                                         for i, name in enumerate(data.names)]
    for i, (key, value) in enumerate(found):
        datum = parse_datum(value, key)
        assert (datum.label, datum.encoded) == (i % 4, False)
        assert np.array_equal(raw_pixels(datum), data.images[i].transpose(2, 0, 1))
        assert value.endswith(b"\x28" + bytes([i % 4]) + b"\x38\x00")  # label, encoded: false
    assert out.startswith(f"6 images -> {tmp_path / 'db'} ({backend.upper()}): raw Datums of "
                          f"3x9x11 (C x H x W) (the first)\n")
    assert f"use in param_str: {{source: {tmp_path / 'db'}, backend: {backend.upper()}}}" in out
    assert not [name for name in os.listdir(tmp_path) if ".incomplete" in name]


def test_encoded_keeps_the_files_bytes_unless_resized_or_another_type(tmp_path, capsys):
    data = dataset(tmp_path, 3)
    status, _, err = run(capsys, f"{tmp_path}/", data.list_path, tmp_path / "kept", "--encoded")
    assert status == 0, err
    for i, (_, value) in enumerate(read_records(tmp_path / "kept")):
        datum = parse_datum(value)
        assert datum.encoded and datum.shape() == (0, 0, 0)
        assert bytes(datum.data) == data.files[i].read_bytes()
    status, _, err = run(capsys, f"{tmp_path}/", data.list_path, tmp_path / "jpg",
                         "--encode-type", "jpg", "--resize-height", 8, "--resize-width", 6)
    assert status == 0, err
    for i, (_, value) in enumerate(read_records(tmp_path / "jpg")):
        datum = parse_datum(value)
        assert datum.encoded and bytes(datum.data[:2]) == b"\xff\xd8"
        resized = cv2.resize(data.images[i], (6, 8))
        assert np.array_equal(bytes(datum.data), cv2.imencode(".jpg", resized)[1].tobytes())


def test_gray_resize_and_the_gray_encoded_note(tmp_path, capsys):
    data = dataset(tmp_path, 2)
    status, out, _ = run(capsys, f"{tmp_path}/", data.list_path, tmp_path / "gray", "--gray",
                         "--resize-height", 5, "--resize-width", 7)
    assert status == 0
    pixels = raw_pixels(parse_datum(read_records(tmp_path / "gray")[1][1]))
    gray = cv2.imread(str(data.files[1]), cv2.IMREAD_GRAYSCALE)
    assert np.array_equal(pixels[0], cv2.resize(gray, (7, 5)))
    assert "raw Datums of 1x5x7" in out
    status, out, _ = run(capsys, f"{tmp_path}/", data.list_path, tmp_path / "kept", "--gray",
                         "--encoded")
    assert status == 0
    assert "set force_gray: true in the layer" in out


def test_shuffle_is_seeded_and_keys_number_the_stored_order(tmp_path, capsys):
    data = dataset(tmp_path, 12)
    for name, seed in (("a", 1), ("b", 1), ("c", 2)):
        assert run(capsys, f"{tmp_path}/", data.list_path, tmp_path / name, "--shuffle",
                   "--seed", seed)[0] == 0
    a, b, c = (read_records(tmp_path / name) for name in "abc")
    assert a == b and a != c
    order = [parse_datum(value).label for _, value in a]
    assert sorted(order) == list(range(12)) and order != list(range(12))
    assert [key for key, _ in a] == [b"%08d_%s" % (i, data.names[label].encode())
                                     for i, label in enumerate(order)]


def test_unreadable_images_are_listed_by_line_and_skipped_keeping_the_numbering(tmp_path,
                                                                                 capsys):
    data = dataset(tmp_path, 4)
    (tmp_path / "broken.png").write_bytes(b"not a png")
    lines = [f"{data.names[0]} 0", "missing.png 1", f"{data.names[2]} 2", "broken.png 3"]
    write_list(tmp_path / "list.txt", lines)
    status, out, err = run(capsys, f"{tmp_path}/", tmp_path / "list.txt", tmp_path / "db")
    assert status == 0
    assert err.splitlines() == [
        f"skipped: {tmp_path}/list.txt:2: image '{tmp_path}/missing.png' does not exist; the "
        f"list's paths are appended to --root-folder (now '{tmp_path}/')",
        f"skipped: {tmp_path}/list.txt:4: cannot decode image '{tmp_path}/broken.png' (9 bytes): "
        f"corrupt, truncated or not an image format OpenCV reads"]
    assert "2 images -> " in out and "; 2 unreadable image(s) skipped (listed above)" in out
    assert [key[:9] for key, _ in read_records(tmp_path / "db")] == [b"00000000_", b"00000002_"]


def test_on_error_raise_and_check_size_write_nothing(tmp_path, capsys):
    data = dataset(tmp_path, 3, sizes=[(9, 11), (9, 11), (10, 11)])
    status, _, err = run(capsys, f"{tmp_path}/", data.list_path, tmp_path / "db", "--check-size")
    assert status == 1
    assert err == (f"caffe-layers-convert-db: error: {data.list_path}:3: the image is 3x10x11 "
                   f"(C x H x W) but the first one is 3x9x11 (C x H x W) (--check-size); resize "
                   f"with --resize-height and --resize-width (nothing written)\n")
    write_list(tmp_path / "bad.txt", [f"{data.names[0]} 0", "missing.png 1"])
    status, _, err = run(capsys, f"{tmp_path}/", tmp_path / "bad.txt", tmp_path / "db",
                         "--on-error", "raise")
    assert status == 1
    assert f"{tmp_path}/bad.txt:2: image '{tmp_path}/missing.png' does not exist" in err
    assert err.endswith("(nothing written: --on-error raise)\n")
    assert sorted(os.listdir(tmp_path)) == ["bad.txt", "images", "list.txt"]


@pytest.mark.parametrize(("backend", "module", "fix"), [("lmdb", "lmdb", "pip install lmdb"),
                                                        ("leveldb", "plyvel", "pip install")])
def test_a_missing_database_library_says_what_to_install(tmp_path, capsys, monkeypatch, backend,
                                                         module, fix):
    data = dataset(tmp_path, 2)
    monkeypatch.setitem(sys.modules, module, None)  # import fails as if not installed
    status, _, err = run(capsys, f"{tmp_path}/", data.list_path, tmp_path / "db", "--backend",
                         backend)
    assert status == 2
    assert err.startswith("caffe-layers-convert-db: error: ") and fix in err, err
    assert "Traceback" not in err
    assert not (tmp_path / "db").exists()


def test_bad_lists_and_targets(tmp_path, capsys):
    data = dataset(tmp_path, 2)
    (tmp_path / "db").mkdir()
    status, _, err = run(capsys, f"{tmp_path}/", data.list_path, tmp_path / "db")
    assert status == 2
    assert err == (f"caffe-layers-convert-db: error: DB '{tmp_path / 'db'}' already exists; "
                   f"remove it or give another path (Caffe's convert_imageset refuses too)\n")
    write_list(tmp_path / "float.txt", [f"{data.names[0]} 1.5"])
    status, _, err = run(capsys, f"{tmp_path}/", tmp_path / "float.txt", tmp_path / "f")
    assert status == 1
    assert f"1 label(s) are not integers (a Datum's label is an int32): {tmp_path}/float.txt:1 " \
           f"(1.5)" in err
    write_list(tmp_path / "none.txt", ["missing.png 0"])
    status, _, err = run(capsys, f"{tmp_path}/", tmp_path / "none.txt", tmp_path / "n")
    assert status == 1
    assert "error: none of the 1 images of" in err and "nothing written" in err
    assert run(capsys, f"{tmp_path}/", data.list_path, tmp_path / "r", "--resize-height",
               4)[0] == 2
    assert not [name for name in os.listdir(tmp_path) if name in ("f", "n", "r")
                or ".incomplete" in name]


def test_the_same_database_for_any_worker_count(tmp_path, capsys):
    data = dataset(tmp_path, 40)
    for workers in (1, 3):
        assert run(capsys, f"{tmp_path}/", data.list_path, tmp_path / f"w{workers}",
                   "--workers", workers, "--encoded", "--encode-type", "png")[0] == 0
    assert read_records(tmp_path / "w1") == read_records(tmp_path / "w3")


def _ctrl_c_as_in_a_terminal() -> None:
    """SIGINT at its default in the converter, as in a terminal: a shell starts a background job
    (CI started with ``&``) with SIGINT ignored, and Python then never raises KeyboardInterrupt."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _interrupt(tmp_path, delay_s: float) -> subprocess.CompletedProcess:
    """Run the converter, send SIGINT ``delay_s`` after its temporary database appears."""
    process = subprocess.Popen(
        [sys.executable, "-m", "caffe_layers", "convert-db", f"{tmp_path}/",
         str(tmp_path / "list.txt"), str(tmp_path / "db"), "--workers", "2"],
        env=SUBPROCESS_ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        preexec_fn=_ctrl_c_as_in_a_terminal)
    try:
        deadline = time.monotonic() + 60
        while not [n for n in os.listdir(tmp_path) if ".incomplete" in n]:
            assert time.monotonic() < deadline and process.poll() is None
            time.sleep(0.005)
        time.sleep(delay_s)
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=30)  # EOF: no worker holds the pipes either
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    return subprocess.CompletedProcess(process.args, process.returncode, out, err)


@pytest.mark.timeout(240)
def test_ctrl_c_leaves_no_database_and_no_process(tmp_path):
    rng = np.random.default_rng(0)
    names = []
    for i in range(400):
        write_image(tmp_path / "big" / f"{i}.png", rng.integers(0, 256, (300, 300, 3), np.uint8))
        names.append(f"big/{i}.png {i}")
    # Each file 5 times: the conversion lasts about 3 s, well past the last SIGINT (0.3 s after
    # it starts) however idle the machine.
    write_list(tmp_path / "list.txt", names * 5)
    for delay_s in (0.0, 0.02, 0.1, 0.3):  # while the workers start, and while they send
        done = _interrupt(tmp_path, delay_s)
        assert done.returncode == 130, done.stderr
        assert done.stderr.strip().endswith("caffe-layers-convert-db: error: interrupted")
        assert "Traceback" not in done.stderr
        assert sorted(os.listdir(tmp_path)) == ["big", "list.txt"]
