"""DBDataLayer on real LMDB and LevelDB databases in ``tmp_path``, through ``caffe.Net``.

Databases come from ``caffe-layers-convert-db`` (PNG images, lossless, label = line index) or are
written record by record (``db_data.write_records``) for what the converter never writes. Parity
with real Caffe's Data layer is in test_db_real_caffe.py.
"""

from __future__ import annotations

import os

import caffe
import numpy as np
import pytest
from db_data import LAYER, chw, converted, params, raw_record, write_records
from layer_nets import assert_epochs_exactly_once, data_net, forward, read, setup_error

from caffe_layers.binaryproto import write_blobproto
from caffe_layers.datum import serialize_datum
from caffe_layers.errors import ConfigError, DataError, WorkerError

N = 20


@pytest.fixture(params=["lmdb", "leveldb"])
def backend(request):
    return request.param


def ids(out: dict) -> np.ndarray:
    return out["label"].astype(np.int64)


# --- order: Caffe's without shuffle, exactly once with it, any worker count ------------------


@pytest.mark.parametrize("workers", [0, 2])
def test_without_shuffle_records_come_in_key_order_wrapping_as_in_caffe(tmp_path, backend,
                                                                        workers):
    source, dataset = converted(tmp_path, N, backend=backend)
    out = read(tmp_path, LAYER, params(source, batch_size=6, workers=workers), batches=8)
    assert ids(out).tolist() == (list(range(N)) * 3)[:48]
    for row, index in enumerate(ids(out)):
        assert np.array_equal(out["data"][row], chw(dataset.images[index]))


@pytest.mark.timeout(180)
def test_shuffle_is_exactly_once_per_epoch_and_identical_for_any_worker_count(tmp_path,
                                                                               backend):
    source, _ = converted(tmp_path, N, backend=backend)
    keys = {"batch_size": 5, "shuffle": True, "seed": 7, "shuffle_block": 3, "crop_size": 10,
            "mirror": True}
    runs = [read(tmp_path, LAYER, params(source, workers=w, **keys), batches=12)
            for w in (0, 1, 3)]
    assert_epochs_exactly_once(ids(runs[0]), N, epochs=3)
    epochs = [ids(runs[0])[e * N:(e + 1) * N].tolist() for e in range(3)]
    assert epochs[0] != epochs[1] != epochs[2] and epochs[0] != list(range(N))
    for other in runs[1:]:
        assert np.array_equal(other["label"], runs[0]["label"])
        assert np.array_equal(other["data"].view(np.uint32), runs[0]["data"].view(np.uint32))
    reseeded = read(tmp_path, LAYER, params(source, **{**keys, "seed": 8}), batches=4)
    assert not np.array_equal(reseeded["label"], runs[0]["label"][:20])


def test_the_setup_line_gives_the_shuffle_blocks(tmp_path, capfd):
    source, _ = converted(tmp_path, N)
    with data_net(tmp_path, LAYER, params(source, shuffle=True, shuffle_block=3)):
        pass
    line = capfd.readouterr().out
    assert f"caffe_layers: DBDataLayer (TRAIN): {N} records in LMDB '{source}' (" in line
    assert "raw Datums of 3x12x14, shuffled in blocks of 3 records within windows of 12" in line
    with data_net(tmp_path, LAYER, params(source, shuffle=True)):
        pass
    # 16 MiB of these small records is more than the database: one block, shuffled uniformly
    assert f"shuffled in blocks of {N} records within windows of {N};" in capfd.readouterr().out


def test_shards_are_disjoint_and_cover_each_epoch_and_unshuffled_ranks_skip_as_caffe(tmp_path):
    source, _ = converted(tmp_path, N)
    for shuffle in (False, True):
        shards = [ids(read(tmp_path, LAYER, params(source, batch_size=5, shuffle=shuffle,
                                                   shard_rank=r, shard_count=2), batches=2))
                  for r in range(2)]
        assert sorted(shards[0].tolist() + shards[1].tolist()) == list(range(N))
        if not shuffle:  # Caffe's Data layer: rank r keeps records r, r + ranks, ...
            assert shards[1].tolist() == list(range(1, N, 2))


def test_start_iter_resumes_exactly(tmp_path):
    source, _ = converted(tmp_path, N)
    keys = {"shuffle": True, "seed": 3, "batch_size": 3, "crop_size": 8, "mirror": True}
    whole = read(tmp_path, LAYER, params(source, **keys), batches=9)
    resumed = read(tmp_path, LAYER, params(source, start_iter=5, **keys), batches=4)
    assert np.array_equal(resumed["label"], whole["label"][15:])
    assert np.array_equal(resumed["data"], whole["data"][15:])


# --- pixels: the same as ImageListDataLayer on the same images ------------------------------


@pytest.mark.parametrize("encoded", [False, True])
@pytest.mark.parametrize("phase", ["TRAIN", "TEST"])
def test_the_output_equals_the_image_list_layers_for_the_same_images(tmp_path, encoded, phase):
    """Both draw crop and mirror from (seed, epoch, sample): the batches must be identical."""
    extra = ("--encoded",) if encoded else ()
    source, dataset = converted(tmp_path, N, (16, 18), extra=extra)
    mean = np.random.default_rng(1).uniform(0, 255, (3, 16, 18)).astype(np.float32)
    write_blobproto(tmp_path / "mean.binaryproto", mean)
    keys = {"batch_size": 7, "crop_size": 11, "mirror": True, "scale": 0.017, "seed": 5,
            "mean_file": str(tmp_path / "mean.binaryproto"), "workers": 1}
    with data_net(tmp_path, LAYER, params(source, **keys), phase=getattr(caffe, phase)) as net:
        ours = forward(net, 4)
    image_list = {"source": str(dataset.list_path), "root_folder": f"{tmp_path}/", **keys}
    with data_net(tmp_path, "ImageListDataLayer", params(**image_list),
                  phase=getattr(caffe, phase)) as net:
        theirs = forward(net, 4)
    assert np.array_equal(ours["label"], theirs["label"])
    assert np.array_equal(ours["data"].view(np.uint32), theirs["data"].view(np.uint32))


def test_float_data_datums_are_read_as_caffe_reads_them(tmp_path):
    rng = np.random.default_rng(0)
    values = [rng.normal(size=(2, 3, 4)).astype(np.float32) for _ in range(3)]
    records = []
    for i, value in enumerate(values):
        header = serialize_datum(b"", i, value.shape)  # data empty: Caffe reads float_data
        floats = value.tobytes()
        records.append((b"%08d" % i, header + b"\x32" + bytes([len(floats)]) + floats))
    source = write_records(tmp_path / "floats", records)
    out = read(tmp_path, LAYER, params(source, batch_size=3, mean_value=[0.5], scale=2.0), 1)
    expected = np.stack([(v - np.float32(0.5)) * np.float32(2.0) for v in values])
    assert np.array_equal(out["data"], expected)


def test_gray_and_forced_decoding_of_encoded_records(tmp_path):
    source, dataset = converted(tmp_path, 4, extra=("--encoded",))
    gray = read(tmp_path, LAYER, params(source, force_gray=True), 1)
    assert gray["data"].shape == (4, 1, 12, 14)
    import cv2

    expected = cv2.imdecode(np.fromfile(dataset.files[0], np.uint8), cv2.IMREAD_GRAYSCALE)
    assert np.array_equal(gray["data"][0, 0], expected)
    gray_source, gray_set = converted(tmp_path, 4, name="g", channels=1, extra=("--encoded",))
    native = read(tmp_path, LAYER, params(gray_source), 1)
    assert native["data"].shape == (4, 1, 12, 14)
    colour = read(tmp_path, LAYER, params(gray_source, force_color=True), 1)
    assert colour["data"].shape == (4, 3, 12, 14)
    assert np.array_equal(colour["data"][0], np.repeat(chw(gray_set.images[0]), 3, axis=0))


def test_encoded_png_with_alpha_keeps_four_channels_as_caffe(tmp_path):
    import cv2

    image = np.random.default_rng(0).integers(0, 256, (6, 5, 4), dtype=np.uint8)
    png = cv2.imencode(".png", image)[1].tobytes()
    source = write_records(tmp_path / "alpha", [(b"0", serialize_datum(png, 3))])
    out = read(tmp_path, LAYER, params(source, batch_size=1), 1)
    assert np.array_equal(out["data"][0], chw(image)) and out["label"][0] == 3


def test_data_alone_is_one_top(tmp_path):
    source, dataset = converted(tmp_path, 4)
    out = read(tmp_path, LAYER, params(source), 1, tops=("data",))
    assert np.array_equal(out["data"][2], chw(dataset.images[2]))


# --- records of several sizes ---------------------------------------------------------------


def _sized_records(tmp_path, sizes, backend="lmdb"):
    rng = np.random.default_rng(0)
    pixels = [rng.integers(0, 256, (3,) + size, dtype=np.uint8) for size in sizes]
    return write_records(tmp_path / "sized", [raw_record(i, p) for i, p in enumerate(pixels)],
                         backend), pixels


def test_records_of_several_sizes_work_with_a_crop(tmp_path):
    source, pixels = _sized_records(tmp_path, [(10, 12), (14, 11), (10, 10)])
    out = read(tmp_path, LAYER, params(source, batch_size=3, crop_size=10), 1, )
    for row, image in enumerate(pixels):
        h_off, w_off = (image.shape[1] - 10) // 2, (image.shape[2] - 10) // 2
        assert np.array_equal(out["data"][row], image[:, h_off:h_off + 10, w_off:w_off + 10])


def test_a_record_of_another_size_without_crop_names_its_key(tmp_path):
    source, _ = _sized_records(tmp_path, [(10, 12), (10, 12), (9, 12)])
    with data_net(tmp_path, LAYER, params(source, batch_size=3)) as net, \
            pytest.raises(DataError) as info:
        net.forward()
    assert str(info.value).startswith(f"record 2 '00000002_raw' of '{source}': the image is "
                                      f"3x9x12 (C x H x W) and differs from the first record's "
                                      f"3x10x12; without crop_size")


def test_a_record_smaller_than_the_crop_names_its_key(tmp_path):
    source, _ = _sized_records(tmp_path, [(10, 12), (8, 12)])
    with data_net(tmp_path, LAYER, params(source, batch_size=2, crop_size=9,
                                          workers=1)) as net, \
            pytest.raises(WorkerError) as info:
        net.forward()
    assert "record 1 '00000001_raw'" in str(info.value)
    assert "is smaller than crop_size 9" in str(info.value)


# --- bad input -----------------------------------------------------------------------------


def test_a_missing_database_is_a_config_error(tmp_path):
    error = setup_error(tmp_path, LAYER, params(str(tmp_path / "nope")))
    assert isinstance(error, ConfigError)
    assert f"source: the database '{tmp_path / 'nope'}' does not exist" in str(error)


def test_a_database_at_a_url_is_refused_saying_to_copy_it_locally(tmp_path):
    error = setup_error(tmp_path, LAYER, params("s3://bucket/train_lmdb"))
    assert isinstance(error, ConfigError)
    assert str(error).startswith(
        "source: 's3://bucket/train_lmdb' is a URL, but an LMDB or LevelDB database is opened "
        "from a local directory (LMDB maps its file into memory), which needs a local file; copy "
        "it to local disk first")


def test_a_file_or_data_mdb_itself_is_refused_with_the_fix(tmp_path):
    source, _ = converted(tmp_path, 2)
    error = setup_error(tmp_path, LAYER, params(os.path.join(source, "data.mdb")))
    assert f"give the directory that holds it, '{source}'" in str(error)
    (tmp_path / "list.txt").write_text("a.png 0\n")
    error = setup_error(tmp_path, LAYER, params(str(tmp_path / "list.txt")))
    assert "is a file, not a database directory" in str(error)
    assert "ImageListDataLayer" in str(error)


def test_a_folder_that_is_no_database(tmp_path):
    (tmp_path / "empty").mkdir()
    error = setup_error(tmp_path, LAYER, params(str(tmp_path / "empty")))
    assert isinstance(error, ConfigError)
    assert "is not an LMDB or LevelDB database: it holds neither data.mdb nor CURRENT" \
        in str(error)


@pytest.mark.parametrize(("made", "asked"), [("lmdb", "LEVELDB"), ("leveldb", "LMDB")])
def test_a_backend_that_does_not_match_the_directory_says_which_it_is(tmp_path, made, asked):
    source, _ = converted(tmp_path, 2, backend=made)
    error = setup_error(tmp_path, LAYER, params(source, backend=asked))
    assert isinstance(error, ConfigError)
    assert str(error) == (f"backend: '{source}' is a {made.upper()} database "
                          f"({'data.mdb' if made == 'lmdb' else 'CURRENT'}), not {asked}; set "
                          f"backend: {made.upper()} or leave backend out to detect it")


def test_an_empty_database(tmp_path, backend):
    source = write_records(tmp_path / "empty_db", [], backend)
    error = setup_error(tmp_path, LAYER, params(source))
    assert isinstance(error, DataError)
    assert str(error) == f"source: the {backend.upper()} database '{source}' holds no records"


def test_a_first_record_that_is_not_a_datum_fails_setup_naming_its_key(tmp_path, backend):
    source = write_records(tmp_path / "junk", [(b"first", b"\xff\xff\xff")], backend)
    error = setup_error(tmp_path, LAYER, params(source))
    assert isinstance(error, DataError)
    assert str(error).startswith(f"record 0 'first' of '{source}': not a Caffe Datum (3 bytes)")


def _with_bad_record(tmp_path, value: bytes, backend="lmdb"):
    rng = np.random.default_rng(0)
    records = [raw_record(i, rng.integers(0, 256, (3, 4, 5), dtype=np.uint8)) for i in range(6)]
    records[3] = (records[3][0], value)
    return write_records(tmp_path / "bad", records, backend)


BAD_RECORDS = {
    "not a Datum": (b"\x08", "not a Caffe Datum (1 bytes): truncated varint at byte 1"),
    "no image": (serialize_datum(b"", 3, (0, 0, 0)), "is not positive; not an image record"),
    "short data": (serialize_datum(b"\x00" * 7, 3, (3, 4, 5)),
                   "the Datum is 3x4x5 (C x H x W) = 60 pixels but its data holds 7 bytes"),
    "undecodable": (serialize_datum(b"GIF89a not really", 3),
                    "cannot decode the encoded image of record 3"),
    "truncated JPEG": (serialize_datum(b"\xff\xd8\xff\xe0\x00\x10JFIF", 3),
                       "is a truncated JPEG"),
}


@pytest.mark.parametrize("case", sorted(BAD_RECORDS))
def test_a_bad_record_names_the_database_and_its_key(tmp_path, case):
    value, message = BAD_RECORDS[case]
    source = _with_bad_record(tmp_path, value)
    with data_net(tmp_path, LAYER, params(source, batch_size=6, workers=1)) as net, \
            pytest.raises(WorkerError) as info:
        net.forward()
    assert info.value.exc_type == "DataError"
    assert f"record 3 '00000003_raw' of '{source}'" in str(info.value)
    assert message in str(info.value)


def test_on_error_skip_replaces_a_bad_record_by_the_next_and_logs_it(tmp_path, backend, capfd):
    source = _with_bad_record(tmp_path, b"\x08", backend)
    out = read(tmp_path, LAYER, params(source, batch_size=6, on_error="skip", workers=1), 2)
    assert ids(out).tolist() == [0, 1, 2, 4, 4, 5] * 2
    err = capfd.readouterr().err
    assert f"skipped sample 3: record 3 '00000003_raw' of '{source}': not a Caffe Datum" in err
    assert err.count("skipped sample") == 1  # printed once per distinct record


def test_a_16_bit_png_is_refused_as_caffe_refuses_it(tmp_path):
    import cv2

    png = cv2.imencode(".png", np.full((4, 4), 40000, np.uint16))[1].tobytes()
    source = write_records(tmp_path / "deep", [(b"0", serialize_datum(png, 0))])
    error = setup_error(tmp_path, LAYER, params(source, batch_size=1))
    assert isinstance(error, DataError)
    assert "decodes to uint16 pixels; Caffe reads 8-bit images only" in str(error)


def test_force_keys_on_raw_records_and_together_are_refused(tmp_path):
    source, _ = converted(tmp_path, 2)
    error = setup_error(tmp_path, LAYER, params(source, force_gray=True))
    assert isinstance(error, ConfigError)
    assert "force_gray: applies to encoded records only" in str(error)
    error = setup_error(tmp_path, LAYER, params(source, force_gray=True, force_color=True))
    assert "force_color, force_gray: give at most one of them" in str(error)


def test_a_mean_file_of_another_size_is_refused_at_setup(tmp_path):
    source, _ = converted(tmp_path, 2)
    write_blobproto(tmp_path / "mean.binaryproto", np.zeros((3, 12, 13), np.float32))
    error = setup_error(tmp_path, LAYER, params(source, mean_file=str(tmp_path /
                                                                      "mean.binaryproto")))
    assert isinstance(error, ConfigError)
    assert "mean_file: the mean is (3, 12, 13) but the images are (3, 12, 14)" in str(error)


def test_shuffle_keys_need_shuffle(tmp_path):
    source, _ = converted(tmp_path, 2)
    error = setup_error(tmp_path, LAYER, params(source, shuffle_block=4))
    assert "shuffle_block: only used with shuffle: true" in str(error)


def test_a_missing_plyvel_names_the_install_command(tmp_path):
    import subprocess
    import sys

    from layer_nets import SUBPROCESS_ENV

    source, _ = converted(tmp_path, 2, backend="leveldb")
    code = ("import sys; sys.modules['plyvel'] = None\n"
            "from caffe_layers.sources.db import Database\n"
            f"Database.scan({source!r})\n")
    done = subprocess.run([sys.executable, "-c", code], env=SUBPROCESS_ENV, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 1
    assert ("ConfigError: backend: LEVELDB needs the plyvel package: pip install "
            "'caffe-layers[leveldb]' (or pip install plyvel)") in done.stderr


# --- processes: LevelDB views, concurrent readers, spawn, respawn ----------------------------


def _views() -> set:
    import tempfile

    from caffe_layers.sources.leveldb import VIEW_PREFIX

    return {n for n in os.listdir(tempfile.gettempdir()) if n.startswith(VIEW_PREFIX)}


def test_a_leveldb_held_open_by_another_process_is_read_through_views(tmp_path):
    import plyvel

    source, _ = converted(tmp_path, N, backend="leveldb")
    before = _views()
    holder = plyvel.DB(source)  # takes LevelDB's lock, as Caffe's own Data layer would
    try:
        with data_net(tmp_path, LAYER, params(source, batch_size=5, workers=2)) as net:
            out = forward(net, 4)
            assert len(_views() - before) == 2  # one per worker
        assert holder.get(b"00000003_" + f"db_images/img_{3:03d}.png".encode()) is not None
    finally:
        holder.close()
    assert ids(out).tolist() == list(range(N))
    assert _views() == before


def test_views_of_dead_processes_are_removed(tmp_path):
    import subprocess
    import sys
    import tempfile

    from caffe_layers.sources.leveldb import VIEW_PREFIX, make_view

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True, timeout=60)
    stale = os.path.join(tempfile.gettempdir(), f"{VIEW_PREFIX}{dead.stdout.strip()}-x")
    os.makedirs(stale)
    source, _ = converted(tmp_path, 2, backend="leveldb")
    view = make_view(source)
    try:
        assert not os.path.exists(stale)
        assert sorted(os.listdir(view)) == sorted(n for n in os.listdir(source)
                                                  if n not in ("LOCK", "LOG", "LOG.old"))
    finally:
        import shutil

        shutil.rmtree(view)


def test_two_layers_read_one_lmdb_at_the_same_time(tmp_path):
    source, _ = converted(tmp_path, N)
    with data_net(tmp_path, LAYER, params(source, batch_size=5, workers=2)) as first:
        path = tmp_path / "second"
        path.mkdir()
        with data_net(path, LAYER, params(source, batch_size=5, workers=1,
                                          shuffle=True)) as second:
            a, b = forward(first, 4), forward(second, 4)
    assert ids(a).tolist() == list(range(N))
    assert sorted(ids(b).tolist()) == list(range(N))


@pytest.mark.timeout(180)
def test_spawned_workers_open_their_own_readers(tmp_path, backend):
    source, _ = converted(tmp_path, N, backend=backend, extra=("--encoded",))
    out = read(tmp_path, LAYER, params(source, batch_size=5, workers=2, start_method="spawn",
                                       shuffle=True), 4)
    assert_epochs_exactly_once(ids(out), N, epochs=1)


def test_a_killed_worker_is_respawned_without_losing_a_record(tmp_path):
    import signal

    source, _ = converted(tmp_path, N)
    with data_net(tmp_path, LAYER, params(source, batch_size=5, workers=2, prefetch=1,
                                          on_worker_death="respawn")) as net:
        first = forward(net, 1)
        os.kill(net.layers[0]._engine.pids[0], signal.SIGKILL)
        rest = forward(net, 7)
    assert ids(first).tolist() + ids(rest).tolist() == list(range(N)) * 2
