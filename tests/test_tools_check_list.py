"""caffe-layers-check-list on a folder with missing, empty, truncated and undecodable images and
malformed lines: every problem in one pass, the same verdict as the layer, a clean list."""

from __future__ import annotations

import json
import re
from pathlib import Path

import cv2
import numpy as np
import pytest
from image_data import BAD_FOLDER_LINES as LINES
from image_data import write_bad_folder, write_image
from layer_nets import data_net, forward

from caffe_layers.sources.images import jpeg_is_complete
from caffe_layers.tools import check_list

LAYER = "ImageListDataLayer"
@pytest.fixture
def photos(tmp_path) -> Path:
    return write_bad_folder(tmp_path / "photos")


def run(argv, capsys) -> tuple:
    status = check_list.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return status, out, err


def columns(line: str) -> list:
    return re.split(r"\s{2,}", line.strip())


def test_every_problem_in_one_pass(photos, capsys):
    listing = photos / "train.txt"
    status, out, err = run([listing, "--root-folder", f"{photos}/", "--workers", "2"], capsys)
    assert status == 1
    assert err == ""
    lines = out.splitlines()
    assert lines[0] == f"{listing}: 12 lines, 5 images decode, 7 problem(s):"
    bad = {n: reason for n, (_, reason) in LINES.items() if reason}
    reported = [columns(line) for line in lines[1:1 + len(bad)]]
    expected = []
    for number, reason in sorted(bad.items()):
        text = LINES[number][0]
        path = text if reason.startswith("malformed") else f"{photos}/{text.rsplit(' ', 1)[0]}"
        expected.append([f"{listing}:{number}", path, reason])
    assert reported == expected
    assert lines[1 + len(bad):] == [
        "images per class (those that decode):",
        "  0 circle  " + "#" * 30 + "  2",
        "  1 cross   " + "#" * 30 + "  2",
        "  2 square  " + "#" * 15 + " " * 15 + "  1",
    ]


def test_the_truncated_jpeg_is_one_libjpeg_would_only_warn_about(photos):
    data = (photos / "cross" / "trunc.jpg").read_bytes()
    assert data.startswith(b"\xff\xd8") and not jpeg_is_complete(data)
    decoded = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    # OpenCV 4.x returns an image (the missing rows gray), OpenCV 5 refuses it: either way the
    # layer and check-list refuse it, for the missing end-of-image marker.
    assert decoded is None or decoded.shape == (6, 5, 3)


def layer_skips(tmp_path, listing: Path, root: str, capfd) -> set:
    """The samples ImageListDataLayer skips in two epochs (on_error: skip)."""
    params = {"source": str(listing), "root_folder": root, "batch_size": 4, "workers": 2,
              "on_error": "skip"}
    capfd.readouterr()
    with data_net(tmp_path, LAYER, json.dumps(params)) as net:
        forward(net, 5)
    err = capfd.readouterr().err
    return {int(i) for i in re.findall(rf"{LAYER} skipped sample (\d+):", err)}


def test_check_list_and_the_layer_agree(photos, tmp_path, capfd):
    """The layer skips exactly the images check-list calls bad (malformed lines removed, since
    the layer refuses a list with any)."""
    listing = photos / "images.txt"
    listing.write_text("".join(text + "\n" for text, reason in LINES.values()
                               if not (reason or "").startswith("malformed")))
    report = check_list.check(str(listing), f"{photos}/")
    flagged = {bad.index for bad in report.bad_images}
    assert sorted(Path(report.samples.path(i)).name for i in flagged) == [
        "empty.jpg", "folder.png", "gone.png", "junk.png", "trunc.jpg"]
    assert layer_skips(tmp_path, listing, f"{photos}/", capfd) == flagged


def test_write_clean_keeps_the_good_lines_byte_for_byte(photos, tmp_path, capsys):
    listing = photos / "train.txt"
    listing.write_bytes(listing.read_bytes().replace(b"\n", b"\r\n"))  # written on Windows
    clean = tmp_path / "out" / "clean.txt"
    status, out, _ = run([listing, "--root-folder", f"{photos}/", "--write-clean", clean, "-q"],
                         capsys)
    assert status == 1  # the input list is still bad
    assert out.splitlines()[-1] == f"clean list: {clean} (5 lines, 7 bad ones left out)"
    kept = [text for text, reason in LINES.values() if reason is None]
    assert clean.read_bytes() == "".join(text + "\r\n" for text in kept).encode()
    status, out, _ = run([clean, "--root-folder", f"{photos}/", "--labels",
                          photos / "labels.txt"], capsys)
    assert status == 0
    assert out.splitlines()[0] == f"{clean}: 5 lines, all 5 images decode"
    params = {"source": str(clean), "root_folder": f"{photos}/", "batch_size": 5, "workers": 0}
    with data_net(tmp_path, LAYER, json.dumps(params)) as net:
        assert sorted(forward(net, 1)["label"].tolist()) == [0, 0, 1, 1, 2]


def test_a_root_folder_without_its_slash(photos, capsys):
    listing = photos / "ok.txt"
    listing.write_text("circle/a.png 0\ncross/c.png 1\n")
    status, out, _ = run([listing, "--root-folder", photos, "--workers", "1"], capsys)
    assert status == 1
    assert out.splitlines()[-1] == (
        f"hint: --root-folder is '{photos}' without a trailing '/', and '{photos}/circle/a.png' "
        f"exists: end --root-folder with '/' (the list's paths are appended to it as written, as "
        f"in Caffe)")


def test_sizes_that_differ_name_the_resize(photos, capsys):
    write_image(photos / "big.png", np.zeros((9, 7, 3), np.uint8))
    listing = photos / "sizes.txt"
    listing.write_text("circle/a.png 0\ncross/c.png 1\nbig.png 1\n")
    status, out, _ = run([listing, "--root-folder", f"{photos}/"], capsys)
    assert status == 0
    assert out.splitlines()[-1] == (
        f"sizes differ: 2 of 3 images are 6x5 (HxW), 1 are not (e.g. {listing}:3 is 9x7): "
        f"ImageListDataLayer needs new_height and new_width to read them (compute-mean and "
        f"convert-hdf5: --new-height and --new-width)")


def test_labels_that_are_not_classes(photos, capsys):
    listing = photos / "regression.txt"
    listing.write_text("circle/a.png 0.25\ncross/c.png 1.5\n")
    status, out, _ = run([listing, "--root-folder", f"{photos}/", "--labels",
                          photos / "labels.txt"], capsys)
    assert status == 0
    assert out.splitlines()[-1] == "per class: none (the labels are not class numbers 0, 1, ...)"


def test_workers_do_not_change_the_report(photos, capsys):
    argv = [photos / "train.txt", "--root-folder", f"{photos}/"]
    assert run([*argv, "--workers", "1"], capsys)[1] == run([*argv, "--workers", "3"], capsys)[1]


@pytest.mark.parametrize(("text", "status", "message"), [
    ("", 1, "caffe-layers-check-list: error: {list}: the image list has no samples (the file is "
            "empty or has only blank lines)\n"),
    ("nolabel\n", 1, None),
])
def test_a_list_without_good_lines(tmp_path, capsys, text, status, message):
    listing = tmp_path / "list.txt"
    listing.write_text(text)
    got_status, out, err = run([listing], capsys)
    assert got_status == status
    if message:
        assert err == message.format(list=listing)
    else:
        assert out.splitlines() == [
            f"{listing}: 1 lines, 0 images decode, 1 problem(s):",
            f"  {listing}:1  nolabel  malformed line: expected a path and 1 label separated by "
            f"spaces, got 'nolabel'"]


def test_a_missing_list(tmp_path, capsys):
    status, _, err = run([tmp_path / "nope.txt"], capsys)
    assert status == 2
    assert err.startswith(f"caffe-layers-check-list: error: image list '{tmp_path}/nope.txt' "
                          f"does not exist")
