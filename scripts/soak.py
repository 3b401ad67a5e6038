"""Soak test: many iterations through the image-list layer, watching every process's memory.

    python scripts/soak.py [--iterations 20000] [--every 1000] [--workers 2]

Builds a small JPEG dataset in a temporary directory, drives an ImageListDataLayer through
``caffe.Net`` (real Caffe when importable, else the fake) for ``--iterations`` forwards, and prints
the resident memory (VmRSS, and its anonymous part RssAnon) of the layer's process and of each
worker every ``--every`` iterations. Growth is measured from the first report (after warm-up) to
the last; the issue's bound is 2 %. Exit code 1 when any process grew more than that.
"""

import argparse
import os
import sys
import tempfile
import time

import cv2
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_common import proc_status_kib, write_jpeg_list  # noqa: E402

from caffe_layers.pycaffe import import_caffe  # noqa: E402


def memory_kib(pid):
    """(VmRSS, RssAnon) of ``pid`` in KiB."""
    fields = proc_status_kib(pid, ("VmRSS", "RssAnon"))
    return fields["VmRSS"], fields["RssAnon"]


def make_dataset(folder, count, seed=0):
    rng = np.random.default_rng(seed)
    samples = ((f"{i}.jpg", cv2.GaussianBlur(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8),
                                             (5, 5), 0), i % 10) for i in range(count))
    write_jpeg_list(folder, "train.txt", samples, quality=90)


def write_net(folder, workers, batch_size):
    path = os.path.join(folder, "net.prototxt")
    param_str = (f"{{source: {folder}/train.txt, root_folder: {folder}/, batch_size: {batch_size},"
                 f" crop_size: 56, mirror: true, mean_value: [104, 117, 123], shuffle: true,"
                 f" workers: {workers}}}")
    with open(path, "w") as net:
        net.write('layer { name: "data" type: "Python" top: "data" top: "label"\n'
                  '  python_param { module: "caffe_layers.layers" '
                  f'layer: "ImageListDataLayer" param_str: "{param_str}" }} }}\n')
    return path


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--iterations", type=int, default=20000)
    parser.add_argument("--every", type=int, default=1000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--images", type=int, default=500)
    parser.add_argument("--bound", type=float, default=0.02, help="allowed growth (0.02 = 2 %%)")
    args = parser.parse_args(argv)
    if args.iterations < 2 * args.every or args.every < 1:
        parser.error("--iterations must be at least twice --every")
    caffe = import_caffe()
    with tempfile.TemporaryDirectory(prefix="caffe_layers_soak_") as folder:
        make_dataset(folder, args.images)
        net = caffe.Net(write_net(folder, args.workers, args.batch_size), caffe.TRAIN)
        layer = net.layers[0]
        try:
            return soak(net, layer._engine.pids, args)
        finally:
            layer.close()


def soak(net, worker_pids, args):
    pids = [("layer", os.getpid())] + [(f"worker {i}", p) for i, p in enumerate(worker_pids)]
    print(f"{'iteration':>9} {'s':>6}  " + "  ".join(f"{name + ' RSS/anon MiB':>24}"
                                                    for name, _ in pids))
    started, first, last = time.monotonic(), None, None
    for iteration in range(1, args.iterations + 1):
        net.forward()
        if iteration % args.every:
            continue
        sample = [memory_kib(pid) for _, pid in pids]
        first, last = first or sample, sample
        print(f"{iteration:9d} {time.monotonic() - started:6.0f}  " + "  ".join(
            f"{rss / 1024:15.1f} / {anon / 1024:6.1f}" for rss, anon in sample), flush=True)
    growth = [(name, last[i][0] / first[i][0] - 1) for i, (name, _) in enumerate(pids)]
    images = args.iterations * args.batch_size
    print(f"{args.iterations} iterations, {images} images in {time.monotonic() - started:.0f} s; "
          f"RSS growth from iteration {args.every}: "
          + ", ".join(f"{name} {g:+.2%}" for name, g in growth))
    worst = max(g for _, g in growth)
    print(f"{'PASS' if worst < args.bound else 'FAIL'}: largest growth {worst:+.2%} "
          f"(bound {args.bound:.0%})")
    return 0 if worst < args.bound else 1


if __name__ == "__main__":
    sys.exit(main())
