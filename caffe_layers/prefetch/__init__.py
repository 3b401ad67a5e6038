"""The prefetch engine: worker processes fill batches ahead of the consumer in shared memory.

It knows nothing of Caffe or of data formats. Give it a :class:`Producer` (a picklable object whose
``fill`` writes one batch into preallocated arrays), the :class:`TopSpec` of each output array, and
a plan (:class:`SamplePlan` for indexed samples, :class:`IndexedBatchPlan` for indexed whole
batches, :class:`RoundRobinPlan` for generators)::

    with Prefetcher(producer, specs, SamplePlan(stream, seed), workers=2, prefetch=4) as engine:
        engine.next_into([data_array, label_array])
"""

from caffe_layers.prefetch.engine import Prefetcher, close_all
from caffe_layers.prefetch.launch import START_METHODS, default_start_method, matching_interpreter
from caffe_layers.prefetch.slots import TopSpec
from caffe_layers.prefetch.tasks import (
    BatchTask,
    IndexedBatchPlan,
    IndexedBatchTask,
    Producer,
    RoundRobinPlan,
    SamplePlan,
)

__all__ = [
    "START_METHODS",
    "BatchTask",
    "IndexedBatchPlan",
    "IndexedBatchTask",
    "Prefetcher",
    "Producer",
    "RoundRobinPlan",
    "SamplePlan",
    "TopSpec",
    "close_all",
    "default_start_method",
    "matching_interpreter",
]
