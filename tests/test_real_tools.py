"""Our tools' files against Caffe's own tools and layers.

``caffe-layers-compute-mean`` gives the mean ``compute_image_mean`` computes from a database that
``convert_imageset`` wrote from the same list (both read with OpenCV and resize bilinearly), and
our reader reads Caffe's file. ``caffe-layers-convert-hdf5`` writes shards Caffe's ``HDF5Data``
reads, rows in list order. CAFFE.md, "Mean files" and "HDF5Data".
"""

from __future__ import annotations

import h5py
import numpy as np
import pytest
import real_caffe
from image_data import write_dataset

from caffe_layers.binaryproto import read_mean
from caffe_layers.tools import compute_mean, convert_hdf5

pytestmark = [pytest.mark.real_caffe, real_caffe.needs_binary]


@pytest.mark.parametrize("gray", [False, True], ids=["colour", "gray"])
def test_compute_mean_equals_caffe_compute_image_mean(tmp_path, gray):
    sizes = [(30, 40), (41, 23), (32, 32), (50, 20), (17, 29)]
    dataset = write_dataset(tmp_path, len(sizes), ext=".jpg", smooth=True, sizes=sizes,
                            root_folder=f"{tmp_path}/")
    resize = ["--resize_height", "24", "--resize_width", "20"]
    done = real_caffe.run_tool("convert_imageset", *resize, "--backend", "lmdb",
                               f"--gray={str(gray).lower()}", f"{tmp_path}/",
                               dataset.list_path, tmp_path / "db", cwd=tmp_path)
    assert done.returncode == 0, done.stdout[-3000:]
    done = real_caffe.run_tool("compute_image_mean", "--backend", "lmdb", tmp_path / "db",
                               tmp_path / "caffe_mean.binaryproto", cwd=tmp_path)
    assert done.returncode == 0, done.stdout[-3000:]
    ours = ["--root-folder", f"{tmp_path}/", "--new-height", "24", "--new-width", "20",
            "--out", str(tmp_path / "our_mean.binaryproto"), "--quiet"]
    assert compute_mean.main([str(dataset.list_path), *ours, *(["--gray"] if gray else [])]) == 0
    caffe_mean = read_mean(str(tmp_path / "caffe_mean.binaryproto"))
    our_mean = read_mean(str(tmp_path / "our_mean.binaryproto"))
    assert caffe_mean.shape == our_mean.shape == ((1,) if gray else (3,)) + (24, 20)
    np.testing.assert_allclose(our_mean, caffe_mean, rtol=1e-6)
    assert caffe_mean.std() > 1


def test_convert_hdf5_shards_are_read_by_caffe_hdf5_data(tmp_path):
    dataset = write_dataset(tmp_path, 7, (12, 10), root_folder=f"{tmp_path}/")
    status = convert_hdf5.main([str(dataset.list_path), str(tmp_path / "h5"), "--root-folder",
                                f"{tmp_path}/", "--shard-size", "3", "--quiet"])
    assert status == 0
    source = next((tmp_path / "h5").glob("*.txt"))
    (tmp_path / "net.prototxt").write_text(
        f'layer {{ name: "h5" type: "HDF5Data" top: "data" top: "label" '
        f'hdf5_data_param {{ source: "{source}" batch_size: 4 }} }}\n'
        f'layer {{ name: "out" type: "Silence" bottom: "data" bottom: "label" }}\n')
    done = real_caffe.run_tool("caffe", "time", "--model", "net.prototxt", "--iterations", "3",
                               cwd=tmp_path)
    assert done.returncode == 0, done.stdout[-3000:]
    assert "Top shape: 4 3 12 10 (1440)" in done.stdout
    shards = sorted((tmp_path / "h5").glob("*.h5"))
    assert len(shards) == 3
    labels = np.concatenate([h5py.File(shard, "r")["label"][...] for shard in shards])
    assert labels.tolist() == list(range(7))


@real_caffe.needs_pycaffe
@pytest.mark.parametrize(("module", "layer", "said"), [
    ("no_such_module", "ImageListDataLayer",
     "cannot import no_such_module.ImageListDataLayer: No module named 'no_such_module'"),
    ("caffe_layers.layers", "NoSuchLayer", "raised AttributeError: module 'caffe_layers.layers' "
                                           "has no attribute 'NoSuchLayer'"),
])
def test_a_layer_pycaffe_cannot_make_is_named_by_the_tools(tmp_path, capsys, module, layer, said):
    # Real pycaffe prints the exception (PyErr_Print) and raises SystemError instead.
    from test_tools_preview import assert_error, data_layer, run, write_net

    from caffe_layers.tools import _netrun

    net = write_net(tmp_path / "net.prototxt", data_layer("TRAIN", {}, module=module, cls=layer))
    status, _, err = run([net], capsys)
    assert "SystemError" not in err
    assert_error(status, err, 2 if module == "no_such_module" else 1, said)
    assert _netrun.printed_instead(ValueError("x"), "KeyError: 'y'").args == ("x",)
