"""The benchmark's generated workload and the per-image work every loader does.

The workload (``Workload``; ``QUICK`` for a smoke run): JPEGs of natural-looking images
(``natural_image``) written once by ``make_dataset`` into a directory that ``reuse_dataset``
recognises on a later run, and the image-list layer's settings for them (``layer_params``).
``Work`` builds the layer's own producer and plan, so that every loader scripts/benchmark.py
measures does exactly the layer's per-image work.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import sys
import tempfile
from typing import Iterator

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_common import staged_progress, write_jpeg_list  # noqa: E402

PREFETCH = 4  # the layer's default prefetch (batches beyond one per worker)
LIST_NAME = "list.txt"
MARKER_NAME = "workload.json"  # what a --data directory was generated for


class UsageError(Exception):
    """Bad input found after parsing the arguments (exit status 2)."""


@dataclasses.dataclass(frozen=True)
class Workload:
    """The images generated and the layer's settings (the issue's ImageNet-like defaults)."""

    images: int = 512
    image_wh: tuple = (500, 375)
    quality: int = 90
    new_hw: int = 256
    crop: int = 227
    batch: int = 64
    batches: int = 40
    mean: tuple = (104.0, 117.0, 123.0)


QUICK = Workload(images=16, image_wh=(160, 120), new_hw=64, crop=56, batch=8, batches=3)


def cores() -> int:
    """The CPUs this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def natural_image(rng: np.random.Generator, width: int, height: int) -> np.ndarray:
    """BGR uint8: smooth structure at four scales plus sensor-like noise (~100 KB at q90)."""
    import cv2

    image = np.full((height, width, 3), 128.0, np.float32)
    for cells, amplitude in ((4, 80.0), (16, 40.0), (60, 30.0), (180, 28.0)):
        field = rng.normal(0, 1, (cells, cells * 4 // 3 + 1, 3)).astype(np.float32)
        image += amplitude * cv2.resize(field, (width, height), interpolation=cv2.INTER_CUBIC)
    image += rng.normal(0, 8, image.shape).astype(np.float32)
    return np.clip(image, 0, 255).astype(np.uint8)


def make_dataset(directory: str, work: Workload) -> None:
    """``work.images`` JPEGs and a ``path label`` list file in ``directory``."""
    rng = np.random.default_rng(2012)
    samples = ((f"img_{i:05d}.jpg", natural_image(rng, *work.image_wh), i % 1000)
               for i in range(work.images))
    with staged_progress(work.images, f"generating {work.images} JPEGs in {directory}") as bar:
        write_jpeg_list(directory, LIST_NAME, samples, work.quality, bar.advance)
    with open(os.path.join(directory, MARKER_NAME), "w") as f:  # last: marks the set complete
        json.dump(_image_spec(work), f)


def _image_spec(work: Workload) -> dict:
    return {"images": work.images, "image_wh": list(work.image_wh), "quality": work.quality}


def reuse_dataset(directory: str, work: Workload) -> bool:
    """Whether ``directory`` holds this workload's images; UsageError if it holds others."""
    marker = os.path.join(directory, MARKER_NAME)
    if not os.path.isfile(marker):
        if os.path.exists(os.path.join(directory, LIST_NAME)):
            raise UsageError(f"--data: {directory!r} has a {LIST_NAME} but no {MARKER_NAME}: it "
                             f"was not made by this script (or not finished); give an empty or "
                             f"new directory")
        return False
    with open(marker) as f:
        found = json.load(f)
    if found != _image_spec(work):
        raise UsageError(f"--data: {directory!r} holds images made for {found}, this run needs "
                         f"{_image_spec(work)}; give another directory or delete it")
    return True


@contextlib.contextmanager
def dataset_folder(data: str | None, work: Workload) -> Iterator[str]:
    """The image directory: ``data`` (--data: generated there once, reused after) or a
    temporary one."""
    if data is None:
        with tempfile.TemporaryDirectory(prefix="caffe_layers_images_") as tmp:
            make_dataset(tmp, work)
            yield tmp
        return
    directory = os.path.abspath(data)
    if not reuse_dataset(directory, work):
        os.makedirs(directory, exist_ok=True)
        make_dataset(directory, work)
    yield directory


def warm_page_cache(directory: str) -> tuple:
    """Read every listed image once, so every loader reads from memory; (images, mean bytes)."""
    sizes = []
    with open(os.path.join(directory, LIST_NAME)) as listing:
        for line in listing:
            if line.strip():
                with open(os.path.join(directory, line.split()[0]), "rb") as f:
                    sizes.append(len(f.read()))
    return len(sizes), sum(sizes) / max(len(sizes), 1)


# ------------------------------------------------------------------------------ the same work

def layer_params(directory: str, work: Workload, workers: int) -> dict:
    """The layer's param_str keys for this workload."""
    return {"source": os.path.join(directory, LIST_NAME), "root_folder": directory + os.sep,
            "batch_size": work.batch, "new_height": work.new_hw, "new_width": work.new_hw,
            "crop_size": work.crop, "mirror": True, "mean_value": list(work.mean),
            "shuffle": True, "seed": 0, "workers": workers, "prefetch": PREFETCH}


class Work:
    """The layer's producer, plan and labels, built by the layer's own code."""

    def __init__(self, directory: str, work: Workload) -> None:
        from caffe_layers import config
        from caffe_layers.params import ImageListParams
        from caffe_layers.pipeline import image_list
        from caffe_layers.prefetch import SamplePlan
        from caffe_layers.prefetch.worker import keep_freed_memory
        from caffe_layers.sampling import SampleStream, ShuffledOrder

        params = config.load(ImageListParams, json.dumps(layer_params(directory, work, 0)),
                             where="benchmark param_str")
        pipeline = image_list.build(params, train=True)
        self.producer = pipeline.producer
        self.samples = pipeline.samples
        self.labels = self.producer.images.labels
        self.seed = params.seed
        self.plan = SamplePlan(SampleStream(ShuffledOrder(self.samples, params.seed),
                                            params.batch_size), params.seed)
        self.shape = tuple(pipeline.layouts[2][0].shape)
        # As in the layer's workers: OpenCV single-threaded, freed memory kept for reuse. Set
        # here only; the limit runs here and keras' and torch's workers inherit both through
        # fork (a forked child must not reconfigure OpenCV's thread pool: that can hang).
        self.producer.open(0, 1)
        keep_freed_memory()

    def fill(self, number: int, data: np.ndarray, label: np.ndarray) -> None:
        """Batch ``number`` of the layer's plan, loaded row by row into ``data``/``label``."""
        for row, index, rng in self.plan.task(number):
            self.producer.load(index, rng, data[row])
            label[row] = self.labels[index][0]

    def make_batch(self, number: int) -> tuple:
        """A fresh batch, as a keras generator yields one (the keras baseline)."""
        data = np.empty(self.shape, np.float32)
        label = np.empty(self.shape[0], np.float32)
        self.fill(number, data, label)
        return data, label

    def get_item(self, i: int) -> tuple:
        """Sample ``i`` as a fresh array and its label (the torch Dataset's ``__getitem__``)."""
        from caffe_layers.sampling import sample_rng

        index, epoch = i % self.samples, i // self.samples
        out = np.empty(self.shape[1:], np.float32)
        self.producer.load(index, sample_rng(self.seed, epoch, index), out)
        return out, int(self.labels[index][0])


