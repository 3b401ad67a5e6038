"""Image list → batches: Caffe's ImageData (decode, resize, crop, mirror, mean, scale, labels).

One row per sample: read the file, decode it with OpenCV as 8-bit BGR (or gray), resize, draw crop
and mirror from the sample's RNG, and write ``(x - mean) * scale`` straight into the batch slot.
Labels go into one ``(N,)`` or ``(N, k)`` top, or one ``(N,)`` top per label column.

``on_error: skip`` replaces a sample that cannot be read by the next one in the list (then the
next, ...), deterministically, and reports it with the batch: never a silent zero image.

``source``, ``root_folder`` (so every path) and ``mean_file`` may be URLs; then each worker reads
the files of its next batch ahead of decoding (:mod:`caffe_layers.pipeline.reads`).
"""

from __future__ import annotations

from typing import List

import numpy as np

from caffe_layers.files import is_url, shown
from caffe_layers.params import ImageListParams
from caffe_layers.pipeline import Pipeline
from caffe_layers.pipeline.labels import label_layouts, write_labels
from caffe_layers.pipeline.reads import FileProducer, SampleFiles
from caffe_layers.pipeline.skip import first_loadable, load_or_skip
from caffe_layers.prefetch import TopSpec
from caffe_layers.prefetch.forksafe import one_thread_per_worker
from caffe_layers.sources.image_list import SampleList, read_listed_image
from caffe_layers.sources.images import check_size
from caffe_layers.transforms import Crop, ImageTransform, resize

ROOT_FOLDER_HINT = "is root_folder right?"


class ImageListProducer(FileProducer):
    """Fills data and label rows from a :class:`SampleList` (picklable, no open handles)."""

    def __init__(self, images: SampleList, transform: ImageTransform, params: ImageListParams,
                 image_hw: tuple) -> None:
        self.images = images
        self.transform = transform
        self.is_color = params.is_color
        self.new_hw = (params.new_height, params.new_width)
        self.reduce = 8 if params.reduced_decode else 1
        self.skip_errors = params.on_error == "skip"
        self.image_hw = image_hw  # every image's size after resize (the first image's)
        self.storage_options = params.storage_options
        self.files = SampleFiles(self.file_of, is_url(images.path(0)), self.storage_options)

    def open(self, worker_id: int, workers: int) -> None:
        one_thread_per_worker()

    def prepare(self, task) -> None:
        self.files.prepare(task)

    def fill_rows(self, out: dict, task) -> object:
        skipped = []
        data = out["data"]
        with self.files.batch(task) as fetched:
            for row, index, rng in task:
                used = self._load(index, rng, data[row], skipped, fetched)
                write_labels(out, row, self.images.labels[used])
        return {"skipped": skipped} if skipped else None

    def close(self) -> None:
        self.files.close()

    def file_of(self, index: int) -> tuple:
        """Sample ``index``'s image: its path, what it is and its list line, for messages."""
        return self.images.path(index), "image", f"{self.images.where(index)}: "

    def load(self, index: int, rng: np.random.Generator, out: np.ndarray,
             data: bytes | None = None) -> None:
        """Decode, resize, check, crop/mirror and normalise sample ``index`` into ``out``
        (``data``: its file's bytes, if already read)."""
        min_hw = self.new_hw if self.reduce > 1 else None
        image = read_listed_image(self.images, index, self.is_color, self.reduce, min_hw,
                                  data=data, storage_options=self.storage_options)
        image = resize(image, *self.new_hw)
        check_size(image, self.image_hw, self.images.path(index), self.images.where(index))
        h_off, w_off, mirror = self.transform.decide(rng, *self.image_hw)
        self.transform.apply(image, h_off, w_off, mirror, out)

    def crops(self, task) -> List[Crop]:
        """The crop and mirror of every row of ``task``, as :meth:`fill` draws them."""
        return [self.transform.decide(rng, *self.image_hw) for _, _, rng in task]

    def undo_normalization(self, data: np.ndarray, task) -> np.ndarray:
        """``task``'s data top back to float64 pixels: mean and scale undone exactly, each row's
        mean at its own crop window; crop and mirror stay as the net sees them."""
        return np.stack([self.transform.undo(data[row], *crop)
                         for row, crop in enumerate(self.crops(task))])

    def _load(self, index: int, rng, out: np.ndarray, skipped: list, fetched) -> int:
        """Load ``index`` (its bytes read ahead, if they were), or with on_error: skip the next
        loadable sample (read now); the index used."""
        used, _ = load_or_skip(
            lambda i: self.load(i, rng, out, fetched(i) if i == index else None), index,
            len(self.images), self.skip_errors, skipped, "images",
            lambda i: f"{self.images.where(i)}; {ROOT_FOLDER_HINT}")
        return used


def _first_image(images: SampleList, params: ImageListParams) -> tuple:
    """``(index, image)`` of the image that fixes the shapes: the first one, or with
    ``on_error: skip`` the first readable one (a bad first line is skipped like any other)."""
    def read(index: int) -> np.ndarray:
        image = read_listed_image(images, index, params.is_color,
                                  storage_options=params.storage_options)
        return resize(image, params.new_height, params.new_width)

    return first_loadable(read, len(images), params.on_error == "skip", "images", images.source,
                          ROOT_FOLDER_HINT)


def build(params: ImageListParams, train: bool) -> Pipeline:
    """Read the list, open the first image, fix every shape; raise here rather than in a worker."""
    images = SampleList.read(params.source, params.root_folder, params.label_columns,
                             params.storage_options)
    first_index, first = _first_image(images, params)
    channels = first.shape[2]
    transform = ImageTransform.from_params(
        params.crop_size, params.mirror, params.mean_file, params.mean_value, params.scale,
        train=train, channels=channels, storage_options=params.storage_options)
    shape = transform.output_shape(channels, *first.shape[:2], resized=bool(params.new_height))
    producer = ImageListProducer(images, transform, params, first.shape[:2])
    producer.load(first_index, np.random.default_rng(0), np.empty(shape, np.float32))
    data = TopSpec("data", (params.batch_size,) + tuple(shape))
    return Pipeline(producer, label_layouts(data, params.batch_size, params.label_columns),
                    len(images), f"{len(images)} images from {shown(params.source)}",
                    unit="images")
