"""caffe-layers-preview undoes each sample's own transform exactly; ``--augment`` shows one image
under the layer's own draws; what cannot be undone exactly is written on the picture.

Every check finds, independently of the package, where each shown tile comes from: the image,
crop offset and mirror whose pixels equal the tile to rounding, searching every possibility. The
mean file is a steep gradient, so a mean added at any other window than the crop's (the centre,
as before) is off by several levels and matches nothing.
"""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import cv2
import h5py
import numpy as np
import pytest

from caffe_layers.binaryproto import write_blobproto
from caffe_layers.tools import preview

H, W, CROP = 20, 24, 12
GAP, CAPTION, NOTE_LINE = 2, 14, 14
SCALE = 0.5


def write_images(root: Path, count: int, seed: int = 0) -> list:
    rng = np.random.default_rng(seed)
    (root / "images").mkdir(parents=True, exist_ok=True)
    images = [rng.integers(0, 256, (H, W, 3), np.uint8) for _ in range(count)]
    for i, image in enumerate(images):
        cv2.imwrite(str(root / "images" / f"{i}.png"), image)
    (root / "list.txt").write_text("".join(f"{i}.png {i % 3}\n" for i in range(count)))
    return images


def gradient_mean(path: Path, shape=(3, H, W)) -> np.ndarray:
    channels, height, width = shape
    c, h, w = np.meshgrid(np.arange(channels), np.arange(height), np.arange(width),
                          indexing="ij")
    mean = (3.3 * h + 2.1 * w + 10 * c + 0.25).astype(np.float32)
    write_blobproto(str(path), mean[np.newaxis])
    return mean


def write_net(path: Path, params: dict, cls: str = "ImageListDataLayer",
              tops=("data", "label"), module: str = "caffe_layers.layers") -> Path:
    top_text = " ".join(f'top: "{t}"' for t in tops)
    path.write_text(textwrap.dedent(f"""
        name: "net"
        layer {{
          name: "data" type: "Python" {top_text} include {{ phase: TRAIN }}
          python_param {{ module: "{module}" layer: "{cls}"
                          param_str: {json.dumps(json.dumps(params))} }}
        }}"""))
    return path


def image_params(root: Path, **extra) -> dict:
    base = {"source": str(root / "list.txt"), "root_folder": f"{root}/images/", "batch_size": 6,
            "crop_size": CROP, "mirror": True, "mean_file": str(root / "mean.binaryproto"),
            "scale": SCALE, "shuffle": True, "seed": 5, "workers": 0}
    base.update(extra)
    return base


def tiles(png: np.ndarray, count: int, size: tuple) -> list:
    """The images of a one-row grid with zoom 1."""
    height, width = size
    return [png[GAP:GAP + height, GAP + i * (width + GAP):GAP + i * (width + GAP) + width]
            for i in range(count)]


def placements(target: np.ndarray, images: list, tolerance: float = 1.0) -> list:
    """Every ``(image, h_off, w_off, mirror)`` whose crop equals ``target`` (HWC) to rounding."""
    height, width = target.shape[:2]
    found = []
    for number, image in enumerate(images):
        for h_off in range(image.shape[0] - height + 1):
            for w_off in range(image.shape[1] - width + 1):
                crop = image[h_off:h_off + height, w_off:w_off + width].astype(float)
                for mirror in (False, True):
                    shown = crop[:, ::-1] if mirror else crop
                    if np.abs(shown - target).max() <= tolerance:
                        found.append((number, h_off, w_off, mirror))
    return found


def run(argv, capsys) -> tuple:
    status = preview.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return status, out, err


def attach_features(root: Path, params: dict) -> dict:
    with h5py.File(root / "feat.h5", "w") as f:
        f["feat"] = np.arange(12, dtype=np.float32).reshape(6, 2)
    return dict(params, attach=[{"top": "feat", "hdf5": str(root / "feat.h5"),
                                 "dataset": "feat", "match": "index"}])


@pytest.mark.timeout(60)
@pytest.mark.parametrize(("cls", "workers"), [("ImageListDataLayer", 0),
                                              ("ImageListDataLayer", 2),
                                              ("MultiInputDataLayer", 1)])
def test_train_preview_is_the_exact_per_sample_inverse(tmp_path, capsys, cls, workers):
    images = write_images(tmp_path, 6)
    gradient_mean(tmp_path / "mean.binaryproto")
    params = image_params(tmp_path, workers=workers)
    tops = ("data", "label")
    if cls == "MultiInputDataLayer":
        params, tops = attach_features(tmp_path, params), ("data", "label", "feat")
    net = write_net(tmp_path / "net.prototxt", params, cls, tops)
    status, out, err = run([net, "--out", tmp_path / "p.png", "--zoom", 1, "--columns", 6],
                           capsys)
    assert status == 0, err
    png = cv2.imread(str(tmp_path / "p.png"))
    assert png.shape == (GAP + CROP + CAPTION + GAP, GAP + 6 * (CROP + GAP), 3)  # no note
    found = [placements(tile.astype(float), images) for tile in tiles(png, 6, (CROP, CROP))]
    assert all(len(matches) == 1 for matches in found), found
    shown = [matches[0] for matches in found]
    assert sorted(number for number, *_ in shown) == list(range(6))  # one epoch, shuffled
    centre = ((H - CROP) // 2, (W - CROP) // 2)
    assert any((h, w) != centre for _, h, w, _ in shown)  # a centre-window mean would not match
    assert {mirror for *_, mirror in shown} == {False, True}
    assert "at each image's own crop window, mirrored as the image (exact)" in out
    assert "approximate" not in out


def test_npy_preview_undoes_mean_file_and_scale(tmp_path, capsys):
    rng = np.random.default_rng(1)
    samples = rng.integers(0, 256, (4, 3, 6, 7)).astype(np.float32)
    for i, sample in enumerate(samples):
        np.save(tmp_path / f"s{i}.npy", sample)
    (tmp_path / "ids.txt").write_text("".join(f"s{i} {i}\n" for i in range(4)))
    gradient_mean(tmp_path / "mean.binaryproto", (3, 6, 7))
    net = write_net(tmp_path / "net.prototxt", {
        "source": str(tmp_path / "ids.txt"), "root_folder": str(tmp_path), "batch_size": 4,
        "mean_file": str(tmp_path / "mean.binaryproto"), "scale": 0.25, "workers": 0},
        "NpyDataLayer")
    status, out, err = run([net, "--out", tmp_path / "n.png", "--zoom", 1], capsys)
    assert status == 0, err
    png = cv2.imread(str(tmp_path / "n.png"))
    for tile, sample in zip(tiles(png, 4, (6, 7)), samples):
        np.testing.assert_array_equal(tile, sample.transpose(1, 2, 0))
    assert "divided by scale 0.25; mean added back from" in out


FOREIGN = '''
import caffe
import numpy as np

class ZeroLayer(caffe.Layer):
    """A data layer of someone else's: zeros, with a mean_file key the preview can only guess
    the use of."""

    def setup(self, bottom, top):
        pass

    def reshape(self, bottom, top):
        top[0].reshape(2, 3, 8, 8)

    def forward(self, bottom, top):
        top[0].data[...] = 0

    def backward(self, top, propagate_down, bottom):
        pass
'''


def test_a_foreign_layer_gets_the_approximation_written_on_the_picture(tmp_path, capsys,
                                                                         monkeypatch):
    (tmp_path / "their_layers.py").write_text(FOREIGN)
    monkeypatch.syspath_prepend(str(tmp_path))
    mean = gradient_mean(tmp_path / "mean.binaryproto", (3, 12, 12))
    net = write_net(tmp_path / "net.prototxt", {"mean_file": str(tmp_path / "mean.binaryproto"),
                                                "mirror": True},
                    "ZeroLayer", tops=("data",), module="their_layers")
    status, out, err = run([net, "--out", tmp_path / "f.png", "--zoom", 1], capsys)
    assert status == 0, err
    assert ("approximate: the mean_file was added back at its centre window, since this layer "
            "does not say where it cropped (exact only for centre crops); mirrored images got "
            "the mean_file unmirrored") in out
    png = cv2.imread(str(tmp_path / "f.png"))
    grid_height = GAP + 8 + CAPTION + GAP
    assert png.shape[0] >= grid_height + 2 * NOTE_LINE  # the note, wrapped under the grid
    note = png[grid_height:]
    assert note.max() > 200  # text was written
    window = np.rint(mean[:, 2:10, 2:10]).transpose(1, 2, 0)
    np.testing.assert_array_equal(tiles(png, 1, (8, 8))[0], window)


# --- --augment ---------------------------------------------------------------------------------

def layer_rows(net_path: Path, epochs: int, sample: int) -> list:
    """Sample ``sample``'s data row in each of ``epochs`` epochs, as the layer feeds the net (a
    batch is a whole epoch in list order)."""
    import caffe

    from caffe_layers.tools._netrun import close_layers

    net = caffe.Net(str(net_path), caffe.TRAIN)
    try:
        rows = []
        for _ in range(epochs):
            net.forward()
            rows.append(np.array(net.blobs["data"].data[sample]))
        return rows
    finally:
        close_layers(net)


def row_placements(row: np.ndarray, image: np.ndarray, mean: np.ndarray) -> list:
    """Every ``(h_off, w_off, mirror)`` for which Caffe's formula gives ``row`` from ``image``."""
    found = []
    for h_off in range(H - CROP + 1):
        for w_off in range(W - CROP + 1):
            crop = image[h_off:h_off + CROP, w_off:w_off + CROP].transpose(2, 0, 1)
            window = mean[:, h_off:h_off + CROP, w_off:w_off + CROP]
            for mirror in (False, True):
                value = (crop - window) * SCALE
                value = value[:, :, ::-1] if mirror else value
                if np.abs(value - row).max() < 1e-3:
                    found.append((h_off, w_off, mirror))
    return found


@pytest.mark.timeout(60)
def test_augment_shows_what_the_layer_feeds_one_sample_in_each_epoch(tmp_path, capsys):
    images = write_images(tmp_path, 3)
    mean = gradient_mean(tmp_path / "mean.binaryproto")
    net = write_net(tmp_path / "net.prototxt", image_params(tmp_path, batch_size=3,
                                                            shuffle=False, workers=1))
    draws = 6
    status, out, err = run([net, "--augment", draws, "--sample", 1, "--out", tmp_path / "a.png",
                            "--zoom", 1, "--columns", draws], capsys)
    assert status == 0, err
    png = cv2.imread(str(tmp_path / "a.png"))
    shown = []
    for tile in tiles(png, draws, (CROP, CROP)):
        [(number, h_off, w_off, mirror)] = placements(tile.astype(float), images)
        assert number == 1
        shown.append((h_off, w_off, mirror))
    fed = [row_placements(row, images[1], mean) for row in layer_rows(net, draws, 1)]
    assert [matches[0] for matches in fed] == shown  # draw e is epoch e's row, exactly
    assert len(set(shown)) > 1
    assert png.shape[0] > GAP + CROP + CAPTION + GAP  # the legend under the tiles
    assert (f"a.png: sample 1 under {draws} draws of the TRAIN transform of layer 'data' "
            f"(caffe_layers.layers.ImageListDataLayer), epochs 0-{draws - 1}: ") in out


def test_augment_of_a_transform_without_randomness_says_so(tmp_path, capsys):
    write_images(tmp_path, 3)
    net = write_net(tmp_path / "net.prototxt", {
        "source": str(tmp_path / "list.txt"), "root_folder": f"{tmp_path}/images/",
        "batch_size": 3, "workers": 0})
    status, out, err = run([net, "--augment", 3, "--out", tmp_path / "s.png", "--zoom", 1],
                           capsys)
    assert status == 0, err
    assert "1 distinct crop offset, 0 of 3 mirrored" in out
    png = cv2.imread(str(tmp_path / "s.png"))
    first, second, third = tiles(png, 3, (H, W))
    np.testing.assert_array_equal(first, second)
    np.testing.assert_array_equal(first, third)


def test_augment_errors(tmp_path, capsys):
    write_images(tmp_path, 3)
    gradient_mean(tmp_path / "mean.binaryproto")
    net = write_net(tmp_path / "net.prototxt", image_params(tmp_path, batch_size=3))
    status, _, err = run([net, "--sample", 1], capsys)
    assert status == 2
    assert err == ("caffe-layers-preview: error: --sample chooses the image --augment shows; "
                   "give --augment N too\n")
    status, _, err = run([net, "--augment", 2, "--sample", 3], capsys)
    assert status == 2
    assert "--sample 3: the layer has 3 samples (0 to 2)" in err
    np.save(tmp_path / "s0.npy", np.zeros((3, 4, 4), np.float32))
    (tmp_path / "ids.txt").write_text("s0 0\n")
    npy = write_net(tmp_path / "npy.prototxt", {"source": str(tmp_path / "ids.txt"),
                                                "root_folder": str(tmp_path), "batch_size": 1,
                                                "workers": 0}, "NpyDataLayer")
    status, _, err = run([npy, "--augment", 2], capsys)
    assert status == 2
    assert "--augment shows the random crops and mirrors of an image layer" in err
    (tmp_path / "random.prototxt").write_text(
        'layer { name: "data" type: "Python" top: "data" top: "label" python_param { '
        'module: "caffe_layers.testing.example_layers" layer: "RandomDataLayer" } }')
    status, _, err = run([tmp_path / "random.prototxt", "--augment", 2], capsys)
    assert (status, err) == (2, "caffe-layers-preview: error: layer 'data' (caffe_layers.testing."
                                "example_layers.RandomDataLayer): --augment draws with the "
                                "layer's own transform, which only the layers of "
                                "caffe_layers.layers expose\n")
