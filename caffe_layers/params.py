"""The ``param_str`` keys of every layer, as frozen dataclasses (see caffe_layers.config).

Caffe's own key names where Caffe has the concept; snake_case with units for ours. Each class's
``problems()`` adds the checks that involve several keys.
"""

from __future__ import annotations

import dataclasses
import os

from caffe_layers.config import BOOL, FLOAT, FLOATS, INT, STR, choice, option
from caffe_layers.prefetch import START_METHODS
from caffe_layers.transforms import check_resize


def default_workers() -> int:
    """One worker per core this process may use, at most 4."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:
        cores = os.cpu_count() or 1
    return max(1, min(4, cores))


@dataclasses.dataclass(frozen=True)
class PrefetchParams:
    """Keys every layer takes: batching, order, workers, sharding, resume."""

    batch_size: int = option(
        INT, minimum=1, example="64", doc="samples per batch",
        caffe="`batch_size` (image_data_param, hdf5_data_param)")
    shuffle: bool = option(
        BOOL, False, doc="a new permutation every epoch, each sample once per epoch",
        caffe="`shuffle` (reshuffles at every wrap)")
    seed: int = option(
        INT, 0, minimum=0,
        doc="seeds shuffling and augmentation: the same seed gives the same batches for any "
            "number of workers",
        caffe="none (the solver's `random_seed` seeds only Caffe's own RNGs)")
    workers: int = option(
        INT, None, minimum=0,
        doc="worker processes; 0 loads in the layer's own process (debugging); default one "
            "per core, at most 4",
        caffe="none (one C++ prefetch thread)")
    prefetch: int = option(
        INT, 4, minimum=1, doc="batches prepared ahead, beyond one per worker",
        caffe="`data_param.prefetch`")
    start_method: str = option(
        choice(*START_METHODS), None, doc="how workers start; default fork (see Start methods)")
    timeout_s: float = option(
        FLOAT, 300.0, minimum=0.001,
        doc="fail when no batch arrives for this long although every worker lives")
    on_worker_death: str = option(
        choice("raise", "respawn"), "raise",
        doc="a worker killed or crashed: raise naming its pid and signal, or restart it and "
            "refill its batches")
    shard_rank: int = option(
        INT, None, minimum=0, doc="this process's shard; default `caffe.solver_rank()` in TRAIN",
        caffe="`caffe.solver_rank()` (pycaffe train.py)")
    shard_count: int = option(
        INT, None, minimum=1, doc="number of shards; default `caffe.solver_count()` in TRAIN",
        caffe="`caffe.solver_count()` (pycaffe train.py)")
    shard_test: bool = option(BOOL, False, doc="shard the TEST net's data too")
    start_iter: int = option(
        INT, 0, minimum=0,
        doc="resume: produce the batches of this solver iteration onwards (TRAIN only)",
        caffe="the iteration resumed by `caffe train --snapshot`")
    iter_size: int = option(
        INT, 1, minimum=1, doc="the solver's `iter_size`, for `start_iter`",
        caffe="solver `iter_size`")

    def problems(self) -> list:
        found = []
        if (self.shard_rank is None) != (self.shard_count is None):
            found.append("shard_rank, shard_count: give both or neither")
        elif self.shard_rank is not None and self.shard_rank >= self.shard_count:
            found.append(f"shard_rank: must be < shard_count (got {self.shard_rank} >= "
                         f"{self.shard_count})")
        return found

    @property
    def worker_count(self) -> int:
        return default_workers() if self.workers is None else self.workers


@dataclasses.dataclass(frozen=True)
class ImageListParams(PrefetchParams):
    """ImageListDataLayer: Caffe's ImageData (image_data_param + transform_param)."""

    source: str = option(
        STR, example="train.txt", doc="list file: one `path label...` per line",
        caffe="`image_data_param.source`")
    root_folder: str = option(
        STR, "", doc="prepended to every path (plain concatenation)",
        caffe="`image_data_param.root_folder`")
    label_columns: int = option(
        INT, 1, minimum=0, doc="labels per line (its last columns); 0 for none",
        caffe="none (one integer label)")
    new_height: int = option(
        INT, 0, minimum=0, doc="resize height (both sizes or neither)",
        caffe="`image_data_param.new_height`")
    new_width: int = option(
        INT, 0, minimum=0, doc="resize width (both sizes or neither)",
        caffe="`image_data_param.new_width`")
    is_color: bool = option(
        BOOL, True, doc="3-channel BGR, or 1-channel gray", caffe="`image_data_param.is_color`")
    crop_size: int = option(
        INT, 0, minimum=0, doc="square crop: random in TRAIN, centre in TEST",
        caffe="`transform_param.crop_size`")
    mirror: bool = option(
        BOOL, False, doc="random horizontal flip, in both phases as in Caffe",
        caffe="`transform_param.mirror`")
    mean_file: str = option(
        STR, "", doc="mean `.binaryproto` (or `.npy`) at the resized size",
        caffe="`transform_param.mean_file`")
    mean_value: tuple = option(
        FLOATS, (), doc="one value, or one per channel", caffe="`transform_param.mean_value`")
    scale: float = option(
        FLOAT, 1.0, doc="multiplies (pixel - mean)", caffe="`transform_param.scale`")
    on_error: str = option(
        choice("raise", "skip"), "raise",
        doc="an unreadable image: raise naming list line and path, or replace it by the next "
            "sample and log it",
        caffe="none (an unreadable image aborts)")
    reduced_decode: bool = option(
        BOOL, False,
        doc="decode JPEGs at 1/2, 1/4 or 1/8 size when that still covers new_height x "
            "new_width")

    def problems(self) -> list:
        found = super().problems() + check_resize(self.new_height, self.new_width)
        if self.mean_file and self.mean_value:
            found.append("mean_file, mean_value: give one of them, not both (Caffe refuses both)")
        if self.reduced_decode and not self.new_height:
            found.append("reduced_decode: needs new_height and new_width (the size to decode "
                         "for)")
        return found
