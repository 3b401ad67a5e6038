"""The loaders we measure against, written the way their authors wrote them.

``KerasQueueLoader`` is keras 1.x's ``generator_queue`` pattern that Caffe Python layers copy:
worker processes run a generator and ``put`` whole batches into a ``multiprocessing.Queue``, which
pickles each batch through a pipe; the consumer ``get``s and copies it into its top blob.
"""

import contextlib
import multiprocessing
import queue

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
    """

    def __init__(self, make_batch, workers, max_queue=4):
        context = multiprocessing.get_context("fork")
        self.batches = context.Queue(maxsize=max_queue)
        self.stop = context.Event()
        self.processes = [
            context.Process(target=_keras_worker, daemon=True,
                            args=(make_batch, i, workers, self.batches, self.stop))
            for i in range(workers)
        ]
        for process in self.processes:
            process.start()

    def next_into(self, targets):
        batch = self.batches.get(timeout=300)
        for target, array in zip(targets, batch):
            np.copyto(target, array)

    def close(self):
        self.stop.set()
        while any(p.is_alive() for p in self.processes):
            # Drain, so that workers blocked in put() see the stop flag.
            with contextlib.suppress(queue.Empty):
                self.batches.get(timeout=0.05)
        for process in self.processes:
            process.join()
        self.batches.close()
        self.batches.join_thread()
