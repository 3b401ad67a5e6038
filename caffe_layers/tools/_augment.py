"""``caffe-layers-preview --augment N``: one sample under N draws of its layer's own transform.

Every random choice of a sample is a pure function of ``(seed, epoch, sample index)``
(:func:`~caffe_layers.sampling.sample_rng`), so draw ``e`` is exactly what the layer feeds the net
for that sample in epoch ``e``. The rows are made by a fresh copy of the layer's own producer, in
this process, with the layer's seed; mean and scale are undone by the same producer
(``undo_normalization``), and each row's crop and mirror come from its ``crops``.
"""

from __future__ import annotations

import dataclasses
import pickle
from typing import Any, List

import numpy as np

from caffe_layers.errors import ConfigError
from caffe_layers.prefetch import BatchTask
from caffe_layers.transforms import Crop


@dataclasses.dataclass
class Draws:
    """Sample ``index`` in epochs ``0..N-1``: ``values`` ``(N, C, H, W)`` float64 pixels as the
    net sees them (mean and scale undone) and each row's crop."""

    index: int
    values: np.ndarray
    crops: List[Crop]

    def caption(self, epoch: int) -> str:
        crop = self.crops[epoch]
        return f"e{epoch}: {crop.h_off},{crop.w_off}" + (" M" if crop.mirror else "")

    def summary(self) -> str:
        mirrored = sum(crop.mirror for crop in self.crops)
        offsets = len({(crop.h_off, crop.w_off) for crop in self.crops})
        return (f"{offsets} distinct crop offset{'s' if offsets != 1 else ''}, {mirrored} of "
                f"{len(self.crops)} mirrored")

    def all_alike(self) -> bool:
        return len(set(self.crops)) == 1


def _sample(engine: Any, sample: int | None) -> int:
    """The sample to show: ``sample``, or the first sample of the batch the layer delivered."""
    task = engine.last_task()
    if task is None or task.indices is None:
        raise ConfigError("--augment needs a layer of indexed samples (a list, HDF5, npy or a "
                          "dataset class), not a generator")
    if sample is None:
        return int(task.indices[0])
    count = engine.plan.stream.order.n
    if sample >= count:
        raise ConfigError(f"--sample {sample}: the layer has {count} samples (0 to {count - 1})")
    return sample


def draw(engine: Any, count: int, sample: int | None = None) -> Draws:
    """``count`` draws of one sample by the layer's producer (``engine``: the layer's
    :class:`~caffe_layers.prefetch.Prefetcher`); ``sample`` defaults to the batch's first."""
    producer = engine.producer
    if not hasattr(producer, "crops"):
        raise ConfigError(f"--augment shows the random crops and mirrors of an image layer "
                          f"(ImageListDataLayer, MultiInputDataLayer); this layer "
                          f"({type(producer).__name__}) has no image transform")
    index = _sample(engine, sample)
    task = BatchTask(0, count, np.full(count, index, np.int64), np.arange(count, dtype=np.int64),
                     engine.last_task().seed)
    out = {spec.name: np.empty((count,) + tuple(spec.shape[1:]), spec.dtype)
           for spec in engine.specs}
    fresh = pickle.loads(pickle.dumps(producer))  # as a worker gets it: nothing opened yet
    fresh.open(0, 1)
    try:
        fresh.fill(out, task)
    finally:
        fresh.close()
    first = out[engine.specs[0].name]
    return Draws(index, fresh.undo_normalization(first, task), fresh.crops(task))
