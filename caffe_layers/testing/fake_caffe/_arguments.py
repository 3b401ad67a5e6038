"""The arguments of pycaffe's ``Net`` constructor and methods, checked as Boost.Python does."""

from __future__ import annotations

from typing import Any

from caffe_layers.testing.fake_caffe._errors import argument_error, extract_int

_NAMES = ("network_file", "phase", "level", "stages", "weights")
_SIGNATURES = ("__init__(object, str network_file, int phase, int level=0, "
               "object stages=None, object weights=None)\n    "
               "__init__(object, str param_file, str pretrained_param_file, int phase)")


def constructor_arguments(args: tuple, kwargs: dict) -> tuple:
    """(path, phase, level, stages, weights, legacy) from either pycaffe constructor."""
    if not kwargs and len(args) == 3 and all(isinstance(a, (str, bytes)) for a in args[:2]) \
            and isinstance(args[2], int):
        return _text(args[0]), _phase(args[2]), 0, [], _text(args[1]), True
    values = dict(zip(_NAMES, args))
    if len(args) > len(_NAMES) or any(name not in _NAMES or name in values for name in kwargs):
        raise argument_error("Net.__init__", args, _SIGNATURES)
    values.update(kwargs)
    path, phase = values.get("network_file"), values.get("phase")
    level, stages, weights = values.get("level", 0), values.get("stages"), values.get("weights")
    if not (isinstance(path, (str, bytes)) and isinstance(phase, int) and isinstance(level, int)
            and (weights is None or isinstance(weights, (str, bytes)))):
        raise argument_error("Net.__init__", args, _SIGNATURES)
    stage_list = [] if stages is None else [_text(stages[i]) for i in range(len(stages))]
    weights = None if weights is None else _text(weights)
    return _text(path), _phase(phase), extract_int(level), stage_list, weights, False


def _text(value: Any) -> str:
    """``bp::extract<std::string>``: str, or bytes as UTF-8."""
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="surrogateescape")
    if not isinstance(value, str):
        raise TypeError(f"No registered converter was able to produce a C++ rvalue of type "
                        f"std::string from this Python object of type {type(value).__name__}")
    return value


def text_arg(call: str, value: Any) -> str:
    if not isinstance(value, (str, bytes)):
        raise argument_error(call, (value,), f"{call}(std::string)")
    return _text(value)


def _phase(phase: int) -> int:
    if phase not in (0, 1):
        raise ValueError(f"phase must be caffe.TRAIN (0) or caffe.TEST (1), got {phase!r}")
    return int(phase)


def check_file(path: str) -> None:
    """pycaffe's ``CheckFile``: a file that cannot be opened is a RuntimeError."""
    try:
        with open(path, "rb"):
            pass
    except OSError:
        raise RuntimeError(f"Could not open file {path}") from None
