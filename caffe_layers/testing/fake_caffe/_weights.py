"""Parameter blobs in files and between nets: ``Net.save``, ``copy_from``, ``share_with``.

The file is the fake's own format, not a ``.caffemodel``: an ``.npz`` archive holding
``layer_names`` (every layer, in order), ``blob_counts`` (parameter blobs per layer) and one
float32 array ``b<layer index>_<blob index>`` per parameter blob. As with Caffe's ``ToProto``,
only the data is written, never the diff. Layers are matched by name, the first of that name.
"""

from __future__ import annotations

import zipfile
from typing import Sequence

import numpy as np

from caffe_layers.testing.fake_caffe._errors import CaffeAbort, check

# [(layer name, that layer's BlobVec of parameter blobs)], one per layer in net order
NamedParams = Sequence[tuple]


def save(params: NamedParams, filename: str) -> None:
    arrays = {"layer_names": np.array([name for name, _ in params], dtype=str),
              "blob_counts": np.array([len(blobs) for _, blobs in params], dtype=np.int64)}
    for i, (_, blobs) in enumerate(params):
        for j in range(len(blobs)):
            arrays[f"b{i}_{j}"] = blobs[j].data.copy()
    try:
        with open(filename, "wb") as handle:  # a file object: np.savez would append '.npz'
            np.savez(handle, **arrays)
    except OSError as exc:
        raise CaffeAbort(f"Check failed: proto.SerializeToOstream(&output) "
                         f"cannot write {filename}: {exc}") from exc


def copy_from(params: NamedParams, filename: str) -> None:
    """``CopyTrainedLayersFrom``: copy data into same-named layers; mismatches abort."""
    for name, arrays in _load(filename):
        blobs = _first(params, name)
        if blobs is None:
            continue  # "Ignoring source layer"
        _check_count(name, blobs, len(arrays))
        for j, array in enumerate(arrays):
            check(tuple(blobs[j].shape) == array.shape,
                  f"Cannot copy param {j} weights from layer '{name}'; shape mismatch.  Source "
                  f"param shape is {array.shape}; target param shape is {tuple(blobs[j].shape)}. "
                  f"To learn this layer's parameters from scratch rather than copying from a "
                  f"saved net, rename the layer.")
            blobs[j].data[...] = array


def share(params: NamedParams, source: NamedParams) -> None:
    """``ShareTrainedLayersWith``: same-named layers use the source blobs' data memory."""
    for name, source_blobs in source:
        blobs = _first(params, name)
        if blobs is None:
            continue
        _check_count(name, blobs, len(source_blobs))
        for j in range(len(blobs)):
            check(tuple(blobs[j].shape) == tuple(source_blobs[j].shape),
                  f"Cannot share param {j} weights from layer '{name}'; shape mismatch.  Source "
                  f"param shape is {source_blobs[j]._shape_string()}; target param shape is "
                  f"{blobs[j]._shape_string()}")
            blobs[j]._share_data(source_blobs[j])


def _first(params: NamedParams, name: str) -> object:
    return next((blobs for layer_name, blobs in params if layer_name == name), None)


def _check_count(name: str, blobs: Sequence, source_count: int) -> None:
    check(len(blobs) == source_count,
          f"Check failed: target_blobs.size() == source_layer.blobs_size() "
          f"({len(blobs)} vs. {source_count}) Incompatible number of blobs for layer {name}")


def _load(filename: str) -> list:
    """[(layer name, [arrays])] from a file written by :func:`save`."""
    try:
        archive = np.load(filename, allow_pickle=False)
    except FileNotFoundError:
        raise CaffeAbort(f"Check failed: fd != -1 File not found: {filename}") from None
    except (OSError, ValueError) as exc:
        raise _unreadable(filename, exc) from exc
    if not hasattr(archive, "files"):
        raise _unreadable(filename, "a single .npy array, not an archive")
    with archive:
        try:
            names, counts = archive["layer_names"], archive["blob_counts"]
            return [(str(name), [archive[f"b{i}_{j}"] for j in range(int(counts[i]))])
                    for i, name in enumerate(names)]
        except (KeyError, ValueError, IndexError, zipfile.BadZipFile) as exc:
            raise _unreadable(filename, exc) from exc


def _unreadable(filename: str, why: object) -> CaffeAbort:
    return CaffeAbort(f"Failed to parse NetParameter file: {filename} (the fake caffe reads only "
                      f"files written by its own Net.save: {why})")
