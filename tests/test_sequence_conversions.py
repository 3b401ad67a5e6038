"""SequenceDataLayer: what a keras batch becomes, short batches, errors, and the generator rules.

The Sequences here are the small ones of tests/sequence_cases.py; tests/keras_style.py has the
user-style code.
"""

from __future__ import annotations

import random
import traceback

import numpy as np
import pytest
from keras_style import write_npy_samples
from layer_nets import data_net, forward, read, setup_error
from sequence_nets import LAYER, npy_sequence, param_str

from caffe_layers.errors import ConfigError, DataError, WorkerError


def rows(kind="xy", workers=0, **keys) -> str:
    kwargs = keys.pop("kwargs", {})
    cls = keys.pop("cls", "Rows")
    return param_str(sequence=f"sequence_cases:{cls}", kwargs={"kind": kind, **kwargs},
                     workers=workers, **keys)


# --- conversions ---------------------------------------------------------------------------------


def test_float64_int_and_bool_arrays_become_float32_with_their_values(tmp_path):
    out = read(tmp_path, LAYER, rows(), 3)
    assert out["data"].dtype == np.float32 and out["label"].dtype == np.float32
    assert out["data"][:10, 0].tolist() == list(range(10))
    assert out["label"][:10].tolist() == [k % 3 for k in range(10)]
    bools = read(tmp_path, LAYER, rows("bools"), 1)
    assert bools["data"][:, 0].tolist() == [0, 0, 0, 0]  # rows 0-3 > 4: False
    assert read(tmp_path, LAYER, rows("label_list"), 1)["label"].tolist() == [0, 1, 2, 0]


@pytest.mark.parametrize(("kind", "tops", "shapes"), [
    ("xyw", ("data", "label", "sample_weight"), [(4, 2), (4,), (4,)]),
    ("x", ("data",), [(4, 2)]),
    ("lists", ("data0", "data1", "label0", "label1"), [(4, 2), (4, 2), (4,), (4,)]),
    ("dicts", ("image", "extra", "cls"), [(4, 2), (4, 2), (4,)]),
])
def test_keras_outputs_map_onto_tops_in_order(tmp_path, kind, tops, shapes, capsys):
    with data_net(tmp_path, LAYER, rows(kind), tops) as net:
        assert [tuple(net.blobs[t].shape) for t in tops] == shapes
        out = forward(net, 1, tops)
    assert out[tops[0]][:, 0].tolist() == [0, 1, 2, 3]
    assert ", ".join(f"{t} {s}" for t, s in zip(tops, shapes)) in capsys.readouterr().out


def test_tops_pick_arrays_by_name_in_any_order(tmp_path):
    with data_net(tmp_path, LAYER, rows("dicts", tops=["cls", "extra"]), ("a", "b")) as net:
        out = forward(net, 1, ("a", "b"))
    assert out["a"].tolist() == [0, 1, 2, 0]
    assert out["b"][:, 0].tolist() == [0, -1, -2, -3]
    error = setup_error(tmp_path, LAYER, rows("dicts", tops=["cls", "mask"]), ("a", "b"))
    assert isinstance(error, ConfigError)
    assert "tops: mask is not an array of sequence 'sequence_cases:Rows' batch index 0 (it has " \
           "image, extra, cls)" in str(error)


@pytest.mark.parametrize(("layout", "shape", "said"), [
    ("auto", (4, 3, 5, 7), "from channels-last (4, 5, 7, 3) (detected, layout: auto)"),
    ("NHWC", (4, 3, 5, 7), "from channels-last (4, 5, 7, 3) (layout: NHWC)"),
    ("NCHW", (4, 5, 7, 3), "taken as NCHW"),
])
def test_layout_moves_the_channels_to_axis_1_and_says_so(tmp_path, layout, shape, said, capsys):
    keys = {"kwargs": {"shape": [5, 7, 3]}, "layout": layout}
    with data_net(tmp_path, LAYER, rows(**keys)) as net:
        assert tuple(net.blobs["data"].shape) == shape
        data = forward(net, 1)["data"]
    assert f"data {shape} {said}" in capsys.readouterr().out
    assert np.all(data == np.arange(4).reshape(4, 1, 1, 1))


def test_layout_transposes_pixels_not_just_the_shape(tmp_path):
    from keras_style import write_images

    paths = write_images(tmp_path, 4, height=6, width=8)
    keys = {"paths": paths, "labels": [0] * 4, "batch_size": 4, "flip": False}
    data = read(tmp_path, LAYER, param_str(sequence="keras_style:ImageSequence", kwargs=keys,
                                           workers=0), 1)["data"]
    rows_, cols = np.mgrid[0:6, 0:8]
    assert np.array_equal(data[2] * 255, np.stack([np.full((6, 8), 2), rows_, cols]))


def test_auto_leaves_an_ambiguous_layout_and_says_so(tmp_path, capsys):
    with data_net(tmp_path, LAYER, rows(kwargs={"shape": [3, 5, 4]})) as net:
        assert tuple(net.blobs["data"].shape) == (4, 3, 5, 4)
    assert "data (4, 3, 5, 4) taken as NCHW" in capsys.readouterr().out


def test_nhwc_without_an_image_input_is_refused(tmp_path):
    error = setup_error(tmp_path, LAYER, rows(layout="NHWC"))
    assert isinstance(error, ConfigError)
    assert "layout: NHWC, but no input of sequence 'sequence_cases:Rows' batch index 0 has 4 " \
           "or more axes (data (4, 2), label (4,))" in str(error)


def test_one_hot_labels_become_class_indices_or_are_kept(tmp_path):
    assert read(tmp_path, LAYER, rows("onehot"), 3)["label"][:10].tolist() == \
        [k % 3 for k in range(10)]
    with data_net(tmp_path, LAYER, rows("onehot", labels="keep")) as net:
        assert tuple(net.blobs["label"].shape) == (4, 3)
        assert np.array_equal(forward(net, 1)["label"], np.eye(3)[[0, 1, 2, 0]])


def test_a_target_that_is_not_one_hot_is_an_error_naming_the_row(tmp_path):
    error = setup_error(tmp_path, LAYER, rows("soft"))
    assert isinstance(error, DataError)
    assert "sequence 'sequence_cases:Rows' batch index 0: target 'label' row 0 is not one-hot " \
           "([0.33333333 0.33333333 0.33333333]); labels: index expects to_categorical rows" \
           in str(error)
    assert "set labels: keep to pass the (N, 3) array as it is" in str(error)


# --- batch size and short batches ---------------------------------------------------------------


def test_the_sequence_decides_the_batch_size(tmp_path):
    with data_net(tmp_path, LAYER, rows(kwargs={"batch_size": 5})) as net:
        assert tuple(net.blobs["data"].shape) == (5, 2)
    assert tuple(read(tmp_path, LAYER, rows(batch_size=4), 1)["data"].shape) == (4, 2)
    error = setup_error(tmp_path, LAYER, rows(batch_size=8))
    assert isinstance(error, ConfigError)
    assert "batch_size: 8, but sequence 'sequence_cases:Rows' batch index 0 has 4 rows; the " \
           "Sequence decides the batch size: remove batch_size or make it 4" in str(error)


@pytest.mark.parametrize("workers", [0, 2])
def test_pad_repeats_the_rows_of_the_short_last_batch(tmp_path, workers, capsys):
    out = read(tmp_path, LAYER, rows(workers=workers), 6)["data"][:, 0].reshape(6, 4)
    assert out.tolist() == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9, 8, 9]] * 2
    assert "3 batches per epoch (the last has 2 of 4 rows: padded by repeating them)" in \
        capsys.readouterr().out


def test_drop_leaves_the_short_last_batch_out_of_every_epoch(tmp_path, capsys):
    out = read(tmp_path, LAYER, rows(partial_batch="drop", shuffle=True), 6)
    ids = out["data"][:, 0].reshape(3, 2, 4)
    assert all(sorted(epoch[:, 0].tolist()) == [0, 4] for epoch in ids)
    assert "(the last has 2 of 4 rows: left out)" in capsys.readouterr().out


def test_error_refuses_a_short_last_batch_at_setup(tmp_path):
    error = setup_error(tmp_path, LAYER, rows(partial_batch="error"))
    assert isinstance(error, ConfigError)
    assert "sequence 'sequence_cases:Rows' batch index 2, the last,: has 2 rows, fewer than the " \
           "batch size 4; partial_batch: error refuses it" in str(error)


def test_a_short_batch_in_the_middle_is_padded_or_named(tmp_path):
    keys = {"cls": "ShortInTheMiddle", "kwargs": {"n": 12}}
    padded = read(tmp_path, LAYER, rows(**keys), 3)["data"][:, 0].reshape(3, 4)
    assert padded[1].tolist() == [4, 5, 6, 4]
    with data_net(tmp_path, LAYER, rows(partial_batch="drop", workers=1, **keys)) as net, \
            pytest.raises(WorkerError) as info:
        forward(net, 2)
    assert "batch index 1 (epoch 0): has 3 rows, fewer than the batch size 4; partial_batch: " \
           "drop leaves out only the last batch index, found short at setup" in str(info.value)


# --- errors --------------------------------------------------------------------------------------


@pytest.mark.parametrize("workers", [0, 2])
def test_getitem_raising_names_class_index_and_the_users_traceback(tmp_path, workers):
    keys = {"cls": "RaisesAt", "kwargs": {"bad": 1}, "workers": workers}
    with data_net(tmp_path, LAYER, rows(**keys)) as net, \
            pytest.raises(WorkerError if workers else DataError) as info:
        forward(net, 3)
    assert "sequence 'sequence_cases:RaisesAt' batch index 1 (epoch 0): __getitem__(1) raised " \
           "ValueError: cannot decode file number 1" in str(info.value)
    trace = info.value.remote_traceback if workers else "".join(
        traceback.format_exception(DataError, info.value, info.value.__traceback__))
    assert "in decode_broken_file" in trace


def test_a_batch_of_another_shape_names_the_array_and_what_was_expected(tmp_path):
    with data_net(tmp_path, LAYER, rows(cls="ShapeChangesAt", workers=1)) as net, \
            pytest.raises(WorkerError) as info:
        forward(net, 2)
    assert "sequence 'sequence_cases:ShapeChangesAt' batch index 1 (epoch 0): array 'data' has " \
           "shape (4, 3), expected (N,) + (2,) with N <= 4, like batch 0" in str(info.value)


@pytest.mark.parametrize(("keys", "error", "message"), [
    ({"sequence": "sequence_cases:NoLength"}, ConfigError,
     "built a NoLength with no __len__; a keras Sequence needs __len__ (batches per epoch) and "
     "__getitem__(idx) returning one batch (X, y)"),
    ({"sequence": "sequence_cases:NoGetitem"}, ConfigError, "with no __getitem__"),
    ({"sequence": "sequence_cases:Rows", "kwargs": {"kind": "four"}}, DataError,
     "batch index 0: returned a tuple of 4 items; expected X, (X, y) or (X, y, sample_weight)"),
    ({"sequence": "sequence_cases:Rows", "kwargs": {"n": 0}}, DataError,
     "it has 0 batches per epoch; it needs at least 1"),
    ({}, ConfigError, "sequence, generator: give exactly one of them"),
    ({"sequence": "sequence_cases"}, ConfigError, "sequence: must be 'module:Class'"),
    ({"generator": "sequence_cases:image_batches", "shuffle": True}, ConfigError,
     "shuffle: a generator is not indexed, so it cannot shuffle or resume; use sequence:"),
    ({"generator": "sequence_cases:image_batches", "kwargs": {"worker_id": 1}}, ConfigError,
     "kwargs: worker_id is set by the layer for each worker; remove it"),
    ({"generator": "sequence_cases:image_batches", "kwargs": {"workers": 2}}, ConfigError,
     "kwargs: workers is set by the layer for each worker; remove it"),
])
def test_setup_errors(tmp_path, keys, error, message):
    found = setup_error(tmp_path, LAYER, param_str(**keys))
    assert isinstance(found, error), repr(found)
    assert message in str(found)


def test_a_pydataset_with_num_batches_and_a_factory_function_work(tmp_path):
    out = read(tmp_path, LAYER, rows(cls="PyDatasetLike"), 3)
    assert out["data"][:10, 0].tolist() == list(range(10))
    root = write_npy_samples(tmp_path / "npy", 8)["root"]
    factory = param_str(sequence="keras_style:training_generator",
                        kwargs={"root": root, "n": 8, "batch_size": 4})
    out = read(tmp_path, LAYER, factory, 2)
    assert sorted(out["data"][:, 0, 0, 0].tolist()) == list(range(8))


def test_the_layer_leaves_the_processes_global_generators_alone(tmp_path):
    source = npy_sequence(tmp_path)
    np.random.seed(123)
    random.seed(123)
    state = np.random.get_state()[1].copy(), random.getstate()
    read(tmp_path, LAYER, source.params(workers=0), 4)
    assert np.array_equal(np.random.get_state()[1], state[0])
    assert random.getstate() == state[1]
