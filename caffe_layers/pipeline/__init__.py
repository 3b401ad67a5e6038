"""Batch fill: a source and its transforms composed into a Producer the prefetch engine runs.

Each data format has a module here whose ``build(params, train)`` opens the source in the
consumer's process, reads and transforms its first sample (so that a wrong setting fails in setup,
not in a worker an hour later), and returns a :class:`Pipeline`: the producer, the output arrays
it fills, and a one-line description for the layer's setup summary.

Two optional methods of a producer let the tools explain a batch exactly (``caffe-layers-preview``
shows pictures with them); a producer whose first top is normalised should offer them:

- ``undo_normalization(data, task)``: the first top of batch ``task`` (as filled) back to the
  float64 values before mean and scale, each row by its own mean window;
- ``crops(task)``: the :class:`~caffe_layers.transforms.Crop` (offsets, mirror) of every row, for
  producers that crop or mirror images. Both are pure functions of the task (its samples, epochs
  and seed), so they need no open handle and agree with what any worker filled.
"""

from __future__ import annotations

import dataclasses
from typing import Callable, Dict, Tuple

from caffe_layers.errors import ConfigError
from caffe_layers.prefetch import Producer, TopSpec
from caffe_layers.sampling import Order, ShuffledOrder


@dataclasses.dataclass(frozen=True)
class Pipeline:
    """What a layer needs to start the engine and shape its tops.

    ``layouts`` maps each accepted number of tops to the output arrays, in top order (e.g. 2 tops:
    data and an ``(N, k)`` label; 1 + k tops: data and one label per column); the producer fills
    whichever arrays it is handed. ``samples`` is the dataset length (None for a generator, which
    is not indexed). ``shuffled_order``, when set, makes the order for ``shuffle: true`` from the
    seed (e.g. HDF5's chunk-aware :class:`~caffe_layers.sampling.BlockShuffledOrder`) instead
    of a uniform permutation. ``whole_batches``: each of the ``samples`` indices is a whole
    batch (a keras Sequence's ``__getitem__(idx)``), handed out by an IndexedBatchPlan.
    ``unit`` names the samples in messages (``images``, ``rows``).
    """

    producer: Producer
    layouts: Dict[int, Tuple[TopSpec, ...]]
    samples: int | None
    description: str
    shuffled_order: Callable[[int], Order] | None = None
    whole_batches: bool = False
    unit: str = "samples"

    def specs_for(self, tops: int, layer: str) -> Tuple[TopSpec, ...]:
        """The arrays for ``tops`` tops; ConfigError naming the accepted counts otherwise."""
        if tops not in self.layouts:
            accepted = " or ".join(
                f"{count} ({', '.join(s.name for s in specs)})"
                for count, specs in sorted(self.layouts.items()))
            raise ConfigError(f"{layer} has {tops} top(s) but takes {accepted}; fix the number "
                              f"of `top:` lines of the layer in the prototxt")
        return self.layouts[tops]

    def order(self, shuffle: bool, seed: int) -> Order:
        """The epoch order of an indexed source: identity, uniform or its own shuffled order."""
        if not shuffle:
            return Order(self.samples)
        if self.shuffled_order is not None:
            return self.shuffled_order(seed)
        return ShuffledOrder(self.samples, seed)
