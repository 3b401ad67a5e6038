"""Images/s of ImageListDataLayer against the machine's limit, keras' queue and torch's DataLoader.

    PYTHONPATH=. python scripts/benchmark.py [--workers 0 1 2] [--batches 40] [--plot out.png]

One run, one table, on an ImageNet-like workload it generates itself: JPEGs 500x375 at quality
90 (smooth structure plus noise, ~100 KB), resized to 256x256, cropped to 227 at random,
mirrored, mean values subtracted, batches of 64. Every row does the same per-image work, the
layer's own ``ImageListProducer.load`` (with the layer's per-sample RNG), in processes set up as
the layer's workers are (OpenCV single-threaded, freed memory kept for reuse: see
``caffe_layers.prefetch.worker.keep_freed_memory``); only the transport differs:

  limit         that work in one process, times the cores this process may use;
  caffe_layers  the layer in a TRAIN net driven by ``caffe_layers.testing.runner`` as
                ``caffe train`` would (fake caffe unless real pycaffe is importable);
  keras         keras' ``generator_queue`` (workers put pickled batches into an mp.Queue);
  torch         ``torch.utils.data.DataLoader`` (skipped, saying why, if torch is missing).

images/s is batch x timed batches / their wall time, after the same warm-up for every row (enough
batches to drain those prefetched during startup). Also per batch: the median time between
batches, the consumer's CPU and the workers' CPU; from these, the rate the loader's CPU cost
would allow on idle cores ("bound"), which tells work from waiting when a row falls short.
On a busy machine, ``--repeat R`` measures in R interleaved rounds and keeps each row's best.
The floor (issue): with one worker per core the layer reaches 0.85 x limit and beats both
peers. Exit status 0 even when a floor is missed (this is a measurement), 2 on bad arguments,
1 on errors.

The pieces live beside this file: ``bench_workload`` (the generated images and the per-image
work), ``bench_report`` (the table, the floor check, the plot) and ``bench_common`` (/proc
readers, the progress bar); this file measures and holds the command line.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import io
import json
import os
import statistics
import sys
import tempfile
import time
from typing import Callable

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from baselines import KerasQueueLoader, TorchLoader  # noqa: E402
from bench_common import children_cpu_s, stage, staged_progress  # noqa: E402
from bench_report import (  # noqa: E402
    Row,
    cpu_lines,
    cpu_model,
    floor_check,
    plot,
    table_lines,
    versions,
)
from bench_workload import (  # noqa: E402
    PREFETCH,
    QUICK,
    UsageError,
    Work,
    Workload,
    cores,
    dataset_folder,
    layer_params,
    warm_page_cache,
)

KERAS_MAX_QUEUE = 10  # keras 1.x fit_generator's max_q_size default


# --------------------------------------------------------------------------------- measuring

class Clock:
    """Wall and consumer CPU after every batch; the workers' CPU where the timing starts and ends.

    ``stamps[k]`` is taken after batch ``k - 1`` (``stamps[0]`` before the first, if at all).
    """

    def __init__(self, warmup: int, total: int, tick: Callable[[], None]) -> None:
        self.warmup, self.total, self.tick = warmup, total, tick
        self.stamps: list = []
        self.workers_cpu: dict = {}

    def batch_done(self) -> None:
        self.stamps.append((time.perf_counter(), time.process_time()))
        if len(self.stamps) - 1 in (self.warmup, self.total):
            self.workers_cpu[len(self.stamps) - 1] = children_cpu_s()
        self.tick()

    def row(self, loader: str, workers: int | None, batch: int) -> Row:
        """images/s over the timed batches, median batch interval and CPU per batch."""
        measured = self.stamps[self.warmup:]
        count = len(measured) - 1
        wall = measured[-1][0] - measured[0][0]
        intervals = [b[0] - a[0] for a, b in zip(measured, measured[1:])]
        workers_cpu = self.workers_cpu[self.total] - self.workers_cpu[self.warmup]
        return Row(loader, workers, batch * count / wall, 1e3 * statistics.median(intervals),
                   1e3 * (measured[-1][1] - measured[0][1]) / count, 1e3 * workers_cpu / count)


def targets(shape: tuple) -> list:
    """Preallocated, touched top blobs (data, label)."""
    return [np.full(shape, 1, np.float32), np.full(shape[:1], 1, np.float32)]


def time_loop(next_into: Callable, shape: tuple, clock: Clock) -> None:
    """Call ``next_into(tops)`` ``clock.total`` times, stamping after each batch."""
    tops = targets(shape)
    clock.stamps.append((time.perf_counter(), time.process_time()))
    for _ in range(clock.total):
        next_into(tops)
        clock.batch_done()


def measure_limit(work: Work, clock: Clock) -> None:
    numbers = iter(range(clock.total))
    time_loop(lambda tops: work.fill(next(numbers), *tops), work.shape, clock)


def measure_keras(work: Work, workers: int, clock: Clock) -> None:
    loader = KerasQueueLoader(work.make_batch, workers, max_queue=KERAS_MAX_QUEUE)
    try:
        time_loop(loader.next_into, work.shape, clock)
    finally:
        loader.close()


def measure_torch(work: Work, workers: int, clock: Clock) -> None:
    # One epoch longer than the run: an ImageNet epoch is 20,000 batches, so torch's restart at
    # each epoch must not count 512 times more often than in real training.
    length = max(work.samples, (clock.total + 1) * work.shape[0])
    loader = TorchLoader(work.get_item, length, workers, work.shape[0])
    try:
        time_loop(loader.next_into, work.shape, clock)
    finally:
        loader.close()


def write_net(tmp: str, directory: str, work: Workload, workers: int) -> str:
    """A TRAIN-only net (the layer, then Silence on its tops) and its solver; the solver path."""
    param_str = json.dumps(json.dumps(layer_params(directory, work, workers)))
    net = os.path.join(tmp, "train.prototxt")
    with open(net, "w") as f:
        f.write('name: "benchmark"\n'
                'layer { name: "data" type: "Python" top: "data" top: "label"\n'
                '  python_param { module: "caffe_layers.layers" layer: "ImageListDataLayer"\n'
                f"    param_str: {param_str} }} }}\n"
                'layer { name: "silence" type: "Silence" bottom: "data" bottom: "label" }\n')
    solver = os.path.join(tmp, "solver.prototxt")
    with open(solver, "w") as f:
        f.write(f"net: {json.dumps(net)}\nbase_lr: 0.01\nlr_policy: \"fixed\"\ndisplay: 0\n"
                "snapshot_after_train: false\nsolver_mode: CPU\n")
    return solver


def measure_layer(directory: str, work: Workload, workers: int, clock: Clock) -> None:
    from caffe_layers.prefetch import close_all
    from caffe_layers.testing import runner

    clock.stamps.append(None)  # the runner polls after each iteration, not before the first

    def after_iteration() -> str:
        clock.batch_done()
        return "none"

    with tempfile.TemporaryDirectory(prefix="caffe_layers_bench_") as tmp:
        solver = write_net(tmp, directory, work, workers)
        try:
            with contextlib.redirect_stdout(io.StringIO()):  # the layer's setup summary
                record = runner.run(solver, max_iter=clock.total, requested_action=after_iteration)
        finally:
            close_all()
    if record.iterations != clock.total or record.batch_size != work.batch:
        raise RuntimeError(f"the runner ran {record.iterations} iterations of batch "
                           f"{record.batch_size}, expected {clock.total} of {work.batch}")


# ------------------------------------------------------------------------------------ the run

def torch_status() -> tuple:
    """(torch version or None, why it is skipped)."""
    try:
        import torch
    except ImportError as exc:
        return None, (f"torch is not importable ({exc}); `pip install torch==2.13.0` installs "
                      f"the CPU build")
    return str(torch.__version__), ""


def warmup_text(args: argparse.Namespace) -> str:
    if args.warmup is not None or args.quick:
        return str(warmup_for(args, 0))
    return f"{PREFETCH + 2} + workers"


def warmup_for(args: argparse.Namespace, workers: int) -> int:
    """Batches skipped before timing: enough to drain every batch prefetched during startup."""
    if args.warmup is not None:
        return args.warmup
    return 1 if args.quick else PREFETCH + workers + 2


def measure_all(args: argparse.Namespace, directory: str, workload: Workload,
                torch_ok: bool) -> tuple:
    """(one-process row, loader rows), each the best of ``args.repeat`` interleaved rounds."""
    work = Work(directory, workload)
    loaders = {"caffe_layers": lambda w, c: measure_layer(directory, workload, w, c),
               "keras queue": lambda w, c: measure_keras(work, w, c)}
    if torch_ok:
        loaders["torch DataLoader"] = lambda w, c: measure_torch(work, w, c)
    limit = ("one process", None, lambda w, c: measure_limit(work, c))
    plan = [limit] + [(name, w, loaders[name]) for w in args.workers for name in loaders]
    total = args.repeat * sum(warmup_for(args, w or 0) + workload.batches for _, w, _ in plan)
    best: dict = {}
    with staged_progress(total, "measuring") as bar:
        for round_number in range(args.repeat):
            for name, workers, measure in plan:
                stage(bar, f"round {round_number + 1}/{args.repeat}: {name}"
                      + ("" if workers is None else f", {workers} workers"))
                warm = warmup_for(args, workers or 0)
                clock = Clock(warm, warm + workload.batches, bar.advance)
                measure(workers, clock)
                row = clock.row(name, workers, workload.batch)
                if ((name, workers) not in best
                        or row.images_per_s > best[name, workers].images_per_s):
                    best[name, workers] = row
    rows = list(best.values())
    return rows[0], rows[1:]


# ---------------------------------------------------------------------------- command line

def _workload(args: argparse.Namespace) -> Workload:
    base = QUICK if args.quick else Workload()
    changes = {name: getattr(args, name) for name in ("images", "batches")
               if getattr(args, name) is not None}
    return dataclasses.replace(base, **changes)


def _parse_args(argv: list | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="benchmark.py", description=__doc__.split("\n\n")[0],
        epilog="Run from the repository root with PYTHONPATH=. (or the package installed).")
    parser.add_argument("--workers", type=int, nargs="+", metavar="N",
                        help=f"worker counts to measure (default: 0, 1 and one per core = "
                             f"{cores()})")
    parser.add_argument("--batches", type=int, metavar="N",
                        help="batches timed per row after warm-up (default 40; --quick 3)")
    parser.add_argument("--warmup", type=int, metavar="N",
                        help=f"batches skipped before timing (default {PREFETCH + 2} + workers; "
                             "--quick 1)")
    parser.add_argument("--repeat", type=int, default=1, metavar="R",
                        help="measure every row in R interleaved rounds and keep each row's best "
                             "(for a busy machine: others only slow a row down; default 1)")
    parser.add_argument("--images", type=int, metavar="N",
                        help="JPEGs to generate (default 512; --quick 16)")
    parser.add_argument("--data", metavar="DIR",
                        help="generate the images into DIR, or reuse the ones an earlier run "
                             "generated there (default: a temporary directory)")
    parser.add_argument("--quick", action="store_true",
                        help="tiny images and batches, workers 0 and 1: a smoke run")
    parser.add_argument("--plot", metavar="FILE.png", help="plot images/s against workers "
                                                           "(needs matplotlib)")
    parser.add_argument("--json", metavar="FILE", help="write the results as JSON")
    args = parser.parse_args(argv)
    _check_args(parser, args)
    return args


def _check_args(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    if args.workers is None:
        args.workers = [0, 1] if args.quick else [0, 1, cores()]
    if min(args.workers) < 0:
        parser.error(f"--workers: counts must be >= 0 (got {min(args.workers)})")
    args.workers = sorted(set(args.workers))
    for name, low in (("batches", 2), ("warmup", 1), ("images", 1), ("repeat", 1)):
        value = getattr(args, name)
        if value is not None and value < low:
            parser.error(f"--{name}: must be >= {low} (got {value})")
    if args.data is not None and os.path.exists(args.data) and not os.path.isdir(args.data):
        parser.error(f"--data: {args.data!r} exists and is not a directory")
    for name in ("plot", "json"):
        path = getattr(args, name)
        if path is not None and not os.path.isdir(os.path.dirname(os.path.abspath(path))):
            parser.error(f"--{name}: the directory of {path!r} does not exist")
    if args.plot is not None:
        try:
            import matplotlib  # noqa: F401
        except ImportError as exc:
            parser.error(f"--plot needs matplotlib ({exc}); install it or drop --plot")


def run(args: argparse.Namespace) -> dict:
    workload = _workload(args)
    per_core = cores()
    torch_version, torch_skipped = torch_status()
    load_before = os.getloadavg()
    with dataset_folder(args.data, workload) as directory:
        files, mean_bytes = warm_page_cache(directory)
        single, rows = measure_all(args, directory, workload, torch_version is not None)
    limit = single.images_per_s * per_core
    for row in [single] + rows:
        row.ratio = row.images_per_s / limit
    w, h = workload.image_wh
    head = [f"caffe_layers benchmark: {files} JPEGs {w}x{h} q{workload.quality} "
            f"(mean {mean_bytes / 1e3:.0f} KB) -> {workload.new_hw}x{workload.new_hw} -> crop "
            f"{workload.crop}, mirror, mean values; batch {workload.batch}",
            f"machine: {cpu_model()}, {per_core} cores usable; {versions(torch_version)}",
            f"load average before/after: {load_before[0]:.2f} / {os.getloadavg()[0]:.2f}",
            f"img/s = {workload.batch} x {workload.batches} batches / their wall time, after "
            f"{warmup_text(args)} warm-up batches; median: of the times between batches"
            + (f"; best of {args.repeat} rounds" if args.repeat > 1 else "")]
    head += ["--quick: a smoke run; its figures mean nothing"] if args.quick else []
    head.append("")
    lines = head + table_lines(single, rows, limit, per_core)
    if torch_skipped:
        lines.append(f"torch DataLoader: skipped: {torch_skipped}")
    lines += [""] + cpu_lines(single, rows, per_core, workload.batch)
    floor_status, floor = floor_check(rows, limit, per_core)
    lines += floor
    print("\n".join(lines), flush=True)
    if args.plot:
        plot(args.plot, single, rows, limit, f"batch {workload.batch} of {w}x{h} JPEGs; "
             f"{cpu_model()}, {per_core} cores")
        print(f"plot written to {args.plot}")
    return {"workload": dataclasses.asdict(workload), "cores": per_core, "cpu": cpu_model(),
            "versions": versions(torch_version), "load_average": [load_before[0],
                                                                  os.getloadavg()[0]],
            "limit_images_per_s": limit, "one_process": dataclasses.asdict(single),
            "rows": [dataclasses.asdict(row) for row in rows],
            "torch_skipped": torch_skipped or None,
            "floor": {"status": floor_status, "lines": floor}}


def main(argv: list | None = None) -> int:
    from caffe_layers.errors import CaffeLayersError

    args = _parse_args(argv)
    try:
        results = run(args)
    except UsageError as exc:
        print(f"benchmark.py: error: {exc}", file=sys.stderr)
        return 2
    except (CaffeLayersError, OSError) as exc:  # a bad --data directory, a full disk, ...
        print(f"benchmark: error: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
