"""Batches/s of a keras Sequence: SequenceDataLayer against keras' own OrderedEnqueuer.

    python scripts/bench_sequence.py [--images 512] [--batch 32] [--epochs 3] [--quick]

The Sequence is what keras users write: ``__getitem__(idx)`` decodes its batch's JPEGs with
OpenCV, resizes them, returns float32 channels-last images and one-hot labels, and
``on_epoch_end`` reshuffles with ``np.random.shuffle``. Both loaders feed a Caffe-shaped consumer
that needs NCHW float32 data and class-index labels:

  caffe_layers  SequenceDataLayer through ``caffe.Net`` (the package's fake when real pycaffe is
                not importable): workers fill shared memory, conversions done in the workers;
  keras         keras 2's ``OrderedEnqueuer(use_multiprocessing=True)``, re-written below line by
                line without importing keras: a ``multiprocessing.Pool`` whose workers return
                each batch pickled through the pool's pipe, a feeder thread queueing
                ``apply_async`` results in order, a wait for the queue to drain at every epoch
                end, ``on_epoch_end`` in the parent and a new pool for the next epoch; the
                consumer transposes and arg-maxes each batch into its tops, as a Python layer
                using it must.

Both run the same number of workers (1, then 2) over ``--epochs`` epochs after one warm-up batch,
each the best of ``--repeat`` runs (other load on the machine only slows a run down); a third row
is the Sequence called in a plain loop in one process. Floor (issue 13): at 2 workers the layer
delivers >= 1.5x keras' batches/s. Timings are noisy on a shared machine.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import multiprocessing
import os
import queue
import random
import sys
import tempfile
import threading
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_common import write_jpeg_list  # noqa: E402
from bench_workload import cores, natural_image  # noqa: E402

CLASSES = 10
FLOOR = 1.5


def to_categorical(y, num_classes):
    return np.eye(num_classes, dtype="float32")[np.asarray(y, dtype=int)]


class DecodingSequence:  # keras.utils.Sequence
    """JPEGs decoded and resized per batch: channels-last float32 in [0, 1], one-hot labels."""

    def __init__(self, folder, names, labels, batch_size=32, size=224):
        self.folder, self.names, self.labels = folder, names, labels
        self.batch_size, self.size = batch_size, size
        self.on_epoch_end()

    def __len__(self):
        return len(self.names) // self.batch_size

    def __getitem__(self, idx):
        import cv2

        batch = self.indexes[idx * self.batch_size:(idx + 1) * self.batch_size]
        X = np.empty((len(batch), self.size, self.size, 3), dtype="float32")
        for row, k in enumerate(batch):
            image = cv2.imread(os.path.join(self.folder, self.names[k]))
            image = cv2.resize(image, (self.size, self.size), interpolation=cv2.INTER_LINEAR)
            X[row] = cv2.cvtColor(image, cv2.COLOR_BGR2RGB) / 255.0
        return X, to_categorical([self.labels[k] for k in batch], CLASSES)

    def on_epoch_end(self):
        self.indexes = np.arange(len(self.names))
        np.random.shuffle(self.indexes)


# --- keras 2's OrderedEnqueuer (keras/utils/data_utils.py), without keras ------------------------

_SHARED_SEQUENCES: dict = {}


def init_pool(seqs):
    global _SHARED_SEQUENCES
    _SHARED_SEQUENCES = seqs


def get_index(uid, i):
    return _SHARED_SEQUENCES[uid][i]


class OrderedEnqueuer:
    """Batches in order from a process pool; the pool is rebuilt after every epoch."""

    def __init__(self, sequence, shuffle=False):
        self.sequence, self.shuffle, self.uid = sequence, shuffle, 0

    def start(self, workers=1, max_queue_size=10):
        context = multiprocessing.get_context("fork")
        self.executor_fn = lambda seqs: context.Pool(workers, initializer=init_pool,
                                                     initargs=(seqs,))
        self.queue = queue.Queue(max_queue_size)
        self.stop_signal = threading.Event()
        self.run_thread = threading.Thread(target=self._run, daemon=True)
        self.run_thread.start()

    def _wait_queue(self):
        while True:
            time.sleep(0.1)
            if self.queue.unfinished_tasks == 0 or self.stop_signal.is_set():
                return

    def _run(self):
        sequence = list(range(len(self.sequence)))
        self._send_sequence()
        while True:
            if self.shuffle:
                random.shuffle(sequence)
            with contextlib.closing(self.executor_fn(_SHARED_SEQUENCES)) as executor:
                for i in sequence:
                    if self.stop_signal.is_set():
                        return
                    self.queue.put(executor.apply_async(get_index, (self.uid, i)), block=True)
                self._wait_queue()
                if self.stop_signal.is_set():
                    return
            self.sequence.on_epoch_end()
            self._send_sequence()

    def get(self):
        while not self.stop_signal.is_set():
            try:
                inputs = self.queue.get(block=True, timeout=5).get()
                self.queue.task_done()
                if inputs is not None:
                    yield inputs
            except queue.Empty:
                pass

    def _send_sequence(self):
        _SHARED_SEQUENCES[self.uid] = self.sequence

    def stop(self, timeout=None):
        self.stop_signal.set()
        with self.queue.mutex:
            self.queue.queue.clear()
            self.queue.unfinished_tasks = 0
            self.queue.not_full.notify()
        self.run_thread.join(timeout)
        _SHARED_SEQUENCES[self.uid] = None


# --- the measurements ----------------------------------------------------------------------------


def sequence_kwargs(folder: str, images: int, batch: int, size: int) -> dict:
    names = sorted(n for n in os.listdir(folder) if n.endswith(".jpg"))[:images]
    return {"folder": folder, "names": names, "labels": [k % CLASSES for k in range(images)],
            "batch_size": batch, "size": size}


def rate(next_batch, batches: int) -> float:
    """Batches/s of ``batches`` calls after one warm-up call."""
    next_batch()
    started = time.perf_counter()
    for _ in range(batches):
        next_batch()
    return batches / (time.perf_counter() - started)


def caffe_layers_rate(folder: str, kwargs: dict, workers: int, batches: int) -> float:
    import json

    import caffe_layers.testing
    from caffe_layers.prefetch import close_all

    caffe = caffe_layers.testing.install_fake_caffe()
    param = json.dumps({"sequence": "bench_sequence:DecodingSequence", "kwargs": kwargs,
                        "workers": workers})
    path = os.path.join(folder, "net.prototxt")
    with open(path, "w") as f:
        f.write(f'layer {{ name: "data" type: "Python" top: "data" top: "label" python_param {{ '
                f'module: "caffe_layers.layers" layer: "SequenceDataLayer" '
                f'param_str: {json.dumps(param)} }} }}\n')
    with contextlib.redirect_stdout(io.StringIO()):  # the layer's setup line
        net = caffe.Net(path, caffe.TRAIN)
    try:
        return rate(net.forward, batches)
    finally:
        close_all()


def keras_rate(kwargs: dict, workers: int, batches: int) -> float:
    sequence = DecodingSequence(**kwargs)
    n, size = kwargs["batch_size"], kwargs["size"]
    data, label = np.empty((n, 3, size, size), np.float32), np.empty(n, np.float32)
    enqueuer = OrderedEnqueuer(sequence)
    enqueuer.start(workers=workers, max_queue_size=10)
    stream = enqueuer.get()

    def next_batch():  # what a Python layer's forward does with it
        X, y = next(stream)
        np.copyto(data, X.transpose(0, 3, 1, 2))
        label[...] = y.argmax(axis=1)

    try:
        return rate(next_batch, batches)
    finally:
        enqueuer.stop()


def loop_rate(kwargs: dict, batches: int) -> float:
    sequence = DecodingSequence(**kwargs)
    state = {"i": 0}

    def next_batch():
        X, y = sequence[state["i"] % len(sequence)]
        state["i"] += 1
        return X.transpose(0, 3, 1, 2).astype(np.float32), y.argmax(axis=1)

    return rate(next_batch, batches)


def write_images(folder: str, images: int, wh: tuple) -> None:
    rng = np.random.default_rng(13)
    samples = ((f"img_{k:05d}.jpg", natural_image(rng, *wh), k % CLASSES) for k in range(images))
    write_jpeg_list(folder, "list.txt", samples, quality=90)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", type=int, default=512)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--size", type=int, default=224, help="the Sequence resizes to this")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--repeat", type=int, default=2, help="best of this many runs")
    parser.add_argument("--quick", action="store_true", help="a smoke run: tiny sizes")
    args = parser.parse_args(argv)
    if args.quick:
        args.images, args.batch, args.size, args.epochs, args.repeat = 48, 8, 32, 2, 1
    wh = (160, 120) if args.quick else (500, 375)
    per_epoch = args.images // args.batch
    batches = args.epochs * per_epoch
    with tempfile.TemporaryDirectory(prefix="bench_sequence_") as folder:
        write_images(folder, args.images, wh)
        kwargs = sequence_kwargs(folder, args.images, args.batch, args.size)
        print(f"bench_sequence: {args.images} JPEGs {wh[0]}x{wh[1]} decoded and resized to "
              f"{args.size}x{args.size}, batch {args.batch}, {per_epoch} batches per epoch, "
              f"{batches} batches timed; {cores()} cores usable")
        print(f"{'loader':<14}{'workers':>8}{'batches/s':>11}{'x keras':>9}")
        runs = {("plain loop", 0): lambda: loop_rate(kwargs, batches)}
        for workers in (1, 2):
            runs["keras", workers] = lambda w=workers: keras_rate(kwargs, w, batches)
            runs["caffe_layers", workers] = lambda w=workers: caffe_layers_rate(
                folder, kwargs, w, batches)
        best: dict = {}
        for _ in range(args.repeat):  # interleaved, so that a busy spell hits every loader
            for key, run in runs.items():
                best[key] = max(best.get(key, 0.0), run())
    ratios = {w: best["caffe_layers", w] / best["keras", w] for w in (1, 2)}
    for (loader, workers), value in best.items():
        ratio = f"{ratios[workers]:>9.2f}" if loader == "caffe_layers" else ""
        print(f"{loader:<14}{workers:>8}{value:>11.2f}{ratio}")
    verdict = "PASS" if ratios[2] >= FLOOR else "FAIL"
    print(f"floor: caffe_layers / keras at 2 workers = {ratios[2]:.3f} (>= {FLOOR}): {verdict}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
