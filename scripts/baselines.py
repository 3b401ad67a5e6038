"""The loaders we measure against, written the way their authors wrote them.

``KerasQueueLoader`` is keras 1.x's ``generator_queue`` pattern that Caffe Python layers copy:
worker processes run a generator and ``put`` whole batches into a ``multiprocessing.Queue``, which
pickles each batch through a pipe; the consumer ``get``s and copies it into its top blob.

``TorchLoader`` is PyTorch's ``DataLoader`` over a map-style ``Dataset``: each ``__getitem__``
returns one sample as a fresh array, the worker collates 64 of them into one tensor (in shared
memory) and the consumer copies ``batch.numpy()`` into its top blob. torch is imported only when a
``TorchLoader`` is made.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import queue
from typing import Callable, Sequence

import numpy as np


def _keras_worker(make_batch, worker_id, workers, batches, stop):
    number = worker_id
    while not stop.is_set():
        batch = make_batch(number)
        while not stop.is_set():
            try:
                batches.put(batch, timeout=0.1)
                break
            except queue.Full:
                continue
        number += workers


class KerasQueueLoader:
    """``workers`` processes putting ``make_batch(n)`` results into a bounded mp.Queue.

    As in keras, batches arrive in whatever order the workers finish (no ordering, no exactly-once).
    ``workers=0`` calls ``make_batch`` in this process, as a plain generator loop would.
    """

    def __init__(self, make_batch: Callable[[int], Sequence[np.ndarray]], workers: int,
                 max_queue: int = 4) -> None:
        context = multiprocessing.get_context("fork")
        self.make_batch = make_batch
        self.number = 0
        self.batches = context.Queue(maxsize=max_queue)
        self.stop = context.Event()
        self.processes = [
            context.Process(target=_keras_worker, daemon=True,
                            args=(make_batch, i, workers, self.batches, self.stop))
            for i in range(workers)
        ]
        for process in self.processes:
            process.start()

    def next_into(self, targets: Sequence[np.ndarray]) -> None:
        if self.processes:
            batch = self.batches.get(timeout=300)
        else:
            batch = self.make_batch(self.number)
            self.number += 1
        for target, array in zip(targets, batch):
            np.copyto(target, array)

    def close(self) -> None:
        self.stop.set()
        while any(p.is_alive() for p in self.processes):
            # Drain, so that workers blocked in put() see the stop flag.
            with contextlib.suppress(queue.Empty):
                self.batches.get(timeout=0.05)
        for process in self.processes:
            process.join()
        self.processes = []
        self.batches.close()
        self.batches.join_thread()


def _torch_dataset(get_item: Callable[[int], tuple], length: int):
    from torch.utils.data import Dataset

    class ItemDataset(Dataset):
        """A map-style Dataset: sample ``i`` is ``get_item(i)``, a fresh array and its label."""

        def __len__(self) -> int:
            return length

        def __getitem__(self, index: int) -> tuple:
            return get_item(index)

    return ItemDataset()


class TorchLoader:
    """``torch.utils.data.DataLoader(batch_size, shuffle=True, num_workers=workers)``.

    Workers persist across epochs (``persistent_workers``); ``worker_init(worker_id)`` is the
    DataLoader's ``worker_init_fn``. A new epoch starts a new iterator, as a training loop's
    ``for batch in loader`` does.
    """

    def __init__(self, get_item: Callable[[int], tuple], length: int, workers: int,
                 batch_size: int, worker_init: Callable[[int], None] | None = None) -> None:
        from torch.utils.data import DataLoader

        self.loader = DataLoader(
            _torch_dataset(get_item, length), batch_size=batch_size, shuffle=True,
            num_workers=workers, persistent_workers=workers > 0, worker_init_fn=worker_init,
            multiprocessing_context="fork" if workers else None)
        self.iterator = iter(self.loader)

    def next_into(self, targets: Sequence[np.ndarray]) -> None:
        try:
            batch = next(self.iterator)
        except StopIteration:
            self.iterator = iter(self.loader)
            batch = next(self.iterator)
        for target, tensor in zip(targets, batch):
            np.copyto(target, tensor.numpy())

    def close(self) -> None:
        """Stop and join the workers now rather than when the iterator is collected."""
        shutdown = getattr(self.iterator, "_shutdown_workers", None)
        if shutdown is not None:
            shutdown()
        self.iterator = self.loader = None
