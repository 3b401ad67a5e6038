"""A keras batch -> Caffe's tops: named arrays, NCHW, class indices, float32, a fixed batch size.

A keras Sequence's ``__getitem__`` (or a generator) returns ``X``, ``(X, y)`` or
``(X, y, sample_weight)``, where ``X`` and ``y`` may each be an array, a list of arrays or a dict
of them (keras' multi-input and multi-output models). Each array gets a name from its place --
``data``, ``label``, ``sample_weight``; ``data0, data1, ...`` for a list; a dict's keys -- and a
role from its position (input, target, weight) that decides its conversion:

- inputs of 4 or more axes in channels-last layout (``layout``) get their last axis moved to
  axis 1, Caffe's NCHW;
- one-hot targets (``labels: index``) become the class index, the argmax of the last axis, once
  every row is checked to be one-hot (a single 1, zeros elsewhere);
- everything is written as float32 (float64, integers and bools are cast).

A top-level dict or a bare array is all inputs. Batch 0 fixes the names, the conversions, the
row shapes and the batch size; every later batch is checked against it (DataError naming the
batch and the array). A batch with fewer rows (keras' last of an epoch) is padded by repeating
its rows when the producer's ``partial_batch`` policy allows it.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Dict, List, Mapping, Tuple

import numpy as np

from caffe_layers.errors import ConfigError, DataError
from caffe_layers.prefetch import TopSpec
from caffe_layers.sources.arrays import as_sample_array

ROLES = ("data", "label", "sample_weight")  # keras' (inputs, targets, sample_weights)
CHANNEL_COUNTS = (1, 3)  # what layout: auto takes for a channel axis (gray, colour)


def named_arrays(batch: Any, where: str) -> List[Tuple[str, str, Any]]:
    """``(name, role, value)`` of every array of a keras batch, in order."""
    if isinstance(batch, (tuple, list)):
        if not 1 <= len(batch) <= len(ROLES):
            raise DataError(f"{where}: returned a {type(batch).__name__} of {len(batch)} items; "
                            f"expected X, (X, y) or (X, y, sample_weight), each an array, a "
                            f"list or a dict of arrays (several inputs: ([X1, X2], y))")
        return [item for role, part in zip(ROLES, batch) if part is not None
                for item in _part(role, part, where)]
    return _part("data", batch, where)


def _part(role: str, part: Any, where: str) -> List[Tuple[str, str, Any]]:
    if isinstance(part, Mapping):
        bad = [key for key in part if not isinstance(key, str)]
        if bad:
            raise DataError(f"{where}: dict keys name the arrays and must be strings (got {bad})")
        return [(key, role, value) for key, value in part.items()]
    if isinstance(part, (list, tuple)) and not all(np.isscalar(v) for v in part):
        return [(f"{role}{j}", role, value) for j, value in enumerate(part)]
    return [(role, role, part)]


def class_indices(array: np.ndarray, where: str, name: str) -> np.ndarray:
    """The class index of every one-hot row (last axis); DataError naming the first other row."""
    ones = array == 1
    valid = (ones | (array == 0)).all(axis=-1) & (ones.sum(axis=-1) == 1)
    if not valid.all():
        bad = tuple(int(i) for i in np.argwhere(~valid)[0])
        raise DataError(f"{where}: target '{name}' row {bad[0] if len(bad) == 1 else bad} is not "
                        f"one-hot ({np.array2string(array[bad], threshold=8)}); labels: index "
                        f"expects to_categorical rows (a single 1, zeros elsewhere); set labels: "
                        f"keep to pass the (N, {array.shape[-1]}) array as it is")
    return ones.argmax(axis=-1)


@dataclasses.dataclass(frozen=True)
class Entry:
    """One array of every batch: its name, role, row shape as given and conversions."""

    name: str
    role: str
    given: Tuple[int, ...]
    channels_last: bool = False
    one_hot: bool = False
    detected: bool = False  # channels_last was decided by layout: auto

    @property
    def shape(self) -> Tuple[int, ...]:
        """The row shape in the top."""
        shape = self.given[:-1] if self.one_hot else self.given
        return (shape[-1],) + shape[:-1] if self.channels_last else shape

    def convert(self, array: np.ndarray, where: str) -> np.ndarray:
        if self.one_hot:
            array = class_indices(array, where, self.name)
        return np.moveaxis(array, -1, 1) if self.channels_last else array

    def describe(self, batch_size: int) -> str:
        text = f"{self.name} {(batch_size,) + self.shape}"
        given = (batch_size,) + self.given
        if self.channels_last:
            how = "detected, layout: auto" if self.detected else "layout: NHWC"
            text += f" from channels-last {given} ({how})"
        elif self.role == "data" and len(given) >= 4:
            text += " taken as NCHW"
        if self.one_hot:
            text += f" class index of one-hot {given}"
        return text


def _entry(name: str, role: str, array: np.ndarray, layout: str, labels: str) -> Entry:
    given = array.shape[1:]
    last_first = array.ndim >= 4 and role == "data"
    detected = (layout == "auto" and last_first and array.shape[-1] in CHANNEL_COUNTS
                and array.shape[1] not in CHANNEL_COUNTS)
    return Entry(name, role, given,
                 channels_last=last_first and (layout == "NHWC" or detected),
                 one_hot=labels == "index" and role == "label" and array.ndim >= 2
                 and array.shape[-1] >= 2,
                 detected=detected)


@dataclasses.dataclass(frozen=True)
class BatchLayout:
    """The arrays read into the tops (in top order) and the batch size, fixed by batch 0."""

    entries: Tuple[Entry, ...]
    batch_size: int

    @classmethod
    def from_first(cls, batch: Any, *, tops: Tuple[str, ...] | None, layout: str, labels: str,
                   batch_size: int | None, where: str) -> BatchLayout:
        """The layout of batch 0; ConfigError when a key does not fit it."""
        items = named_arrays(batch, where)
        names = [name for name, _, _ in items]
        repeated = sorted({name for name in names if names.count(name) > 1})
        if repeated:
            raise DataError(f"{where}: two arrays are named {', '.join(repeated)}; give the dicts "
                            f"of inputs and targets different keys")
        arrays = {name: _batch_array(value, where, name) for name, _, value in items}
        rows = _rows(arrays, where)
        if batch_size is not None and batch_size != rows:
            raise ConfigError(f"batch_size: {batch_size}, but {where} has {rows} rows; the "
                              f"Sequence decides the batch size: remove batch_size or make it "
                              f"{rows}")
        missing = [top for top in tops or () if top not in arrays]
        if missing:
            raise ConfigError(f"tops: {', '.join(missing)} is not an array of {where} (it has "
                              f"{', '.join(names)})")
        roles = {name: role for name, role, _ in items}
        chosen = tuple(tops) if tops else tuple(names)
        entries = tuple(_entry(n, roles[n], arrays[n], layout, labels) for n in chosen)
        if layout == "NHWC" and not any(e.channels_last for e in entries):
            raise ConfigError(f"layout: NHWC, but no input of {where} has 4 or more axes ("
                              f"{_shapes(arrays)}); remove layout or set NCHW")
        found = cls(entries, rows)
        found.write(arrays, rows, None, where)  # checks one-hot rows now, not in a worker
        return found

    def specs(self) -> Tuple[TopSpec, ...]:
        return tuple(TopSpec(e.name, (self.batch_size,) + e.shape) for e in self.entries)

    def describe(self) -> str:
        return ", ".join(entry.describe(self.batch_size) for entry in self.entries)

    def read(self, batch: Any, where: str) -> Tuple[Dict[str, np.ndarray], int]:
        """The arrays of ``batch`` that go into tops, checked against batch 0, and its rows."""
        values = {name: value for name, _, value in named_arrays(batch, where)}
        arrays = {}
        for entry in self.entries:
            if entry.name not in values:
                raise DataError(f"{where}: has no array '{entry.name}' (it has "
                                f"{', '.join(values) or 'none'}); every batch must hold the "
                                f"arrays of batch 0")
            array = _batch_array(values[entry.name], where, entry.name)
            if array.shape[1:] != entry.given:
                raise DataError(f"{where}: array '{entry.name}' has shape {array.shape}, "
                                f"expected (N,) + {entry.given} with N <= {self.batch_size}, "
                                f"like batch 0")
            arrays[entry.name] = array
        rows = _rows(arrays, where)
        if rows > self.batch_size:
            raise DataError(f"{where}: has {rows} rows, more than the batch size "
                            f"{self.batch_size} (the rows of batch 0)")
        return arrays, rows

    def write(self, arrays: Mapping[str, np.ndarray], rows: int, out: dict | None,
              where: str) -> None:
        """Convert into ``out`` (``{top: float32 batch}``); repeat the rows to fill a short batch.
        """
        for entry in self.entries:
            converted = entry.convert(arrays[entry.name], where)
            if out is None:
                continue
            target = out[entry.name]
            np.copyto(target[:rows], converted, casting="unsafe")
            if rows < len(target):
                target[rows:] = target[np.arange(rows, len(target)) % rows]


def _batch_array(value: Any, where: str, name: str) -> np.ndarray:
    array = as_sample_array(value, where, name)
    if array.ndim == 0:
        raise DataError(f"{where}: array '{name}' is a scalar; every array of a batch has one "
                        f"row per sample along its first axis")
    return array


def _rows(arrays: Mapping[str, np.ndarray], where: str) -> int:
    rows = {len(array) for array in arrays.values()}
    if not rows:
        raise DataError(f"{where}: holds no array; return X, (X, y) or (X, y, sample_weight)")
    if len(rows) > 1:
        raise DataError(f"{where}: the arrays have different numbers of rows ({_shapes(arrays)}); "
                        f"each holds one row per sample of the batch")
    (count,) = rows
    if count == 0:
        raise DataError(f"{where}: the batch is empty (0 rows)")
    return count


def _shapes(arrays: Mapping[str, np.ndarray]) -> str:
    return ", ".join(f"{name} {array.shape}" for name, array in arrays.items())
