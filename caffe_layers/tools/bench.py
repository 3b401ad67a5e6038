"""``caffe-layers-bench``: does data loading keep up with the net, and with how many workers?

For every Python data layer of a net prototxt's phase (``--layer`` picks one), as the user wrote
it, and for every ``--workers`` count (``workers`` overridden in its ``param_str``; a layer that
is not one of this package's runs once with its own settings), builds a net of that layer alone
and measures its steady state: the batches prefetched during setup are drained first (``prefetch
+ workers + 2`` forwards), then ``--batches`` forwards are timed: images/s, wall ms per batch,
the consumer's CPU per batch (``time.process_time`` in this process: the copy into the tops, or
all the work with 0 workers) and the setup time.

The net's own forward+backward time per batch is measured as ``caffe time`` measures it, when
``caffe`` is real pycaffe: the whole net with each data layer replaced by an ``Input`` layer of
the same tops (filled with a real batch), then ``net.forward(); net.backward()`` per iteration,
after one warm-up. ``--net-ms`` gives it instead (e.g. ``caffe time --gpu 0``'s Average
Forward-Backward on the training machine). Then one line per layer says whether loading keeps up
(:mod:`caffe_layers.tools._bench_report`).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import importlib
import json
import os
import sys
import time
from typing import Any, List, Sequence, Tuple

import numpy as np

from caffe_layers.errors import ConfigError
from caffe_layers.testing import prototxt
from caffe_layers.tools import _cli, _netfile, _netrun
from caffe_layers.tools._bench_report import (
    LayerResult,
    NetTime,
    Run,
    as_json,
    net_line,
    table_lines,
    verdict,
    workers_text,
)
from caffe_layers.tools.progress import Progress

DEFAULT_BATCHES = 20
FOREIGN_WARMUP = 2  # forwards before timing a layer whose prefetch we do not know
GLOG_LEVEL = "GLOG_minloglevel"  # glog's own spelling of the variable


def cores() -> int:
    """Cores this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()


def default_workers() -> List[int]:
    """0, 1, then powers of two up to the cores this process may use: 0 1 2 on two cores."""
    counts, count = [0, 1], 2
    while count <= cores():
        counts.append(count)
        count *= 2
    return counts


# ---------------------------------------------------------------------------- one data layer

@dataclasses.dataclass
class Target:
    """A data layer to measure: its prototxt message and whether ``workers`` is ours to set."""

    layer: prototxt.Message
    ours: bool
    prefetch: int

    @property
    def name(self) -> str:
        return _netfile.layer_name(self.layer)

    @property
    def python_class(self) -> str:
        return _netfile.python_class(self.layer)

    def warmup(self, workers: int | None) -> int:
        """Forwards that drain what was prefetched during setup."""
        return self.prefetch + (workers or 0) + 2 if self.ours else FOREIGN_WARMUP


def _is_ours(layer: prototxt.Message) -> bool:
    """Whether the layer's class is one of this package's prefetching data layers."""
    python_param = layer.get("python_param") or prototxt.Message()
    try:
        module = importlib.import_module(str(python_param.get("module", "")))
        cls = getattr(module, str(python_param.get("layer", "")))
    except (ImportError, AttributeError, ValueError):
        return False  # building it reports why
    from caffe_layers.layers import PrefetchDataLayer

    return isinstance(cls, type) and issubclass(cls, PrefetchDataLayer)


def target(layer: prototxt.Message) -> Target:
    from caffe_layers import config
    from caffe_layers.params import PrefetchParams

    prefetch = {f.name: f.default for f in dataclasses.fields(PrefetchParams)}["prefetch"]
    with contextlib.suppress(ConfigError, TypeError, ValueError):  # its setup will say why
        prefetch = int(config.parse_yaml(_netfile.param_str(layer)).get("prefetch", prefetch))
    return Target(layer, _is_ours(layer), prefetch)


def _timed_forwards(net: Any, count: int, tick: Any) -> Tuple[float, float]:
    """Wall and CPU seconds of ``count`` forwards."""
    wall, cpu = time.perf_counter(), time.process_time()
    for _ in range(count):
        net.forward()
        tick()
    return time.perf_counter() - wall, time.process_time() - cpu


def measure(net_msg: prototxt.Message, goal: Target, phase: str, workers: int | None,
            batches: int, bar: Progress, show_traceback: bool = False) -> Tuple[Run, list]:
    """One run of a data layer; also its last batch, ``[(top, array)]``."""
    layer = goal.layer if workers is None else _netfile.with_param(goal.layer, "workers", workers)
    warmup = goal.warmup(workers)
    started = time.perf_counter()
    with _netrun.layer_calls(goal.name, goal.python_class, show_traceback, keep_stdout=False), \
            _netrun.built_net(_netfile.one_layer_net(net_msg, layer), phase) as net:
        setup_s = time.perf_counter() - started
        engine = getattr(net.layers[0], "engine", None)
        processes = len(engine.pids) if engine is not None else 0
        _timed_forwards(net, warmup, lambda: bar.advance())
        wall, cpu = _timed_forwards(net, batches, lambda: bar.advance())
        tops = [(str(t), np.array(net.blobs[str(t)].data)) for t in goal.layer.getall("top")]
    batch_size = int(tops[0][1].shape[0]) if tops and tops[0][1].ndim else 0
    run = Run(workers, processes, setup_s, warmup, batch_size * batches / wall,
              1e3 * wall / batches, 1e3 * cpu / batches)
    return run, tops


def measure_layer(net_msg: prototxt.Message, goal: Target, phase: str, counts: Sequence[int],
                  batches: int, bar: Progress, show_traceback: bool) -> Tuple[LayerResult, list]:
    """Every run of one layer; its result and a batch of it (for the net's inputs)."""
    runs, batch = [], None
    for workers in (counts if goal.ours else [None]):
        bar.label = f"bench '{goal.name}', " + (workers_text(workers) if goal.ours else "as is")
        run, tops = measure(net_msg, goal, phase, workers, batches, bar, show_traceback)
        runs.append(run)
        batch = batch or tops
    if not batch or not batch[0][1].ndim:
        raise ConfigError(f"layer '{goal.name}' has no top with a batch dimension to measure")
    shapes = {top: list(array.shape) for top, array in batch}
    return LayerResult(goal.name, goal.python_class, int(batch[0][1].shape[0]), shapes,
                       runs), batch


# -------------------------------------------------------------------------------- the net

def caffe_kind() -> str:
    """``real pycaffe`` or ``fake caffe``: which ``caffe`` the layers run on here.

    Importing pycaffe here keeps its net-building log quiet (glog reads ``GLOG_minloglevel``
    when it loads) unless the user set the variable; the environment is left as it was, so
    nothing started later (a ``caffe`` binary) inherits the setting.
    """
    from caffe_layers.pycaffe import import_caffe, is_fake

    quiet = GLOG_LEVEL not in os.environ
    if quiet:
        os.environ[GLOG_LEVEL] = "2"  # errors only
    try:
        return "fake caffe" if is_fake(import_caffe()) else "real pycaffe"
    finally:
        if quiet:
            del os.environ[GLOG_LEVEL]


def net_time(net_msg: prototxt.Message, phase: str, batches: list, iterations: int
             ) -> NetTime:
    """Forward+backward of the net on ``batches`` (``[(data layer message, [(top, array)])]``,
    its data layers replaced by Input layers), as ``caffe time`` times it."""
    replacements = [(layer, [(top, array.shape) for top, array in tops])
                    for layer, tops in batches]
    text = _netfile.with_inputs(net_msg, replacements)
    with _netrun.layer_calls("(the net)", "caffe.Net", False), \
            _netrun.built_net(text, phase) as net:
        for _, tops in batches:
            for top, array in tops:
                net.blobs[top].data[...] = array
        net.forward()
        net.backward()
        started = time.perf_counter()
        for _ in range(iterations):
            net.forward()
            net.backward()
        elapsed = time.perf_counter() - started
    return NetTime(1e3 * elapsed / iterations,
                   f"real pycaffe on the CPU, mean of {iterations} iterations after 1 warm-up")


# ------------------------------------------------------------------------------ command line

def _parser() -> argparse.ArgumentParser:
    parser = _cli.make_parser(
        "bench",
        "Measure each Python data layer of a net prototxt (as written, with workers set to\n"
        "each count given) in steady state, the net's own forward+backward time when real\n"
        "pycaffe is importable, and say whether data loading keeps up, and from how many\n"
        "workers.",
        epilog="examples:\n  caffe-layers-bench prototxt/imagelist_train_val.prototxt --workers "
               "0 1 2\n  caffe-layers-bench net.prototxt --net-ms 38.5   # caffe time --gpu 0's "
               "Average Forward-Backward\n")
    _netfile.add_net_arguments(parser, "measure only this data layer (default: every Python layer "
                                       "with no bottom in that phase)")
    counts = " ".join(map(str, default_workers()))
    parser.add_argument("--workers", type=_cli.non_negative_int, nargs="+", metavar="N",
                        help=f"worker counts to measure (default: 0, 1 and powers of two up "
                             f"to the cores: {counts} here)")
    parser.add_argument("--batches", type=_cli.positive_int, default=DEFAULT_BATCHES,
                        metavar="N", help=f"batches timed per run after the warm-up, and "
                                          f"iterations of the net (default: {DEFAULT_BATCHES})")
    parser.add_argument("--net-ms", type=float, metavar="MS",
                        help="the net's forward+backward ms per batch, e.g. from `caffe time "
                             "--model NET --gpu 0` (default: measured when real pycaffe is "
                             "importable)")
    parser.add_argument("--json", nargs="?", const="-", metavar="FILE",
                        help="write the results as JSON to FILE, or alone to stdout")
    parser.add_argument("--traceback", action="store_true",
                        help="show a layer's traceback when it fails")
    _cli.add_quiet(parser)
    return parser


def _net_time(args: argparse.Namespace, net_msg: prototxt.Message, batches: list,
              bar: Progress) -> Tuple[NetTime | None, str]:
    if args.net_ms is not None:
        return NetTime(args.net_ms, "given with --net-ms"), ""
    if caffe_kind() == "fake caffe":  # already imported by run()
        return None, ("the fake caffe computes only Python layers; run under real pycaffe or "
                      "give --net-ms, e.g. from `caffe time --model NET --gpu 0`")
    bar.label = "bench: the net's forward+backward"
    return net_time(net_msg, args.phase, batches, args.batches), ""


def run(args: argparse.Namespace) -> dict:
    """Measure everything; the JSON-ready results (see :func:`_bench_report.as_json`)."""
    kind = caffe_kind()  # imports caffe first, quietly
    _cli.require_file(args.net, "net prototxt")
    if args.net_ms is not None and not args.net_ms > 0:
        raise ConfigError(f"--net-ms: must be > 0 (got {args.net_ms:g})")
    net_msg = prototxt.parse_file(args.net)
    layers = ([_netfile.select_layer(net_msg, args.phase, args.layer, args.net)] if args.layer
              else _netfile.data_layers(net_msg, args.phase))
    if not layers:
        _netfile.select_layer(net_msg, args.phase, None, args.net)  # raises, saying what to do
    counts = sorted(set(args.workers if args.workers is not None else default_workers()))
    goals = [target(layer) for layer in layers]
    total = sum(sum(g.warmup(w) + args.batches for w in (counts if g.ours else [None]))
                for g in goals) + args.batches + 1
    results, batches = [], []
    with Progress(total, "bench", enabled=False if args.quiet else None) as bar:
        for goal in goals:
            result, batch = measure_layer(net_msg, goal, args.phase, counts, args.batches, bar,
                                          args.traceback)
            results.append(result)
            batches.append((goal.layer, batch))
        net, unknown = _net_time(args, net_msg, batches, bar)
        bar.advance(args.batches + 1)
    return as_json(args.net, args.phase, kind, cores(), args.batches, results, net,
                   unknown, verdict(results, net))


def report_lines(results: dict) -> List[str]:
    """The table of every layer, the net's time and the verdict, as printed."""
    layers = [LayerResult(**dict(layer, runs=[Run(**r) for r in layer["runs"]]))
              for layer in results["layers"]]
    net = results["net_time"]
    net = None if net is None else NetTime(net["ms_per_batch"], net["source"])
    lines = [f"caffe-layers-bench {results['net']} ({results['phase']}, {results['caffe']}, "
             f"{results['cores']} cores; {results['batches']} batches timed per run after the "
             f"prefetched ones)"]
    for layer in layers:
        lines += [""] + table_lines(layer)
    lines += ["", net_line(net, layers, results["net_time_unknown"] or "")]
    return lines + results["verdict"]["lines"]


def _run(args: argparse.Namespace) -> None:
    results = run(args)
    if args.json not in (None, "-"):
        _cli.make_parent(args.json)
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(results, f, indent=1)
    if args.json == "-":
        json.dump(results, sys.stdout, indent=1)
        print()
    else:
        print("\n".join(report_lines(results)))


def main(argv: Sequence[str] | None = None) -> int:
    """The command line; returns the exit status."""
    return _cli.run(_parser(), _run, argv)


if __name__ == "__main__":
    raise SystemExit(main())
