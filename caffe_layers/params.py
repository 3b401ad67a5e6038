"""The ``param_str`` keys of every layer, as frozen dataclasses (see caffe_layers.config).

Caffe's own key names where Caffe has the concept; snake_case with units for ours. Each class's
``problems()`` adds the checks that involve several keys.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any, List

from caffe_layers.config import (
    BOOL,
    FLOAT,
    FLOATS,
    INT,
    MAPPING,
    STR,
    STRS,
    Kind,
    Problem,
    build,
    choice,
    option,
    problem,
)
from caffe_layers.errors import ConfigError
from caffe_layers.normalization import exclusive_problems
from caffe_layers.prefetch import START_METHODS
from caffe_layers.transforms import check_resize


def _storage_options() -> Any:
    """The ``storage_options`` key of every layer that reads files (credentials: never shown)."""
    return option(MAPPING, None, secret=True,
                  doc="options for the storage client of URLs (s3://, gs://, az://, https://...)"
                      ", e.g. {endpoint_url: ..., anon: true}; default: its environment and config "
                      "files (see Scaling out)")


def default_workers() -> int:
    """One worker per core this process may use, at most 4."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:
        cores = os.cpu_count() or 1
    return max(1, min(4, cores))


# Caffe's transform_param keys, declared once for the image layers (ImageList, DB).


def crop_size_option() -> Any:
    return option(INT, 0, minimum=0, doc="square crop: random in TRAIN, centre in TEST",
                  caffe="`transform_param.crop_size`")


def mirror_option() -> Any:
    return option(BOOL, False, doc="random horizontal flip, in both phases as in Caffe",
                  caffe="`transform_param.mirror`")


def mean_file_option(size: str) -> Any:
    return option(STR, "", doc=f"mean `.binaryproto` (or `.npy`) at {size}",
                  caffe="`transform_param.mean_file`")


def mean_value_option() -> Any:
    return option(FLOATS, (), doc="one value, or one per channel",
                  caffe="`transform_param.mean_value`")


def scale_option() -> Any:
    return option(FLOAT, 1.0, doc="multiplies (pixel - mean)", caffe="`transform_param.scale`")


def on_error_option(raise_doc: str, caffe: str = "-") -> Any:
    """``on_error: raise|skip``, the same policy for every source that reads files
    (:mod:`caffe_layers.pipeline.skip`)."""
    return option(choice("raise", "skip"), "raise", caffe=caffe,
                  doc=f"{raise_doc}, or replace it by the next sample and log it")


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
        INT, None, minimum=0,
        doc="this process's shard; default in TRAIN: the launcher's rank (MPI, SLURM, RANK) x "
            "`caffe.solver_count()` + `caffe.solver_rank()` (see Scaling out)",
        caffe="`caffe.solver_rank()` (pycaffe train.py)")
    shard_count: int = option(
        INT, None, minimum=1,
        doc="number of shards; default in TRAIN: the launcher's size x `caffe.solver_count()`",
        caffe="`caffe.solver_count()` (pycaffe train.py)")
    shard_test: bool = option(BOOL, False, doc="shard the TEST net's data too")
    start_iter: int = option(
        INT, 0, minimum=0,
        doc="resume: produce the batches of this solver iteration onwards (TRAIN only)",
        caffe="the iteration resumed by `caffe train --snapshot`")
    iter_size: int = option(
        INT, 1, minimum=1, doc="the solver's `iter_size`, for `start_iter`",
        caffe="solver `iter_size`")

    def problems(self) -> List[Problem]:
        found = []
        if (self.shard_rank is None) != (self.shard_count is None):
            found.append(problem("shard_rank, shard_count", "give both or neither"))
        elif self.shard_rank is not None and self.shard_rank >= self.shard_count:
            found.append(Problem(("shard_rank",), f"must be < shard_count (got "
                                                  f"{self.shard_rank} >= {self.shard_count})",
                                 involves=("shard_count",)))
        return found

    def __post_init__(self) -> None:
        if self.workers is None:  # not given: the default, fixed once here
            object.__setattr__(self, "workers", default_workers())


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
    crop_size: int = crop_size_option()
    mirror: bool = mirror_option()
    mean_file: str = mean_file_option("the resized size")
    mean_value: tuple = mean_value_option()
    scale: float = scale_option()
    on_error: str = on_error_option("an unreadable image: raise naming list line and path",
                                    "none (an unreadable image aborts)")
    reduced_decode: bool = option(
        BOOL, False,
        doc="decode JPEGs at 1/2, 1/4 or 1/8 size when that still covers new_height x "
            "new_width")
    storage_options: dict = _storage_options()

    def problems(self) -> List[Problem]:
        found = super().problems() + check_resize(self.new_height, self.new_width)
        found += exclusive_problems(self.mean_file, self.mean_value)
        if self.reduced_decode and not self.new_height:
            found.append(Problem(("reduced_decode",), "needs new_height and new_width (the size "
                                                      "to decode for)",
                                 involves=("new_height", "new_width")))
        return found


@dataclasses.dataclass(frozen=True)
class DBParams(PrefetchParams):
    """DBDataLayer: Caffe's Data (data_param + transform_param) over an LMDB or LevelDB."""

    source: str = option(
        STR, example="train_lmdb", doc="database directory of Datum records",
        caffe="`data_param.source`")
    backend: str = option(
        choice("LMDB", "LEVELDB"), None,
        doc="the database's kind; default: detected from the directory (data.mdb or CURRENT)",
        caffe="`data_param.backend` (default LEVELDB)")
    crop_size: int = crop_size_option()
    mirror: bool = mirror_option()
    mean_file: str = mean_file_option("the records' size")
    mean_value: tuple = mean_value_option()
    scale: float = scale_option()
    force_color: bool = option(
        BOOL, False, doc="decode encoded records as 3-channel BGR",
        caffe="`transform_param.force_color`")
    force_gray: bool = option(
        BOOL, False, doc="decode encoded records as 1-channel gray",
        caffe="`transform_param.force_gray`")
    on_error: str = on_error_option("a record that cannot be read: raise naming its key",
                                    "none (a bad record aborts)")
    shuffle_block: int = option(
        INT, None, minimum=1,
        doc="records shuffled as one block of consecutive keys (default: 16 MiB of records); "
            "1 = uniform shuffle")
    shuffle_window: int = option(
        INT, None, minimum=1,
        doc="records shuffled together after the blocks (default: max(batch_size, 4 blocks))")

    def problems(self) -> List[Problem]:
        found = super().problems() + exclusive_problems(self.mean_file, self.mean_value)
        found += _shuffle_problems(self)
        if self.force_color and self.force_gray:
            found.append(problem("force_color, force_gray", "give at most one of them (Caffe "
                                                            "refuses both)"))
        return found


# --- array sources: HDF5, npy, user datasets, multi-input -------------------------------------


def _object_path(key: str, value: str | None, what: str) -> List[Problem]:
    if value is None:
        return []
    module, _, name = value.partition(":")
    if not module.strip() or not name.strip() or " " in value:
        return [Problem((key,), f"must be 'module:{what}' (got {value!r}), e.g. {key}: "
                                f"'my_data:{'ShapesDataset' if what == 'Class' else 'samples'}'")]
    return []


def _top_problems(tops: tuple, key: str = "tops") -> List[Problem]:
    """Problems with a list of top names (empty, duplicated, blank)."""
    if not tops:
        return [Problem((key,), "give at least one top name")]
    problems = []
    if any(not t.strip() for t in tops):
        problems.append(Problem((key,), f"top names must not be empty (got {list(tops)})"))
    duplicates = sorted({t for t in tops if list(tops).count(t) > 1})
    if duplicates:
        problems.append(Problem((key,), f"each top appears once (repeated: "
                                         f"{', '.join(duplicates)})"))
    return problems


def _shuffle_problems(params) -> List[Problem]:
    """``shuffle_block``/``shuffle_window`` (the block-shuffled orders) need ``shuffle: true``."""
    return [Problem((key,), "only used with shuffle: true; remove it or set shuffle",
                    involves=("shuffle",))
            for key in ("shuffle_block", "shuffle_window")
            if getattr(params, key) is not None and not params.shuffle]


@dataclasses.dataclass(frozen=True)
class HDF5Params(PrefetchParams):
    """HDF5DataLayer: Caffe's HDF5Data (hdf5_data_param), streamed, plus mean and scale."""

    source: str = option(STR, example="train_h5.txt",
                         doc="text file of .h5 paths (whitespace separated, relative to the "
                             "working directory)", caffe="`hdf5_data_param.source`")
    tops: tuple = option(STRS, ("data", "label"),
                         doc="the dataset read into each top, in top order",
                         caffe="the layer's top names")
    shuffle_block: int = option(INT, None, minimum=1,
                                doc="rows shuffled as one block (default: the chunk length along "
                                    "axis 0; 1 MiB of rows if contiguous); 1 = uniform shuffle")
    shuffle_window: int = option(INT, None, minimum=1,
                                 doc="rows shuffled together after the blocks (default: "
                                     "max(batch_size, 4 blocks))")
    mean_file: str = option(STR, "", doc="mean .binaryproto/.npy shaped like one row of the "
                                         "first top",
                            caffe="none (HDF5Data refuses transform_param)")
    mean_value: tuple = option(FLOATS, (), doc="subtracted from the first top: one value or one "
                                               "per channel (axis 1)",
                               caffe="none (HDF5Data refuses transform_param)")
    scale: float = option(FLOAT, 1.0, doc="multiplies (first top - mean)",
                          caffe="none (HDF5Data refuses transform_param)")
    on_error: str = on_error_option("rows that cannot be read (a corrupt chunk): raise naming "
                                    "file and row", "none (a read error aborts)")
    storage_options: dict = _storage_options()

    def problems(self) -> List[Problem]:
        return (super().problems() + _top_problems(self.tops)
                + exclusive_problems(self.mean_file, self.mean_value) + _shuffle_problems(self))


@dataclasses.dataclass(frozen=True)
class NpyParams(PrefetchParams):
    """NpyDataLayer: one ``<root>/<id>.npy`` per sample, ids and labels from a list file."""

    source: str = option(STR, example="train.txt", doc="list file: one `id label...` per line")
    root_folder: str = option(STR, "", old_name="root",
                              doc="directory of the files: sample `id` is <root_folder>/<id>.npy "
                                  "(formerly `root`)")
    label_columns: int = option(INT, 1, minimum=0, doc="labels per line (the last columns)")
    n_classes: int = option(INT, None, minimum=1, doc="one-hot labels (N, n_classes) from an "
                                                      "integer label in [0, n_classes)")
    mean_file: str = option(STR, "", doc="mean .binaryproto/.npy shaped like one sample")
    mean_value: tuple = option(FLOATS, (), doc="one value or one per channel (the sample's "
                                               "axis 0)")
    scale: float = option(FLOAT, 1.0, doc="multiplies (sample - mean)")
    on_error: str = on_error_option("a missing, unreadable or differently shaped file: raise "
                                    "naming list line and path")
    storage_options: dict = _storage_options()

    def problems(self) -> List[Problem]:
        found = super().problems() + exclusive_problems(self.mean_file, self.mean_value)
        if self.n_classes is not None and self.label_columns != 1:
            found.append(Problem(("n_classes",), f"one-hot labels need label_columns: 1 (got "
                                                 f"{self.label_columns})",
                                 involves=("label_columns",)))
        return found


@dataclasses.dataclass(frozen=True)
class DatasetParams(PrefetchParams):
    """DatasetDataLayer: the user's per-sample dataset class, or a plain generator function."""

    dataset: str = option(STR, None, example="my_data:ShapesDataset",
                          doc="'module:Class' with __len__ and __getitem__(i, rng) (or keras' "
                              "__getitem__(i)) -> {top: array}")
    generator: str = option(STR, None, example="my_data:samples",
                            doc="'module:function'; (worker_id, workers, rng, **kwargs) "
                                "-> iterator of {top: array}")
    kwargs: dict = option(MAPPING, None, doc="keyword arguments for the class or function")
    tops: tuple = option(STRS, None, doc="the keys read into each top, in top order (default: "
                                         "the keys of sample 0)")

    def problems(self) -> List[Problem]:
        return super().problems() + _user_code_problems(self, "dataset", self.dataset)


def _user_code_problems(params, class_key: str, class_spec: str | None) -> List[Problem]:
    """Problems of the keys naming the user's class or generator function, and their kwargs."""
    found = []
    if (class_spec is None) == (params.generator is None):
        found.append(problem(f"{class_key}, generator", "give exactly one of them"))
    found += _object_path(class_key, class_spec, "Class")
    found += _object_path("generator", params.generator, "function")
    if params.tops is not None:
        found += _top_problems(params.tops)
    bad = [k for k in (params.kwargs or {}) if not str(k).isidentifier()]
    if bad:
        found.append(Problem(("kwargs",), f"keys must be Python identifiers (got {bad})"))
    if params.generator is not None:
        for key, default in (("shuffle", False), ("start_iter", 0)):
            if getattr(params, key) != default:
                found.append(Problem((key,), f"a generator is not indexed, so it cannot "
                                             f"shuffle or resume; use {class_key}: "
                                             f"'module:Class' instead",
                                     involves=("generator",)))
    return found


@dataclasses.dataclass(frozen=True)
class SequenceParams(PrefetchParams):
    """SequenceDataLayer: a keras Sequence (or PyDataset) class, or a generator of batches."""

    batch_size: int = option(
        INT, None, minimum=1,
        doc="rows per batch; default: the rows of batch 0 (the Sequence decides); if given, "
            "batch 0 must have that many", caffe="`batch_size`")
    sequence: str = option(
        STR, None, example="my_data:DataGenerator",
        doc="'module:Class' (or a function returning one) with __len__ (batches per epoch) "
            "and __getitem__(idx) -> (X, y): keras' Sequence, used unchanged")
    generator: str = option(
        STR, None, example="my_data:batches",
        doc="'module:function' returning an iterator of batches (X, y); one worker by default "
            "(more need it to take worker_id and workers)")
    kwargs: dict = option(MAPPING, None, doc="keyword arguments for the class or function")
    tops: tuple = option(
        STRS, None,
        doc="the arrays read into each top, in top order: data, label, sample_weight (data0, "
            "data1, ... for a list; its keys for a dict); default: all of batch 0's")
    layout: str = option(
        choice("auto", "NHWC", "NCHW"), "auto",
        doc="inputs of 4+ axes: NHWC moves the channels (last axis) to axis 1 as Caffe needs; "
            "auto does so when the last axis is 1 or 3 and axis 1 is not (stated at setup)")
    labels: str = option(
        choice("index", "keep"), "index",
        doc="targets: index turns one-hot rows (to_categorical) into the class index Caffe's "
            "losses expect; keep passes them as (N, k)")
    partial_batch: str = option(
        choice("pad", "drop", "error"), "pad",
        doc="a batch with fewer rows (keras' last): pad repeats its rows; drop leaves the last "
            "batch index out of every epoch (a generator skips the batch); error refuses it")

    def problems(self) -> List[Problem]:
        found = super().problems() + _user_code_problems(self, "sequence", self.sequence)
        reserved = sorted({"worker_id", "workers", "num_workers"} & set(self.kwargs or {}))
        if reserved and self.generator is not None:
            found.append(Problem(("kwargs",), f"{', '.join(reserved)} is set by the layer for "
                                              f"each worker; remove it",
                                 involves=("generator",)))
        return found

    def __post_init__(self) -> None:
        if self.workers is None and self.generator is not None:
            object.__setattr__(self, "workers", 1)  # a generator: one worker unless told
        super().__post_init__()


@dataclasses.dataclass(frozen=True)
class AttachParams:
    """One item of MultiInputDataLayer's ``attach``: an extra top drawn for every sample."""

    top: str = option(STR, example="audio", doc="name of the extra top (for messages)")
    hdf5: str = option(STR, example="feats.h5", doc="the .h5 file holding the rows")
    dataset: str = option(STR, None, doc="dataset of rows to draw from (default: top)")
    match: str = option(choice("label", "index"), "label",
                        doc="label: a random row whose label equals the sample's; index: row "
                            "i for sample i")
    label_dataset: str = option(STR, "label", doc="the rows' labels, for match: label")
    label_column: int = option(INT, 0, minimum=0, doc="which label column of the sample to "
                                                      "match")


def _mapping_list(value) -> tuple:
    items = value if isinstance(value, (list, tuple)) else [value]
    return tuple(MAPPING.convert(item) for item in items)


MAPPINGS = Kind("a mapping or a list of mappings", _mapping_list)


@dataclasses.dataclass(frozen=True)
class MultiInputParams(ImageListParams):
    """MultiInputDataLayer: the image list's keys, plus extra tops attached to every sample."""

    attach: tuple = option(MAPPINGS, example="[{top: feat, hdf5: feats.h5, dataset: features}]",
                           doc="extra tops, each {top, hdf5, dataset, match, label_dataset, "
                               "label_column}")

    def attachments(self) -> tuple:
        """The ``attach`` items as :class:`AttachParams`; ConfigError naming the item."""
        return tuple(build(AttachParams, item, where=f"attach[{i}]")
                     for i, item in enumerate(self.attach))

    def problems(self) -> List[Problem]:
        found = super().problems()
        if not self.attach:  # None: attach was refused (required, or not a list of mappings)
            return found + [Problem(("attach",), "give at least one item (or use "
                                                 "ImageListDataLayer)")]
        try:
            items = self.attachments()
        except ConfigError as exc:
            return found + [Problem(("attach",), str(exc))]
        return found + _attach_top_problems(items, self.label_columns)


def _attach_top_problems(items: tuple, label_columns: int) -> List[Problem]:
    names = [item.top for item in items]
    taken = {"data", "label"} | {f"label{c}" for c in range(label_columns)}
    problems = [Problem(("attach",), str(p)) for p in _top_problems(names, "top")]
    clash = sorted(set(names) & taken)
    if clash:
        problems.append(Problem(("attach",), f"top: {', '.join(clash)} is already a top of "
                                             f"the image list; pick another name",
                                involves=("label_columns",)))
    for i, item in enumerate(items):
        if item.match == "label" and item.label_column >= label_columns:
            problems.append(Problem(("attach",), f"[{i}] label_column: the list has "
                                                 f"{label_columns} label column(s), so match: "
                                                 f"label needs label_column < {label_columns}",
                                    involves=("label_columns",)))
    return problems
