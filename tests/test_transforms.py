"""Caffe's DataTransformer: the vectorised ``apply`` against Caffe's per-pixel formula, bit for bit.

``caffe_reference`` below is the parity reference: the loop of Caffe's
``DataTransformer::Transform(const cv::Mat&, Blob*)`` written out in plain Python over float32
scalars (crop, subtract the mean at the same source pixel, multiply by scale, mirror the column).
"""

from __future__ import annotations

import dataclasses
import pickle

import cv2
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from caffe_layers.binaryproto import write_blobproto
from caffe_layers.errors import ConfigError, DataError
from caffe_layers.transforms import ImageTransform, check_resize, resize


def caffe_reference(image, crop_size, h_off, w_off, mirror, mean, scale):
    """Caffe's per-pixel loop: out[c, h, w'] = (img[h_off+h, w_off+w, c] - mean) * scale."""
    img = image if image.ndim == 3 else image[:, :, None]
    height, width, channels = img.shape
    out_h = crop_size or height
    out_w = crop_size or width
    scale = np.float32(scale)
    out = np.full((channels, out_h, out_w), np.nan, np.float32)
    for c in range(channels):
        for h in range(out_h):
            for w in range(out_w):
                pixel = np.float32(img[h_off + h, w_off + w, c])
                if mean is None:
                    value = pixel * scale
                elif isinstance(mean, tuple):
                    value = (pixel - np.float32(mean[c] if len(mean) > 1 else mean[0])) * scale
                else:
                    value = (pixel - np.float32(mean[c, h_off + h, w_off + w])) * scale
                out[c, h, out_w - 1 - w if mirror else w] = value
    return out


def assert_bits(actual, expected):
    assert actual.dtype == np.float32
    assert expected.dtype == np.float32
    assert actual.shape == expected.shape
    assert actual.tobytes() == expected.tobytes(), np.abs(actual - expected).max()


def random_image(rng, height, width, channels):
    shape = (height, width) if channels == 0 else (height, width, channels)
    return rng.integers(0, 256, shape, dtype=np.uint8)


def random_mean(rng, channels, height, width):
    return (rng.random((channels, height, width)) * 255).astype(np.float32)


def run(transform, image, h_off, w_off, mirror):
    img = image if image.ndim == 3 else image[:, :, None]
    shape = transform.output_shape(img.shape[2], img.shape[0], img.shape[1])
    out = np.full(shape, np.nan, np.float32)
    transform.apply(image, h_off, w_off, mirror, out)
    return out


# --- parity with the reference ---------------------------------------------------------------


@pytest.mark.parametrize("mirror", [False, True])
def test_test_phase_centre_crop_mean_file_scale(mirror):
    rng = np.random.default_rng(0)
    image = random_image(rng, 9, 12, 3)
    mean = random_mean(rng, 3, 9, 12)
    transform = ImageTransform(crop_size=5, mirror=mirror, mean=mean, scale=0.017, train=False)
    h_off, w_off, _ = transform.decide(np.random.default_rng(1), 9, 12)
    assert (h_off, w_off) == (2, 3)
    assert_bits(run(transform, image, h_off, w_off, mirror),
                caffe_reference(image, 5, 2, 3, mirror, mean, 0.017))


@pytest.mark.parametrize("mirror", [False, True])
@pytest.mark.parametrize("mean_value", [(104.0, 117.0, 123.0), (103.939, 116.779, 123.68),
                                        (127.5,)])
@pytest.mark.parametrize("scale", [1.0, 0.00390625, 1 / 255, 0.017])
def test_mean_values(mirror, mean_value, scale):
    image = random_image(np.random.default_rng(2), 8, 7, 3)
    transform = ImageTransform(crop_size=6, mirror=True, mean=mean_value, scale=scale)
    assert_bits(run(transform, image, 1, 0, mirror),
                caffe_reference(image, 6, 1, 0, mirror, mean_value, scale))


@pytest.mark.parametrize("gray_shape", ["HW", "HW1"])
@pytest.mark.parametrize("mean_kind", ["none", "value", "file"])
@pytest.mark.parametrize("mirror", [False, True])
def test_one_channel(gray_shape, mean_kind, mirror):
    rng = np.random.default_rng(3)
    image = random_image(rng, 6, 5, 0 if gray_shape == "HW" else 1)
    mean = {"none": None, "value": (77.25,), "file": random_mean(rng, 1, 6, 5)}[mean_kind]
    transform = ImageTransform(crop_size=4, mirror=True, mean=mean, scale=0.5, train=False)
    assert transform.output_shape(1, 6, 5) == (1, 4, 4)
    assert_bits(run(transform, image, 1, 0, mirror),
                caffe_reference(image, 4, 1, 0, mirror, mean, 0.5))


@pytest.mark.parametrize("scale", [1.0, 0.25, 3.3])
@pytest.mark.parametrize("mirror", [False, True])
def test_no_crop_no_mean(scale, mirror):
    image = random_image(np.random.default_rng(4), 5, 6, 3)
    transform = ImageTransform(scale=scale)
    assert transform.decide(np.random.default_rng(0), 5, 6) == (0, 0, False)
    assert_bits(run(transform, image, 0, 0, mirror),
                caffe_reference(image, 0, 0, 0, mirror, None, scale))


def test_mean_file_without_crop_mirrored():
    rng = np.random.default_rng(5)
    image = random_image(rng, 4, 7, 3)
    mean = random_mean(rng, 3, 4, 7)
    transform = ImageTransform(mirror=True, mean=mean)
    assert_bits(run(transform, image, 0, 0, True),
                caffe_reference(image, 0, 0, 0, True, mean, 1.0))


def test_writes_only_its_row_of_a_batch():
    rng = np.random.default_rng(6)
    image = random_image(rng, 10, 10, 3)
    mean = random_mean(rng, 3, 10, 10)
    transform = ImageTransform(crop_size=7, mean=mean, scale=2.0)
    batch = np.full((3, 3, 7, 7), -7.0, np.float32)
    transform.apply(image, 3, 2, True, batch[1])
    assert_bits(batch[1], caffe_reference(image, 7, 3, 2, True, mean, 2.0))
    assert (batch[0] == -7).all()
    assert (batch[2] == -7).all()


def test_mean_file_values_are_float32_as_in_caffe():
    image = np.full((2, 2, 1), 200, np.uint8)
    mean = np.full((1, 2, 2), 0.1, np.float64)  # rounded to float32 on the way in
    out = run(ImageTransform(mean=mean), image, 0, 0, False)
    assert_bits(out, np.full((1, 2, 2), np.float32(200) - np.float32(0.1), np.float32))


# --- property tests ----------------------------------------------------------------------------

MEAN_KINDS = ["none", "one value", "per channel", "file"]


@st.composite
def cases(draw):
    height = draw(st.integers(1, 9))
    width = draw(st.integers(1, 9))
    channels = draw(st.sampled_from([1, 3]))
    crop = draw(st.integers(0, min(height, width)))
    kind = draw(st.sampled_from(MEAN_KINDS))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    image = random_image(rng, height, width, channels)
    mean = {"none": None, "one value": (float(rng.random() * 255),),
            "per channel": tuple(float(v) for v in rng.random(channels) * 255),
            "file": random_mean(rng, channels, height, width)}[kind]
    scale = draw(st.sampled_from([1.0, 0.017, 1 / 255, 2.5]))
    return image, crop, mean, scale, seed


@settings(deadline=None, max_examples=150, database=None)
@given(cases())
def test_train_crops_stay_inside_and_match_the_reference(case):
    image, crop, mean, scale, seed = case
    height, width = image.shape[:2]
    transform = ImageTransform(crop_size=crop, mirror=True, mean=mean, scale=scale, train=True)
    h_off, w_off, mirror = transform.decide(np.random.default_rng(seed), height, width)
    assert 0 <= h_off <= height - crop
    assert 0 <= w_off <= width - crop
    if not crop:
        assert (h_off, w_off) == (0, 0)
    out = run(transform, image, h_off, w_off, mirror)
    assert_bits(out, caffe_reference(image, crop, h_off, w_off, mirror, mean, scale))
    flipped = run(transform, image, h_off, w_off, not mirror)
    assert_bits(flipped, np.ascontiguousarray(out[:, :, ::-1]))


@settings(deadline=None, max_examples=150, database=None)
@given(cases(), st.booleans())
def test_undo_gives_back_the_crop_as_the_net_sees_it(case, mirror):
    """undo is the exact inverse of mean and scale: the crop (mirrored as applied) to rounding."""
    image, crop, mean, scale, seed = case
    height, width, channels = image.shape
    transform = ImageTransform(crop_size=crop, mirror=True, mean=mean, scale=scale, train=True)
    h_off, w_off, _ = transform.decide(np.random.default_rng(seed), height, width)
    out = run(transform, image, h_off, w_off, mirror)
    pixels = transform.undo(out, h_off, w_off, mirror)
    size = crop or height, crop or width
    expected = image[h_off:h_off + size[0], w_off:w_off + size[1]].transpose(2, 0, 1)
    expected = expected[:, :, ::-1] if mirror else expected
    assert pixels.dtype == np.float64
    assert np.abs(pixels - expected).max() < 1e-3


def test_decide_returns_a_named_crop():
    crop = ImageTransform(crop_size=3, mirror=True).decide(np.random.default_rng(1), 9, 9)
    assert crop == (crop.h_off, crop.w_off, crop.mirror)


@settings(deadline=None, max_examples=150, database=None)
@given(height=st.integers(1, 400), width=st.integers(1, 400), data=st.data(),
       seed=st.integers(0, 2**32 - 1), mirror=st.booleans())
def test_test_phase_offsets_are_the_centre(height, width, data, seed, mirror):
    crop = data.draw(st.integers(0, min(height, width)))
    transform = ImageTransform(crop_size=crop, mirror=mirror, train=False)
    h_off, w_off, _ = transform.decide(np.random.default_rng(seed), height, width)
    if crop:
        assert (h_off, w_off) == ((height - crop) // 2, (width - crop) // 2)
    else:
        assert (h_off, w_off) == (0, 0)


@pytest.mark.parametrize("train", [True, False])
def test_mirror_probability_is_about_one_half_in_both_phases(train):
    transform = ImageTransform(crop_size=3, mirror=True, train=train)
    mirrored = sum(transform.decide(np.random.default_rng(seed), 5, 5)[2] for seed in range(400))
    assert 0.3 * 400 < mirrored < 0.7 * 400


def test_no_mirror_never_mirrors():
    transform = ImageTransform(crop_size=3, mirror=False)
    assert not any(transform.decide(np.random.default_rng(seed), 5, 5)[2] for seed in range(100))


def test_train_offsets_cover_the_whole_range():
    transform = ImageTransform(crop_size=3, train=True)
    offsets = {transform.decide(np.random.default_rng(seed), 5, 7)[:2] for seed in range(400)}
    assert offsets == {(h, w) for h in range(3) for w in range(5)}


def test_decide_depends_only_on_the_generator():
    transform = ImageTransform(crop_size=3, mirror=True)
    first = [transform.decide(np.random.default_rng(seed), 9, 9) for seed in range(20)]
    again = [transform.decide(np.random.default_rng(seed), 9, 9) for seed in range(20)]
    assert first == again
    assert len(set(first)) > 1
    assert all(type(h) is int and type(w) is int and type(m) is bool for h, w, m in first)


# --- configuration and errors -----------------------------------------------------------------


def test_output_shape():
    assert ImageTransform().output_shape(3, 256, 300) == (3, 256, 300)
    assert ImageTransform(crop_size=227).output_shape(3, 256, 300) == (3, 227, 227)
    assert ImageTransform(crop_size=256).output_shape(1, 256, 256) == (1, 256, 256)


def test_crop_larger_than_image():
    with pytest.raises(ConfigError, match=r"crop_size: must be <= .* \(got 300 > 256x320\)"):
        ImageTransform(crop_size=300).output_shape(3, 256, 320)
    with pytest.raises(DataError, match="crop_size 300 is larger than the image"):
        ImageTransform(crop_size=300).decide(np.random.default_rng(0), 256, 320)


def test_mean_file_shape_must_match_the_resized_image():
    transform = ImageTransform(mean=np.zeros((3, 256, 256), np.float32))
    assert transform.output_shape(3, 256, 256) == (3, 256, 256)
    with pytest.raises(ConfigError, match=r"mean_file: the mean is \(3, 256, 256\) but the "
                                          r"images are \(3, 227, 227\)"):
        transform.output_shape(3, 227, 227)
    with pytest.raises(ConfigError, match=r"images are \(1, 256, 256\)"):
        transform.output_shape(1, 256, 256)


@pytest.mark.parametrize(("values", "channels", "ok"), [
    ((1.0,), 3, True), ((1.0,), 1, True), ((1.0, 2.0, 3.0), 3, True),
    ((1.0, 2.0), 3, False), ((1.0, 2.0, 3.0), 1, False),
])
def test_mean_value_count(values, channels, ok):
    transform = ImageTransform(mean=values)
    if ok:
        assert transform.output_shape(channels, 4, 4) == (channels, 4, 4)
    else:
        with pytest.raises(ConfigError, match=f"one per channel \\({channels}\\), got "
                                              f"{len(values)}"):
            transform.output_shape(channels, 4, 4)


def test_every_problem_is_reported_at_once():
    transform = ImageTransform(crop_size=10, mean=np.zeros((3, 4, 4), np.float32))
    with pytest.raises(ConfigError, match="crop_size.*; mean_file"):
        transform.output_shape(3, 8, 8)


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"crop_size": -1}, "crop_size: must be an integer >= 0"),
    ({"crop_size": 2.5}, "crop_size: must be an integer >= 0"),
    ({"scale": float("nan")}, "scale: must be a finite float32 number"),
    ({"scale": 1e40}, "scale: must be a finite float32 number"),
    ({"mean": ()}, "mean_value: give 1 value or one per channel, got none"),
    ({"mean": ("a",)}, "mean_value: must be finite numbers"),
    ({"mean": (1e39,)}, "mean_value: must be finite numbers"),
    ({"crop_size": "3"}, "crop_size: must be an integer"),
    ({"mean": (float("inf"),)}, "mean_value: must be finite"),
    ({"mean": np.zeros((4, 4), np.float32)}, r"must be a \(C, H, W\) array"),
])
def test_bad_parameters(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        ImageTransform(**kwargs)


def test_values_are_rounded_to_float32_like_caffe_proto_fields():
    transform = ImageTransform(mean=[103.939, 116.779], scale=0.017)
    assert transform.mean == (float(np.float32(103.939)), float(np.float32(116.779)))
    assert transform.scale == float(np.float32(0.017))


def test_apply_refuses_a_window_outside_the_image():
    transform = ImageTransform(crop_size=4)
    image = np.zeros((5, 5, 3), np.uint8)
    with pytest.raises(DataError, match=r"crop at \(2, 0\).*does not fit"):
        transform.apply(image, 2, 0, False, np.zeros((3, 4, 4), np.float32))
    with pytest.raises(DataError, match="into 1 channels does not fit"):
        transform.apply(image, 0, 0, False, np.zeros((1, 4, 4), np.float32))


def test_apply_refuses_an_image_of_another_size_than_the_mean():
    transform = ImageTransform(crop_size=4, mean=np.zeros((3, 6, 6), np.float32))
    with pytest.raises(DataError, match=r"mean file is \(3, 6, 6\).*image is \(5, 5, 3\)"):
        transform.apply(np.zeros((5, 5, 3), np.uint8), 0, 0, False,
                        np.zeros((3, 4, 4), np.float32))


def test_frozen_and_picklable():
    rng = np.random.default_rng(7)
    mean = random_mean(rng, 3, 6, 6)
    transform = ImageTransform(crop_size=4, mirror=True, mean=mean, scale=0.5)
    with pytest.raises(dataclasses.FrozenInstanceError):
        transform.crop_size = 3
    assert not transform.mean.flags.writeable
    copy = pickle.loads(pickle.dumps(transform))
    image = random_image(rng, 6, 6, 3)
    for mirror in (False, True):
        assert_bits(run(copy, image, 1, 2, mirror), run(transform, image, 1, 2, mirror))
    assert "mean file (3, 6, 6)" in repr(transform)


def test_mean_array_is_copied():
    mean = np.zeros((1, 2, 2), np.float32)
    transform = ImageTransform(mean=mean)
    mean[...] = 50
    assert_bits(run(transform, np.full((2, 2, 1), 60, np.uint8), 0, 0, False),
                np.full((1, 2, 2), 60, np.float32))


# --- from_params --------------------------------------------------------------------------------


def test_from_params_loads_the_mean_file(tmp_path):
    mean = random_mean(np.random.default_rng(8), 3, 5, 5)
    path = tmp_path / "mean.binaryproto"
    write_blobproto(str(path), mean)
    transform = ImageTransform.from_params(crop_size=3, mean_file=str(path), train=False,
                                           channels=3)
    image = random_image(np.random.default_rng(9), 5, 5, 3)
    assert_bits(run(transform, image, 1, 1, False), caffe_reference(image, 3, 1, 1, False, mean, 1))


def test_from_params_mean_values():
    transform = ImageTransform.from_params(mean_value=[1, 2, 3], mirror=True, scale=2)
    assert transform.mean == (1.0, 2.0, 3.0)
    assert transform.mirror
    assert transform.scale == 2.0
    assert ImageTransform.from_params().mean is None


def test_from_params_refuses_mean_file_and_mean_value_together(tmp_path):
    with pytest.raises(ConfigError, match="mean_file, mean_value: give one of them"):
        ImageTransform.from_params(mean_file=str(tmp_path / "m.binaryproto"), mean_value=[1])


def test_from_params_mean_file_problems_are_config_errors(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        ImageTransform.from_params(mean_file=str(tmp_path / "missing.binaryproto"))
    path = tmp_path / "mean.binaryproto"
    write_blobproto(str(path), np.zeros((3, 2, 2), np.float32))
    with pytest.raises(ConfigError, match="has 3 channels"):
        ImageTransform.from_params(mean_file=str(path), channels=1)


# --- resize ------------------------------------------------------------------------------------


@pytest.mark.parametrize(("height", "width", "problems"), [
    (0, 0, 0), (256, 256, 0), (1, 300, 0), (0, 256, 1), (256, 0, 1), (-1, 5, 1), (-1, -1, 2),
])
def test_check_resize(height, width, problems):
    found = check_resize(height, width)
    assert len(found) == problems
    assert all(("new_height" in p or "new_width" in p) for p in found)


def test_resize_is_opencv_bilinear():
    image = random_image(np.random.default_rng(10), 37, 50, 3)
    resized = resize(image, 20, 31)
    assert resized.shape == (20, 31, 3)
    assert np.array_equal(resized, cv2.resize(image, (31, 20), interpolation=cv2.INTER_LINEAR))


def test_resize_keeps_the_channel_axis_of_gray_images():
    image = random_image(np.random.default_rng(11), 12, 9, 1)
    resized = resize(image, 6, 4)
    assert resized.shape == (6, 4, 1)
    assert np.array_equal(resized[:, :, 0], cv2.resize(image[:, :, 0], (4, 6)))


def test_resize_zero_and_same_size_return_the_image():
    image = random_image(np.random.default_rng(12), 8, 9, 3)
    assert resize(image, 0, 0) is image
    assert resize(image, 8, 9) is image
    assert np.array_equal(cv2.resize(image, (9, 8)), image)  # what cv::resize gives there


def test_resize_refuses_mixed_zero():
    with pytest.raises(ConfigError, match="set both"):
        resize(np.zeros((4, 4, 3), np.uint8), 0, 4)


def test_a_mean_with_other_channels_names_the_gray_flag():
    transform = ImageTransform(mean=np.zeros((3, 4, 4), np.float32))
    with pytest.raises(ConfigError) as info:
        transform.output_shape(1, 4, 4, resized=True)
    assert str(info.value) == (
        "mean_file: the mean is (3, 4, 4) but the images are (1, 4, 4) (C, H, W); the mean has "
        "3 channel(s): recompute it with caffe-layers-compute-mean --gray (is_color: false)")
