"""What NpyDataLayer's setup check of every ``.npy`` header costs, against loading every file.

    python scripts/bench_npy_headers.py [--files 100000] [--shape 3 32 32] [--dir DIR]

Writes ``--files`` small ``.npy`` files (and their list) into a temporary folder (or ``--dir``,
kept), then times, in one run and with the page cache warm (the files were just written):

  headers   the layer's setup check: every file's header read and compared with the first
            (``caffe_layers.pipeline.npy.bad_headers``), as the layer does it at setup;
  load      ``np.load`` of every file: one epoch of reading, the baseline.

Prints seconds and microseconds per file, and the ratio headers / load. A cold cache (files not
read since boot, or on a network file system) costs one small read per file more, which this
script cannot measure without root (``echo 3 > /proc/sys/vm/drop_caches``).
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from caffe_layers.pipeline.npy import NpyProducer, bad_headers  # noqa: E402
from caffe_layers.sources.arrays import Normalizer  # noqa: E402
from caffe_layers.sources.image_list import SampleList  # noqa: E402


def write_files(folder: str, count: int, shape: tuple) -> str:
    """``count`` files ``folder/npy/s<i>.npy`` and the list ``folder/list.txt``."""
    os.makedirs(os.path.join(folder, "npy"), exist_ok=True)
    array = np.zeros(shape, np.float32)
    for i in range(count):
        np.save(os.path.join(folder, "npy", f"s{i}.npy"), array)
    listing = os.path.join(folder, "list.txt")
    with open(listing, "w") as f:
        f.write("".join(f"s{i} {i % 4}\n" for i in range(count)))
    return listing


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--files", type=int, default=100_000)
    parser.add_argument("--shape", type=int, nargs="+", default=[3, 32, 32])
    parser.add_argument("--dir", help="write the files here and keep them (default: a "
                                      "temporary folder, removed)")
    args = parser.parse_args()
    folder = args.dir or tempfile.mkdtemp(prefix="bench_npy_headers")
    try:
        started = time.perf_counter()
        listing = write_files(folder, args.files, tuple(args.shape))
        print(f"wrote {args.files} files of {tuple(args.shape)} float32 in "
              f"{time.perf_counter() - started:.1f} s")
        samples = SampleList.read(listing)
        producer = NpyProducer(samples, os.path.join(folder, "npy"), tuple(args.shape),
                               np.dtype(np.float32), Normalizer())
        started = time.perf_counter()
        problems = bad_headers(producer, 0)
        headers_s = time.perf_counter() - started
        assert not problems, problems[:3]
        started = time.perf_counter()
        for i in range(len(samples)):
            np.load(producer.path(i), allow_pickle=False)
        load_s = time.perf_counter() - started
        per = 1e6 / args.files
        print(f"headers: {headers_s:.2f} s ({headers_s * per:.1f} us per file)")
        print(f"load:    {load_s:.2f} s ({load_s * per:.1f} us per file)")
        print(f"headers / load: {headers_s / load_s:.2f}")
    finally:
        if not args.dir:
            shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
