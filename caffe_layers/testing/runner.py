"""Run a solver prototxt the way ``caffe train`` does, with the fake ``caffe`` (or the real one).

:func:`run` reads the solver (:mod:`~caffe_layers.testing.solver_file`, CAFFE.md "Solver files"),
builds the TRAIN net and every TEST net with ``caffe.Net(path, phase)`` before iteration 0, then
calls them in the order of Caffe's ``Solver::Solve``/``Step``/``TestAll`` (CAFFE.md, "Schedule"):
a test at iteration 0 (``test_initialization``) and every ``test_interval`` (``test_iter``
forwards per test net), ``iter_size`` forward+backward passes per iteration, the snapshots, the
extra train forward when ``display`` divides ``max_iter`` and the final test when
``test_interval`` does. Only Python layers compute; the fake checks the wiring of the others.
:func:`run` leaves the process alone (no ``sys.argv``, ``sys.path`` or signal changes) and only
sets Caffe's mode and seed. tests/test_real_runner_parity.py checks the call order and the
snapshot names against real ``caffe train``.

The command line, ``python -m caffe_layers.testing.runner SOLVER.prototxt [--max-iter N]``, also
emulates the ``caffe`` binary around the layers (:mod:`~caffe_layers.testing.caffe_binary`): the
embedded interpreter (CAFFE.md: ``sys.argv``, ``__main__``, ``sys.path``, ``sys.executable``, no
finalization), the abort of a CMake-built ``caffe`` on a layer exception without printing it
(CAFFE.md, "Errors"; so the layers print it themselves) and the SIGINT/SIGHUP handlers.
``--no-embedded`` turns the interpreter part off.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import os
import statistics
import sys
import time
import warnings
from typing import Any, Callable, Collection, Iterator, Sequence

from caffe_layers.testing.caffe_binary import (
    EFFECTS,
    NONE,
    SNAPSHOT,
    STOP,
    SignalActions,
    abort_like_caffe,
    aborts_caffe,
    emulate_embedded,
)
from caffe_layers.testing.solver_file import SolverError, SolverSpec, read_solver

__all__ = ["RunRecord", "SolverError", "SolverSpec", "emulate_embedded", "main", "read_solver",
           "run"]


@dataclasses.dataclass
class RunRecord:
    """What a run did. ``events`` are tuples in order: ``("test", iter, net_id)`` per test,
    ``("train", iter)`` per iteration, ``("forward", iter)`` for the extra forward after the last
    iteration, ``("snapshot", iter)``, ``("stop", iter)``."""

    solver: SolverSpec
    events: list = dataclasses.field(default_factory=list)
    iterations: int = 0
    stopped_early: bool = False
    iteration_s: list = dataclasses.field(default_factory=list)
    batch_size: int | None = None
    uncomputed: list = dataclasses.field(default_factory=list)
    log: list = dataclasses.field(default_factory=list)

    @property
    def median_iteration_s(self) -> float | None:
        """Median wall time of one training iteration (``iter_size`` forward+backward passes)."""
        return statistics.median(self.iteration_s) if self.iteration_s else None

    @property
    def images_per_s(self) -> float | None:
        """Training images per second at the median iteration time, from the first top's batch."""
        median = self.median_iteration_s
        if not median or not self.batch_size:
            return None
        return self.batch_size * self.solver.iter_size / median


# --------------------------------------------------------------------------------- the schedule

class _Solver:
    """The parts of Caffe's ``Solver`` that decide when each net runs."""

    def __init__(self, spec: SolverSpec, train_net: Any, test_nets: list, record: RunRecord,
                 log: Callable[[str], None], requested_action: Callable[[], str]) -> None:
        self.spec, self.net, self.test_nets = spec, train_net, test_nets
        self.record, self.log, self.requested_action = record, log, requested_action
        self.iter = 0
        self.stop_requested = False
        self.window_s: list = []

    def solve(self) -> None:
        spec = self.spec
        self.step(spec.max_iter - self.iter)
        if spec.snapshot_after_train and (not spec.snapshot or self.iter % spec.snapshot != 0):
            self.snapshot()
        if self.stop_requested:
            self.record.stopped_early = True
            self.log("Optimization stopped early.")
            return
        if spec.display and self.iter % spec.display == 0:
            _forward(self.net)
            self.record.events.append(("forward", self.iter))
            self.log(f"Iteration {self.iter}, forward only (display divides max_iter)")
        if spec.test_interval and self.iter % spec.test_interval == 0:
            self.test_all()

    def step(self, iters: int) -> None:
        spec, stop_iter = self.spec, self.iter + iters
        while self.iter < stop_iter:
            if spec.test_interval and self.iter % spec.test_interval == 0 \
                    and (self.iter > 0 or spec.test_initialization):
                self.test_all()
                if self.stop_requested:
                    break
            self.train_iteration()
            self.iter += 1
            self.record.iterations = self.iter
            request = self.requested_action()
            if (spec.snapshot and self.iter % spec.snapshot == 0) or request == SNAPSHOT:
                self.snapshot()
            if request == STOP:
                self.stop_requested = True
                self.record.events.append(("stop", self.iter))
                break

    def train_iteration(self) -> None:
        started = time.perf_counter()
        for _ in range(self.spec.iter_size):
            _forward(self.net)
            _backward(self.net)
        elapsed = time.perf_counter() - started
        self.record.events.append(("train", self.iter))
        self.record.iteration_s.append(elapsed)
        self.window_s.append(elapsed)
        if self.spec.display and self.iter % self.spec.display == 0:
            self.log(self.rate_line(f"Iteration {self.iter}", self.window_s))
            self.window_s = []

    def rate_line(self, head: str, durations: Sequence[float]) -> str:
        total = sum(durations)
        if not total:
            return head
        per_s = len(durations) / total
        line = f"{head} ({per_s:.1f} iter/s)"
        if self.record.batch_size:
            line += f", {per_s * self.record.batch_size * self.spec.iter_size:.0f} img/s"
        return line

    def test_all(self) -> None:
        for net_id in range(len(self.test_nets)):
            if self.stop_requested:
                break
            self.test(net_id)

    def test(self, net_id: int) -> None:
        self.log(f"Iteration {self.iter}, Testing net (#{net_id})")
        self.record.events.append(("test", self.iter, net_id))
        for _ in range(self.spec.test_iter[net_id]):
            request = self.requested_action()
            while request != NONE:
                if request == SNAPSHOT:
                    self.snapshot()
                elif request == STOP:
                    self.stop_requested = True
                request = self.requested_action()
            if self.stop_requested:
                self.log("Test interrupted.")
                return
            _forward(self.test_nets[net_id])

    def snapshot(self) -> None:
        extension = ".caffemodel.h5" if self.spec.snapshot_format == 0 else ".caffemodel"
        name = f"{self.spec.snapshot_prefix}_iter_{self.iter}{extension}"
        self.record.events.append(("snapshot", self.iter))
        self.log(f"Snapshotting to {name} (the runner has no weights: nothing is written)")


def _forward(net: Any) -> None:
    """C++ ``Net::Forward`` as ``caffe train`` calls it: every layer, no outputs collected.

    pycaffe's ``net.forward()`` would also read every output blob's data, which the fake cannot
    give for the tops of layers it does not compute.
    """
    net._forward(0, len(net.layers) - 1)


def _backward(net: Any) -> None:
    """C++ ``Net::Backward``: every layer that needs backward, last to first."""
    net._backward(len(net.layers) - 1, 0)


def _batch_size(net: Any) -> int | None:
    """First dimension of the first top of the net's first layer (None if it has none)."""
    top_names = getattr(net, "top_names", None)
    if top_names:
        tops = next(iter(top_names.values()))
        name = tops[0] if len(tops) else None
    else:
        name = next(iter(net.blobs), None)
    if name is None:
        return None
    shape = net.blobs[name].shape
    return int(shape[0]) if len(shape) else None


@contextlib.contextmanager
def _not_computed_warnings(caffe: Any) -> Iterator[list]:
    """Collect the fake's ``NotComputedWarning`` instead of showing it; other warnings pass."""
    category = getattr(caffe, "NotComputedWarning", None)
    seen: list = []
    if category is None:
        yield seen
        return
    with warnings.catch_warnings():
        show = warnings.showwarning

        def collect(message: Any, cat: type, *args: Any, **kwargs: Any) -> None:
            if issubclass(cat, category):
                seen.append(message)
            else:
                show(message, cat, *args, **kwargs)

        warnings.showwarning = collect
        warnings.simplefilter("always", category)
        yield seen


def _uncomputed_layers(nets: Sequence[Any], computed_types: Collection[str]) -> list:
    """``"name (type)"`` of each layer of ``nets`` whose type is not in ``computed_types``, once."""
    found: dict = {}
    for net in nets:
        for name, layer in zip(net._layer_names, net.layers):
            if layer.type not in computed_types:
                found[f"{name} ({layer.type})"] = None
    return list(found)


def _never() -> str:
    return NONE


def _set_mode(caffe: Any, spec: SolverSpec, log: Callable[[str], None]) -> None:
    """Caffe mode and seed as ``caffe train`` sets them, where the module offers the call."""
    if spec.solver_mode == 1 and hasattr(caffe, "set_mode_gpu"):
        log(f"Using GPUs {spec.device_id}")
        if hasattr(caffe, "set_device"):
            caffe.set_device(spec.device_id)
        caffe.set_mode_gpu()
    elif hasattr(caffe, "set_mode_cpu"):
        log("Use CPU.")
        caffe.set_mode_cpu()
    if spec.random_seed >= 0 and hasattr(caffe, "set_random_seed"):
        caffe.set_random_seed(spec.random_seed)


def _check_snapshot_prefix(spec: SolverSpec) -> None:
    """Caffe's ``CheckSnapshotWritePermissions``: with ``snapshot`` set, a file must be creatable
    at the prefix before any net is built (Caffe aborts otherwise)."""
    if not spec.snapshot:
        return
    probe = f"{spec.snapshot_prefix}_iter_0.tempfile"
    try:
        with open(probe, "w"):
            pass
        os.remove(probe)
    except OSError:
        raise SolverError(f"Cannot write to snapshot prefix '{spec.snapshot_prefix}' (real "
                          f"`caffe train` aborts here)",
                          "make sure that the directory exists and is writable") from None


def run(solver_path: str, max_iter: int | None = None, *,
        log: Callable[[str], None] | None = None,
        requested_action: Callable[[], str] | None = None) -> RunRecord:
    """Train ``solver_path`` as ``caffe train --solver`` would; return what happened.

    ``max_iter`` overrides the solver's. ``log`` receives each log line (they are also kept in
    ``record.log``). ``requested_action`` is polled where Caffe polls its signal handler and
    returns ``"none"``, ``"stop"`` or ``"snapshot"``. Layer exceptions propagate unchanged.
    """
    from caffe_layers.pycaffe import import_caffe

    spec = read_solver(solver_path, max_iter=max_iter)
    record = RunRecord(solver=spec)

    def emit(line: str) -> None:
        record.log.append(line)
        if log is not None:
            log(line)

    caffe = import_caffe()
    with _not_computed_warnings(caffe) as warned:
        _set_mode(caffe, spec, emit)
        _check_snapshot_prefix(spec)
        emit(f"Creating training net from net file: {spec.train_net}")
        train_net = caffe.Net(spec.train_net, caffe.TRAIN)
        test_nets = []
        for net_id, path in enumerate(spec.test_nets):
            emit(f"Creating test net (#{net_id}) specified by net file: {path}")
            test_nets.append(caffe.Net(path, caffe.TEST))
        if warned:
            record.uncomputed = _uncomputed_layers([train_net, *test_nets],
                                                   caffe.COMPUTED_TYPES)
            emit("Not computed by the fake caffe (wiring checked only): "
                 + ", ".join(record.uncomputed))
        record.batch_size = _batch_size(train_net)
        solver = _Solver(spec, train_net, test_nets, record, emit, requested_action or _never)
        emit(f"Solving {spec.max_iter} iterations")
        solver.solve()
    median = record.median_iteration_s
    summary = f"Optimization Done. {record.iterations} iterations"
    if median:
        summary = solver.rate_line(f"{summary}, median iteration {median * 1000:.2f} ms",
                                   [median])
    emit(summary)
    return record

def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m caffe_layers.testing.runner",
        description="Run a Caffe solver prototxt as `caffe train` would, calling the Python "
                    "layers with the fake caffe (or the real one when importable).")
    parser.add_argument("solver", help="solver prototxt; its paths are relative to the working "
                                       "directory, as in Caffe")
    parser.add_argument("--max-iter", type=int, metavar="N", help="override the solver's max_iter")
    parser.add_argument("--no-embedded", dest="embedded", action="store_false",
                        help="do not emulate the caffe binary's embedded interpreter")
    parser.add_argument("--executable", default="", metavar="PATH",
                        help="sys.executable inside the emulation (default '': no python3 on PATH)")
    parser.add_argument("--traceback", action="store_true",
                        help="print the traceback of a layer exception before aborting")
    parser.add_argument("--sigint-effect", choices=EFFECTS, default=STOP,
                        help="what Ctrl-C does, as caffe's -sigint_effect (default: stop)")
    parser.add_argument("--sighup-effect", choices=EFFECTS, default=SNAPSHOT,
                        help="what SIGHUP does, as caffe's -sighup_effect (default: snapshot)")
    return parser.parse_args(argv)


def _log_line(line: str) -> None:
    sys.stderr.write(line + "\n")
    sys.stderr.flush()


def main(argv: Sequence[str] | None = None) -> int:
    """The command line; returns the exit status (aborts the process on a layer exception)."""
    from caffe_layers.errors import CaffeLayersError
    from caffe_layers.pycaffe import emulate_binary

    args = _parse_args(argv)
    if args.max_iter is not None and args.max_iter < 0:
        _log_line(f"runner: --max-iter must be >= 0 (got {args.max_iter})")
        return 2
    if args.embedded:
        emulate_embedded(args.executable)
    emulate_binary(prints_layer_errors=False)  # a CMake-built caffe: abort, print nothing
    signals = SignalActions(args.sigint_effect, args.sighup_effect)
    signals.install()
    status = 0
    try:
        run(args.solver, args.max_iter, log=_log_line, requested_action=signals.check)
    except BaseException as exc:  # emulate Caffe's abort, else report or re-raise
        if aborts_caffe(exc):
            abort_like_caffe(exc, args.traceback)
        if not isinstance(exc, CaffeLayersError):
            raise
        _log_line(f"runner: {exc}")
        status = 1
    finally:
        signals.uninstall()
        emulate_binary(None)
    if args.embedded:  # the caffe binary never finalizes Python: no atexit, no __del__
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(status)
    return status


if __name__ == "__main__":
    sys.exit(main())
