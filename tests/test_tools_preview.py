"""caffe-layers-preview: one batch of a data layer as a PNG grid, checked pixel by pixel."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import cv2
import numpy as np
import pytest

from caffe_layers.tools import _netrun, compute_mean, preview

H, W, CROP = 20, 24, 16
GAP, CAPTION = 2, 14


def write_images(root: Path, count: int = 6, gray: bool = False, seed: int = 0) -> list:
    rng = np.random.default_rng(seed)
    (root / "images").mkdir(parents=True, exist_ok=True)
    images, lines = [], []
    for i in range(count):
        image = rng.integers(0, 256, (H, W) if gray else (H, W, 3), np.uint8)
        cv2.imwrite(str(root / "images" / f"{i}.png"), image)
        images.append(image)
        lines.append(f"{i}.png {i % 3}\n")
    (root / "list.txt").write_text("".join(lines))
    return images


def data_layer(phase: str, params: dict, tops=("data", "label"), name: str = "data",
               module: str = "caffe_layers.layers", cls: str = "ImageListDataLayer") -> str:
    top_text = " ".join(f'top: "{t}"' for t in tops)
    return textwrap.dedent(f"""
        layer {{
          name: "{name}" type: "Python" {top_text} include {{ phase: {phase} }}
          python_param {{ module: "{module}" layer: "{cls}"
                          param_str: {json.dumps(json.dumps(params))} }}
        }}""")


def write_net(path: Path, *layers: str) -> Path:
    ip = ('layer { name: "ip" type: "InnerProduct" bottom: "data" top: "ip" '
          'inner_product_param { num_output: 3 } }')
    path.write_text('name: "net"\n' + "\n".join(layers) + "\n" + ip + "\n")
    return path


def params(root: Path, **extra) -> dict:
    base = {"source": str(root / "list.txt"), "root_folder": f"{root}/images/", "batch_size": 6,
            "workers": 0}
    base.update(extra)
    return base


def run(argv, capsys) -> tuple:
    status = preview.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return status, out, err


def tile(png: np.ndarray, i: int, columns: int, size: int) -> np.ndarray:
    """Image ``i`` of a grid with zoom 1."""
    top = GAP + (i // columns) * (size + CAPTION + GAP)
    left = GAP + (i % columns) * (size + GAP)
    return png[top:top + size, left:left + size]


def test_test_centre_crop_with_mean_file_and_scale_gives_back_the_pixels(tmp_path, capsys):
    images = write_images(tmp_path)
    assert compute_mean.main([str(tmp_path / "list.txt"), "--root-folder",
                              f"{tmp_path}/images/", "-q"]) == 0
    net = write_net(tmp_path / "net.prototxt", data_layer("TEST", params(
        tmp_path, crop_size=CROP, mean_file=str(tmp_path / "mean.binaryproto"), scale=0.25)))
    out = tmp_path / "shown" / "batch.png"
    status, stdout, err = run([net, "--phase", "test", "--out", out, "--zoom", 1,
                               "--columns", 4], capsys)
    assert status == 0, err
    png = cv2.imread(str(out), cv2.IMREAD_UNCHANGED)
    assert png.shape == (GAP + 2 * (CROP + CAPTION + GAP), GAP + 4 * (CROP + GAP), 3)
    top, left = (H - CROP) // 2, (W - CROP) // 2
    for i, image in enumerate(images):
        crop = image[top:top + CROP, left:left + CROP].astype(int)
        assert np.abs(tile(png, i, 4, CROP).astype(int) - crop).max() <= 1
    assert "mean added back" in stdout
    assert "divided by scale 0.25" in stdout


def test_captions_carry_the_labels(tmp_path, capsys):
    write_images(tmp_path)
    (tmp_path / "labels.txt").write_text("0 cat\n1 dog\n2 emu\n")
    net = write_net(tmp_path / "net.prototxt", data_layer("TRAIN", params(tmp_path)))
    for labels in ([], ["--labels", tmp_path / "labels.txt"]):
        assert run([net, "--out", tmp_path / "a.png", "--zoom", 4, *labels], capsys)[0] == 0
        png = cv2.imread(str(tmp_path / "a.png"))
        strip = png[GAP + 4 * H:GAP + 4 * H + CAPTION, GAP:GAP + 4 * W]
        assert strip.max() > 200
        assert strip.min() < 60
        if labels:
            with_names = (strip > 128).sum()
        else:
            without_names = (strip > 128).sum()
    assert with_names > without_names  # "0 cat" has more ink than "0"


def test_captions_text():
    from caffe_layers.tools import _grid

    labels = [np.array([0.0, 2.0, 1.5])]
    assert _grid.captions(3, labels, ["cat", "dog", "emu"]) == ["0 cat", "2 emu", "1.5"]
    assert _grid.captions(2, []) == ["#0", "#1"]
    assert _grid.captions(1, [np.array([[1.0, 7.0]])]) == ["1,7"]


def test_mirror_and_mean_value_in_train(tmp_path, capsys):
    images = write_images(tmp_path, count=8)
    net = write_net(tmp_path / "net.prototxt", data_layer("TRAIN", params(
        tmp_path, batch_size=8, mirror=True, mean_value=[10, 20, 30], seed=3, workers=2)))
    status, _, err = run([net, "--out", tmp_path / "m.png", "--zoom", 1, "--columns", 8],
                         capsys)
    assert status == 0, err
    png = cv2.imread(str(tmp_path / "m.png"))
    flipped = 0
    for i, image in enumerate(images):
        top, left = GAP, GAP + i * (W + GAP)
        shown = png[top:top + H, left:left + W].astype(int)
        if np.abs(shown - image[:, ::-1].astype(int)).max() <= 1:
            flipped += 1
        else:
            assert np.abs(shown - image.astype(int)).max() <= 1
    assert 0 < flipped < 8  # seed 3 mirrors some images, not all


def test_gray_images_are_written_gray(tmp_path, capsys):
    images = write_images(tmp_path, gray=True)
    net = write_net(tmp_path / "net.prototxt", data_layer("TRAIN", params(
        tmp_path, is_color=False, mean_value=[100])))
    assert run([net, "--out", tmp_path / "g.png", "--zoom", 1, "--columns", 3], capsys)[0] == 0
    png = cv2.imread(str(tmp_path / "g.png"), cv2.IMREAD_UNCHANGED)
    assert png.ndim == 2
    assert png.shape == (GAP + 2 * (H + CAPTION + GAP), GAP + 3 * (W + GAP))
    np.testing.assert_array_equal(png[GAP:GAP + H, GAP:GAP + W], images[0])


def test_auto_zoom_and_limit(tmp_path, capsys):
    write_images(tmp_path)
    net = write_net(tmp_path / "net.prototxt", data_layer("TRAIN", params(tmp_path)))
    assert run([net, "--out", tmp_path / "z.png", "--limit", 5], capsys)[0] == 0
    zoom = -(-80 // W)  # the longer side reaches 80 pixels
    png = cv2.imread(str(tmp_path / "z.png"))
    assert png.shape[:2] == (GAP + (H * zoom + CAPTION + GAP), GAP + 5 * (W * zoom + GAP))


def test_other_layers_of_ours_and_stretch(tmp_path, capsys):
    """Any Python data layer works; non-pixel data can be stretched to black..white."""
    layer = data_layer("TRAIN", {"batch_size": 4, "shape": [3, 8, 8], "seed": 1},
                       module="caffe_layers.testing.example_layers", cls="RandomDataLayer")
    net = write_net(tmp_path / "net.prototxt", layer)
    assert run([net, "--out", tmp_path / "r.png", "--stretch", "--zoom", 1], capsys)[0] == 0
    png = cv2.imread(str(tmp_path / "r.png"))
    pixels = np.concatenate([png[GAP:GAP + 8, GAP + i * 10:GAP + i * 10 + 8] for i in range(4)])
    assert pixels.min() == 0
    assert pixels.max() == 255


def test_the_layer_is_chosen_by_name_and_phase(tmp_path, capsys):
    write_images(tmp_path)
    net = write_net(tmp_path / "net.prototxt",
                    data_layer("TRAIN", params(tmp_path, batch_size=2)),
                    data_layer("TRAIN", params(tmp_path, batch_size=3), tops=("extra", "lab"),
                               name="second"),
                    data_layer("TEST", params(tmp_path, batch_size=4)))
    for argv, count in ((["--layer", "second"], 3), (["--phase", "TEST"], 4), ([], 2)):
        status, out, err = run([net, "--out", tmp_path / "c.png", *argv], capsys)
        assert status == 0, err
        assert f": {count} images of" in out


# --- bad input --------------------------------------------------------------------------------

def assert_error(status: int, err: str, code: int, *parts: str) -> None:
    assert status == code
    assert err.startswith("caffe-layers-preview: error: ") or "usage:" in err
    assert "Traceback" not in err
    for part in parts:
        assert part in err


@pytest.mark.parametrize("shape", [[10], [4, 8, 8], [3, 8]])
def test_a_top_that_is_not_images(tmp_path, capsys, shape):
    layer = data_layer("TRAIN", {"batch_size": 2, "shape": shape},
                       module="caffe_layers.testing.example_layers", cls="RandomDataLayer")
    net = write_net(tmp_path / "net.prototxt", layer)
    status, _, err = run([net, "--out", tmp_path / "x.png"], capsys)
    assert_error(status, err, 2, "top 'data' of layer 'data'", f"has shape {(2, *shape)}",
                 "(N, C, H, W) with C = 1 (gray) or 3")
    assert not (tmp_path / "x.png").exists()


def test_a_layer_error_is_one_line_and_traceback_on_request(tmp_path, capsys):
    write_images(tmp_path)
    net = write_net(tmp_path / "net.prototxt", data_layer("TRAIN", params(tmp_path,
                                                                         crop_size=64)))
    status, out, err = run([net], capsys)
    assert_error(status, err, 2, "layer 'data' (caffe_layers.layers.ImageListDataLayer)",
                 "crop_size: must be <=")
    assert len(err.strip().splitlines()) == 1
    status, _, err = run([net, "--traceback"], capsys)
    assert status == 2
    assert "Traceback" in err


def test_missing_images_name_the_list_line(tmp_path, capsys):
    write_images(tmp_path)
    (tmp_path / "images" / "0.png").unlink()
    net = write_net(tmp_path / "net.prototxt", data_layer("TRAIN", params(tmp_path)))
    status, _, err = run([net], capsys)
    assert_error(status, err, 1, f"{tmp_path / 'list.txt'}:1", "0.png", "does not exist")


def test_layer_selection_errors(tmp_path, capsys):
    write_images(tmp_path)
    net = write_net(tmp_path / "net.prototxt", data_layer("TRAIN", params(tmp_path)))
    status, _, err = run([net, "--layer", "ip"], capsys)
    assert_error(status, err, 2, "layer 'ip' is not a Python data layer", "'data'")
    status, _, err = run([net, "--layer", "nope"], capsys)
    assert_error(status, err, 2, "no layer named 'nope'")
    status, _, err = run([net, "--phase", "TEST"], capsys)
    assert_error(status, err, 2, "the TEST net has no Python data layer")
    two = write_net(tmp_path / "two.prototxt", data_layer("TEST", params(tmp_path)))
    status, _, err = run([two, "--layer", "data"], capsys)
    assert_error(status, err, 2, "not in the TRAIN net", "--phase TEST")


def test_unimportable_module(tmp_path, capsys):
    net = write_net(tmp_path / "net.prototxt", data_layer("TRAIN", {}, module="no_such_module"))
    status, _, err = run([net], capsys)
    assert_error(status, err, 2, "cannot import no_such_module.ImageListDataLayer", "PYTHONPATH")


def test_bad_arguments(tmp_path, capsys):
    status, _, err = run([tmp_path / "none.prototxt"], capsys)
    assert_error(status, err, 2, "net prototxt", "does not exist")
    (tmp_path / "net.prototxt").write_text("layer {")
    status, _, err = run([tmp_path / "net.prototxt", "--out", "a.jpg"], capsys)
    assert_error(status, err, 2, "--out 'a.jpg': give a file name ending in .png")
    status, _, err = run([tmp_path / "net.prototxt", "--phase", "VAL"], capsys)
    assert_error(status, err, 2, "argument --phase")
    status, _, err = run([tmp_path / "net.prototxt"], capsys)
    assert_error(status, err, 1, "net.prototxt:1")


def test_display_transform_reads_our_keys_and_tolerates_other_formats():
    assert preview.display_transform("{scale: 0.5, mean_value: [1, 2, 3]}")[:2] == \
        ((1.0, 2.0, 3.0), 0.5)
    assert preview.display_transform("")[:2] == (None, 1.0)
    mean, scale, how = preview.display_transform("not: [a mapping")
    assert (mean, scale) == (None, 1.0)
    assert "not a YAML mapping" in how


def test_to_pixels_undoes_scale_and_mean():
    from caffe_layers.tools import _grid

    pixels = np.arange(2 * 3 * 4 * 5, dtype=np.float64).reshape(2, 3, 4, 5) % 200
    mean = np.random.default_rng(0).uniform(0, 50, (3, 8, 9))
    window = mean[:, 2:6, 2:7]  # the centre 4 x 5 window of an 8 x 9 mean
    data = ((pixels - window) * 0.1).astype(np.float32)
    shown = _grid.to_pixels(data, mean, 0.1)
    assert shown.shape == (2, 4, 5, 3)
    np.testing.assert_array_equal(shown, pixels.transpose(0, 2, 3, 1))
    small = np.full((3, 2, 2), 7.0)  # smaller than the images: its channel means
    np.testing.assert_array_equal(_grid.to_pixels(np.zeros((1, 3, 4, 4), np.float32), small),
                                  np.full((1, 4, 4, 3), 7))
    np.testing.assert_array_equal(
        _grid.to_pixels(np.array([[[[-5.0, 300.0]]]], np.float32))[0, 0, :, 0], [0, 255])


def test_a_note_is_wrapped_to_the_picture_width_under_it():
    from caffe_layers.tools import _grid

    picture = np.zeros((30, 120, 3), np.uint8)
    assert _grid.with_note(picture, "") is picture
    text = "approximate: the mean was added back at its centre window, which is a guess"
    lines = _grid.wrap(text, 120)
    assert len(lines) > 1
    assert " ".join(lines) == text
    assert all(_grid.text_width(line) + 4 <= 120 for line in lines if " " in line)
    noted = _grid.with_note(picture, text)
    assert noted.shape == (30 + len(lines) * _grid.NOTE_LINE_HEIGHT + GAP, 120, 3)
    np.testing.assert_array_equal(noted[:30], picture)
    assert noted[30:].max() > 200
    gray = _grid.with_note(np.zeros((10, 200), np.uint8), "a note")
    assert gray.ndim == 2
    assert gray.shape == (10 + _grid.NOTE_LINE_HEIGHT + GAP, 200)


def test_what_real_pycaffe_printed_replaces_its_system_error():
    printed = ("Traceback (most recent call last):\n  File \"m.py\", line 1, in <module>\n"
               "ZeroDivisionError: division by zero\n")
    found = _netrun.printed_instead(SystemError("returned NULL"), printed)
    assert (type(found).__name__, str(found)) == ("ZeroDivisionError", "division by zero")
    found = _netrun.printed_instead(SystemError("x"), "ModuleNotFoundError: No module named 'm'\n")
    assert isinstance(found, ModuleNotFoundError) and str(found) == "No module named 'm'"
    unrelated = SystemError("nothing printed")
    assert _netrun.printed_instead(unrelated, "I1201 net.cpp:53] Initializing net\n") is unrelated
    assert str(_netrun.explain(found, "data", "m.L")).startswith("layer 'data': cannot import m.L")
