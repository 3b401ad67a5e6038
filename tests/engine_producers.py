"""Producers for the prefetch engine's tests; importable, so spawned workers can unpickle them."""

import os
import sys
import time

import numpy as np

from caffe_layers.prefetch import Producer, TopSpec

ID_SPECS = (TopSpec("ids", (5, 2), "int64"), TopSpec("noise", (5, 3), "float32"))


class IdProducer(Producer):
    """Row = (sample index, epoch) and three numbers from the sample's RNG."""

    def __init__(self, fail_at=None, delay_s=0.0, hang_at_batch=None):
        self.fail_at = fail_at
        self.delay_s = delay_s
        self.hang_at_batch = hang_at_batch

    def fill(self, out, task):
        if task.number == self.hang_at_batch:
            time.sleep(3600)
        time.sleep(self.delay_s)
        for row, index, rng in task:
            if index == self.fail_at:
                raise ValueError(f"cannot load sample {index}")
            out["ids"][row] = (index, task.epochs[row])
            out["noise"][row] = rng.random(3)
        return {"pid": os.getpid(), "batch": task.number}


class OpenFails(Producer):
    def open(self, worker_id, workers):
        raise OSError(f"worker {worker_id} cannot open its files")


class CountingGenerator(Producer):
    """Each worker runs its own counter: rows are (worker id, count, number of workers)."""

    def open(self, worker_id, workers):
        self.worker_id, self.workers, self.count = worker_id, workers, 0

    def fill(self, out, task):
        for row, _, _ in task:
            out["ids"][row] = (self.worker_id * 1000 + self.count, self.workers)
            self.count += 1
        out["noise"][...] = 0


class ModulesProducer(Producer):
    """Reports which of caffe and caffe_layers.layers the worker process has imported."""

    def fill(self, out, task):
        out["ids"][...] = 0
        out["noise"][...] = 0
        return sorted(m for m in ("caffe", "caffe_layers.layers") if m in sys.modules)


def collect(engine, batches):
    """``batches`` batches of ``engine`` as (ids, noise) arrays stacked along rows."""
    ids, noise = [], []
    for _ in range(batches):
        arrays, _ = engine.next_arrays()
        ids.append(arrays["ids"])
        noise.append(arrays["noise"])
    return np.concatenate(ids), np.concatenate(noise)


class ClosingProducer(IdProducer):
    """Writes ``closed-<pid>`` into ``directory`` when ``close()`` runs in a worker."""

    def __init__(self, directory, delay_s=0.0):
        super().__init__(delay_s=delay_s)
        self.directory = str(directory)

    def close(self):
        with open(os.path.join(self.directory, f"closed-{os.getpid()}"), "w"):
            pass


class PrepareRecorder(Producer):
    """Each fill waits (up to 10 s) for ``prepare`` of the next batch to be called meanwhile and
    reports whether it came, and which batches were prepared before the fill began."""

    def open(self, worker_id, workers):
        import threading

        self.prepared, self.lock = {}, threading.Lock()

    def prepare(self, task):
        import threading

        with self.lock:
            self.prepared.setdefault(task.number, threading.Event()).set()

    def fill(self, out, task):
        import threading

        with self.lock:
            before = sorted(self.prepared)
            following = self.prepared.setdefault(task.number + 1, threading.Event())
        came = following.wait(10.0)
        out["ids"][...] = task.number
        out["noise"][...] = 0
        return {"batch": task.number, "prepared_before": before, "next_came_meanwhile": came}


class PrepareFails(IdProducer):
    def prepare(self, task):
        if task.number == 2:
            raise ValueError("cannot start reading batch 2")
