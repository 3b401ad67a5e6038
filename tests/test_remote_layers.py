"""The layers read their files from real HTTP and S3 (moto) servers on localhost: the same batches
as from local disk, several reads in flight per worker, throttling retried and counted, a
missing object named with its list line (or skipped), credentials never printed.
"""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from image_data import mean_of, write_dataset
from layer_nets import data_net, forward, read
from sample_datasets import write_features, write_h5_source, write_npy_samples
from test_remote_files import bucket_for

from caffe_layers.binaryproto import write_blobproto
from caffe_layers.errors import WorkerError
from caffe_layers.files import read_bytes
from caffe_layers.prefetch.forksafe import prepared_for_fork

pytestmark = [pytest.mark.timeout(180),
              # the servers run in threads of the test process, which forks the workers
              pytest.mark.filterwarnings("ignore:This process .* is multi-threaded")]
IMAGES = "ImageListDataLayer"


def image_files(root, count: int = 24, classes: int = 0):
    """Images, their list (paths relative to ``root``) and a mean file, under ``root``."""
    dataset = write_dataset(root, count, (20, 24), root_folder=str(root), ext=".png", seed=3,
                            classes=classes)
    write_blobproto(root / "mean.binaryproto", mean_of(dataset.images)[np.newaxis])
    return dataset


def image_params(base: str, **extra) -> str:
    """The image list at ``base`` (a directory or a URL), shuffled, cropped, mirrored, mean."""
    params = {"source": f"{base}/list.txt", "root_folder": f"{base}/", "batch_size": 5,
              "shuffle": True, "crop_size": 16, "mirror": True,
              "mean_file": f"{base}/mean.binaryproto", "workers": 2, **extra}
    return json.dumps(params)


def assert_same(one: dict, other: dict) -> None:
    assert one.keys() == other.keys()
    for top in one:
        assert np.array_equal(one[top], other[top]), top


def s3_upload(s3_store, tmp_path, root) -> str:
    return s3_store.upload(root, bucket_for(tmp_path), "set")


# --- the same batches as from local disk ---------------------------------------------------------


def test_image_list_over_http_gives_the_local_batches(tmp_path, http_store):
    image_files(http_store.root)
    local = read(tmp_path, IMAGES, image_params(str(http_store.root)), 7)
    remote = read(tmp_path, IMAGES, image_params(http_store.url), 7)
    assert_same(local, remote)
    assert http_store.faults.requests["list.txt"] == 1
    assert http_store.faults.requests["mean.binaryproto"] == 1


def test_image_list_from_s3_gives_the_local_batches(tmp_path, s3_store):
    root = tmp_path / "data"
    image_files(root)
    url = s3_upload(s3_store, tmp_path, root)
    options = {"storage_options": s3_store.storage_options}
    local = read(tmp_path, IMAGES, image_params(str(root)), 7)
    remote = read(tmp_path, IMAGES, image_params(url, **options), 7)
    assert_same(local, remote)


def test_image_list_in_process_reads_each_batch_together_and_keeps_no_thread(tmp_path,
                                                                             http_store):
    image_files(http_store.root)
    local = read(tmp_path, IMAGES, image_params(str(http_store.root), workers=0), 5)
    with data_net(tmp_path, IMAGES, image_params(http_store.url, workers=0)) as net:
        remote = forward(net, 5)
        deadline = time.monotonic() + 10
        while any(t.name.startswith("caffe_layers-read") for t in threading.enumerate()) \
                and time.monotonic() < deadline:
            time.sleep(0.01)
        assert not [t.name for t in threading.enumerate()
                    if t.name.startswith("caffe_layers-read")]
    assert_same(local, remote)


def npy_params(list_path: str, root: str, **extra) -> str:
    return json.dumps({"source": list_path, "root_folder": root, "batch_size": 4,
                       "shuffle": True, "workers": 2, **extra})


def test_npy_samples_over_http_give_the_local_batches(tmp_path, http_store):
    root = http_store.root
    listing = write_npy_samples(root, 18, shape=(2, 3))
    local = read(tmp_path, "NpyDataLayer", npy_params(listing, str(root / "npy")), 6)
    over_http = read(tmp_path, "NpyDataLayer",
                     npy_params(f"{http_store.url}/list.txt", f"{http_store.url}/npy"), 6)
    assert_same(local, over_http)


def test_npy_samples_from_s3_give_the_local_batches(tmp_path, s3_store):
    root = tmp_path / "data"
    root.mkdir()
    listing = write_npy_samples(root, 18, shape=(2, 3))
    local = read(tmp_path, "NpyDataLayer", npy_params(listing, str(root / "npy")), 6)
    url = s3_upload(s3_store, tmp_path, root)
    from_s3 = read(tmp_path, "NpyDataLayer",
                   npy_params(f"{url}/list.txt", f"{url}/npy/",
                              storage_options=s3_store.storage_options), 6)
    assert_same(local, from_s3)


def h5_lists(root, urls: dict) -> None:
    """``list_<name>.txt`` naming the same .h5 files under each base URL of ``urls``."""
    listing, _ = write_h5_source(root, sizes=(37, 50, 13), chunks=(None, 8, 1))
    names = [os.path.basename(line) for line in Path(listing).read_text().split()]
    for name, base in urls.items():
        (root / f"list_{name}.txt").write_text("".join(f"{base}/{n}\n" for n in names))


def h5_params(source: str, **extra) -> str:
    return json.dumps({"source": source, "batch_size": 9, "shuffle": True, "workers": 2,
                       **extra})


def test_hdf5_files_over_http_give_the_local_batches(tmp_path, http_store):
    root = http_store.root
    h5_lists(root, {"local": str(root), "http": http_store.url})
    local = read(tmp_path, "HDF5DataLayer", h5_params(str(root / "list_local.txt")), 14)
    over_http = read(tmp_path, "HDF5DataLayer", h5_params(f"{http_store.url}/list_http.txt"), 14)
    assert sorted(local["label"][:100].tolist()) == list(range(100))  # an epoch, shuffled
    assert_same(local, over_http)


def test_hdf5_files_from_s3_give_the_local_batches(tmp_path, s3_store):
    root = tmp_path / "data"
    root.mkdir()
    bucket_url = f"s3://{bucket_for(tmp_path)}/set"
    h5_lists(root, {"local": str(root), "s3": bucket_url})
    assert s3_upload(s3_store, tmp_path, root) == bucket_url
    local = read(tmp_path, "HDF5DataLayer", h5_params(str(root / "list_local.txt")), 14)
    from_s3 = read(tmp_path, "HDF5DataLayer",
                   h5_params(f"{bucket_url}/list_s3.txt",
                             storage_options=s3_store.storage_options), 14)
    assert_same(local, from_s3)


def test_an_attached_hdf5_file_over_http_gives_the_local_rows(tmp_path, http_store):
    root = http_store.root
    image_files(root, count=12, classes=3)
    write_features(root / "feats.h5", 12, chunks=4)

    def params(base: str) -> str:
        attach = [{"top": "feat", "hdf5": f"{base}/feats.h5", "dataset": "features",
                   "match": "label", "label_dataset": "labels"}]
        return image_params(base, attach=attach, mean_file="", mean_value=[100.0])

    tops = ("data", "label", "feat")
    local = read(tmp_path, "MultiInputDataLayer", params(str(root)), 4, tops)
    remote = read(tmp_path, "MultiInputDataLayer", params(http_store.url), 4, tops)
    assert_same(local, remote)


# --- latency, throttling, missing objects --------------------------------------------------------


def test_an_hdf5_worker_reads_the_chunks_of_its_batches_ahead_several_at_once(
        tmp_path, http_store, monkeypatch):
    """Chunks of 1 MiB, 24 MiB in all, read ahead in requests of 2 blocks of 2 MiB (the forked
    worker inherits the setting): one worker's batches are requested together and ahead
    (RemoteFile.prefetch), not one block after the other as h5py reads."""
    import h5py

    from caffe_layers.files import random_access

    monkeypatch.setattr(random_access, "RUN_BLOCKS", 2)

    rows = np.random.default_rng(3).random((384, 16384), dtype=np.float32)  # 64 KiB rows
    with h5py.File(http_store.root / "big.h5", "w") as f:
        f.create_dataset("data", data=rows, chunks=(16, 16384))
        f.create_dataset("label", data=np.arange(384, dtype=np.float32), chunks=(16,))
    (http_store.root / "local.txt").write_text(f"{http_store.root / 'big.h5'}\n")
    (http_store.root / "http.txt").write_text(f"{http_store.url}/big.h5\n")

    def params(listing: str) -> str:
        return json.dumps({"source": listing, "batch_size": 128, "shuffle": False,
                           "workers": 1})

    local = read(tmp_path, "HDF5DataLayer", params(str(http_store.root / "local.txt")), 3)
    http_store.faults.latency_s = 0.05
    over_http = read(tmp_path, "HDF5DataLayer", params(f"{http_store.url}/http.txt"), 3)
    assert_same(local, over_http)
    assert http_store.faults.most_in_flight >= 2


def test_a_worker_keeps_several_reads_in_flight(tmp_path, http_store):
    image_files(http_store.root, count=48)
    http_store.faults.latency_s = 0.02
    with data_net(tmp_path, IMAGES, image_params(http_store.url, batch_size=16, workers=1,
                                                 shuffle=False)) as net:
        forward(net, 3)
    assert http_store.faults.most_in_flight >= 8


def test_throttled_reads_are_retried_counted_and_give_the_same_batches(
        tmp_path, http_store, fast_retries, capfd):
    # In list order the throttled files are samples 3 to 5 (batches 0 and 1): their failures are
    # met by those batches' reads, counted in the 5 batches read. Shuffled, a worker reading ahead
    # into the second epoch could meet one first and report it with a batch not yet read.
    dataset = image_files(http_store.root)
    local = read(tmp_path, IMAGES, image_params(str(http_store.root), shuffle=False), 5)
    for name in dataset.names[3:6]:
        http_store.faults.fail(name, 2, 503)
    with data_net(tmp_path, IMAGES, image_params(http_store.url, shuffle=False)) as net:
        remote = forward(net, 5)  # an epoch: every image read once
        assert net.layers[0].retried_reads == 6
    assert_same(local, remote)
    err = capfd.readouterr().err
    assert f"caffe_layers: {IMAGES} retried " in err and " reads so far (latest: HTTP 503 " in err


def test_a_missing_object_names_its_url_and_list_line(tmp_path, http_store):
    dataset = image_files(http_store.root, count=8)
    (http_store.root / dataset.names[5]).unlink()
    with data_net(tmp_path, IMAGES, image_params(http_store.url, shuffle=False,
                                                 batch_size=4)) as net, \
            pytest.raises(WorkerError) as info:
        forward(net, 2)
    assert (f"{http_store.url}/list.txt:6: image '{http_store.url}/{dataset.names[5]}' does not "
            f"exist") in str(info.value)


def test_a_missing_object_is_skipped_with_on_error_skip(tmp_path, s3_store, capfd):
    root = tmp_path / "data"
    dataset = image_files(root, count=8)
    (root / dataset.names[5]).unlink()
    url = s3_upload(s3_store, tmp_path, root)
    params = image_params(url, shuffle=False, batch_size=4, on_error="skip",
                          storage_options=s3_store.storage_options)
    labels = read(tmp_path, IMAGES, params, 2)["label"]
    assert labels.tolist() == [0, 1, 2, 3, 4, 6, 6, 7]
    err = capfd.readouterr().err
    assert (f"skipped sample 5: {url}/list.txt:6: image '{url}/{dataset.names[5]}' does not "
            f"exist (HTTP 404 NoSuchKey)") in err


# --- credentials, fork safety --------------------------------------------------------------------


def test_the_setup_line_and_messages_show_no_credentials(tmp_path, http_store, capfd):
    image_files(http_store.root, count=6)
    base = http_store.url.replace("://", "://joe:pa55word@")
    params = image_params(base, storage_options={"headers": {"X-Token": "s3cr3t-token"}})
    with data_net(tmp_path, IMAGES, params) as net:
        forward(net, 1)
    out, err = capfd.readouterr()
    assert "pa55word" not in out + err and "s3cr3t" not in out + err
    assert f"images from http://***@127.0.0.1:{http_store.port}/list.txt" in out
    assert "storage_options {headers: ***}" in out


def test_fsspecs_loop_thread_is_stopped_around_a_fork_and_runs_again_after(http_store):
    url = f"{http_store.url}/a.bin"
    (http_store.root / "a.bin").write_bytes(b"abc")
    assert read_bytes(url, "file") == b"abc"  # fsspec's event-loop thread now runs here

    def loop_threads() -> list:
        return [t for t in threading.enumerate() if t.name == "fsspecIO" and t.is_alive()]

    assert loop_threads()
    with prepared_for_fork():
        assert not loop_threads()
        pid = os.fork()
        if pid == 0:  # the child reads with a loop of its own
            os._exit(0 if read_bytes(url, "file") == b"abc" else 1)
    assert os.waitpid(pid, 0)[1] == 0
    assert loop_threads() and read_bytes(url, "file") == b"abc"
