"""Sampling at scale: 512 ranks over 100,000,000 samples, sampling only (no data is read).

    python scripts/scale_sampling.py [--samples 100000000] [--ranks 512] [--exhaustive 1000000]
                                     [--subset 1000000] [--table] [--quick] [--json FILE]

For the uniform shuffle (``ShuffledOrder``) and HDF5's chunk-aware one (``BlockShuffledOrder``
over files of 100,000 rows in chunks of 64, the last chunk of each file shorter):

- per rank: the memory a rank's sampling keeps (order + stream, traced by ``tracemalloc``, which
  counts numpy's buffers) and its setup time (building the order and stream and computing batch
  0), over every rank; and the cost of one batch of 64;
- the baseline, measured in the same run: what each rank did before, a materialised
  ``rng.permutation(n)`` per epoch (two epochs kept), its memory and time;
- exactness: at ``--exhaustive`` samples every rank's whole epoch is computed through its stream
  and the ranks' epochs together must hold every sample exactly once (two epochs); at
  ``--samples``, a random subset of ``--subset`` epoch positions spread over all ranks must map to
  distinct samples in range, each rank's ``stream.batch`` must agree with the global order, and
  for the uniform shuffle ``--subset`` random samples are mapped back to their position (the
  inverse bijection), i.e. each is read by exactly one rank at one position.

``--table`` adds the README's scaling table: memory and setup per rank against dataset size
(10^6 .. 10^9) and rank count (1 .. 512). ``--quick`` runs small sizes (a smoke test).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
import tracemalloc
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))  # run from a checkout without an install

from caffe_layers import bijections  # noqa: E402
from caffe_layers.sampling import (  # noqa: E402
    BlockShuffledOrder,
    SampleStream,
    ShuffledOrder,
    epoch_keys,
)

BATCH = 64
SEED = 1
FILE_ROWS, CHUNK, WINDOW = 100_000, 64, 256
KINDS = ("uniform", "chunk-aware")


def make_order(kind: str, n: int):
    if kind == "uniform":
        return ShuffledOrder(n, SEED)
    runs = []
    for first in range(0, n, FILE_ROWS):
        rows = min(FILE_ROWS, n - first)
        whole, rest = divmod(rows, CHUNK)
        runs += [(first, CHUNK, whole)] if whole else []
        runs += [(first + whole * CHUNK, rest, 1)] if rest else []
    return BlockShuffledOrder.from_runs(n, runs, WINDOW, SEED)


def rank_setup(kind: str, n: int, ranks: int, rank: int) -> tuple:
    """``(seconds, bytes kept, stream)``: one rank's setup, as the layer does it."""
    tracemalloc.start()
    try:
        started = time.perf_counter()
        stream = SampleStream(make_order(kind, n), BATCH, rank, ranks)
        stream.batch(0)
        seconds = time.perf_counter() - started
        kept = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    return seconds, kept, stream


def baseline(n: int, ranks: int) -> tuple:
    """``(seconds, bytes)`` of the former way: a permutation per epoch, two epochs kept."""
    tracemalloc.start()
    try:
        started = time.perf_counter()
        epochs = [np.random.default_rng([SEED, epoch]).permutation(n)[0::ranks]
                  for epoch in range(2)]
        seconds = (time.perf_counter() - started) / 2
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    del epochs
    return seconds, peak


def per_rank(kind: str, n: int, ranks: int, sample_ranks: int | None = None) -> dict:
    """Setup time and memory over the ranks (all of them, or ``sample_ranks`` spread out)."""
    chosen = range(ranks) if sample_ranks is None else np.linspace(
        0, ranks - 1, min(ranks, sample_ranks)).astype(int)
    times, kept, stream = [], [], None
    rank_setup(kind, n, ranks, 0)  # warm-up: first-call costs of numpy and the interpreter
    for rank in chosen:
        seconds, memory, stream = rank_setup(kind, n, ranks, int(rank))
        times.append(seconds)
        kept.append(memory)
    first, batches = 10 * stream.epoch_length // BATCH + 1, 200  # consecutive, as in training
    stream.batch(first - 1)
    started = time.perf_counter()
    for number in range(first, first + batches):
        stream.batch(number)
    return {"setup_ms_median": 1e3 * statistics.median(times), "setup_ms_max": 1e3 * max(times),
            "kept_bytes_max": max(kept),
            "batch_us": 1e6 * (time.perf_counter() - started) / batches,
            "ranks_measured": len(times)}


# --- exactness ------------------------------------------------------------------------------------


def check_exhaustive(kind: str, n: int, ranks: int) -> str:
    """Every rank's whole epoch through its stream: together each sample once, two epochs."""
    order = make_order(kind, n)
    for epoch in range(2):
        counts = np.zeros(n, np.int64)
        for rank in range(ranks):
            length = len(range(rank, n, ranks))
            indices, epochs = SampleStream(order, length, rank, ranks).batch(epoch)
            assert (epochs == epoch).all()
            np.add.at(counts, indices, 1)
        missing, repeated = int((counts == 0).sum()), int((counts > 1).sum())
        assert missing == 0 and repeated == 0, f"epoch {epoch}: {missing} missing, {repeated} " \
                                               f"repeated"
    return f"all {n:,} samples exactly once in each of 2 epochs across {ranks} ranks"


def check_subset(kind: str, n: int, ranks: int, count: int) -> str:
    """Random epoch positions: distinct samples in range, each rank's stream agrees."""
    rng = np.random.default_rng(SEED)
    order = make_order(kind, n)
    positions = np.unique(rng.integers(0, n, count))
    samples = order.at(0, positions)
    assert ((samples >= 0) & (samples < n)).all(), "a sample out of range"
    assert len(np.unique(samples)) == len(positions), "two positions hold one sample"
    for rank in rng.choice(ranks, min(ranks, 16), replace=False):  # the streams are the order
        stream = SampleStream(order, BATCH, int(rank), ranks)
        number = int(rng.integers(0, stream.epoch_length // BATCH))
        indices, _ = stream.batch(number)
        offsets = np.arange(number * BATCH, (number + 1) * BATCH)
        assert np.array_equal(indices, order.at(0, rank + offsets * ranks))
    text = f"{len(positions):,} random positions: distinct samples, streams agree"
    if kind == "uniform":  # every sample drawn has exactly one position, hence one rank
        wanted = rng.integers(0, n, count)
        back = bijections.invert(wanted, n, epoch_keys(SEED, 0)[0])
        assert np.array_equal(order.at(0, back), wanted)
        text += f"; {count:,} random samples each at exactly one position"
    return text


# --- report ---------------------------------------------------------------------------------------


def mib(size: float) -> str:
    return f"{size / 2 ** 20:,.1f} MiB" if size >= 2 ** 20 else f"{size / 2 ** 10:,.1f} KiB"


def headline(args: argparse.Namespace) -> dict:
    n, ranks = args.samples, args.ranks
    print(f"{ranks} ranks over {n:,} samples, batch {BATCH}")
    old_s, old_bytes = baseline(n, ranks)
    print(f"  before (materialised permutation, 2 epochs kept): {mib(old_bytes)} and "
          f"{old_s:.2f} s per epoch, in every rank")
    result = {"samples": n, "ranks": ranks, "baseline": {"seconds": old_s, "bytes": old_bytes}}
    for kind in KINDS:
        stats = per_rank(kind, n, ranks, args.measure_ranks)
        result[kind] = stats
        print(f"  {kind:<12} per rank: keeps {mib(stats['kept_bytes_max'])} (x"
              f"{stats['kept_bytes_max'] / old_bytes:.2g} of before), setup median "
              f"{stats['setup_ms_median']:.2f} ms (max {stats['setup_ms_max']:.2f} ms, "
              f"x{stats['setup_ms_median'] / 1e3 / old_s:.2g} of one permutation), "
              f"{stats['batch_us']:.0f} us a batch; {stats['ranks_measured']} ranks measured")
        result[kind]["exhaustive"] = check_exhaustive(kind, args.exhaustive, ranks)
        print(f"    exhaustive at {args.exhaustive:,}: {result[kind]['exhaustive']}")
        result[kind]["subset"] = check_subset(kind, n, ranks, args.subset)
        print(f"    at {n:,}: {result[kind]['subset']}")
    return result


def table(sizes: list, rank_counts: list, baseline_limit: int) -> list:
    """Memory and setup per rank against dataset size and rank count (uniform and chunk-aware)."""
    rows = []
    print("\n| samples | ranks | before: memory, s per epoch | uniform: memory, setup | "
          "chunk-aware: memory, setup |\n|---|---|---|---|---|")
    for n in sizes:
        old = baseline(n, 1) if n <= baseline_limit else None
        for ranks in rank_counts:
            cells = [per_rank(kind, n, ranks, sample_ranks=8) for kind in KINDS]
            before = f"{mib(old[1])}, {old[0]:.2f} s" if old else f"{mib(16 * n)} (not run)"
            print(f"| {n:,} | {ranks} | {before} | " + " | ".join(
                f"{mib(c['kept_bytes_max'])}, {c['setup_ms_median']:.2f} ms" for c in cells)
                + " |")
            rows.append({"samples": n, "ranks": ranks, "baseline": old, "uniform": cells[0],
                         "chunk-aware": cells[1]})
    return rows


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--samples", type=int, default=100_000_000)
    parser.add_argument("--ranks", type=int, default=512)
    parser.add_argument("--exhaustive", type=int, default=1_000_000)
    parser.add_argument("--subset", type=int, default=1_000_000)
    parser.add_argument("--measure-ranks", type=int, default=None,
                        help="measure this many ranks spread over all (default: every rank)")
    parser.add_argument("--table", action="store_true", help="also the README's scaling table")
    parser.add_argument("--quick", action="store_true", help="small sizes: a smoke test")
    parser.add_argument("--json", help="write the figures to this file")
    args = parser.parse_args(argv)
    if args.quick:
        args.samples, args.ranks, args.exhaustive, args.subset = 200_000, 16, 20_000, 5_000
    if min(args.samples, args.ranks, args.exhaustive, args.subset) < 1 or \
            args.ranks > min(args.samples, args.exhaustive):
        parser.error("sizes must be >= 1 and --ranks at most --samples and --exhaustive")
    result = {"headline": headline(args)}
    if args.table:
        sizes = [10 ** 5, 10 ** 6] if args.quick else [10 ** 6, 10 ** 7, 10 ** 8, 10 ** 9]
        result["table"] = table(sizes, [1, 8] if args.quick else [1, 8, 64, 512],
                                baseline_limit=10 ** 8)
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
