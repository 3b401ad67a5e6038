"""LMDB/LevelDB of Datums → batches: Caffe's ``Data`` layer (its DataTransformer included).

Each record is parsed without copying (:mod:`caffe_layers.datum`). A raw Datum's ``(C, H, W)``
pixels are cropped, mirrored, mean-subtracted and scaled straight into the batch slot
(:meth:`~caffe_layers.transforms.ImageTransform.apply_chw`); an encoded one is decoded as
Caffe's ``DecodeDatumToCVMat`` does (``cv2.imdecode`` unchanged, or colour/gray with
``force_color``/``force_gray``) and transformed as an image. The label top takes the Datum's
``label``.

A batch's records are read in key order (sorted indices), so that a shuffled batch, drawn from a
few blocks of consecutive keys (:class:`~caffe_layers.sampling.BlockShuffledOrder`), reads
forward through each block. ``on_error: skip`` replaces a record that cannot be read by the next
one, as for image lists.
"""

from __future__ import annotations

import functools
from typing import Callable

import numpy as np

from caffe_layers.datum import parse_datum, raw_pixels
from caffe_layers.errors import ConfigError, DataError
from caffe_layers.params import DBParams
from caffe_layers.pipeline import Pipeline
from caffe_layers.pipeline.labels import label_layouts
from caffe_layers.pipeline.skip import MAX_SKIPS_IN_A_ROW, load_or_skip
from caffe_layers.prefetch import Producer, TopSpec
from caffe_layers.prefetch.forksafe import one_thread_per_worker
from caffe_layers.sampling import BlockShuffledOrder
from caffe_layers.sources.db import Database, DatabaseReader
from caffe_layers.sources.images import decode_image
from caffe_layers.transforms import ImageTransform

BLOCK_BYTES = 16 << 20  # default shuffle block: this many bytes of consecutive records
BLOCKS_PER_WINDOW = 4
IMREAD_UNCHANGED = -1  # cv2's value, without importing cv2 here


def decode_flags(force_color: bool, force_gray: bool) -> int:
    """``cv2.imdecode`` flags of an encoded Datum, as Caffe's DataTransformer chooses them."""
    if force_color or force_gray:
        import cv2

        return cv2.IMREAD_COLOR if force_color else cv2.IMREAD_GRAYSCALE
    return IMREAD_UNCHANGED


class DBProducer(Producer):
    """Fills data (and label) rows from a database's records; readers open in the filling process.
    """

    per_process = ("_reader",)  # database handles never travel to another process

    def __init__(self, database: Database, transform: ImageTransform, flags: int,
                 shape: tuple, skip_errors: bool) -> None:
        self.database = database
        self.transform = transform
        self.flags = flags
        self.shape = tuple(shape)  # (C, H, W) of the first record: every record's, without crop
        self.skip_errors = skip_errors
        self._reader: DatabaseReader | None = None

    def open(self, worker_id: int, workers: int) -> None:
        one_thread_per_worker()
        self._reader = self.database.open()

    def close(self) -> None:
        if self._reader is not None:
            self._reader.close()
            self._reader = None

    def fill(self, out: dict, task) -> object:
        skipped: list = []
        data, labels = out["data"], out.get("label")
        order = np.argsort(task.indices, kind="stable")
        with self._reader.batch(task.indices[order]) as record:
            for row, index, rng in task.rows(order):
                if self.skip_errors:
                    _, label = load_or_skip(
                        lambda i: self.load(record, i, rng, data[row]),  # noqa: B023 (called now)
                        index, len(self.database), True, skipped, "records", self.database.where)
                else:
                    label = self.load(record, index, rng, data[row])
                if labels is not None:
                    labels[row] = label
        return {"skipped": skipped} if skipped else None

    def load(self, record: Callable, index: int, rng: np.random.Generator,
             out: np.ndarray) -> int:
        """Parse, decode, check, crop/mirror and normalise record ``index`` into ``out``; its label.
        """
        where = self.database.where(index)
        datum = parse_datum(record(index), where)
        if datum.encoded:
            image = decode_image(bytes(datum.data), self.flags, f"the encoded image of {where}")
            self._check_shape((image.shape[2],) + image.shape[:2], where)
            h_off, w_off, mirror = self.transform.decide(rng, *image.shape[:2])
            self.transform.apply(image, h_off, w_off, mirror, out)
        else:
            pixels = raw_pixels(datum, where)
            self._check_shape(pixels.shape, where)
            h_off, w_off, mirror = self.transform.decide(rng, *pixels.shape[1:])
            self.transform.apply_chw(pixels, h_off, w_off, mirror, out)
        return datum.label

    def _check_shape(self, shape: tuple, where: str) -> None:
        """DataError naming the record unless its ``(C, H, W)`` fits the tops and the mean."""
        crop = self.transform.crop_size
        mean = self.transform.mean_shape
        first = "x".join(map(str, self.shape))
        found = "x".join(map(str, shape))
        if shape[0] != self.shape[0]:
            problem = f"has {shape[0]} channels but the first record {self.shape[0]}"
        elif mean is not None and tuple(shape) != mean:
            problem = f"does not match the mean file's {'x'.join(map(str, mean))}"
        elif not crop and tuple(shape) != self.shape:
            problem = (f"differs from the first record's {first}; without crop_size every "
                       f"record must have one size (set crop_size, or convert with "
                       f"--resize-height and --resize-width)")
        elif crop and min(shape[1:]) < crop:
            problem = f"is smaller than crop_size {crop}"
        else:
            return
        raise DataError(f"{where}: the image is {found} (C x H x W) and {problem}")


def _first_record(database: Database, reader: DatabaseReader, flags: int, skip: bool) -> tuple:
    """``(index, (C, H, W), encoded)`` of the record that fixes the shapes: the first one, or with
    ``on_error: skip`` the first readable one."""
    def probe(index: int) -> tuple:
        with reader.batch() as record:
            where = database.where(index)
            datum = parse_datum(record(index), where)
            if not datum.encoded:
                return raw_pixels(datum, where).shape, False
            image = decode_image(bytes(datum.data), flags, f"the encoded image of {where}")
            return (image.shape[2],) + image.shape[:2], True

    tries = min(len(database), MAX_SKIPS_IN_A_ROW + 1) if skip else 1
    index, (shape, encoded) = load_or_skip(probe, 0, tries, skip, [], "records", database.where)
    return index, shape, encoded


def _check_force(params: DBParams, encoded: bool, database: Database, index: int) -> None:
    forced = [key for key in ("force_color", "force_gray") if getattr(params, key)]
    if forced and not encoded:
        raise ConfigError(f"{forced[0]}: applies to encoded records only, and "
                          f"{database.where(index)} is a raw Datum; remove {forced[0]} (Caffe "
                          f"ignores it there with an error in its log)")


def _describe(database: Database, shape: tuple, encoded: bool, params: DBParams,
              block: int, window: int) -> str:
    kind = "encoded" if encoded else "raw"
    text = f"{database.describe()}, {kind} Datums of {'x'.join(map(str, shape))}"
    if params.shuffle:
        text += f", shuffled in blocks of {block} records within windows of {window}"
    return text


def _block_runs(n: int, block: int) -> list:
    """Blocks of ``block`` consecutive records, the last one shorter, as runs
    ``(first record, block length, blocks)``."""
    runs = [(0, block, n // block)] if n >= block else []
    if n % block:
        runs.append((n - n % block, n % block, 1))
    return runs


def build(params: DBParams, train: bool) -> Pipeline:
    """Index the database, read its first record, fix every shape; raise here, not in a worker."""
    database = Database.scan(params.source, params.backend)
    flags = decode_flags(params.force_color, params.force_gray)
    skip = params.on_error == "skip"
    reader = database.open()
    try:
        index, shape, encoded = _first_record(database, reader, flags, skip)
        _check_force(params, encoded, database, index)
        transform = ImageTransform.from_params(
            params.crop_size, params.mirror, params.mean_file, params.mean_value, params.scale,
            train=train, channels=shape[0])
        out_shape = transform.output_shape(*shape)
        producer = DBProducer(database, transform, flags, shape, skip)
        with reader.batch() as record:
            producer.load(record, index, np.random.default_rng(0), np.empty(out_shape, np.float32))
    finally:
        reader.close()
    block = params.shuffle_block or max(1, round(BLOCK_BYTES / database.mean_record_bytes()))
    block = min(block, len(database))
    window = params.shuffle_window or min(max(params.batch_size, BLOCKS_PER_WINDOW * block),
                                          len(database))
    data = TopSpec("data", (params.batch_size,) + tuple(out_shape))
    order = functools.partial(BlockShuffledOrder.from_runs, len(database),
                              _block_runs(len(database), block), window)
    return Pipeline(producer, label_layouts(data, params.batch_size, 1), len(database),
                    _describe(database, shape, encoded, params, block, window),
                    shuffled_order=order, unit="records")
