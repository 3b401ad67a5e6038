"""Consumer-side cost of one ready batch: the engine against a plain copy and a pickled queue.

    python scripts/bench_prefetch.py [--batches 40]

For 64x3x227x227 float32 batches (39.6 MB) it measures, in one run, the time the consumer spends to
get one batch that is already prepared into a preallocated array (a Caffe top blob):
  copy    np.copyto of the batch (the floor: the data has to be copied into the blob once),
  engine  caffe_layers' Prefetcher.next_into (shared-memory slot, small messages),
  keras   keras' generator_queue pattern (the batch pickled through a multiprocessing.Queue).
The consumer sleeps between batches, like a net computing, so that the next batch is always ready.
Floors (issue 3): engine <= 1.5 x copy, and engine at least 10 x cheaper than keras (medians of
wall time; the 90th percentile and the consumer's CPU time are printed too).
"""

import argparse
import os
import statistics
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from baselines import KerasQueueLoader  # noqa: E402

from caffe_layers.prefetch import Prefetcher, Producer, SamplePlan, TopSpec  # noqa: E402
from caffe_layers.sampling import Order, SampleStream  # noqa: E402

SHAPE = (64, 3, 227, 227)


class ConstantProducer(Producer):
    """Fills a batch by copying a template (cheap, so the consumer never waits)."""

    def open(self, worker_id, num_workers):
        self.template = np.random.default_rng(worker_id).random(SHAPE, dtype=np.float32)

    def fill(self, out, task):
        np.copyto(out["data"], self.template)
        out["data"][0, 0, 0, 0] = task.number


_TEMPLATE = []


def make_batch(number):
    """A fresh batch, as a keras generator yields (a new array every time)."""
    if not _TEMPLATE:
        _TEMPLATE.append(np.random.default_rng(0).random(SHAPE, dtype=np.float32))
    batch = _TEMPLATE[0].copy()
    batch[0, 0, 0, 0] = number
    return (batch,)


def timed(next_into, target, batches, compute_s):
    """(median wall, 90th percentile wall, median CPU) seconds of ``next_into``."""
    wall, cpu = [], []
    for _ in range(batches):
        time.sleep(compute_s)  # the net computing; the loader works meanwhile
        started, started_cpu = time.perf_counter(), time.thread_time()
        next_into([target])
        cpu.append(time.thread_time() - started_cpu)
        wall.append(time.perf_counter() - started)
    skip = min(6, batches // 4)  # the first pass faults every slot's pages in
    wall, cpu = wall[skip:], cpu[skip:]
    return statistics.median(wall), float(np.percentile(wall, 90)), statistics.median(cpu)


def engine_cost(target, batches, compute_s):
    plan = SamplePlan(SampleStream(Order(64 * 1000), 64), seed=0)
    with Prefetcher(ConstantProducer(), [TopSpec("data", SHAPE)], plan, workers=2,
                    prefetch=4) as engine:
        return timed(engine.next_into, target, batches, compute_s)


def keras_cost(target, batches, compute_s):
    keras = KerasQueueLoader(make_batch, workers=2, max_queue=4)
    try:
        return timed(keras.next_into, target, batches, compute_s)
    finally:
        keras.close()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batches", type=int, default=60)
    parser.add_argument("--compute-ms", type=float, default=100.0,
                        help="consumer sleep between batches (default: 100)")
    args = parser.parse_args(argv)
    target = np.ones(SHAPE, np.float32)  # a preallocated, touched top blob
    source = np.random.default_rng(1).random(SHAPE, dtype=np.float32)
    compute_s = args.compute_ms / 1000

    rows = [("copy (floor)", timed(lambda t: np.copyto(t[0], source), target, args.batches,
                                   compute_s))]
    rows.append(("caffe_layers engine", engine_cost(target, args.batches, compute_s)))
    rows.append(("keras generator_queue", keras_cost(target, args.batches, compute_s)))

    copy_wall = rows[0][1][0]
    print(f"consumer-side cost of one ready {SHAPE} float32 batch "
          f"({np.prod(SHAPE) * 4 / 1e6:.1f} MB), median of {args.batches} in one run:")
    print(f"  {'':<24}{'wall ms':>9}{'p90 ms':>9}{'cpu ms':>9}{'wall / copy':>13}")
    for name, (wall, p90, cpu) in rows:
        print(f"  {name:<24}{wall * 1e3:9.2f}{p90 * 1e3:9.2f}{cpu * 1e3:9.2f}"
              f"{wall / copy_wall:13.2f}")
    engine_wall, keras_wall = rows[1][1][0], rows[2][1][0]
    print(f"engine = {engine_wall / copy_wall:.2f} x copy (floor: <= 1.5 x); keras = "
          f"{keras_wall / engine_wall:.1f} x engine (floor: >= 10 x)")
    ok = engine_wall <= 1.5 * copy_wall and keras_wall >= 10 * engine_wall
    print("floors met" if ok else "FLOORS NOT MET")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
