"""The keys several layers share mean the same everywhere: one check, one message."""

from __future__ import annotations

import pytest
from layer_nets import setup_error
from sample_datasets import write_h5_source, write_image_list, write_npy_samples

from caffe_layers.errors import ConfigError


def image_list(tmp_path) -> dict:
    return {"source": write_image_list(tmp_path, 4)}


def hdf5(tmp_path) -> dict:
    return {"source": write_h5_source(tmp_path, sizes=(4,), chunks=(None,))[0]}


def npy(tmp_path) -> dict:
    return {"source": write_npy_samples(tmp_path, 4), "root": tmp_path / "npy"}


NORMALIZING = {"ImageListDataLayer": image_list, "HDF5DataLayer": hdf5, "NpyDataLayer": npy}


def param_str(keys: dict) -> str:
    return "{" + ", ".join(f"{k}: {v}" for k, v in {"batch_size": 2, **keys}.items()) + "}"


@pytest.mark.parametrize("layer", sorted(NORMALIZING))
@pytest.mark.parametrize(("keys", "message"), [
    ({"scale": "1.0e+39"}, "scale: must be a finite float32 number (got 1e+39)"),
    ({"mean_value": "[1.0e+39]"}, "mean_value: must be finite numbers (got [1e+39])"),
    ({"mean_value": 1, "mean_file": "mean.binaryproto"},
     "mean_file, mean_value: give one of them, not both"),
])
def test_mean_and_scale_mistakes_get_one_message_on_every_layer(tmp_path, layer, keys, message):
    error = setup_error(tmp_path, layer, param_str({**NORMALIZING[layer](tmp_path), **keys}))
    assert isinstance(error, ConfigError), repr(error)
    assert message in str(error)
