"""Run a solver prototxt the way ``caffe train`` does, with the fake ``caffe`` (or the real one).

:func:`run` reads the solver (contract §10), builds the TRAIN net and every TEST net with
``caffe.Net(path, phase)`` before iteration 0, then calls them in the order of Caffe's
``Solver::Solve``/``Step``/``TestAll`` (contract §1): a test at iteration 0
(``test_initialization``) and every ``test_interval`` (``test_iter`` forwards per test net),
``iter_size`` forward+backward passes per iteration, the snapshot after training, the extra train
forward when ``display`` divides ``max_iter`` and the final test when ``test_interval`` does. Only
Python layers compute; the fake checks the wiring of the others. :func:`run` leaves the process
alone (no ``sys.argv``, ``sys.path`` or signal changes) and only sets Caffe's mode and seed.

The command line, ``python -m caffe_layers.testing.runner SOLVER.prototxt [--max-iter N]``, also
emulates the ``caffe`` binary around the layers: the embedded interpreter (contract §4:
``sys.argv``, ``__main__``, ``sys.path``, ``sys.executable``, no finalization), the abort on a layer
exception (contract §3) and the SIGINT/SIGHUP handlers. ``--no-embedded`` turns the interpreter
part off.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import difflib
import os
import signal
import statistics
import sys
import time
import traceback
import types
import warnings
from typing import Any, Callable, Iterator, Sequence

from caffe_layers.testing.prototxt import (
    Message,
    PrototxtError,
    as_bool,
    as_enum,
    as_float,
    as_int,
    as_str,
    parse_file,
)

__all__ = ["RunRecord", "SolverError", "SolverSpec", "emulate_embedded", "main", "read_solver",
           "run"]

NONE, STOP, SNAPSHOT = "none", "stop", "snapshot"
EFFECTS = (STOP, SNAPSHOT, NONE)


# ------------------------------------------------------------------------------ the solver file

class SolverError(PrototxtError):
    """The solver is refused: Caffe's own checks fail, or it uses what the runner cannot do."""


_ENUMS = {
    "solver_mode": {"CPU": 0, "GPU": 1},
    "snapshot_format": {"HDF5": 0, "BINARYPROTO": 1},
    "solver_type": {"SGD": 0, "NESTEROV": 1, "ADAGRAD": 2, "RMSPROP": 3, "ADADELTA": 4, "ADAM": 5},
}
_FIELDS = {  # SolverParameter of BVLC Caffe 1.0: field name -> kind of value
    **dict.fromkeys(("net", "train_net", "test_net", "lr_policy", "regularization_type",
                     "snapshot_prefix", "type", "weights"), "str"),
    **dict.fromkeys(("test_iter", "test_interval", "display", "average_loss", "max_iter",
                     "iter_size", "stepsize", "stepvalue", "snapshot", "device_id", "random_seed"),
                    "int"),
    **dict.fromkeys(("base_lr", "gamma", "power", "momentum", "weight_decay", "clip_gradients",
                     "delta", "momentum2", "rms_decay"), "float"),
    **dict.fromkeys(("test_compute_loss", "test_initialization", "snapshot_diff", "debug_info",
                     "snapshot_after_train", "layer_wise_reduce"), "bool"),
    **dict.fromkeys(("net_param", "train_net_param", "test_net_param", "train_state",
                     "test_state"), "message"),
    **dict.fromkeys(_ENUMS, "enum"),
}
_REPEATED = {"test_net", "test_net_param", "test_state", "test_iter", "stepvalue", "weights"}
_CONVERT = {"str": as_str, "int": as_int, "float": as_float, "bool": as_bool}
_UNSUPPORTED = {
    "net_param": "an inline net", "train_net_param": "an inline net",
    "test_net_param": "an inline net", "train_state": "net states (stage, level)",
    "test_state": "net states (stage, level)",
}
_TRAIN_NET_FIELDS = ("net", "net_param", "train_net", "train_net_param")


@dataclasses.dataclass(frozen=True)
class SolverSpec:
    """The solver fields the runner acts on, checked as Caffe checks them.

    ``test_nets`` has one net file per ``test_iter`` entry: the ``test_net`` files, then ``net``
    for each remaining ``test_iter`` (Caffe's ``InitTestNets``).
    """

    path: str
    train_net: str
    test_nets: tuple = ()
    test_iter: tuple = ()
    test_interval: int = 0
    test_initialization: bool = True
    max_iter: int = 0
    display: int = 0
    iter_size: int = 1
    average_loss: int = 1
    snapshot: int = 0
    snapshot_prefix: str = ""
    snapshot_after_train: bool = True
    snapshot_format: int = 1
    solver_mode: int = 1
    device_id: int = 0
    random_seed: int = -1


def _refuse(msg: Message, name: str | None, what: str, fix: str) -> SolverError:
    source, line, col = msg.location(name)
    return SolverError(what, fix, source, line, col)


def _field_values(msg: Message, name: str) -> list:
    """The values of field ``name``, converted to its kind."""
    kind = _FIELDS.get(name)
    if kind is None:
        close = difflib.get_close_matches(name, list(_FIELDS), n=1)
        hint = f"did you mean {close[0]!r}?" if close else "see SolverParameter in caffe.proto"
        raise _refuse(msg, name, f"SolverParameter has no field named {name!r}", hint)
    raw = msg.getall(name)
    if len(raw) > 1 and name not in _REPEATED:
        raise _refuse(msg, name, f"{name} is given {len(raw)} times", "give it once")
    if name in _UNSUPPORTED:
        raise _refuse(msg, name, f"{name} ({_UNSUPPORTED[name]}) is not supported by the runner",
                      "put the net in a file named by net:; choose layers with include { phase }")
    try:
        if kind == "enum":
            return [as_enum(value, _ENUMS[name], name) for value in raw]
        return [_CONVERT[kind](value, name) for value in raw]
    except PrototxtError as exc:
        raise _refuse(msg, name, exc.what, exc.fix) from None


def _check_counts(msg: Message, values: dict) -> None:
    """Caffe's checks on the number of train nets, test nets, test_iter and test_interval."""
    train = [name for name in _TRAIN_NET_FIELDS if name in values]
    if not train:
        raise _refuse(msg, None, "the solver must specify a train net using one of these fields: "
                      + ", ".join(_TRAIN_NET_FIELDS), 'add net: "train_val.prototxt"')
    if len(train) > 1:
        raise _refuse(msg, train[1], f"more than one field specifies the train net: "
                      f"{', '.join(train)}", "keep one of them")
    files, test_iter = values.get("test_net", []), values.get("test_iter", [])
    generic = "net" in values
    if len(test_iter) < len(files) or (not generic and len(test_iter) != len(files)):
        raise _refuse(msg, "test_iter" if test_iter else "test_net",
                      f"test_iter must be specified for each test network (got {len(files)} "
                      f"test_net and {len(test_iter)} test_iter)",
                      "add test_iter: N, the number of test forwards, once per test net")
    if test_iter and values.get("test_interval", [0])[0] <= 0:
        raise _refuse(msg, "test_interval" if "test_interval" in values else "test_iter",
                      "test_interval must be > 0 when there are test nets",
                      "add test_interval: N, or remove test_iter to train without testing")


def _check_ranges(msg: Message, values: dict) -> None:
    minimum = {"average_loss": 1, "iter_size": 1, "test_interval": 0, "display": 0,
               "snapshot": 0, "max_iter": 0}
    for name, low in minimum.items():
        for value in values.get(name, []):
            if value < low:
                raise _refuse(msg, name, f"{name} must be >= {low} (got {value})",
                              f"write e.g. {name}: {max(low, 1)}")
    if values.get("snapshot", [0])[0] and "snapshot_prefix" not in values:
        raise _refuse(msg, "snapshot", "snapshot is specified but snapshot_prefix is not",
                      'add snapshot_prefix: "models/name"')


def _check_net_files(msg: Message, solver_path: str, fields: dict) -> None:
    """Every net file must exist relative to the working directory, as Caffe opens it."""
    for name, paths in fields.items():
        for path in paths:
            if os.path.isfile(path):
                continue
            beside = os.path.join(os.path.dirname(solver_path), path)
            hint = f"; it exists relative to the solver: write {beside!r}" \
                if os.path.isfile(beside) and not os.path.isabs(path) else ""
            raise _refuse(msg, name, f"{name}: net file {path!r} not found",
                          f"paths in a solver are relative to the working directory "
                          f"{os.getcwd()!r}, not to the solver's directory{hint}")


def read_solver(path: str, max_iter: int | None = None) -> SolverSpec:
    """Read and check the solver at ``path``; ``max_iter`` overrides its ``max_iter``."""
    if not os.path.isfile(path):
        raise SolverError(f"solver file {path!r} not found",
                          f"give a path relative to the working directory {os.getcwd()!r}")
    msg = parse_file(path)
    values = {name: _field_values(msg, name) for name in msg.names()}
    _check_counts(msg, values)
    _check_ranges(msg, values)
    files, test_iter = values.get("test_net", []), values.get("test_iter", [])
    train_net = (values.get("net") or values["train_net"])[0]
    generic = [train_net] * (len(test_iter) - len(files)) if "net" in values else []
    _check_net_files(msg, path, {"train_net" if "train_net" in values else "net": [train_net],
                                 "test_net": files})
    one = {name: vals[0] for name, vals in values.items() if name not in _REPEATED}
    fields = {f.name for f in dataclasses.fields(SolverSpec)} - {"path", "train_net", "test_nets",
                                                                 "test_iter"}
    spec = SolverSpec(path=path, train_net=train_net, test_nets=tuple(files + generic),
                      test_iter=tuple(test_iter),
                      **{name: one[name] for name in fields if name in one})
    return spec if max_iter is None else dataclasses.replace(spec, max_iter=max_iter)


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


# What the fake computes (its docstring); the runner names the other layers once instead of
# letting its NotComputedWarning through.
_FAKE_COMPUTES = frozenset(("Python", "Input", "Split", "Silence"))


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


def _uncomputed_layers(nets: Sequence[Any]) -> list:
    """``"name (type)"`` of every layer of ``nets`` that the fake does not compute, once each."""
    found: dict = {}
    for net in nets:
        for name, layer in zip(net._layer_names, net.layers):
            if layer.type not in _FAKE_COMPUTES:
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


def run(solver_path: str, max_iter: int | None = None, *,
        log: Callable[[str], None] | None = None,
        requested_action: Callable[[], str] | None = None) -> RunRecord:
    """Train ``solver_path`` as ``caffe train --solver`` would; return what happened.

    ``max_iter`` overrides the solver's. ``log`` receives each log line (they are also kept in
    ``record.log``). ``requested_action`` is polled where Caffe polls its signal handler and
    returns ``"none"``, ``"stop"`` or ``"snapshot"``. Layer exceptions propagate unchanged.
    """
    from caffe_layers.testing import import_caffe

    spec = read_solver(solver_path, max_iter=max_iter)
    record = RunRecord(solver=spec)

    def emit(line: str) -> None:
        record.log.append(line)
        if log is not None:
            log(line)

    caffe = import_caffe()
    with _not_computed_warnings(caffe) as warned:
        _set_mode(caffe, spec, emit)
        emit(f"Creating training net from net file: {spec.train_net}")
        train_net = caffe.Net(spec.train_net, caffe.TRAIN)
        test_nets = []
        for net_id, path in enumerate(spec.test_nets):
            emit(f"Creating test net (#{net_id}) specified by net file: {path}")
            test_nets.append(caffe.Net(path, caffe.TEST))
        if warned:
            record.uncomputed = _uncomputed_layers([train_net, *test_nets])
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


# ----------------------------------------------------------------------- the caffe binary around it

def emulate_embedded(executable: str = "") -> None:
    """Make this process look like Python embedded in the ``caffe`` binary (contract §4).

    ``sys.argv == ['']``; a fresh ``__main__`` without ``__file__``; the working and script
    directories leave ``sys.path`` (unless ``PYTHONPATH`` names them) so layer modules are found
    through ``PYTHONPATH`` only; ``sys.executable`` is ``executable`` ('' as with no ``python3`` on
    ``PATH``), also for ``multiprocessing.spawn`` if it is already imported.
    """
    script = sys.argv[0] if sys.argv else ""
    unwanted = {"", ".", os.path.realpath(os.getcwd())}
    if script not in ("", "-c", "-m"):
        unwanted.add(os.path.realpath(os.path.dirname(os.path.abspath(script))))
    wanted = {os.path.realpath(p) for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p}
    sys.path[:] = [p for p in sys.path if p not in ("", ".") and (
        os.path.realpath(p) not in unwanted or os.path.realpath(p) in wanted)]
    sys.argv = [""]
    main_module = types.ModuleType("__main__")
    main_module.__builtins__ = __builtins__  # type: ignore[attr-defined]
    sys.modules["__main__"] = main_module
    sys.executable = executable
    if "multiprocessing.spawn" in sys.modules:
        sys.modules["multiprocessing.spawn"].set_executable(executable)


class _SignalActions:
    """Caffe's ``SignalHandler``: SIGINT/SIGHUP only set flags, polled by the solver."""

    def __init__(self, sigint_effect: str, sighup_effect: str) -> None:
        self.effects = {signal.SIGHUP: sighup_effect, signal.SIGINT: sigint_effect}
        self.pending: set = set()
        self.previous: dict = {}

    def install(self) -> None:
        for signum in self.effects:
            self.previous[signum] = signal.signal(signum, self._handle)

    def uninstall(self) -> None:
        for signum, handler in self.previous.items():
            signal.signal(signum, handler)
        self.previous = {}

    def _handle(self, signum: int, frame: Any) -> None:
        self.pending.add(signum)

    def check(self) -> str:
        """SIGHUP's effect first, then SIGINT's, as Caffe's ``CheckForSignals``; each once."""
        for signum in (signal.SIGHUP, signal.SIGINT):
            if signum in self.pending:
                self.pending.discard(signum)
                return self.effects[signum]
        return NONE


_PRINTED_BY_CAFFE = ("import", "__init__")


def _failed_check(exc: BaseException) -> str | None:
    """The failed CHECK's text if ``exc`` is the fake's ``CaffeAbort`` (Caffe aborts there)."""
    check_failure = getattr(sys.modules.get("caffe"), "CaffeAbort", None)
    if check_failure is not None and isinstance(exc, check_failure):
        return str(getattr(exc, "what", exc))
    return None


def _aborts_caffe(exc: BaseException) -> bool:
    """Whether real ``caffe train`` aborts on ``exc``: a layer's exception or a failed CHECK."""
    return hasattr(exc, "fake_caffe_call") or _failed_check(exc) is not None


def _abort_like_caffe(exc: BaseException, show: bool) -> None:
    """Print what a CMake-built ``caffe train`` prints, then abort as it does (contract §3).

    A Python layer's traceback is printed only for ``import``/``__init__`` (or with ``show``); a
    failed CHECK prints its glog line. Core dumps are switched off first.
    """
    call = getattr(exc, "fake_caffe_call", None)
    what = _failed_check(exc)
    if show or (call is not None and call[1] in _PRINTED_BY_CAFFE):
        traceback.print_exception(type(exc), exc, exc.__traceback__)
    if what is not None:  # the fake's CaffeAbort: Caffe's glog prints the failed check
        sys.stderr.write(f"F {what}\n")
    note = "*** real `caffe train` aborts here (SIGABRT, exit 134)"
    if call is not None:
        note = f"*** Python layer {call[0]!r} raised {type(exc).__name__} in {call[1]}: {note[4:]}"
        if call[1] in _PRINTED_BY_CAFFE:
            note += " after printing the traceback above"
        elif what is None:
            note += (" WITHOUT printing the Python traceback; the layer must print it itself "
                     "(runner option --traceback shows it)")
    sys.stderr.write(note + "\n")
    sys.stdout.flush()
    sys.stderr.flush()
    with contextlib.suppress(ImportError, ValueError, OSError):
        import resource

        resource.setrlimit(resource.RLIMIT_CORE, (0, resource.getrlimit(resource.RLIMIT_CORE)[1]))
    os.abort()


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

    args = _parse_args(argv)
    if args.max_iter is not None and args.max_iter < 0:
        _log_line(f"runner: --max-iter must be >= 0 (got {args.max_iter})")
        return 2
    if args.embedded:
        emulate_embedded(args.executable)
    signals = _SignalActions(args.sigint_effect, args.sighup_effect)
    signals.install()
    status = 0
    try:
        run(args.solver, args.max_iter, log=_log_line, requested_action=signals.check)
    except BaseException as exc:  # emulate Caffe's abort, else report or re-raise
        if _aborts_caffe(exc):
            _abort_like_caffe(exc, args.traceback)
        if not isinstance(exc, CaffeLayersError):
            raise
        _log_line(f"runner: {exc}")
        status = 1
    finally:
        signals.uninstall()
    if args.embedded:  # the caffe binary never finalizes Python: no atexit, no __del__
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(status)
    return status


if __name__ == "__main__":
    sys.exit(main())
