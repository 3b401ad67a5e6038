"""Our layers against Caffe's own C++ layers, bit for bit, in one real pycaffe net.

``ImageListDataLayer`` against ``ImageData`` (TEST: resize, centre crop, mean file, scale, colour
and gray, across the wrap of the list) and ``HDF5DataLayer`` against ``HDF5Data`` (rows and their
order across files and wraps, float and integer data). Both layers of a pair sit in the same net,
so every ``net.forward()`` advances both by one batch. CAFFE.md, "ImageData" and "HDF5Data".
"""

from __future__ import annotations

import json

import h5py
import numpy as np
import pytest
import real_caffe
from image_data import write_dataset

from caffe_layers.binaryproto import write_blobproto
from caffe_layers.prefetch import close_all

pytestmark = [pytest.mark.real_caffe, real_caffe.needs_pycaffe]

BATCHES = 6


def ours(name: str, layer: str, params: dict, tops: tuple) -> str:
    wiring = " ".join(f'top: "{top}"' for top in tops)
    return (f'layer {{ name: "{name}" type: "Python" {wiring} python_param {{ '
            f'module: "caffe_layers.layers" layer: "{layer}" '
            f"param_str: '{json.dumps(params)}' }} }}\n")


def batches(tmp_path, net_text: str, tops: tuple) -> list:
    """``BATCHES`` forwards of a TEST net: per forward, a copy of each of ``tops``."""
    import caffe

    path = tmp_path / "net.prototxt"
    path.write_text(net_text)
    net = caffe.Net(str(path), caffe.TEST)
    seen = []
    try:
        for _ in range(BATCHES):
            net.forward()
            seen.append({top: net.blobs[top].data.copy() for top in tops})
    finally:
        close_all()
    assert all(batch[tops[0]].std() > 0 for batch in seen), "a batch of constant data"
    return seen


@pytest.mark.parametrize("channels", [3, 1], ids=["colour", "gray"])
def test_image_list_equals_caffe_image_data(tmp_path, channels):
    sizes = [(40, 30), (25, 50), (33, 33), (64, 48), (20, 20), (31, 45), (50, 40)]
    dataset = write_dataset(tmp_path, len(sizes), channels=channels, ext=".jpg", smooth=True,
                            sizes=sizes, root_folder=f"{tmp_path}/")
    rng = np.random.default_rng(3)
    mean = rng.uniform(0, 255, (1, channels, 36, 28)).astype(np.float32)
    write_blobproto(tmp_path / "mean.binaryproto", mean)
    common = {"batch_size": 3, "new_height": 36, "new_width": 28, "is_color": channels == 3}
    image_data = (f'layer {{ name: "caffe" type: "ImageData" top: "c_data" top: "c_label" '
                  f'image_data_param {{ source: "{dataset.list_path}" root_folder: "{tmp_path}/" '
                  f'batch_size: 3 new_height: 36 new_width: 28 '
                  f'is_color: {str(channels == 3).lower()} }} '
                  f'transform_param {{ crop_size: 24 mean_file: "{tmp_path}/mean.binaryproto" '
                  f'scale: 0.0125 }} }}\n')
    params = dict(common, source=str(dataset.list_path), root_folder=f"{tmp_path}/",
                  crop_size=24, mean_file=str(tmp_path / "mean.binaryproto"), scale=0.0125,
                  workers=2)
    net = image_data + ours("ours", "ImageListDataLayer", params, ("data", "label"))
    seen = batches(tmp_path, net, ("c_data", "c_label", "data", "label"))
    assert seen[0]["data"].shape == (3, channels, 24, 24)
    for number, batch in enumerate(seen):
        assert batch["data"].tobytes() == batch["c_data"].tobytes(), f"batch {number}"
        assert batch["label"].tolist() == batch["c_label"].tolist(), f"batch {number}"
    labels = np.concatenate([batch["label"] for batch in seen]).tolist()
    assert labels == [i % len(sizes) for i in range(3 * BATCHES)]  # wraps inside batch 2


@pytest.mark.parametrize("dtype", ["float32", "uint8"])
def test_hdf5_equals_caffe_hdf5_data(tmp_path, dtype):
    rng = np.random.default_rng(5)
    paths, row = [], 0
    for index, rows in enumerate([5, 3, 4]):
        path = tmp_path / f"part{index}.h5"
        with h5py.File(path, "w") as out:
            out["data"] = rng.integers(0, 200, (rows, 2, 3, 4)).astype(dtype)
            out["label"] = np.arange(row, row + rows, dtype=np.float32)
        row += rows
        paths.append(str(path))
    (tmp_path / "files.txt").write_text("\n".join(paths) + "\n")
    hdf5_data = (f'layer {{ name: "caffe" type: "HDF5Data" top: "data" top: "label" '
                 f'hdf5_data_param {{ source: "{tmp_path}/files.txt" batch_size: 5 }} }}\n')
    params = {"source": str(tmp_path / "files.txt"), "batch_size": 5, "workers": 2,
              "tops": ["data", "label"]}
    net = hdf5_data + ours("ours", "HDF5DataLayer", params, ("o_data", "o_label"))
    seen = batches(tmp_path, net, ("data", "label", "o_data", "o_label"))
    for number, batch in enumerate(seen):
        assert batch["o_data"].tobytes() == batch["data"].tobytes(), f"batch {number}"
        assert batch["o_label"].tolist() == batch["label"].tolist(), f"batch {number}"
    labels = np.concatenate([batch["label"] for batch in seen]).tolist()
    assert labels == [i % 12 for i in range(5 * BATCHES)]  # across files and wraps
