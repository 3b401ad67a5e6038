"""Multi-input samples: an image list's sample plus extra tops drawn from other sources.

``MultiInputDataLayer`` takes every key of the image list and an ``attach`` list; each item adds
one top after the image list's own (data, label...), e.g. ::

    attach: [{top: audio, hdf5: feats.h5, dataset: features, match: label,
              label_dataset: labels}]

``match: label`` puts in the top, for each sample, a random row of ``dataset`` whose
``label_dataset`` value equals the sample's label (column ``label_column``, as written in the
label top, so a sample replaced by ``on_error: skip`` is matched by its replacement's label).
``match: index`` puts row ``i`` for list line ``i``. The random choice is a function of
``(seed, epoch, sample index, item number)``: the same for any number of workers, a new draw
every epoch, and drawn from its own stream, so adding an attachment never changes the image
augmentation (the data and label tops are bit-identical to ImageListDataLayer's).

Attached rows are read like HDF5Data's (streamed, handles opened in each worker). Setup reads the
label dataset, checks that every label of the list has at least one row, and reads row 0.
"""

from __future__ import annotations

import dataclasses
from typing import ContextManager, Tuple

import numpy as np

from caffe_layers.errors import MAX_REPORTED, ConfigError, DataError, first_few
from caffe_layers.files import shown
from caffe_layers.params import AttachParams, MultiInputParams
from caffe_layers.pipeline import Pipeline, image_list
from caffe_layers.pipeline.reads import FileProducer
from caffe_layers.prefetch import TopSpec
from caffe_layers.sampling import ATTACH_STREAM, stream_rng
from caffe_layers.sources.hdf5 import HDF5Files, HDF5Reader, open_h5


def attach_rng(seed: int, epoch: int, index: int, item: int) -> np.random.Generator:
    """The RNG of attachment ``item`` for sample ``index`` in ``epoch``."""
    return stream_rng(seed, ATTACH_STREAM, epoch, index, item)


@dataclasses.dataclass(frozen=True, eq=False)
class LabelIndex:
    """Rows grouped by label: the rows labelled ``values[k]`` are ``rows[starts[k]:starts[k+1]]``.
    """

    values: np.ndarray
    starts: np.ndarray
    rows: np.ndarray

    @classmethod
    def from_labels(cls, labels: np.ndarray) -> LabelIndex:
        rows = np.argsort(labels, kind="stable").astype(np.int64)
        values, starts = np.unique(labels[rows], return_index=True)
        return cls(values, np.append(starts, len(rows)).astype(np.int64), rows)

    def missing(self, labels: np.ndarray) -> np.ndarray:
        """The entries of ``labels`` no row has."""
        return labels[~np.isin(labels, self.values)]

    def pick(self, label: float, rng: np.random.Generator) -> int:
        """A uniformly random row labelled ``label``."""
        k = int(np.searchsorted(self.values, label))
        if k == len(self.values) or self.values[k] != label:
            raise DataError(f"no row has label {label:g}")
        first, end = self.starts[k], self.starts[k + 1]
        return int(self.rows[first + rng.integers(end - first)])


class HDF5Attachment:
    """Item ``number`` of ``attach``: one row of an HDF5 dataset per sample."""

    def __init__(self, number: int, item: AttachParams, files: HDF5Files,
                 index: LabelIndex | None, seed: int) -> None:
        self.number = number
        self.item = item
        self.dataset = item.dataset or item.top
        self.files = files
        self.index = index
        self.seed = seed
        self._reader: HDF5Reader | None = None

    def __getstate__(self) -> dict:
        return dict(self.__dict__, _reader=None)

    @property
    def row_shape(self) -> Tuple[int, ...]:
        return self.files.row_shape(self.dataset)

    def open(self) -> None:
        self._reader = HDF5Reader(self.files)

    def rows(self, task, labels: np.ndarray) -> np.ndarray:
        """The row of every sample of ``task``; ``labels`` is the batch's ``(N, k)`` labels."""
        if self.index is None:
            return np.asarray(task.indices, np.int64)
        column = self.item.label_column
        return np.array([self.index.pick(labels[row, column],
                                         attach_rng(self.seed, epoch, index, self.number))
                         for row, (index, epoch) in enumerate(zip(task.indices, task.epochs))],
                        np.int64)

    def read(self, rows: np.ndarray, out: np.ndarray) -> None:
        """Rows ``rows`` of the dataset into ``out`` (float32, one row each)."""
        self._reader.read(rows, {self.dataset: out})

    def fill(self, out: np.ndarray, task, labels: np.ndarray) -> None:
        self.read(self.rows(task, labels), out)

    def close(self) -> None:
        if self._reader is not None:
            self._reader.close()
            self._reader = None


class MultiInputProducer(FileProducer):
    """The image list's producer, then every attachment, into one batch."""

    def __init__(self, primary: image_list.ImageListProducer, attachments: tuple) -> None:
        self.primary = primary
        self.attachments = attachments

    def forking(self) -> ContextManager:
        return self.primary.forking()

    def open(self, worker_id: int, workers: int) -> None:
        self.primary.open(worker_id, workers)
        for attachment in self.attachments:
            attachment.open()

    def prepare(self, task) -> None:
        self.primary.prepare(task)

    def fill_rows(self, out: dict, task) -> object:
        own = {a.item.top for a in self.attachments}
        primary_out = {name: array for name, array in out.items() if name not in own}
        if "label" not in primary_out:  # the labels to match, even if the net does not take them
            columns = self.primary.images.labels.shape[1]
            primary_out["label"] = np.empty((task.batch_size, columns), np.float32)
        report = self.primary.fill_rows(primary_out, task)
        labels = primary_out["label"].reshape(task.batch_size, -1)
        for attachment in self.attachments:
            if attachment.item.top in out:
                attachment.fill(out[attachment.item.top], task, labels)
        return report

    def crops(self, task) -> list:
        """The image list's crops (see :meth:`ImageListProducer.crops`)."""
        return self.primary.crops(task)

    def undo_normalization(self, data: np.ndarray, task) -> np.ndarray:
        """The image list's inverse (see :meth:`ImageListProducer.undo_normalization`)."""
        return self.primary.undo_normalization(data, task)

    def close(self) -> None:
        self.primary.close()
        for attachment in self.attachments:
            attachment.close()


def _label_index(item: AttachParams, where: str, storage_options: dict | None) -> LabelIndex:
    with open_h5(item.hdf5, storage_options) as handle:
        labels = handle[item.label_dataset][...]
    if labels.ndim == 2 and labels.shape[1] == 1:
        labels = labels[:, 0]
    if labels.ndim != 1:
        raise DataError(f"{where}: '{shown(item.hdf5)}' dataset '{item.label_dataset}' is shaped "
                        f"{labels.shape}; labels must be one number per row")
    return LabelIndex.from_labels(labels.astype(np.float32))


def _check_labels(index: LabelIndex, images, item: AttachParams, where: str) -> None:
    labels = images.labels[:, item.label_column]
    missing = np.unique(index.missing(labels))
    if len(missing):
        listed = first_few([f"{value:g} ({images.where(int(np.flatnonzero(labels == value)[0]))})"
                            for value in missing[:MAX_REPORTED]], total=len(missing))
        raise ConfigError(f"{where}: no row of '{shown(item.hdf5)}' has these labels of "
                          f"{images.source} in '{item.label_dataset}': {listed}; every label needs "
                          f"at least one row to draw from")


def _attachment(number: int, item: AttachParams, images, seed: int,
                storage_options: dict | None) -> HDF5Attachment:
    where = f"attach[{number}] (top '{item.top}')"
    dataset = item.dataset or item.top
    tops = (dataset,) if item.match == "index" else (dataset, item.label_dataset)
    try:
        files = HDF5Files.single(item.hdf5, tops, storage_options)
    except DataError as exc:
        raise ConfigError(f"{where}: {exc}") from None
    index = None
    if item.match == "label":
        index = _label_index(item, where, storage_options)
        _check_labels(index, images, item, where)
    elif len(files) < len(images):
        raise ConfigError(f"{where}: match: index needs a row per list line, but "
                          f"'{shown(item.hdf5)}' has {len(files)} rows for {len(images)} lines "
                          f"of {images.source}")
    files = dataclasses.replace(files, tops=(dataset,), infos=(files.infos[0][:1],))
    return HDF5Attachment(number, item, files, index, seed)


def _check_first_rows(attachments: tuple) -> None:
    for attachment in attachments:
        attachment.open()
        try:
            attachment.read(np.zeros(1, np.int64),
                            np.empty((1,) + attachment.row_shape, np.float32))
        finally:
            attachment.close()


def build(params: MultiInputParams, train: bool) -> Pipeline:
    """The image list's pipeline with one more top per ``attach`` item."""
    primary = image_list.build(params, train)
    images = primary.producer.images
    attachments = tuple(_attachment(number, item, images, params.seed, params.storage_options)
                        for number, item in enumerate(params.attachments()))
    _check_first_rows(attachments)
    extra = tuple(TopSpec(a.item.top, (params.batch_size,) + a.row_shape) for a in attachments)
    # Without the label tops, 2 tops would read as (data, attached): too easy to mistake for
    # (data, label); a net that does not use the labels can Silence them.
    layouts = {count + len(extra): specs + extra for count, specs in primary.layouts.items()
               if count > 1 or len(primary.layouts) == 1}
    described = ", ".join(f"{a.item.top} from {shown(a.item.hdf5)}:{a.dataset} (match "
                          f"{a.item.match})" for a in attachments)
    return Pipeline(MultiInputProducer(primary.producer, attachments), layouts,
                    primary.samples, f"{primary.description}; attached {described}",
                    unit=primary.unit)
