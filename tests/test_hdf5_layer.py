"""HDF5DataLayer on real .h5 files in ``tmp_path``, through ``caffe.Net`` as a user drives it.

Rows encode their sample id (``sample_datasets.id_rows``) and the label is the id, so every test
can tell exactly which rows arrived, from which file, and whether they were scattered right.
"""

from __future__ import annotations

import os

import caffe
import h5py
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from layer_nets import (
    assert_epochs_exactly_once,
    data_net,
    forward,
    read,
    setup_error,
)
from sample_datasets import id_rows, write_h5_source, write_id_h5

from caffe_layers.binaryproto import write_blobproto
from caffe_layers.errors import ConfigError, DataError, WorkerError
from caffe_layers.params import HDF5Params
from caffe_layers.pipeline import hdf5 as hdf5_pipeline
from caffe_layers.sampling import BlockShuffledOrder
from caffe_layers.sources.hdf5 import (
    MAX_CACHE_BYTES,
    DatasetInfo,
    HDF5Files,
    HDF5Reader,
    cache_bytes,
    plan_reads,
)

LAYER = "HDF5DataLayer"
N = 100  # rows in the three files of write_h5_source: 37 contiguous, 50 in chunks of 8, 13 of 1


def source(tmp_path, **options):
    listing, total = write_h5_source(tmp_path, **options)
    assert total == N
    return listing


def params(listing: str, **keys) -> str:
    keys = {"source": listing, "batch_size": 10, **keys}
    return "{" + ", ".join(f"{k}: {v}" for k, v in keys.items()) + "}"


def check_rows(out: dict, row_shape=(3,)) -> np.ndarray:
    """The ids of the batches in ``out``, after checking every data row matches its label."""
    ids = out["label"].astype(np.int64)
    assert np.array_equal(out["data"], id_rows(ids, row_shape).astype(np.float32))
    return ids


# --- order: exactly once, Caffe's order, determinism ------------------------------------------


@pytest.mark.parametrize("workers", [0, 2])
@pytest.mark.parametrize("shuffle", [False, True])
def test_three_epochs_exactly_once_across_files(tmp_path, workers, shuffle):
    listing = source(tmp_path)
    out = read(tmp_path, LAYER, params(listing, workers=workers, shuffle=str(shuffle).lower()),
               batches=30)
    ids = check_rows(out)
    assert_epochs_exactly_once(ids, N, epochs=3)
    if not shuffle:  # Caffe's order: file by file, row by row, wrapping inside a batch
        assert ids.tolist() == list(range(N)) * 3
    else:
        assert ids[:N].tolist() != list(range(N))


def test_the_same_batches_for_any_worker_count(tmp_path):
    listing = source(tmp_path)
    runs = [read(tmp_path, LAYER, params(listing, workers=w, shuffle="true", seed=3), 12)
            for w in (0, 1, 3)]
    for other in runs[1:]:
        assert np.array_equal(other["label"], runs[0]["label"])
        assert np.array_equal(other["data"], runs[0]["data"])
    different_seed = read(tmp_path, LAYER, params(listing, workers=0, shuffle="true", seed=4), 12)
    assert not np.array_equal(different_seed["label"], runs[0]["label"])


def test_epochs_are_different_permutations(tmp_path):
    ids = check_rows(read(tmp_path, LAYER, params(source(tmp_path), shuffle="true",
                                                  workers=0), 20))
    assert ids[:N].tolist() != ids[N:].tolist()


def test_shards_split_every_epoch(tmp_path):
    listing = source(tmp_path)
    shards = [check_rows(read(tmp_path, LAYER, params(
        listing, batch_size=5, shuffle="true", shard_rank=r, shard_count=2, workers=0), 10))
        for r in range(2)]
    assert sorted(shards[0].tolist() + shards[1].tolist()) == list(range(N))


def test_a_batch_larger_than_the_dataset_repeats_rows(tmp_path):
    write_id_h5(tmp_path / "small.h5", 0, 3)
    (tmp_path / "list.txt").write_text(str(tmp_path / "small.h5"))
    out = read(tmp_path, LAYER, params(tmp_path / "list.txt", batch_size=7, workers=1), 1)
    assert check_rows(out).tolist() == [0, 1, 2, 0, 1, 2, 0]


def test_a_file_without_rows_is_skipped(tmp_path):
    write_id_h5(tmp_path / "a.h5", 0, 4)
    write_id_h5(tmp_path / "empty.h5", 4, 0)
    write_id_h5(tmp_path / "b.h5", 4, 3, chunks=2)
    (tmp_path / "list.txt").write_text(" ".join(str(tmp_path / f) for f in
                                                ("a.h5", "empty.h5", "b.h5")))
    out = read(tmp_path, LAYER, params(tmp_path / "list.txt", batch_size=7, shuffle="true",
                                       workers=0), 2)
    assert_epochs_exactly_once(check_rows(out), 7, epochs=2)


def test_paths_are_relative_to_the_working_directory(tmp_path, monkeypatch):
    (tmp_path / "data").mkdir()
    write_id_h5(tmp_path / "data" / "a.h5", 0, 5)
    (tmp_path / "data" / "list.txt").write_text("data/a.h5\n")
    monkeypatch.chdir(tmp_path)
    out = read(tmp_path, LAYER, params("data/list.txt", batch_size=5, workers=0), 1)
    assert check_rows(out).tolist() == [0, 1, 2, 3, 4]


@pytest.mark.parametrize("method", ["spawn", "forkserver"])
def test_other_start_methods(tmp_path, method):
    listing = source(tmp_path)
    out = read(tmp_path, LAYER, params(listing, workers=2, shuffle="true",
                                       start_method=method), 10)
    assert_epochs_exactly_once(check_rows(out), N, epochs=1)


# --- data: tops, dtypes, shapes, transforms -----------------------------------------------------


def test_integer_and_double_data_become_float32(tmp_path):
    write_id_h5(tmp_path / "a.h5", 0, 6, data_dtype="uint16", label_dtype="int64",
                row_shape=(2, 2))
    (tmp_path / "list.txt").write_text(str(tmp_path / "a.h5"))
    with data_net(tmp_path, LAYER, params(tmp_path / "list.txt", batch_size=6)) as net:
        out = forward(net, 1)
        assert tuple(net.blobs["data"].shape) == (6, 2, 2)
        assert tuple(net.blobs["label"].shape) == (6,)
    assert out["data"].dtype == np.float32
    assert check_rows(out, (2, 2)).tolist() == list(range(6))


def test_tops_name_the_datasets_in_top_order(tmp_path):
    with h5py.File(tmp_path / "a.h5", "w") as f:
        f["x"] = np.arange(8, dtype=np.float32).reshape(4, 2)
        f["y"] = np.arange(4, dtype=np.int8) * 10
        f["z"] = np.ones((4, 3, 2, 2))
    (tmp_path / "list.txt").write_text(str(tmp_path / "a.h5"))
    with data_net(tmp_path, LAYER, params(tmp_path / "list.txt", batch_size=4, tops="[y, z, x]"),
                  tops=("first", "second", "third")) as net:
        out = forward(net, 1, ("first", "second", "third"))
        assert tuple(net.blobs["second"].shape) == (4, 3, 2, 2)
    assert out["first"].tolist() == [0, 10, 20, 30]
    assert out["third"].tolist() == np.arange(8).reshape(4, 2).tolist()


def test_the_top_count_must_match_tops(tmp_path):
    listing = source(tmp_path)
    error = setup_error(tmp_path, LAYER, params(listing), tops=("data",))
    assert isinstance(error, ConfigError)
    assert "has 1 top(s) but takes 2 (data, label)" in str(error)


def test_mean_value_and_scale_apply_to_the_first_top(tmp_path):
    listing = source(tmp_path)
    out = read(tmp_path, LAYER, params(listing, mean_value="[1, 2, 3]", scale=0.5,
                                       workers=1), 1)
    ids = out["label"].astype(np.int64)
    assert out["label"].tolist() == list(range(10))
    expected = (id_rows(ids).astype(np.float32) - np.float32([1, 2, 3])) * np.float32(0.5)
    assert np.array_equal(out["data"], expected)


def test_mean_file_must_match_a_row(tmp_path):
    write_id_h5(tmp_path / "a.h5", 0, 4, row_shape=(1, 2, 2))
    (tmp_path / "list.txt").write_text(str(tmp_path / "a.h5"))
    mean = np.arange(4, dtype=np.float32).reshape(1, 1, 2, 2)
    write_blobproto(str(tmp_path / "mean.binaryproto"), mean)
    out = read(tmp_path, LAYER, params(tmp_path / "list.txt", batch_size=4,
                                       mean_file=tmp_path / "mean.binaryproto"), 1)
    assert np.array_equal(out["data"], id_rows(np.arange(4), (1, 2, 2)) - mean[0])
    write_blobproto(str(tmp_path / "bad.binaryproto"), np.zeros((1, 1, 3, 3), np.float32))
    error = setup_error(tmp_path, LAYER, params(tmp_path / "list.txt",
                                                mean_file=tmp_path / "bad.binaryproto"))
    assert isinstance(error, ConfigError)
    assert "holds a (1, 3, 3) mean but the rows of top 'data' are shaped (1, 2, 2)" in str(error)


# --- setup errors -------------------------------------------------------------------------------


def error_for(tmp_path, **keys) -> str:
    listing = keys.pop("listing", str(tmp_path / "list.txt"))
    error = setup_error(tmp_path, LAYER, params(listing, **keys))
    assert isinstance(error, (ConfigError, DataError)), repr(error)
    return str(error)


def test_missing_source_list(tmp_path):
    message = error_for(tmp_path, listing=str(tmp_path / "nope.txt"))
    assert "source: the HDF5 file list" in message
    assert "nope.txt' does not exist" in message


def test_empty_source_list(tmp_path):
    (tmp_path / "list.txt").write_text("\n  \n")
    assert "lists no files" in error_for(tmp_path)


def test_missing_file_is_named(tmp_path):
    write_id_h5(tmp_path / "a.h5", 0, 3)
    (tmp_path / "list.txt").write_text(f"{tmp_path / 'a.h5'}\n{tmp_path / 'gone.h5'}\n")
    message = error_for(tmp_path)
    assert f"{tmp_path / 'gone.h5'}: no such file" in message
    assert "relative to the working directory" in message


def test_not_an_hdf5_file(tmp_path):
    (tmp_path / "fake.h5").write_bytes(b"not hdf5 at all")
    (tmp_path / "list.txt").write_text(str(tmp_path / "fake.h5"))
    assert f"{tmp_path / 'fake.h5'}: not a readable HDF5 file" in error_for(tmp_path)


def test_missing_dataset_names_file_and_dataset(tmp_path):
    with h5py.File(tmp_path / "a.h5", "w") as f:
        f["data"] = np.zeros((3, 2))
        f["labels"] = np.zeros(3)
    (tmp_path / "list.txt").write_text(str(tmp_path / "a.h5"))
    message = error_for(tmp_path)
    assert f"{tmp_path / 'a.h5'}: has no dataset named 'label' (it holds: data, labels)" in message
    assert "tops: [...]" in message


def test_a_group_is_not_a_dataset(tmp_path):
    with h5py.File(tmp_path / "a.h5", "w") as f:
        f["data"] = np.zeros((3, 2))
        f.create_group("label")
    (tmp_path / "list.txt").write_text(str(tmp_path / "a.h5"))
    assert "has a group, not a dataset, named 'label'" in error_for(tmp_path)


def test_mismatched_first_dimensions(tmp_path):
    with h5py.File(tmp_path / "a.h5", "w") as f:
        f["data"] = np.zeros((3, 2))
        f["label"] = np.zeros(4)
    (tmp_path / "list.txt").write_text(str(tmp_path / "a.h5"))
    message = error_for(tmp_path)
    assert f"{tmp_path / 'a.h5'}: the datasets have different numbers of rows ('data' 3, " \
           f"'label' 4)" in message


def test_row_shape_differs_between_files(tmp_path):
    write_id_h5(tmp_path / "a.h5", 0, 3, row_shape=(3,))
    write_id_h5(tmp_path / "b.h5", 3, 3, row_shape=(4,))
    (tmp_path / "list.txt").write_text(f"{tmp_path / 'a.h5'} {tmp_path / 'b.h5'}")
    message = error_for(tmp_path)
    assert f"{tmp_path / 'b.h5'}: dataset 'data' has rows shaped (4,) but " \
           f"'{tmp_path / 'a.h5'}' has (3,)" in message


@pytest.mark.parametrize(("value", "expected"), [
    (np.array([b"a", b"b"]), "dataset 'label' has dtype |S1"),
    (np.float32(1), "dataset 'label' is a scalar"),
])
def test_unusable_datasets(tmp_path, value, expected):
    with h5py.File(tmp_path / "a.h5", "w") as f:
        f["data"] = np.zeros((2, 2))
        f["label"] = value
    (tmp_path / "list.txt").write_text(str(tmp_path / "a.h5"))
    assert expected in error_for(tmp_path)


def test_every_bad_file_is_reported_at_once(tmp_path):
    (tmp_path / "list.txt").write_text(" ".join(str(tmp_path / f"m{i}.h5") for i in range(12)))
    message = error_for(tmp_path)
    assert "12 problem(s) with the HDF5 files" in message
    assert "m0.h5: no such file" in message
    assert "... and 2 more" in message


@pytest.mark.parametrize(("keys", "expected"), [
    ({"shuffle_window": 8}, "shuffle_window: only used with shuffle: true"),
    ({"tops": "[data, data]"}, "tops: each top appears once (repeated: data)"),
    ({"tops": "[]"}, "tops: give at least one top name"),
    ({"mean_value": 1, "mean_file": "m.binaryproto"}, "mean_file, mean_value: give one"),
    ({"shuffle_block": 0}, "shuffle_block: must be >= 1"),
])
def test_bad_keys(tmp_path, keys, expected):
    source(tmp_path)
    error = setup_error(tmp_path, LAYER, params(str(tmp_path / "list.txt"), **keys))
    assert isinstance(error, ConfigError)
    assert expected in str(error)


def test_a_file_that_breaks_after_setup_fails_naming_it(tmp_path):
    listing = source(tmp_path)
    with data_net(tmp_path, LAYER, params(listing, workers=1, prefetch=1)) as net:
        forward(net, 1)
        os.truncate(tmp_path / "part1.h5", 100)
        with pytest.raises(WorkerError, match="part1.h5"):
            forward(net, 20)


# --- handles: opened by each worker, never by the consumer --------------------------------------


def open_paths(pid: int) -> set:
    fds = f"/proc/{pid}/fd"
    found = set()
    for fd in os.listdir(fds):
        try:
            found.add(os.readlink(os.path.join(fds, fd)))
        except OSError:
            continue
    return found


def test_each_worker_opens_its_own_handles(tmp_path):
    listing = source(tmp_path)
    files = {str(tmp_path / f"part{i}.h5") for i in range(3)}
    with data_net(tmp_path, LAYER, params(listing, workers=2, shuffle="true")) as net:
        forward(net, 20)
        engine = net.layers[0]._engine
        assert not files & open_paths(os.getpid()), "the consumer kept an h5 file open"
        for pid in engine.pids:
            assert files & open_paths(pid), f"worker {pid} has no h5 file open"


# --- the chunk-aware order ----------------------------------------------------------------------


def test_blocks_follow_each_files_chunks(tmp_path):
    files = HDF5Files.scan(source(tmp_path), ("data", "label"))
    starts, largest = files.block_starts()
    # part0: 37 contiguous rows of 12 bytes -> one block; part1: chunks of 8; part2: of 1
    expected = [0] + list(range(37, 87, 8)) + list(range(87, 100))
    assert starts.tolist() == expected
    assert largest == 37
    assert files.block_runs()[0].tolist() == [[0, 37, 1], [37, 8, 6], [85, 2, 1], [87, 1, 13]]
    assert files.block_starts(5)[0].tolist() == (list(range(0, 37, 5)) + list(range(37, 87, 5))
                                                 + list(range(87, 100, 5)))


def test_the_layer_uses_the_block_order(tmp_path):
    listing = source(tmp_path, chunks=(4, 4, 4))
    raw = f"{{source: {listing}, batch_size: 10, shuffle: true, seed: 5, shuffle_window: 8}}"
    from caffe_layers import config

    pipeline = hdf5_pipeline.build(config.load(HDF5Params, raw), train=True)
    order = pipeline.shuffled_order(5)
    assert isinstance(order, BlockShuffledOrder)
    assert order.window == 8
    ids = check_rows(read(tmp_path, LAYER, params(listing, shuffle="true", seed=5,
                                                  shuffle_window=8, workers=2), 10))
    assert ids.tolist() == order(0).tolist()


# --- reading plans ------------------------------------------------------------------------------


@settings(max_examples=150, deadline=None)
@given(rows=st.sets(st.integers(0, 400), min_size=1, max_size=64),
       chunk=st.sampled_from([0, 1, 3, 16, 64]), row_bytes=st.sampled_from([4, 1000, 300000]))
def test_read_plans_cover_every_row_once_and_stay_bounded(rows, chunk, row_bytes):
    rows = np.array(sorted(rows))
    span_rows = max(1, (1 << 20) // row_bytes)
    groups = plan_reads(rows, chunk, row_bytes, span_bytes=1 << 20)
    covered = [i for lo, hi, _ in groups for i in range(lo, hi)]
    assert covered == list(range(len(rows)))
    for lo, hi, fancy in groups:
        assert fancy == (chunk == 0 and rows[hi - 1] - rows[lo] + 1 != hi - lo)
        span = rows[hi - 1] - rows[lo] + 1
        is_run = span == hi - lo
        assert fancy or is_run or span <= span_rows
    if chunk:
        assert len(groups) <= len(set((rows // chunk).tolist())) + len(rows)


def test_chunk_caches_hold_a_window_of_chunks_within_a_cap():
    def info(chunk_rows, row_bytes=10_000):
        return DatasetInfo(10_000, (row_bytes // 4,), "<f4", chunk_rows)

    assert cache_bytes([info(64)], window=256) == (4 + 2) * 64 * 10_000  # the window's chunks
    assert cache_bytes([info(0), info(1)], window=256) == 1 << 20  # nothing is read twice
    assert cache_bytes([info(16), info(64)], window=256) == 6 * 64 * 10_000
    assert cache_bytes([info(64, row_bytes=400_000)], window=4096) == MAX_CACHE_BYTES
    assert cache_bytes([info(2, row_bytes=4)], window=8) == 1 << 20  # never below the default


def test_reader_reads_any_rows_in_any_order(tmp_path):
    listing = source(tmp_path)
    files = HDF5Files.scan(listing, ("data", "label"))
    reader = HDF5Reader(files, window=16)
    try:
        indices = np.array([99, 3, 50, 3, 36, 37, 88, 87, 0, 99])
        out = {"data": np.empty((10, 3), np.float32), "label": np.empty(10, np.float32)}
        reader.read(indices, out)
    finally:
        reader.close()
    assert out["label"].tolist() == indices.tolist()
    assert np.array_equal(out["data"], id_rows(indices))


def test_a_dataset_gone_after_setup_is_a_data_error_naming_the_file(tmp_path):
    write_id_h5(tmp_path / "a.h5", 0, 3)
    files = HDF5Files.single(str(tmp_path / "a.h5"), ("data", "label"))
    with h5py.File(tmp_path / "a.h5", "a") as f:
        del f["label"]
    reader = HDF5Reader(files, window=4)
    out = {"data": np.empty((2, 3), np.float32), "label": np.empty(2, np.float32)}
    try:
        with pytest.raises(DataError, match=r"a\.h5: a dataset named like the tops .* is gone"):
            reader.read(np.array([0, 1]), out)
    finally:
        reader.close()


def test_compressed_chunks_read_right(tmp_path):
    listing = source(tmp_path, chunks=(16, 5, 2), compression="gzip")
    out = read(tmp_path, LAYER, params(listing, shuffle="true", workers=2), 10)
    assert_epochs_exactly_once(check_rows(out), N, epochs=1)


def test_phase_test_reads_without_shuffle(tmp_path):
    listing = source(tmp_path)
    with data_net(tmp_path, LAYER, params(listing, workers=0), phase=caffe.TEST) as net:
        assert check_rows(forward(net, 3)).tolist() == list(range(30))


@pytest.mark.parametrize(("keys", "message"), [
    ({"scale": "1.0e+39"}, "scale: must be a finite float32 number"),
    ({"mean_value": "[1, 2]"}, "mean_value: give 1 value or one per channel (axis 1 of top "
                               "'data', whose rows are shaped (3,)); got 2 values"),
])
def test_bad_normalization(tmp_path, keys, message):
    error = setup_error(tmp_path, LAYER, params(source(tmp_path), **keys))
    assert isinstance(error, ConfigError)
    assert message in str(error)


# --- on_error: rows that cannot be read ------------------------------------------------------


def corrupt_chunk(path, dataset: str, chunk: int) -> None:
    """Overwrite the stored bytes of one compressed chunk: reading its rows fails in h5py."""
    with h5py.File(path, "r") as f:
        info = f[dataset].id.get_chunk_info(chunk)
    with open(path, "r+b") as f:
        f.seek(info.byte_offset)
        f.write(b"\0" * info.size)


@pytest.fixture
def corrupt_source(tmp_path):
    """One file of 20 rows in gzip chunks of 4, the chunk of rows 8-11 of ``data`` corrupt."""
    path = write_id_h5(tmp_path / "rows.h5", 0, 20, chunks=4, compression="gzip")
    corrupt_chunk(path, "data", 2)
    listing = tmp_path / "list.txt"
    listing.write_text(path + "\n")
    return str(listing), path


@pytest.mark.parametrize("workers", [0, 1])
def test_a_corrupt_chunk_raises_naming_file_and_rows(corrupt_source, tmp_path, workers):
    listing, path = corrupt_source
    with data_net(tmp_path, LAYER, params(listing, batch_size=4, workers=workers)) as net, \
            pytest.raises(WorkerError if workers else DataError) as info:
        forward(net, 3)
    assert f"{path}: cannot read rows 8...11 of dataset 'data': " in str(info.value)


@pytest.mark.parametrize("workers", [0, 2])
def test_on_error_skip_replaces_unreadable_rows_by_the_next(corrupt_source, tmp_path, capfd,
                                                           workers):
    listing, path = corrupt_source
    keys = params(listing, batch_size=6, on_error="skip", workers=workers)
    ids = check_rows(read(tmp_path, LAYER, keys, 10))  # three epochs
    epoch = list(range(8)) + [12] * 4 + list(range(12, 20))  # rows 8-11 -> 12, data and label
    assert ids.tolist() == epoch * 3
    err = capfd.readouterr().err
    for row in range(8, 12):
        assert (f"caffe_layers: {LAYER} skipped sample {row}: {path}: cannot read rows "
                f"{row}...{row} of dataset 'data': ") in err


def test_on_error_skip_at_setup_too(tmp_path):
    path = write_id_h5(tmp_path / "rows.h5", 0, 12, chunks=4, compression="gzip")
    corrupt_chunk(path, "data", 0)
    listing = tmp_path / "list.txt"
    listing.write_text(path + "\n")
    assert isinstance(setup_error(tmp_path, LAYER, params(str(listing))), DataError)
    ids = check_rows(read(tmp_path, LAYER, params(str(listing), batch_size=12, on_error="skip",
                                                  workers=0), 1))
    assert ids.tolist() == [4] * 4 + list(range(4, 12))


def test_a_batch_larger_than_the_rows_warns(tmp_path, capfd):
    listing = source(tmp_path)
    with data_net(tmp_path, LAYER, params(listing, batch_size=150, workers=0)):
        pass
    assert (
        f"caffe_layers: {LAYER} (TRAIN): warning: batch_size 150 is larger than the 100 rows of "
        f"the dataset: each batch of 150 holds the 100 rows 1.5 times; lower batch_size, or add "
        f"rows") in capfd.readouterr().err.splitlines()  # glog's lines too
