"""ImageListDataLayer driven as a user drives it: a prototxt, ``caffe.Net``, ``net.forward()``.

Parity: :func:`caffe_transform` is Caffe's DataTransformer written from CAFFE.md's formula
(§7), ``out[c, h, w'] = (img[h_off + h, w_off + w, c] - mean) * scale`` in float32 with the mean
at the source pixel, ``w' = W_out - 1 - w`` when mirrored; images are decoded and resized with
OpenCV as Caffe's ImageData does (§6). TEST (centre crop, no mirror) is deterministic and compared
bit for bit; TRAIN rows must equal the reference for *some* in-range offset and mirror flag.

Every net is closed in a ``finally`` (``close_all``): the autouse leak fixture fails a test that
leaves a worker process or a shared-memory block behind.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import caffe
import cv2
import numpy as np
import pytest
from image_data import mean_of, write_dataset, write_demo_data, write_image, write_list

from caffe_layers.binaryproto import write_blobproto
from caffe_layers.errors import ConfigError, DataError, WorkerError
from caffe_layers.prefetch import close_all, default_start_method

REPO = Path(__file__).resolve().parent.parent
LAYER = "ImageListDataLayer"
# Subprocesses import the package from this checkout even when it is not installed.
SUBPROCESS_ENV = dict(os.environ, PYTHONPATH=os.pathsep.join(
    filter(None, [str(REPO), os.environ.get("PYTHONPATH")])))


# --- driving the layer ----------------------------------------------------------------------------


def prototxt_string(text: str) -> str:
    """``text`` as a double-quoted prototxt string (C escapes)."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def net_text(params: dict, tops=("data", "label")) -> str:
    top_lines = "".join(f"  top: {prototxt_string(top)}\n" for top in tops)
    return (f'layer {{\n  name: "data"\n  type: "Python"\n{top_lines}'
            f'  python_param {{\n    module: "caffe_layers.layers"\n    layer: "{LAYER}"\n'
            f"    param_str: {prototxt_string(json.dumps(params))}\n  }}\n}}\n")


@contextlib.contextmanager
def data_net(tmp_path: Path, params: dict, phase: int = caffe.TEST, tops=("data", "label")):
    """``caffe.Net`` over a one-layer prototxt written into ``tmp_path``; closed on exit."""
    path = tmp_path / "net.prototxt"
    path.write_text(net_text(params, tops))
    try:
        yield caffe.Net(str(path), phase)
    finally:
        close_all()


def forward(net, count: int) -> list:
    """``count`` forward passes: a copy of every blob after each."""
    batches = []
    for _ in range(count):
        net.forward()
        batches.append({name: blob.data.copy() for name, blob in net.blobs.items()})
    return batches


def run(tmp_path: Path, params: dict, count: int, phase: int = caffe.TEST, tops=("data", "label")):
    with data_net(tmp_path, params, phase, tops) as net:
        return forward(net, count)


def base(dataset, **params) -> dict:
    """In-process loading (``workers: 0``) unless the test is about workers."""
    return {"source": str(dataset.list_path), "batch_size": 4, "workers": 0, **params}


def label_sequence(batches: list, top: str = "label") -> list:
    return [int(v) for batch in batches for v in batch[top]]


def assert_bits(actual: np.ndarray, expected: np.ndarray) -> None:
    assert actual.dtype == expected.dtype == np.float32
    assert actual.shape == expected.shape
    assert actual.tobytes() == expected.tobytes(), \
        f"max difference {np.abs(actual - expected).max()}"


# --- Caffe's DataTransformer, from CAFFE.md's formula ---------------------------------------------


def caffe_transform(image: np.ndarray, crop_size: int, h_off: int, w_off: int, mirror: bool,
                    mean=None, scale: float = 1.0) -> np.ndarray:
    """``(C, H_out, W_out)`` float32 as Caffe computes it for an HWC uint8 ``image``.

    ``mean``: None, a tuple of ``mean_value`` (one, or one per channel) or a ``(C, H, W)`` mean
    file at the image size. Every operand is float32, as in Caffe's ``Dtype`` arithmetic.
    """
    height, width, channels = image.shape
    out_h, out_w = (crop_size, crop_size) if crop_size else (height, width)
    rows = h_off + np.arange(out_h)
    cols = w_off + np.arange(out_w)
    pixel = image[rows[:, None], cols[None, :], :].astype(np.float32).transpose(2, 0, 1)
    if mean is None:
        centred = pixel
    elif isinstance(mean, tuple):
        values = mean * channels if len(mean) == 1 else mean
        centred = pixel - np.array(values, np.float32)[:, None, None]
    else:
        centred = pixel - mean.astype(np.float32)[:, rows[:, None], cols[None, :]]
    out = centred * np.float32(scale)
    return np.ascontiguousarray(out[:, :, ::-1] if mirror else out)


def centre(height: int, width: int, crop: int) -> tuple:
    return (height - crop) // 2, (width - crop) // 2


def matching_decisions(row: np.ndarray, image: np.ndarray, crop: int, mean, scale) -> list:
    """Every in-range ``(h_off, w_off, mirror)`` whose reference equals ``row`` exactly."""
    height, width = image.shape[:2]
    return [(h_off, w_off, mirror)
            for h_off in range(height - crop + 1) for w_off in range(width - crop + 1)
            for mirror in (False, True)
            if np.array_equal(row, caffe_transform(image, crop, h_off, w_off, mirror, mean, scale))]


def random_mean(channels: int, height: int, width: int, seed: int = 1) -> np.ndarray:
    return (np.random.default_rng(seed).random((channels, height, width)) * 255).astype(np.float32)


def write_mean(path: Path, mean: np.ndarray) -> str:
    """``mean`` (C, H, W) as a ``.binaryproto`` (1, C, H, W) or a ``.npy``, by extension."""
    if path.suffix == ".npy":
        np.save(path, mean)
    else:
        write_blobproto(path, mean[np.newaxis])
    return str(path)


# --- parity with Caffe in the TEST phase ----------------------------------------------------------


@pytest.mark.parametrize("mean_name", ["mean.binaryproto", "mean.npy"])
@pytest.mark.parametrize("new_size", [None, (12, 14)], ids=["stored-size", "resized"])
def test_test_phase_crop_mean_file_scale_equal_caffe(tmp_path, mean_name, new_size):
    dataset = write_dataset(tmp_path, 5, (10, 11))  # odd margins: the centre rounds down
    height, width = new_size or (10, 11)
    mean = random_mean(3, height, width)
    params = base(dataset, batch_size=5, crop_size=5, scale=0.017,
                  mean_file=write_mean(tmp_path / mean_name, mean))
    if new_size:
        params.update(new_height=height, new_width=width)
    [batch] = run(tmp_path, params, 1)
    assert batch["data"].shape == (5, 3, 5, 5)
    assert batch["label"].tolist() == [0, 1, 2, 3, 4]
    for row, image in enumerate(dataset.images):
        if new_size:
            image = cv2.resize(image, (width, height))  # cv::resize, bilinear by default
        expected = caffe_transform(image, 5, *centre(height, width, 5), False, mean, 0.017)
        assert_bits(batch["data"][row], expected)


@pytest.mark.parametrize("mean_value", [(104.0, 117.5, 123.0), (120.25,)], ids=["per-channel",
                                                                                "single"])
def test_test_phase_mean_value_equals_caffe(tmp_path, mean_value):
    dataset = write_dataset(tmp_path, 4, (9, 10))
    params = base(dataset, crop_size=6, mean_value=list(mean_value), scale=1 / 255)
    [batch] = run(tmp_path, params, 1)
    for row, image in enumerate(dataset.images):
        expected = caffe_transform(image, 6, *centre(9, 10, 6), False, mean_value, 1 / 255)
        assert_bits(batch["data"][row], expected)


@pytest.mark.parametrize("mean", ["file", "value", "none"])
def test_is_color_false_gives_one_gray_channel_equal_to_caffe(tmp_path, mean):
    dataset = write_dataset(tmp_path, 4, (9, 8))  # colour files, decoded as gray
    mean_array = random_mean(1, 9, 8)
    params = base(dataset, is_color=False, crop_size=7, scale=0.5)
    if mean == "file":
        params["mean_file"] = write_mean(tmp_path / "gray.binaryproto", mean_array)
    elif mean == "value":
        params["mean_value"] = 90
    reference_mean = {"file": mean_array, "value": (90.0,), "none": None}[mean]
    [batch] = run(tmp_path, params, 1)
    assert batch["data"].shape == (4, 1, 7, 7)
    for row, file in enumerate(dataset.files):
        gray = cv2.imread(str(file), cv2.IMREAD_GRAYSCALE)[:, :, np.newaxis]  # Caffe's decode
        expected = caffe_transform(gray, 7, *centre(9, 8, 7), False, reference_mean, 0.5)
        assert_bits(batch["data"][row], expected)


def test_is_color_expands_a_gray_file_to_three_equal_channels(tmp_path):
    dataset = write_dataset(tmp_path, 2, (5, 6), channels=1)
    [batch] = run(tmp_path, base(dataset, batch_size=2), 1)
    assert batch["data"].shape == (2, 3, 5, 6)
    for row, image in enumerate(dataset.images):
        for channel in range(3):
            assert np.array_equal(batch["data"][row, channel], image[:, :, 0])


def test_no_transform_gives_the_pixels_as_float32_nchw(tmp_path):
    dataset = write_dataset(tmp_path, 3, (4, 5))
    [batch] = run(tmp_path, base(dataset, batch_size=3), 1)
    assert batch["data"].dtype == np.float32
    assert batch["label"].dtype == np.float32
    for row, image in enumerate(dataset.images):
        assert np.array_equal(batch["data"][row], image.transpose(2, 0, 1))


# --- TRAIN: random crops inside the image, mirror is a flip ---------------------------------------


@pytest.mark.parametrize(("size", "crop"), [((9, 11), 5), ((6, 6), 6), ((7, 12), 3)])
def test_train_rows_are_in_range_crops_and_flips_of_their_image(tmp_path, size, crop):
    height, width = size
    dataset = write_dataset(tmp_path, 6, size)
    mean = random_mean(3, height, width)
    params = base(dataset, crop_size=crop, mirror=True, shuffle=True, seed=3, scale=0.5,
                  mean_file=write_mean(tmp_path / "mean.binaryproto", mean))
    batches = run(tmp_path, params, 12, caffe.TRAIN)
    decisions = []
    for batch in batches:
        for data, label in zip(batch["data"], batch["label"]):
            found = matching_decisions(data, dataset.images[int(label)], crop, mean, 0.5)
            assert len(found) == 1, f"sample {int(label)}: no single in-range crop/flip matches"
            decisions.append(found[0])
    assert {mirror for _, _, mirror in decisions} == {False, True}
    offsets = {(h_off, w_off) for h_off, w_off, _ in decisions}
    positions = (height - crop + 1) * (width - crop + 1)
    assert len(offsets) >= min(positions, 8), "TRAIN crops should be spread, not centred"


def test_mirror_is_random_in_the_test_phase_too(tmp_path):
    dataset = write_dataset(tmp_path, 6, (7, 9))
    params = base(dataset, crop_size=5, mirror=True, mean_value=[10, 20, 30])
    flips = []
    for batch in run(tmp_path, params, 6):
        for data, label in zip(batch["data"], batch["label"]):
            image = dataset.images[int(label)]
            unmirrored = caffe_transform(image, 5, 1, 2, False, (10.0, 20.0, 30.0))
            mirrored = caffe_transform(image, 5, 1, 2, True, (10.0, 20.0, 30.0))
            assert np.array_equal(data, unmirrored) or np.array_equal(data, mirrored)
            flips.append(np.array_equal(data, mirrored))
    assert set(flips) == {False, True}


def test_same_seed_gives_identical_batches_for_0_1_and_2_workers(tmp_path):
    dataset = write_dataset(tmp_path, 10, (9, 11))
    params = base(dataset, crop_size=5, mirror=True, shuffle=True, seed=11)

    def batches(**changes):
        return [batch["data"].tobytes() + batch["label"].tobytes()
                for batch in run(tmp_path, {**params, **changes}, 6, caffe.TRAIN)]

    in_process = batches(workers=0)
    assert batches(workers=1) == in_process
    assert batches(workers=2) == in_process
    assert batches(workers=0, seed=12) != in_process  # the seed does matter


# --- order: exactly once per epoch ----------------------------------------------------------------


@pytest.mark.parametrize("workers", [0, 2])
def test_three_epochs_see_every_sample_exactly_once(tmp_path, workers):
    samples, batch_size = 10, 4  # batches straddle epoch boundaries
    dataset = write_dataset(tmp_path, samples, (4, 5))
    params = base(dataset, batch_size=batch_size, shuffle=True, seed=2, workers=workers)
    batches = run(tmp_path, params, 8, caffe.TRAIN)
    for batch in batches:  # each row's data belongs to its label
        for data, label in zip(batch["data"], batch["label"]):
            assert np.array_equal(data, dataset.images[int(label)].transpose(2, 0, 1))
    epochs = np.array(label_sequence(batches)[:3 * samples]).reshape(3, samples)
    for epoch in epochs:
        assert sorted(epoch.tolist()) == list(range(samples))
    assert len({tuple(epoch) for epoch in epochs}) == 3, "shuffle: each epoch in a new order"


def test_without_shuffle_every_epoch_is_the_list_order(tmp_path):
    dataset = write_dataset(tmp_path, 10, (4, 5))
    batches = run(tmp_path, base(dataset, shuffle=False), 8, caffe.TRAIN)
    assert label_sequence(batches)[:30] == list(range(10)) * 3


# --- labels and tops ------------------------------------------------------------------------------


def test_one_label_column_gives_an_n_vector(tmp_path):
    dataset = write_dataset(tmp_path, 4, (3, 4), labels=[7, 3, 0, 12])
    [batch] = run(tmp_path, base(dataset), 1)
    assert batch["label"].shape == (4,)
    assert batch["label"].tolist() == [7, 3, 0, 12]


LABELS_3 = np.array([[1, 2, 3], [4, 5.5, 6], [-7, 8, 9], [10, 11, 0.25]])


def test_three_label_columns_and_two_tops_give_an_n_by_3_label(tmp_path):
    dataset = write_dataset(tmp_path, 4, (3, 4), labels=LABELS_3)
    [batch] = run(tmp_path, base(dataset, label_columns=3), 1)
    assert batch["label"].shape == (4, 3)
    assert batch["label"].tolist() == LABELS_3.tolist()


def test_three_label_columns_and_four_tops_give_one_top_per_column(tmp_path):
    dataset = write_dataset(tmp_path, 4, (3, 4), labels=LABELS_3)
    [batch] = run(tmp_path, base(dataset, label_columns=3), 1, tops=("data", "a", "b", "c"))
    for column, top in enumerate(("a", "b", "c")):
        assert batch[top].shape == (4,)
        assert batch[top].tolist() == LABELS_3[:, column].tolist()


def test_no_label_column_takes_only_a_data_top(tmp_path):
    dataset = write_dataset(tmp_path, 4, (3, 4))
    write_list(dataset.list_path, dataset.names)  # no labels at all
    [batch] = run(tmp_path, base(dataset, label_columns=0), 1, tops=("data",))
    assert list(batch) == ["data"]
    assert batch["data"].shape == (4, 3, 3, 4)


@pytest.mark.usefixtures("aborting_binary")
@pytest.mark.parametrize(("label_columns", "tops", "accepted"), [
    (1, ("data", "l1", "l2"), "takes 1 (data) or 2 (data, label)"),
    (3, ("data", "l1", "l2"), "takes 1 (data) or 2 (data, label) or 4 (data, label0, label1, "
                              "label2)"),
])
def test_a_wrong_top_count_names_the_accepted_counts(tmp_path, capfd, label_columns, tops,
                                                     accepted):
    dataset = write_dataset(tmp_path, 2, (3, 4), labels=LABELS_3[:2, :label_columns])
    with pytest.raises(ConfigError) as info, \
            data_net(tmp_path, base(dataset, label_columns=label_columns), tops=tops):
        pass
    assert f"{LAYER} has 3 top(s) but {accepted}; fix the number of `top:` lines" in \
        str(info.value)
    assert f"caffe_layers: {LAYER}.setup failed:\nTraceback" in capfd.readouterr().err


@pytest.mark.usefixtures("aborting_binary")
def test_a_failing_reshape_prints_its_traceback_too(tmp_path, capfd):
    dataset = write_dataset(tmp_path, 2, (3, 4))
    with data_net(tmp_path, base(dataset)) as net, pytest.raises(IndexError):
        net.layers[0].reshape([], [net.blobs["data"], net.blobs["label"], net.blobs["data"]])
    assert f"caffe_layers: {LAYER}.reshape failed:\nTraceback" in capfd.readouterr().err


# --- paths: root_folder, spaces, Windows lists ----------------------------------------------------


def test_root_folder_is_prepended_by_plain_concatenation(tmp_path):
    dataset = write_dataset(tmp_path, 3, (3, 4), name_format="img_{:03d}")
    names = [f"{i:03d}.png {i}" for i in range(3)]  # "<root_folder>img_" + "000.png"
    write_list(dataset.list_path, names)
    params = base(dataset, batch_size=3, root_folder=str(tmp_path / "images" / "img_"))
    [batch] = run(tmp_path, params, 1)
    for row, image in enumerate(dataset.images):
        assert np.array_equal(batch["data"][row], image.transpose(2, 0, 1))


def test_paths_with_spaces(tmp_path):
    dataset = write_dataset(tmp_path, 3, (3, 4), folder="my images", name_format="cat {} x",
                            labels=[5, 6, 7])
    assert " " in dataset.names[0]
    [batch] = run(tmp_path, base(dataset, batch_size=3), 1)
    assert batch["label"].tolist() == [5, 6, 7]
    for row, image in enumerate(dataset.images):
        assert np.array_equal(batch["data"][row], image.transpose(2, 0, 1))


def test_a_list_written_on_windows_works_unchanged(tmp_path):
    dataset = write_dataset(tmp_path, 3, (3, 4), folder="win dir/sub", name_format="img {}")
    lines = [f"win dir\\sub\\img {i}.png {i + 2}" for i in range(3)]
    write_list(dataset.list_path, lines, newline="\r\n")
    params = base(dataset, batch_size=3, root_folder=f"{tmp_path}/")
    [batch] = run(tmp_path, params, 1)
    assert batch["label"].tolist() == [2, 3, 4]
    for row, image in enumerate(dataset.images):
        assert np.array_equal(batch["data"][row], image.transpose(2, 0, 1))


# --- bad images -----------------------------------------------------------------------------------


@pytest.mark.usefixtures("aborting_binary")
def test_a_missing_image_names_the_list_line_and_path_in_process(tmp_path, capfd):
    dataset = write_dataset(tmp_path, 4, (3, 4))
    dataset.files[2].unlink()
    with data_net(tmp_path, base(dataset, batch_size=2)) as net:
        net.forward()
        with pytest.raises(DataError) as info:
            net.forward()
    expected = f"{dataset.list_path}:3: image '{dataset.files[2]}' does not exist"
    assert expected in str(info.value)
    err = capfd.readouterr().err
    assert f"caffe_layers: {LAYER}.forward failed:\nTraceback (most recent call last)" in err
    assert expected in err


def test_in_a_python_process_the_exception_reaches_the_caller_unprinted(tmp_path, capfd):
    """Under pycaffe (or the fake) the caller gets the exception: printing it too would show the
    traceback twice."""
    dataset = write_dataset(tmp_path, 4, (3, 4))
    dataset.files[0].unlink()
    with pytest.raises(DataError, match="does not exist"), data_net(tmp_path, base(dataset)):
        pass
    assert "failed:" not in capfd.readouterr().err


@pytest.mark.usefixtures("aborting_binary")
def test_a_missing_image_names_the_list_line_and_path_from_a_worker(tmp_path, capfd):
    dataset = write_dataset(tmp_path, 4, (3, 4))
    dataset.files[1].unlink()
    with data_net(tmp_path, base(dataset, batch_size=2, workers=2)) as net, \
            pytest.raises(WorkerError) as info:
        net.forward()
    expected = f"{dataset.list_path}:2: image '{dataset.files[1]}' does not exist"
    assert info.value.exc_type == "DataError"
    assert expected in str(info.value)
    assert "Traceback (most recent call last)" in info.value.remote_traceback
    err = capfd.readouterr().err
    assert f"caffe_layers: {LAYER}.forward failed:\nTraceback (most recent call last)" in err
    assert "Worker traceback:" in err
    assert expected in err


def corrupt(dataset, index: int, kind: str) -> str:
    """Damage image ``index``; the message the layer should give."""
    file = dataset.files[index]
    if kind == "garbage":
        file.write_bytes(b"this is not an image at all")
        return f"cannot decode image '{file}' (27 bytes)"
    data = file.read_bytes()
    file.write_bytes(data[:len(data) // 2])
    return f"image '{file}' is a truncated JPEG ({len(data) // 2} bytes"


@pytest.mark.usefixtures("aborting_binary")
@pytest.mark.parametrize(("kind", "ext"), [("garbage", ".png"), ("truncated", ".jpg")])
def test_a_corrupt_image_names_the_list_line_and_path(tmp_path, capfd, kind, ext):
    dataset = write_dataset(tmp_path, 4, (16, 16), ext=ext)
    message = corrupt(dataset, 3, kind)
    with data_net(tmp_path, base(dataset)) as net, pytest.raises(DataError) as info:
        net.forward()
    assert f"{dataset.list_path}:4: {message}" in str(info.value)
    assert f"caffe_layers: {LAYER}.forward failed:\nTraceback" in capfd.readouterr().err


@pytest.mark.usefixtures("aborting_binary")
def test_a_bad_first_image_fails_in_setup(tmp_path, capfd):
    dataset = write_dataset(tmp_path, 3, (3, 4))
    dataset.files[0].unlink()
    with pytest.raises(DataError) as info, data_net(tmp_path, base(dataset)):
        pass
    assert f"{dataset.list_path}:1: image '{dataset.files[0]}' does not exist" in str(info.value)
    assert f"caffe_layers: {LAYER}.setup failed:\nTraceback" in capfd.readouterr().err


@pytest.mark.parametrize("workers", [0, 2])
def test_on_error_skip_replaces_a_bad_image_by_the_next_one(tmp_path, capfd, workers):
    dataset = write_dataset(tmp_path, 6, (3, 4))
    dataset.files[2].unlink()
    params = base(dataset, batch_size=3, on_error="skip", workers=workers)
    batches = run(tmp_path, params, 4)  # two epochs
    assert label_sequence(batches) == [0, 1, 3, 3, 4, 5] * 2
    for batch in batches:  # never a zero image: every row is its sample's pixels
        for data, label in zip(batch["data"], batch["label"]):
            assert np.array_equal(data, dataset.images[int(label)].transpose(2, 0, 1))
    err = capfd.readouterr().err
    skipped = (f"caffe_layers: {LAYER} skipped sample 2: {dataset.list_path}:3: image "
               f"'{dataset.files[2]}' does not exist")
    assert f"{skipped} (skips so far: 1, of 1 distinct sample)" in err
    assert err.count(skipped) == 1, "a sample skipped every epoch is printed once"


def test_on_error_skip_skips_a_bad_first_image_too(tmp_path, capfd):
    dataset = write_dataset(tmp_path, 3, (3, 4))
    corrupt(dataset, 0, "garbage")
    [batch] = run(tmp_path, base(dataset, batch_size=3, on_error="skip"), 1)
    assert batch["label"].tolist() == [1, 1, 2]
    assert "skipped sample 0:" in capfd.readouterr().err


@pytest.mark.usefixtures("aborting_binary")
def test_on_error_skip_gives_up_when_every_image_is_missing(tmp_path, capfd):
    lines = [f"nowhere/img_{i}.png {i}" for i in range(5)]
    list_path = write_list(tmp_path / "list.txt", lines)
    params = {"source": str(list_path), "batch_size": 2, "workers": 0, "on_error": "skip",
              "root_folder": f"{tmp_path}/"}
    with pytest.raises(DataError) as info, data_net(tmp_path, params):
        pass
    message = str(info.value)
    assert message.startswith(f"on_error: skip gave up: none of the first 5 images of "
                              f"{list_path} can be read (the first: {list_path}:1: image ")
    assert message.endswith("is root_folder right?")
    assert f"{LAYER}.setup failed" in capfd.readouterr().err


def test_on_error_skip_gives_up_after_a_long_run_of_bad_images(tmp_path):
    dataset = write_dataset(tmp_path, 1, (3, 4))
    missing = [f"{tmp_path}/missing_{i}.png {i + 1}" for i in range(150)]
    write_list(dataset.list_path, [f"{dataset.names[0]} 0"] + missing)
    with data_net(tmp_path, base(dataset, batch_size=2, on_error="skip")) as net, \
            pytest.raises(DataError) as info:
        net.forward()
    assert str(info.value) == (f"on_error: skip gave up after 101 unreadable images in a row, "
                               f"starting at {dataset.list_path}:2; is root_folder right?")


def test_images_of_different_sizes_without_resize(tmp_path):
    dataset = write_dataset(tmp_path, 3, (8, 10), sizes=[(8, 10), (8, 10), (9, 10)])
    with data_net(tmp_path, base(dataset, batch_size=3)) as net, \
            pytest.raises(DataError) as info:
        net.forward()
    assert (f"{dataset.list_path}:3: image '{dataset.files[2]}' is 9x10 (HxW) but the first "
            f"image is 8x10; set new_height and new_width") in str(info.value)


def test_images_of_different_sizes_with_resize(tmp_path):
    dataset = write_dataset(tmp_path, 3, (8, 10), sizes=[(8, 10), (11, 7), (9, 10)])
    [batch] = run(tmp_path, base(dataset, batch_size=3, new_height=6, new_width=7), 1)
    assert batch["data"].shape == (3, 3, 6, 7)
    for row, image in enumerate(dataset.images):
        expected = cv2.resize(image, (7, 6)).astype(np.float32).transpose(2, 0, 1)
        assert np.array_equal(batch["data"][row], expected)


# --- bad settings, found in setup -----------------------------------------------------------------


def setup_error(tmp_path, params: dict) -> str:
    with pytest.raises(ConfigError) as info, data_net(tmp_path, params):
        pass
    return str(info.value)


def test_a_mean_file_of_the_wrong_size_names_the_likely_cause(tmp_path):
    """Without a resize in the layer the mean was likely computed with one, and vice versa."""
    dataset = write_dataset(tmp_path, 2, (8, 10))
    mean_file = write_mean(tmp_path / "mean.binaryproto", random_mean(3, 4, 4))
    assert setup_error(tmp_path, base(dataset, mean_file=mean_file)) == (
        "mean_file: the mean is (3, 4, 4) but the images are (3, 8, 10) (C, H, W) as stored "
        "(the layer does not resize: no new_height and new_width); the mean was likely computed "
        "with --new-height 4 --new-width 4: recompute it without them, or set new_height: 4 and "
        "new_width: 4 in the layer")
    resized = base(dataset, mean_file=write_mean(tmp_path / "stored.binaryproto",
                                                 random_mean(3, 8, 10)),
                   new_height=6, new_width=6)
    assert setup_error(tmp_path, resized) == (
        "mean_file: the mean is (3, 8, 10) but the images are (3, 6, 6) (C, H, W) after the "
        "layer's resize to new_height x new_width = 6x6; the mean was likely computed without "
        "--new-height 6 --new-width 6 (or at another size): recompute it with "
        "caffe-layers-compute-mean --new-height 6 --new-width 6")


def test_mean_file_and_mean_value_together(tmp_path):
    dataset = write_dataset(tmp_path, 2, (8, 10))
    mean_file = write_mean(tmp_path / "mean.binaryproto", random_mean(3, 8, 10))
    message = setup_error(tmp_path, base(dataset, mean_file=mean_file, mean_value=[1, 2, 3]))
    assert "  - mean_file, mean_value: give one of them, not both" in message


def test_crop_size_larger_than_the_image(tmp_path):
    dataset = write_dataset(tmp_path, 2, (8, 10))
    message = setup_error(tmp_path, base(dataset, crop_size=9))
    assert "crop_size: must be <= the image size after resize (got 9 > 8x10)" in message


@pytest.mark.usefixtures("aborting_binary")
def test_param_str_problems_are_reported_together_with_a_hint(tmp_path, capfd):
    dataset = write_dataset(tmp_path, 2, (8, 10))
    message = setup_error(tmp_path, {"source": str(dataset.list_path), "batch_size": 0,
                                     "crop_sise": 3, "scale": "1/255"})
    assert message.startswith(f"{LAYER} param_str has 3 problems:\n")
    assert "  - crop_sise: unknown key; did you mean 'crop_size'?" in message
    assert "  - batch_size: must be >= 1 (got 0)" in message
    assert f"  - scale: must be a number; write {1 / 255!r}" in message
    assert f"caffe_layers: {LAYER}.setup failed:\nTraceback" in capfd.readouterr().err


# --- reduced decoding, resuming, sharding, the summary line ---------------------------------------


def test_reduced_decode_keeps_the_shape_and_stays_close_to_the_full_decode(tmp_path):
    dataset = write_dataset(tmp_path, 4, (128, 128), ext=".jpg", smooth=True)
    params = base(dataset, new_height=32, new_width=32)
    [full] = run(tmp_path, params, 1)
    [reduced] = run(tmp_path, {**params, "reduced_decode": True}, 1)
    assert reduced["data"].shape == full["data"].shape == (4, 3, 32, 32)
    difference = np.abs(reduced["data"] - full["data"])
    # libjpeg's 1/4-scale decode averages 4x4 blocks where the bilinear resize of the full decode
    # samples 2x2 of them: on smooth images the two differ by ~0.55 grey levels on average
    # (measured on OpenCV 4.2 and 5). A bound of 2 leaves room for other libjpeg builds and is
    # far below a wrong decode (another region or image differs by tens of levels).
    assert difference.mean() < 2.0
    assert difference.max() > 0, "reduced_decode: true should decode differently"


def test_start_iter_with_iter_size_resumes_exactly(tmp_path):
    dataset = write_dataset(tmp_path, 7, (6, 7))
    params = base(dataset, batch_size=3, crop_size=4, mirror=True, shuffle=True, seed=5,
                  iter_size=2)
    uninterrupted = run(tmp_path, params, 10, caffe.TRAIN)
    resumed = run(tmp_path, {**params, "start_iter": 3}, 4, caffe.TRAIN)
    for got, expected in zip(resumed, uninterrupted[6:10]):
        assert got["data"].tobytes() == expected["data"].tobytes()
        assert got["label"].tobytes() == expected["label"].tobytes()
    assert uninterrupted[6]["data"].tobytes() != uninterrupted[0]["data"].tobytes()


def test_shards_are_disjoint_and_cover_each_epoch(tmp_path):
    samples, shards = 12, 3
    dataset = write_dataset(tmp_path, samples, (3, 4))
    per_rank = []
    for rank in range(shards):
        params = base(dataset, batch_size=2, shuffle=True, seed=4, shard_rank=rank,
                      shard_count=shards)
        per_rank.append(label_sequence(run(tmp_path, params, 4, caffe.TRAIN)))
    epoch_length = samples // shards
    for epoch in range(2):
        parts = [labels[epoch * epoch_length:(epoch + 1) * epoch_length] for labels in per_rank]
        together = [label for part in parts for label in part]
        assert sorted(together) == list(range(samples)), f"epoch {epoch}: {parts}"


def test_setup_prints_a_one_line_summary(tmp_path, capfd):
    dataset = write_dataset(tmp_path, 6, (8, 10))
    run(tmp_path, base(dataset, batch_size=2), 1)
    out = capfd.readouterr().out
    assert (f"caffe_layers: {LAYER} (TEST): 6 images from {dataset.list_path}; batch "
            f"(2, 3, 8, 10), 0 workers (in-process)") in out
    run(tmp_path, base(dataset, batch_size=2, crop_size=4, workers=1, shuffle=True), 1,
        caffe.TRAIN)
    [line] = [line for line in capfd.readouterr().out.splitlines() if LAYER in line]
    assert line.startswith(f"caffe_layers: {LAYER} (TRAIN): 6 images from {dataset.list_path}; "
                           f"batch (2, 3, 4, 4), 1 worker ({default_start_method()}, pids ")
    assert line.endswith(", prefetch 4, shuffled (seed 0)")


# --- the example net, run by the runner -----------------------------------------------------------


def test_the_imagelist_solver_runs_under_the_runner(tmp_path):
    write_demo_data(tmp_path)
    (tmp_path / "demo_output").mkdir()  # the solver's snapshot_prefix folder, as make demo makes
    (tmp_path / "prototxt").mkdir()
    for name in ("imagelist_train_val.prototxt", "imagelist_solver.prototxt"):
        shutil.copy(REPO / "prototxt" / name, tmp_path / "prototxt" / name)
    result = subprocess.run(
        [sys.executable, "-m", "caffe_layers.testing.runner", "prototxt/imagelist_solver.prototxt",
         "--max-iter", "20"], cwd=tmp_path, env=SUBPROCESS_ENV, capture_output=True, text=True,
        timeout=120, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert any(line.startswith(f"caffe_layers: {LAYER} (TRAIN): 48 images from "
                               f"demo_data/train.txt; batch (16, 3, 56, 56)") for line in lines)
    assert any(line.startswith(f"caffe_layers: {LAYER} (TEST): 16 images from "
                               f"demo_data/val.txt; batch (8, 3, 56, 56)") for line in lines)
    log = result.stderr.splitlines()  # the runner logs to stderr, as Caffe's glog does
    assert [line for line in log if "Testing net" in line] == ["Iteration 0, Testing net (#0)"]
    assert any(line.startswith("Iteration 0 (") and line.endswith("img/s") for line in log)
    assert any(line.startswith("Optimization Done. 20 iterations") for line in log)


def test_demo_data_mean_is_the_training_images_mean(tmp_path):
    from caffe_layers.binaryproto import read_mean

    folder = write_demo_data(tmp_path, train=4, val=2, size=(6, 5))
    images = [cv2.imread(str(folder / "train" / f"img_{i:03d}.png")) for i in range(4)]
    assert np.allclose(read_mean(str(folder / "mean.binaryproto")), mean_of(images))
    assert (folder / "val.txt").read_text().splitlines()[1] == "val/img_001.png 1"


def test_write_image_round_trips(tmp_path):
    image = np.arange(24, dtype=np.uint8).reshape(2, 4, 3)
    assert np.array_equal(cv2.imread(str(write_image(tmp_path / "a.png", image))), image)


# --- messages that name the fix --------------------------------------------------------------


def test_a_root_folder_without_its_slash_says_so(tmp_path):
    """``root_folder: my_photos`` makes 'my_photosdog/img.png': the error names the fix."""
    dataset = write_dataset(tmp_path, 2, (3, 4), root_folder=str(tmp_path))
    root = str(tmp_path)
    with pytest.raises(DataError) as info, data_net(tmp_path, base(dataset, root_folder=root)):
        pass
    assert str(info.value) == (
        f"{dataset.list_path}:1: image '{root}images/img_000.png' does not exist; root_folder "
        f"is '{root}' without a trailing '/', and '{root}/images/img_000.png' exists: end "
        f"root_folder with '/' (the list's paths are appended to it as written, as in Caffe)")


def test_a_missing_image_says_what_root_folder_is(tmp_path):
    dataset = write_dataset(tmp_path, 2, (3, 4), root_folder=str(tmp_path))
    dataset.files[0].unlink()
    with pytest.raises(DataError) as info, \
            data_net(tmp_path, base(dataset, root_folder=f"{tmp_path}/")):
        pass
    assert str(info.value) == (
        f"{dataset.list_path}:1: image '{tmp_path}/images/img_000.png' does not exist; the "
        f"list's paths are appended to root_folder (now '{tmp_path}/')")


def test_a_yaml_tag_in_param_str(tmp_path):
    dataset = write_dataset(tmp_path, 2, (3, 4))
    param_str = f"{{source: {dataset.list_path}, batch_size: !!python/object/apply:int [4]}}"
    (tmp_path / "net.prototxt").write_text(
        f'layer {{ name: "data" type: "Python" top: "data" top: "label" python_param {{ '
        f'module: "caffe_layers.layers" layer: "{LAYER}" param_str: "{param_str}" }} }}\n')
    with pytest.raises(ConfigError) as info:
        caffe.Net(str(tmp_path / "net.prototxt"), caffe.TEST)
    close_all()
    assert str(info.value) == (
        "tags are not allowed in param_str (key 'batch_size' is tagged "
        "'!!python/object/apply:int'); write the plain value without the tag, e.g. param_str: "
        "\"{source: train.txt, batch_size: 64}\"")


# --- a batch larger than the dataset -----------------------------------------------------------


def test_a_batch_larger_than_the_dataset_warns_at_setup(tmp_path, capfd):
    dataset = write_dataset(tmp_path, 3, (3, 4))
    with data_net(tmp_path, base(dataset, batch_size=16)) as net:
        net.forward()
        assert net.blobs["label"].data.tolist() == [0, 1, 2] * 5 + [0]
    assert (
        f"caffe_layers: {LAYER} (TEST): warning: batch_size 16 is larger than the 3 images of "
        f"the dataset: each batch of 16 holds the 3 images 5.3 times; lower batch_size, or add "
        f"images") in capfd.readouterr().err.splitlines()  # glog's lines too


def test_a_batch_larger_than_the_shard_warns_naming_it(tmp_path, capfd):
    dataset = write_dataset(tmp_path, 5, (3, 4))
    with data_net(tmp_path, base(dataset, batch_size=4, shard_rank=0, shard_count=2)):
        pass
    assert (
        f"caffe_layers: {LAYER} (TEST): warning: batch_size 4 is larger than the 3 images of "
        f"shard 0 of 2 (5 in the dataset): each batch of 4 holds the 3 images 1.3 times; lower "
        f"batch_size, or add images") in capfd.readouterr().err.splitlines()  # glog's lines too


def test_no_warning_when_the_batch_fits(tmp_path, capfd):
    dataset = write_dataset(tmp_path, 4, (3, 4))
    with data_net(tmp_path, base(dataset, batch_size=4)):
        pass
    assert "warning:" not in "".join(line for line in capfd.readouterr().err.splitlines()
                                     if line.startswith("caffe_layers:"))
