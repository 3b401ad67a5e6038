"""``caffe.Net`` of the fake caffe: pycaffe's ``Net`` over a prototxt file.

Built as ``Net::Init`` builds it: filter layers by phase/level/stage rules, insert Split layers,
then for each layer in order construct it, wire its bottoms and tops, ``setup`` then ``reshape``
it, before the next one is constructed; then decide which layers need backward. Every forward
runs ``reshape`` then ``forward`` of each layer. Layers of types other than Input, Python, Split
and Silence are wired but not computed (see :class:`NotComputedWarning`).
"""

from __future__ import annotations

import warnings
from collections import OrderedDict
from functools import cached_property
from typing import Any, Sequence

import numpy as np

from caffe_layers.testing.fake_caffe import _weights
from caffe_layers.testing.fake_caffe._arguments import (
    check_file,
    constructor_arguments,
    text_arg,
)
from caffe_layers.testing.fake_caffe._blob import Blob, BlobVec
from caffe_layers.testing.fake_caffe._builtin import COMPUTED_TYPES, LAYER_TYPES, create_layer
from caffe_layers.testing.fake_caffe._errors import (
    NotComputedWarning,
    argument_error,
    check,
    extract_int,
)
from caffe_layers.testing.fake_caffe._layer import param_lr_mults, set_up, weighted_loss
from caffe_layers.testing.fake_caffe._netparam import (
    LayerSpec,
    NetSpec,
    filter_layers,
    insert_splits,
    read_net,
)
from caffe_layers.testing.fake_caffe._vectors import BoolVec, IntVec, RawBlobVec, StringVec


class Net:
    """pycaffe's ``caffe.Net(network_file, phase, level=0, stages=None, weights=None)``.

    Also the legacy ``caffe.Net(network_file, weights_file, phase)``. Paths must be ``str`` (as
    Boost.Python requires), ``phase`` an int: ``caffe.TRAIN`` or ``caffe.TEST``.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        path, phase, level, stages, weights, legacy = constructor_arguments(args, kwargs)
        check_file(path)
        if legacy:
            check_file(weights)  # the legacy constructor checks both files before building
        self._init(read_net(path, phase, level, stages), path)
        if weights is not None:
            if not legacy:
                check_file(weights)
            self.copy_from(weights)

    # -------------------------------------------------------------------------- construction

    def _init(self, net: NetSpec, path: str) -> None:
        layers = insert_splits(filter_layers(net))
        _warn_not_computed(layers, path)
        self._phase, self._force_backward = net.phase, net.force_backward
        self._drivers: list = []
        self._names: list = []
        self._blob_list: list = []
        self._blob_name_list: list = []
        self._bottom_id_vecs: list = []
        self._top_id_vecs: list = []
        self._bottom_need_backward: list = []
        self._blob_need_backward: list = []
        self._layer_need_backward: list = []
        self._losses: list = []
        self._input_ids: list = []
        self._loss_weights: list = []
        blob_index: dict = {}
        available: set = set()
        for spec in layers:
            self._add_layer(spec, blob_index, available)
        self._find_backward_layers()
        if self._force_backward:
            self._force_backward_everywhere()
        self._output_ids = [blob_index[name] for name in sorted(available)]

    def _add_layer(self, spec: LayerSpec, blob_index: dict, available: set) -> None:
        layer_id = len(self._drivers)
        check(not spec.propagate_down or len(spec.propagate_down) == len(spec.bottoms),
              f"layer '{spec.name}': propagate_down param must be specified either 0 or "
              f"bottom_size times")
        driver = create_layer(spec, self._phase if spec.phase is None else spec.phase)
        self._drivers.append(driver)
        self._names.append(spec.name)
        self._bottom_id_vecs.append([])
        self._top_id_vecs.append([])
        self._bottom_need_backward.append([])
        need_backward = False
        for j in range(len(spec.bottoms)):
            need_backward |= self._append_bottom(layer_id, spec, j, blob_index, available)
        for j, name in enumerate(spec.tops):
            self._append_top(layer_id, spec, j, name, blob_index, available)
            if spec.type == "Input":
                self._input_ids.append(len(self._blob_list) - 1)
        for j in range(len(spec.tops), driver.auto_top_count):
            self._append_top(layer_id, spec, j, "(automatic)", None, None)
        self._losses.append(set_up(driver, spec, *self._vectors(layer_id)))
        for top_id, loss in zip(self._top_id_vecs[layer_id], self._losses[layer_id]):
            self._loss_weights[top_id] = loss
        need_backward |= any(lr != 0 for lr in param_lr_mults(driver, spec))
        self._layer_need_backward.append(need_backward)
        if need_backward:
            for blob_id in self._top_id_vecs[layer_id]:
                self._blob_need_backward[blob_id] = True

    def _append_bottom(self, layer_id: int, spec: LayerSpec, j: int, blob_index: dict,
                       available: set) -> bool:
        name = spec.bottoms[j]
        check(name in available,
              f"Unknown bottom blob '{name}' (layer '{spec.name}', bottom index {j})")
        blob_id = blob_index[name]
        available.discard(name)
        self._bottom_id_vecs[layer_id].append(blob_id)
        need = spec.propagate_down[j] if spec.propagate_down else self._blob_need_backward[blob_id]
        self._bottom_need_backward[layer_id].append(need)
        return self._blob_need_backward[blob_id]

    def _append_top(self, layer_id: int, spec: LayerSpec, j: int, name: str,
                    blob_index: dict | None, available: set | None) -> None:
        if blob_index is not None and j < len(spec.bottoms) and name == spec.bottoms[j]:
            blob_id = blob_index[name]  # in-place
        else:
            check(blob_index is None or name not in blob_index,
                  f"Top blob '{name}' produced by multiple sources (layer '{spec.name}', "
                  f"top index {j}); only a top named like the bottom at the same index is "
                  f"computed in place")
            blob_id = len(self._blob_list)
            self._blob_list.append(Blob())
            if not self._drivers[layer_id].computed:
                self._blob_list[-1]._uncomputed_source = f"layer '{spec.name}' ({spec.type})"
            self._blob_name_list.append(name)
            self._blob_need_backward.append(False)
            self._loss_weights.append(0.0)
            if blob_index is not None:
                blob_index[name] = blob_id
        self._top_id_vecs[layer_id].append(blob_id)
        if available is not None:
            available.add(name)

    def _find_backward_layers(self) -> None:
        """Which layers contribute to a loss and may skip backward (end of ``Net::Init``)."""
        under_loss: set = set()
        skip_backprop: set = set()
        for layer_id in reversed(range(len(self._drivers))):
            tops = [self._blob_name_list[i] for i in self._top_id_vecs[layer_id]]
            contributes = any(loss or name in under_loss
                              for loss, name in zip(self._losses[layer_id], tops))
            skip = all(name in skip_backprop for name in tops)
            needs = self._bottom_need_backward[layer_id]
            if self._layer_need_backward[layer_id] and skip:
                self._layer_need_backward[layer_id] = False
                needs[:] = [False] * len(needs)
            if not contributes:
                self._layer_need_backward[layer_id] = False
            for j, blob_id in enumerate(self._bottom_id_vecs[layer_id]):
                name = self._blob_name_list[blob_id]
                if contributes:
                    under_loss.add(name)
                else:
                    needs[j] = False
                if not needs[j]:
                    skip_backprop.add(name)

    def _force_backward_everywhere(self) -> None:
        for layer_id, driver in enumerate(self._drivers):
            self._layer_need_backward[layer_id] = True
            needs = self._bottom_need_backward[layer_id]
            for j, blob_id in enumerate(self._bottom_id_vecs[layer_id]):
                needs[j] = needs[j] or driver.allow_force_backward(j)
                self._blob_need_backward[blob_id] = self._blob_need_backward[blob_id] or needs[j]

    def _vectors(self, layer_id: int) -> tuple:
        return (RawBlobVec(self._blob_list[i] for i in self._bottom_id_vecs[layer_id]),
                RawBlobVec(self._blob_list[i] for i in self._top_id_vecs[layer_id]))

    # ------------------------------------------------------------- the C++ half (_caffe.Net)

    def _forward(self, start: int, end: int) -> float:
        """``ForwardFromTo``: reshape and forward layers ``start..end``; the weighted loss."""
        start, end = extract_int(start), extract_int(end)
        check(start >= 0, f"Check failed: start >= 0 ({start} vs. 0)")
        check(end < len(self._drivers),
              f"Check failed: end < layers_.size() ({end} vs. {len(self._drivers)})")
        loss = 0.0
        for layer_id in range(start, end + 1):
            bottom, top = self._vectors(layer_id)
            driver = self._drivers[layer_id]
            driver.do_reshape(bottom, top)
            driver.do_forward(bottom, top)
            if driver.computed:
                loss += weighted_loss(top, self._losses[layer_id])
        return loss

    def _backward(self, start: int, end: int) -> None:
        """``BackwardFromTo``: backward of layers ``start`` down to ``end`` that need it."""
        start, end = extract_int(start), extract_int(end)
        check(end >= 0, f"Check failed: end >= 0 ({end} vs. 0)")
        check(start < len(self._drivers),
              f"Check failed: start < layers_.size() ({start} vs. {len(self._drivers)})")
        for layer_id in range(start, end - 1, -1):
            if self._layer_need_backward[layer_id]:
                bottom, top = self._vectors(layer_id)
                propagate_down = BoolVec(self._bottom_need_backward[layer_id])
                self._drivers[layer_id].do_backward(top, propagate_down, bottom)

    def reshape(self) -> None:
        """Reshape every layer (after an input blob was reshaped)."""
        for layer_id, driver in enumerate(self._drivers):
            driver.do_reshape(*self._vectors(layer_id))

    def clear_param_diffs(self) -> None:
        """Zero the diffs of every layer's parameter blobs."""
        for driver in self._drivers:
            for blob in driver.blobs:
                blob.diff[...] = 0

    def copy_from(self, filename: str) -> None:
        """Copy parameter blobs, by layer name, from a file written by :meth:`save`."""
        _weights.copy_from(self._named_params(), text_arg("Net.copy_from", filename))

    def save(self, filename: str) -> None:
        """Write every layer's parameter blobs (the fake's own ``.npz`` format)."""
        _weights.save(self._named_params(), text_arg("Net.save", filename))

    def share_with(self, other: Net) -> None:
        """Use ``other``'s parameter data (not diffs) for layers of the same name."""
        if not isinstance(other, Net):
            raise argument_error("Net.share_with", (self, other),
                                 "share_with(caffe::Net<float> {lvalue}, caffe::Net<float> const*)")
        _weights.share(self._named_params(), other._named_params())

    def _named_params(self) -> list:
        return [(name, driver.blobs) for name, driver in zip(self._names, self._drivers)]

    @property
    def layers(self) -> list:
        return [driver.layer for driver in self._drivers]

    @property
    def _blobs(self) -> BlobVec:
        return BlobVec(self._blob_list)

    @property
    def _blob_names(self) -> StringVec:
        return StringVec(self._blob_name_list)

    @property
    def _layer_names(self) -> StringVec:
        return StringVec(self._names)

    @property
    def _inputs(self) -> IntVec:
        return IntVec(self._input_ids)

    @property
    def _outputs(self) -> IntVec:
        return IntVec(self._output_ids)

    @property
    def _blob_loss_weights(self) -> list:
        return list(self._loss_weights)

    def _top_ids(self, layer_id: int) -> IntVec:
        return IntVec(self._top_id_vecs[extract_int(layer_id)])

    def _bottom_ids(self, layer_id: int) -> IntVec:
        return IntVec(self._bottom_id_vecs[extract_int(layer_id)])

    # ---------------------------------------------------------------- pycaffe.py's additions

    @cached_property
    def blobs(self) -> OrderedDict:
        """Blob name -> Blob, from input to output (Split blobs included)."""
        return OrderedDict(zip(self._blob_name_list, self._blob_list))

    @cached_property
    def blob_loss_weights(self) -> OrderedDict:
        return OrderedDict(zip(self._blob_name_list, self._loss_weights))

    @cached_property
    def layer_dict(self) -> OrderedDict:
        return OrderedDict(zip(self._names, self.layers))

    @cached_property
    def params(self) -> OrderedDict:
        """Layer name -> its parameter BlobVec, for layers that have parameter blobs."""
        return OrderedDict((name, driver.blobs) for name, driver in zip(self._names, self._drivers)
                           if len(driver.blobs) > 0)

    @cached_property
    def inputs(self) -> list:
        """Names of the Input layers' tops."""
        names = list(self.blobs)
        return [names[i] for i in self._input_ids]

    @cached_property
    def outputs(self) -> list:
        """Names of the blobs no layer consumes, sorted (Caffe keeps them in a std::set)."""
        names = list(self.blobs)
        return [names[i] for i in self._output_ids]

    @cached_property
    def top_names(self) -> OrderedDict:
        return OrderedDict((name, [self._blob_name_list[i] for i in ids])
                           for name, ids in zip(self._names, self._top_id_vecs))

    @cached_property
    def bottom_names(self) -> OrderedDict:
        return OrderedDict((name, [self._blob_name_list[i] for i in ids])
                           for name, ids in zip(self._names, self._bottom_id_vecs))

    def forward(self, blobs: list | None = None, start: str | None = None,
                end: str | None = None, **kwargs: np.ndarray) -> dict:
        """Set inputs from ``kwargs``, run layers ``start..end``; {output name: data view}."""
        blobs = [] if blobs is None else blobs
        start_ind = 0 if start is None else list(self._layer_names).index(start)
        if end is None:
            end_ind, outputs = len(self.layers) - 1, set(self.outputs + blobs)
        else:
            end_ind = list(self._layer_names).index(end)
            outputs = set(self.top_names[end] + blobs)
        if kwargs:
            if set(kwargs) != set(self.inputs):
                raise Exception("Input blob arguments do not match net inputs.")
            for name, array in kwargs.items():
                if array.shape[0] != self.blobs[name].shape[0]:
                    raise Exception("Input is not batch sized")
                self.blobs[name].data[...] = array
        self._forward(start_ind, end_ind)
        return {name: self.blobs[name].data for name in outputs if self._has_values(name)}

    def backward(self, diffs: list | None = None, start: str | None = None,
                 end: str | None = None, **kwargs: np.ndarray) -> dict:
        """Set output diffs from ``kwargs``, run backward; {input name: diff view}."""
        diffs = [] if diffs is None else diffs
        start_ind = len(self.layers) - 1 if start is None else list(self._layer_names).index(start)
        if end is None:
            end_ind, outputs = 0, set(self.inputs + diffs)
        else:
            end_ind = list(self._layer_names).index(end)
            outputs = set(self.bottom_names[end] + diffs)
        if kwargs:
            if set(kwargs) != set(self.outputs):
                raise Exception("Top diff arguments do not match net outputs.")
            for name, array in kwargs.items():
                if array.shape[0] != self.blobs[name].shape[0]:
                    raise Exception("Diff is not batch sized")
                self.blobs[name].diff[...] = array
        self._backward(start_ind, end_ind)
        return {name: self.blobs[name].diff for name in outputs if self._has_values(name)}

    def _has_values(self, name: str) -> bool:
        """False for a blob only a not-computed layer fills: left out of the results."""
        blob = self.blobs[name]
        return blob._readable or not blob._uncomputed_source


# ------------------------------------------------------------------------------- helpers

def _warn_not_computed(layers: Sequence[LayerSpec], path: str) -> None:
    skipped = [f"{layer.name} ({layer.type})" for layer in layers
               if layer.type in LAYER_TYPES and layer.type not in COMPUTED_TYPES]
    if skipped:
        warnings.warn(f"{path}: the fake caffe wires but does not compute these layers; their "
                      f"tops keep whatever shape and values they have: {', '.join(skipped)}",
                      NotComputedWarning, stacklevel=4)


