"""The keys several layers share mean the same everywhere: one check, one message."""

from __future__ import annotations

import pytest
from db_data import converted
from layer_nets import data_net, setup_error
from sample_datasets import write_h5_source, write_image_list, write_npy_samples

from caffe_layers.errors import ConfigError


def image_list(tmp_path) -> dict:
    return {"source": write_image_list(tmp_path, 4)}


def hdf5(tmp_path) -> dict:
    return {"source": write_h5_source(tmp_path, sizes=(4,), chunks=(None,))[0]}


def npy(tmp_path) -> dict:
    return {"source": write_npy_samples(tmp_path, 4), "root_folder": tmp_path / "npy"}


def db(tmp_path) -> dict:
    return {"source": converted(tmp_path, 2)[0]}


NORMALIZING = {"ImageListDataLayer": image_list, "HDF5DataLayer": hdf5, "NpyDataLayer": npy,
               "DBDataLayer": db}


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


# --- one name per concept ------------------------------------------------------------------------


def test_npy_takes_root_folder_like_every_other_layer(tmp_path):
    keys = {**npy(tmp_path), "workers": 0}
    with data_net(tmp_path, "NpyDataLayer", param_str(keys)) as net:
        net.forward()
        assert net.blobs["label"].data.tolist() == [0, 1]


def test_npy_still_takes_its_old_root_with_a_deprecation_pointing_at_root_folder(tmp_path):
    keys = npy(tmp_path)
    keys["root"] = keys.pop("root_folder")
    warning = pytest.warns(FutureWarning, match="NpyDataLayer param_str: 'root' is deprecated, "
                                                "write 'root_folder' instead")
    with warning, data_net(tmp_path, "NpyDataLayer", param_str({**keys, "workers": 0})) as net:
        net.forward()
        assert net.blobs["label"].data.tolist() == [0, 1]


def test_npy_root_and_root_folder_together_is_an_error(tmp_path):
    keys = {**npy(tmp_path), "root": "elsewhere"}
    error = setup_error(tmp_path, "NpyDataLayer", param_str(keys))
    assert isinstance(error, ConfigError)
    assert "root: is the old name of root_folder; give only root_folder" in str(error)


@pytest.mark.parametrize(("layer", "key", "hint"), [
    ("HDF5DataLayer", "crop_size",
     "crop_size: unknown key; that is a key of ImageListDataLayer, DBDataLayer and "
     "MultiInputDataLayer"),
    ("ImageListDataLayer", "tops",
     "tops: unknown key; that is a key of HDF5DataLayer, DatasetDataLayer and "
     "SequenceDataLayer"),
    ("NpyDataLayer", "attach", "attach: unknown key; that is a key of MultiInputDataLayer"),
    ("HDF5DataLayer", "partial_batch",
     "partial_batch: unknown key; that is a key of SequenceDataLayer"),
])
def test_a_key_of_another_layer_is_named_as_such(tmp_path, layer, key, hint):
    builders = {**NORMALIZING, "HDF5DataLayer": hdf5}
    error = setup_error(tmp_path, layer, param_str({**builders[layer](tmp_path), key: 1}))
    assert isinstance(error, ConfigError)
    assert hint in str(error)


def test_a_typo_of_an_own_key_still_gets_did_you_mean(tmp_path):
    error = setup_error(tmp_path, "NpyDataLayer", param_str({**npy(tmp_path), "n_clases": 3}))
    assert "n_clases: unknown key; did you mean 'n_classes'?" in str(error)
