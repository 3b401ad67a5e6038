"""NpyDataLayer on real ``.npy`` files in ``tmp_path``, through ``caffe.Net``.

Sample ``i`` is ``npy/s<i>.npy`` filled with ``i`` and labelled ``i % 4`` (sample_datasets).
"""

from __future__ import annotations

import pickle

import numpy as np
import pytest
from layer_nets import (
    assert_epochs_exactly_once,
    data_net,
    forward,
    read,
    setup_error,
)
from sample_datasets import write_npy_samples

from caffe_layers.errors import ConfigError, DataError, WorkerError

LAYER = "NpyDataLayer"
N = 23


def samples(tmp_path, count=N, **options):
    return write_npy_samples(tmp_path, count, **options)


def params(listing: str, root, **keys) -> str:
    keys = {"source": listing, "root_folder": root, "batch_size": 5, **keys}
    return "{" + ", ".join(f"{k}: {v}" for k, v in keys.items()) + "}"


def ids_of(out: dict, shape=(2, 3)) -> np.ndarray:
    """The sample ids of ``out`` after checking each sample's data and label."""
    ids = out["data"].reshape(len(out["data"]), -1)[:, 0].astype(np.int64)
    assert np.array_equal(out["data"], np.broadcast_to(
        ids.reshape((-1,) + (1,) * len(shape)), (len(ids),) + shape))
    assert np.array_equal(out["label"], ids % 4)
    return ids


@pytest.mark.parametrize("workers", [0, 2])
@pytest.mark.parametrize("shuffle", [False, True])
def test_three_epochs_exactly_once(tmp_path, workers, shuffle):
    listing = samples(tmp_path)
    with data_net(tmp_path, LAYER, params(listing, tmp_path / "npy", workers=workers,
                                          shuffle=str(shuffle).lower())) as net:
        assert tuple(net.blobs["data"].shape) == (5, 2, 3)
        assert tuple(net.blobs["label"].shape) == (5,)
        ids = ids_of(forward(net, 14))
    assert_epochs_exactly_once(ids, N, epochs=3)
    assert (ids[:N].tolist() == list(range(N))) is not shuffle


def test_the_same_batches_for_any_worker_count(tmp_path):
    listing = samples(tmp_path)
    runs = [ids_of(read(tmp_path, LAYER, params(listing, tmp_path / "npy", workers=w,
                                                shuffle="true", seed=9), 6)) for w in (0, 2)]
    assert runs[0].tolist() == runs[1].tolist()


@pytest.mark.parametrize("dtype", ["uint8", "int64", "float64", "bool"])
def test_numbers_of_any_dtype_become_float32(tmp_path, dtype):
    listing = samples(tmp_path, 3, dtype=dtype, classes=1)
    out = read(tmp_path, LAYER, params(listing, tmp_path / "npy", batch_size=3), 1)
    expected = np.array([0, 1, 2], dtype).astype(np.float32)
    assert out["data"].dtype == np.float32
    assert out["data"][:, 0, 0].tolist() == expected.tolist()


def test_one_hot_labels(tmp_path):
    listing = samples(tmp_path, 8)
    with data_net(tmp_path, LAYER, params(listing, tmp_path / "npy", batch_size=8,
                                          n_classes=5)) as net:
        assert tuple(net.blobs["label"].shape) == (8, 5)
        out = forward(net, 1)
    expected = np.zeros((8, 5), np.float32)
    expected[np.arange(8), np.arange(8) % 4] = 1
    assert np.array_equal(out["label"], expected)


@pytest.mark.parametrize(("label", "shown"), [("4", "(4)"), ("-1", "(-1)"), ("1.5", "(1.5)")])
def test_one_hot_labels_must_be_classes(tmp_path, label, shown):
    listing = samples(tmp_path, 3)
    with open(listing, "a") as f:
        f.write(f"s0 {label}\n")
    error = setup_error(tmp_path, LAYER, params(listing, tmp_path / "npy", n_classes=4))
    assert isinstance(error, DataError)
    assert "one-hot labels must be integers in [0, 4); 1 line(s) are not" in str(error)
    assert f"{listing}:4 {shown}" in str(error)


def test_one_hot_needs_one_label_column(tmp_path):
    listing = samples(tmp_path, 3)
    error = setup_error(tmp_path, LAYER, params(listing, tmp_path / "npy", n_classes=4,
                                                label_columns=2))
    assert isinstance(error, ConfigError)
    assert "n_classes: one-hot labels need label_columns: 1" in str(error)


def test_several_label_columns(tmp_path):
    samples(tmp_path, 4)
    (tmp_path / "two.txt").write_text("".join(f"s{i} {i} {10 * i}\n" for i in range(4)))
    keys = params(tmp_path / "two.txt", tmp_path / "npy", batch_size=4, label_columns=2)
    out = read(tmp_path, LAYER, keys, 1)
    assert out["label"].tolist() == [[i, 10 * i] for i in range(4)]
    split = read(tmp_path, LAYER, keys, 1, tops=("data", "label0", "label1"))
    assert split["label1"].tolist() == [0, 10, 20, 30]
    only_data = read(tmp_path, LAYER, keys, 1, tops=("data",))
    assert only_data["data"][:, 0, 0].tolist() == [0, 1, 2, 3]


def test_mean_and_scale(tmp_path):
    listing = samples(tmp_path, 4, shape=(2, 1, 1))
    out = read(tmp_path, LAYER, params(listing, tmp_path / "npy", batch_size=4,
                                       mean_value="[1, 2]", scale=2), 1)
    ids = np.arange(4, dtype=np.float32)
    assert out["data"][:, 0, 0, 0].tolist() == ((ids - 1) * 2).tolist()
    assert out["data"][:, 1, 0, 0].tolist() == ((ids - 2) * 2).tolist()


def test_ids_without_root_are_relative_to_the_working_directory(tmp_path, monkeypatch):
    samples(tmp_path, 2)
    (tmp_path / "list.txt").write_text("npy/s1 1\nnpy/s0 0\n")
    monkeypatch.chdir(tmp_path)
    out = read(tmp_path, LAYER, "{source: list.txt, batch_size: 2, workers: 0}", 1)
    assert out["data"][:, 0, 0].tolist() == [1, 0]


# --- every sample must look like the first ------------------------------------------------------


@pytest.mark.parametrize(("bad", "message"), [
    (np.zeros((2, 3), np.float64), "holds a float64 array of shape (2, 3), but every sample must "
                                   "be float32 (2, 3) like the first one; fix or remove this "
                                   "sample"),
    (np.zeros((3, 2), np.float32), "holds a float32 array of shape (3, 2), but every sample must "
                                   "be float32 (2, 3) like the first one; fix or remove this "
                                   "sample"),
    (np.zeros((2, 3), ">f4"), "holds a float32 ('>f4') array of shape (2, 3), but every sample "
                              "must be float32 (2, 3) like the first one; fix or remove this "
                              "sample"),
])
def test_a_sample_unlike_the_first_fails_at_setup_naming_it(tmp_path, bad, message):
    """Every file's header is read at setup: the bad sample is found before training."""
    listing = samples(tmp_path, 10)
    np.save(tmp_path / "npy" / "s7.npy", bad)
    error = setup_error(tmp_path, LAYER, params(listing, tmp_path / "npy"))
    assert isinstance(error, DataError)
    assert str(error) == (f"{listing}: 1 of 10 .npy samples cannot be used (on_error: skip would "
                          f"skip them):\n  {listing}:8: '{tmp_path / 'npy' / 's7.npy'}' "
                          f"{message}")


def write_bad_samples(tmp_path) -> dict:
    """Samples 2 (missing), 4 (truncated), 5 (another shape), 8 (pickled objects) and 9 (an
    .npz) of 12: each bad in its own way; ``{index: what setup says}``."""
    npy = tmp_path / "npy"
    (npy / "s2.npy").unlink()
    whole = (npy / "s4.npy").read_bytes()
    (npy / "s4.npy").write_bytes(whole[:-4])
    np.save(npy / "s5.npy", np.zeros((3, 3), np.float32))
    np.save(npy / "s8.npy", np.array([{}], dtype=object), allow_pickle=True)
    with open(npy / "s9.npy", "wb") as f:
        np.savez(f, a=np.zeros(2))
    return {2: "does not exist", 4: f"is truncated: {len(whole) - 4} bytes, but its header "
                                    f"announces {len(whole)}",
            5: "holds a float32 array of shape (3, 3)",
            8: "is not a readable .npy array (it holds Python objects",
            9: "is an .npz archive; store one array per .npy file"}


def test_every_bad_file_is_listed_at_setup(tmp_path):
    listing = samples(tmp_path, 12)
    bad = write_bad_samples(tmp_path)
    error = setup_error(tmp_path, LAYER, params(listing, tmp_path / "npy"))
    lines = str(error).splitlines()
    assert lines[0] == (f"{listing}: 5 of 12 .npy samples cannot be used (on_error: skip would "
                        f"skip them):")
    for line, (index, message) in zip(lines[1:], sorted(bad.items())):
        assert line.startswith(f"  {listing}:{index + 1}: '{tmp_path / 'npy' / f's{index}.npy'}'")
        assert message in line


@pytest.mark.parametrize("workers", [0, 2])
def test_on_error_skip_replaces_bad_samples_by_the_next(tmp_path, capfd, workers):
    listing = samples(tmp_path, 12)
    bad = write_bad_samples(tmp_path)
    keys = params(listing, tmp_path / "npy", batch_size=6, on_error="skip", workers=workers)
    with data_net(tmp_path, LAYER, keys) as net:
        setup_err = capfd.readouterr().err
        ids = ids_of(forward(net, 4))
    assert "caffe_layers: NpyDataLayer: on_error: skip: 5 of 12 .npy samples will be " \
           "skipped:" in setup_err.splitlines()
    good_after = [0, 1, 3, 3, 6, 6, 6, 7, 10, 10, 10, 11]  # 2->3, 4->5->6, 8->9->10
    assert ids.tolist() == good_after * 2
    err = capfd.readouterr().err
    for index in bad:
        assert f"caffe_layers: {LAYER} skipped sample {index}: {listing}:{index + 1}:" in err


@pytest.mark.parametrize("workers", [0, 1])
def test_a_sample_changed_after_setup_fails_when_read(tmp_path, workers):
    """The header check does not replace the check of every array as it is read."""
    listing = samples(tmp_path, 10)
    with data_net(tmp_path, LAYER, params(listing, tmp_path / "npy", workers=workers)) as net:
        np.save(tmp_path / "npy" / "s7.npy", np.zeros((3, 2), np.float32))
        expected = WorkerError if workers else DataError
        with pytest.raises(expected) as info:
            forward(net, 3)  # sample 7 is in batch 1 (a worker may fail before batch 0 is used)
    assert (f"{listing}:8: '{tmp_path / 'npy' / 's7.npy'}' holds a float32 array of shape "
            f"(3, 2), but every sample must be float32 (2, 3)") in str(info.value)


def test_above_the_limit_headers_are_checked_when_read(tmp_path, monkeypatch, capfd):
    from caffe_layers.pipeline import npy

    monkeypatch.setattr(npy, "HEADER_CHECK_LIMIT", 5)
    listing = samples(tmp_path, 10)
    np.save(tmp_path / "npy" / "s7.npy", np.zeros((3, 2), np.float32))
    with data_net(tmp_path, LAYER, params(listing, tmp_path / "npy", workers=0)) as net:
        assert ("listed in " + str(listing) + ", headers not checked at setup (10 files > 5); "
                "each is checked when read;") in capfd.readouterr().out
        with pytest.raises(DataError, match=r":8: .* holds a float32 array of shape \(3, 2\)"):
            forward(net, 2)


def test_a_pickled_object_array_is_refused(tmp_path):
    listing = samples(tmp_path, 3)
    np.save(tmp_path / "npy" / "s0.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    error = setup_error(tmp_path, LAYER, params(listing, tmp_path / "npy"))
    assert isinstance(error, DataError)
    assert f"{listing}:1: '{tmp_path / 'npy' / 's0.npy'}' is not a readable .npy array" in \
        str(error)


def test_a_pickle_disguised_as_npy_is_never_unpickled(tmp_path):
    listing = samples(tmp_path, 3)
    marker = tmp_path / "unpickled"
    payload = pickle.dumps(Marker(str(marker)))
    (tmp_path / "npy" / "s0.npy").write_bytes(payload)
    error = setup_error(tmp_path, LAYER, params(listing, tmp_path / "npy"))
    assert isinstance(error, DataError)
    assert not marker.exists()


class Marker:
    """Unpickling it would create a file."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self):
        return (open, (self.path, "w"))


@pytest.mark.parametrize(("content", "message"), [
    (None, "does not exist"),
    (b"\x93NUMPY garbage", "is not a readable .npy array"),
    ("npz", "is an .npz archive"),
    ("text", "holds <U3 values; tops are float32"),
])
def test_unreadable_first_samples(tmp_path, content, message):
    listing = samples(tmp_path, 3)
    path = tmp_path / "npy" / "s0.npy"
    if content is None:
        path.unlink()
    elif content == "npz":
        with open(path, "wb") as f:
            np.savez(f, a=np.zeros(2))
    elif content == "text":
        np.save(path, np.array(["abc", "de"]))
    else:
        path.write_bytes(content)
    error = setup_error(tmp_path, LAYER, params(listing, tmp_path / "npy"))
    assert isinstance(error, DataError)
    assert f"{listing}:1: " in str(error)
    assert message in str(error)


def test_missing_list(tmp_path):
    error = setup_error(tmp_path, LAYER, params(tmp_path / "nope.txt", tmp_path))
    assert isinstance(error, ConfigError)
    assert "does not exist" in str(error)

