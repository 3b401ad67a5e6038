"""Read a Caffe solver prototxt and check it as ``caffe train`` does (CAFFE.md, "Solver files").

:func:`read_solver` turns the file into a :class:`SolverSpec` of the fields the runner acts on, or
raises :class:`SolverError` where Caffe's own checks fail or the runner cannot do what it asks.
"""

from __future__ import annotations

import dataclasses
import difflib
import os

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

__all__ = ["SolverError", "SolverSpec", "read_solver"]


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
_LR_POLICIES = ("fixed", "step", "exp", "inv", "multistep", "poly", "sigmoid")


@dataclasses.dataclass(frozen=True)
class SolverSpec:
    """The solver fields the runner acts on, checked as Caffe checks them.

    ``test_nets`` has one net file per ``test_iter`` entry: the ``test_net`` files, then ``net``
    for each remaining ``test_iter`` (Caffe's ``InitTestNets``). ``snapshot_prefix`` is the one
    Caffe uses: :func:`snapshot_prefix`.
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


def _check_lr_policy(msg: Message, values: dict, max_iter: int) -> None:
    """Caffe's ``SGDSolver::GetLearningRate``: the first update aborts on an unknown policy."""
    policy = values.get("lr_policy", [""])[0]
    if max_iter > 0 and policy not in _LR_POLICIES:
        what = f"unknown lr_policy {policy!r}" if policy else "lr_policy is not given"
        raise _refuse(msg, "lr_policy" if policy else None,
                      f"{what}: real `caffe train` aborts at the first update "
                      f"('Unknown learning rate policy: {policy}')",
                      f"give one of {', '.join(_LR_POLICIES)}, e.g. lr_policy: \"fixed\"")


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


def snapshot_prefix(solver_path: str, given: str | None) -> str:
    """Caffe's ``UpgradeSnapshotPrefixProperty``: the solver's path without its extension when
    no prefix is given; ``<prefix>/<solver stem>`` when the prefix is a directory."""
    if given is None:
        return os.path.splitext(solver_path)[0]
    if os.path.isdir(given):
        stem = os.path.splitext(os.path.basename(solver_path))[0]
        return os.path.join(given, stem)
    return given


def read_solver(path: str, max_iter: int | None = None) -> SolverSpec:
    """Read and check the solver at ``path``; ``max_iter`` overrides its ``max_iter``."""
    if not os.path.isfile(path):
        raise SolverError(f"solver file {path!r} not found",
                          f"give a path relative to the working directory {os.getcwd()!r}")
    msg = parse_file(path)
    values = {name: _field_values(msg, name) for name in msg.names()}
    _check_counts(msg, values)
    _check_ranges(msg, values)
    _check_lr_policy(msg, values, values.get("max_iter", [0])[0] if max_iter is None else max_iter)
    files, test_iter = values.get("test_net", []), values.get("test_iter", [])
    train_net = (values.get("net") or values["train_net"])[0]
    generic = [train_net] * (len(test_iter) - len(files)) if "net" in values else []
    _check_net_files(msg, path, {"train_net" if "train_net" in values else "net": [train_net],
                                 "test_net": files})
    one = {name: vals[0] for name, vals in values.items() if name not in _REPEATED}
    fields = {f.name for f in dataclasses.fields(SolverSpec)} - {"path", "train_net", "test_nets",
                                                                 "test_iter"}
    one["snapshot_prefix"] = snapshot_prefix(path, one.get("snapshot_prefix"))
    spec = SolverSpec(path=path, train_net=train_net, test_nets=tuple(files + generic),
                      test_iter=tuple(test_iter),
                      **{name: one[name] for name in fields if name in one})
    return spec if max_iter is None else dataclasses.replace(spec, max_iter=max_iter)
