"""MultiInputDataLayer: an image list plus rows attached from HDF5, through ``caffe.Net``.

Image ``i`` is a PNG of value ``i`` labelled ``i % 3``; feature row ``r`` is ``[r % 3, r, 0, 0]``
with label ``r % 3`` (sample_datasets), so every attached row shows its label and its row.
"""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest
from layer_nets import (
    assert_epochs_exactly_once,
    data_net,
    forward,
    read,
    setup_error,
)
from sample_datasets import write_features, write_image_list

from caffe_layers.errors import ConfigError

LAYER = "MultiInputDataLayer"
TOPS = ("data", "label", "feat")
N = 10


@pytest.fixture
def files(tmp_path):
    listing = write_image_list(tmp_path, N, classes=3)
    features = write_features(tmp_path / "feats.h5", 30, classes=3, chunks=4)
    return listing, features


def attach(features, **keys) -> str:
    keys = {"top": "feat", "hdf5": features, "dataset": "features", "label_dataset": "labels",
            **keys}
    return "{" + ", ".join(f"{k}: {v}" for k, v in keys.items()) + "}"


def params(listing, items, **keys) -> str:
    keys = {"source": listing, "batch_size": 4, "attach": f"[{', '.join(items)}]", **keys}
    return "{" + ", ".join(f"{k}: {v}" for k, v in keys.items()) + "}"


def image_ids(out: dict) -> np.ndarray:
    return out["data"][:, 0, 0, 0].astype(np.int64)


@pytest.mark.parametrize("workers", [0, 2])
def test_every_attached_row_has_the_sample_label(files, tmp_path, workers):
    listing, features = files
    with data_net(tmp_path, LAYER, params(listing, [attach(features)], shuffle="true",
                                          workers=workers), tops=TOPS) as net:
        assert tuple(net.blobs["feat"].shape) == (4, 4)
        out = forward(net, 15, TOPS)
    ids = image_ids(out)
    assert_epochs_exactly_once(ids, N, epochs=6)
    assert np.array_equal(out["label"], ids % 3)
    assert np.array_equal(out["feat"][:, 0], out["label"]), "an attached row has another label"
    rows = out["feat"][:, 1].astype(np.int64)
    assert np.array_equal(rows % 3, ids % 3)
    assert len(set(rows.tolist())) > 10, "the rows are not drawn at random"


def test_draws_are_seeded_per_sample_and_epoch(files, tmp_path):
    listing, features = files
    runs = [read(tmp_path, LAYER, params(listing, [attach(features)], shuffle="true", seed=3,
                                         workers=w), 10, TOPS) for w in (0, 1, 3)]
    for other in runs[1:]:
        assert np.array_equal(other["data"], runs[0]["data"])
        assert np.array_equal(other["feat"], runs[0]["feat"])
    ids, rows = image_ids(runs[0]), runs[0]["feat"][:, 1]
    per_epoch = [dict(zip(ids[e * N:(e + 1) * N].tolist(), rows[e * N:(e + 1) * N].tolist()))
                 for e in range(4)]
    changed = sum(per_epoch[0][i] != per_epoch[1][i] for i in range(N))
    assert changed > 0, "a sample gets the same row every epoch"


def test_images_and_labels_are_those_of_the_image_list_layer(files, tmp_path):
    listing, features = files
    common = f"source: {listing}, batch_size: 4, shuffle: true, seed: 2, mirror: true, " \
             f"crop_size: 6, workers: 0"
    plain = read(tmp_path, "ImageListDataLayer", f"{{{common}}}", 6)
    multi = read(tmp_path, LAYER, f"{{{common}, attach: [{attach(features)}]}}", 6, TOPS)
    assert np.array_equal(plain["data"], multi["data"])
    assert np.array_equal(plain["label"], multi["label"])


def test_match_index_takes_row_i_for_line_i(files, tmp_path):
    listing, features = files
    out = read(tmp_path, LAYER, params(listing, [attach(features, match="index")],
                                       shuffle="true", workers=2), 5, TOPS)
    assert np.array_equal(out["feat"][:, 1].astype(np.int64), image_ids(out))


def test_several_attachments(files, tmp_path):
    listing, features = files
    with h5py.File(tmp_path / "other.h5", "w") as f:
        f["vectors"] = np.arange(30 * 2, dtype=np.int16).reshape(30, 2)
        f["label"] = np.arange(30) % 3
    items = [attach(features), attach(tmp_path / "other.h5", top="second", dataset="vectors",
                                      label_dataset="label")]
    tops = ("data", "label", "feat", "second")
    with data_net(tmp_path, LAYER, params(listing, items, workers=1), tops=tops) as net:
        assert tuple(net.blobs["second"].shape) == (4, 2)
        out = forward(net, 3, tops)
    labels = image_ids(out) % 3
    assert np.array_equal(out["label"], labels)
    assert np.array_equal(out["feat"][:, 0], labels)
    second_rows = out["second"][:, 0] // 2
    assert np.array_equal(second_rows % 3, labels)
    assert np.array_equal(out["second"][:, 1], out["second"][:, 0] + 1)


# --- setup errors -------------------------------------------------------------------------------


def test_a_label_without_rows_is_named(files, tmp_path):
    listing, _ = files
    write_features(tmp_path / "two.h5", 8, classes=2)
    error = setup_error(tmp_path, LAYER, params(listing, [attach(tmp_path / "two.h5")]),
                        tops=TOPS)
    assert isinstance(error, ConfigError)
    assert "attach[0] (top 'feat'): no row of" in str(error)
    assert f"has these labels of {listing} in 'labels': 2 ({listing}:3)" in str(error)


def test_labels_without_rows_are_listed_ten_then_counted(tmp_path):
    listing = write_image_list(tmp_path, 14, classes=14)  # labels 0..13
    features = write_features(tmp_path / "feats.h5", 30, classes=3)  # rows for labels 0..2
    error = setup_error(tmp_path, LAYER, params(listing, [attach(features)]), tops=TOPS)
    assert isinstance(error, ConfigError)
    assert f"in 'labels': 3 ({listing}:4), 4 ({listing}:5)" in str(error)
    assert f"12 ({listing}:13), ... and 1 more; every label needs" in str(error)


@pytest.mark.parametrize(("item", "message"), [
    ({"dataset": "nope"}, "has no dataset named 'nope'"),
    ({"label_dataset": "nope"}, "has no dataset named 'nope'"),
    ({"hdf5": "missing.h5"}, "missing.h5: no such file"),
    ({"matсh": "label"}, "unknown key"),
    ({"match": "nearest"}, "match: must be one of 'label', 'index'"),
    ({"top": "label"}, "top: label is already a top of the image list"),
    ({"label_column": 1}, "label_column < 1"),
])
def test_bad_attach_items(files, tmp_path, item, message):
    listing, features = files
    error = setup_error(tmp_path, LAYER, params(listing, [attach(features, **item)]), tops=TOPS)
    assert isinstance(error, ConfigError), repr(error)
    assert message in str(error)


def test_match_index_needs_a_row_per_line(files, tmp_path):
    listing, _ = files
    write_features(tmp_path / "few.h5", 4)
    error = setup_error(tmp_path, LAYER, params(listing, [attach(tmp_path / "few.h5",
                                                                 match="index")]), tops=TOPS)
    assert isinstance(error, ConfigError)
    assert "needs a row per list line, but" in str(error)
    assert "has 4 rows for 10 lines" in str(error)


@pytest.mark.parametrize(("attach_value", "message"), [
    ("[]", "attach: give at least one item"),
    ("[1]", "attach: must be a mapping"),
    ("[{top: a, hdf5: x.h5}, {top: a, hdf5: x.h5}]", "each top appears once (repeated: a)"),
])
def test_bad_attach_lists(files, tmp_path, attach_value, message):
    listing, _ = files
    error = setup_error(tmp_path, LAYER, f"{{source: {listing}, batch_size: 2, "
                                         f"attach: {attach_value}}}", tops=TOPS)
    assert isinstance(error, ConfigError)
    assert message in str(error)


def test_a_refused_label_columns_hides_no_other_problem(files, tmp_path):
    # The attach checks read label_columns; when it is refused they are left out, and the
    # unrelated mean_file/mean_value conflict is still reported.
    listing, features = files
    error = setup_error(tmp_path, LAYER, params(listing, [attach(features, label_column=3)],
                                                label_columns="x", mean_value=1,
                                                mean_file="mean.binaryproto"), tops=TOPS)
    assert isinstance(error, ConfigError)
    assert "has 2 problems" in str(error)
    assert "  - label_columns: must be an integer (got 'x')" in str(error)
    assert "  - mean_file, mean_value: give one of them, not both" in str(error)


def test_the_top_count_includes_the_attachments(files, tmp_path):
    listing, features = files
    error = setup_error(tmp_path, LAYER, params(listing, [attach(features)]))
    assert isinstance(error, ConfigError)
    assert "has 2 top(s) but takes 3 (data, label, feat)" in str(error)



def test_match_index_without_labels(files, tmp_path):
    listing, features = files
    lines = Path(listing).read_text().splitlines()
    (tmp_path / "ids.txt").write_text("".join(line.rsplit(" ", 1)[0] + "\n" for line in lines))
    keys = params(tmp_path / "ids.txt", [attach(features, match="index")], label_columns=0)
    out = read(tmp_path, LAYER, keys, 3, ("data", "feat"))
    assert np.array_equal(out["feat"][:, 1].astype(np.int64), image_ids(out))
