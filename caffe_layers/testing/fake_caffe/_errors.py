"""What the fake raises where real Caffe kills the process, and its construction warning."""

from __future__ import annotations


class CaffeAbort(BaseException):
    """Real Caffe would abort the process here (a failed ``CHECK`` or ``LOG(FATAL)``).

    The message says so and quotes what Caffe's check says. It derives from ``BaseException`` on
    purpose: a layer's ``except Exception`` must not swallow what would have killed the process,
    exactly as no ``except`` clause survives a real abort.
    """

    def __init__(self, what: str) -> None:
        super().__init__(f"real Caffe would abort here: {what}")
        self.what = what


class NotComputedWarning(UserWarning):
    """A net holds layers whose type the fake parses and wires but does not compute."""


class NotComputedError(RuntimeError):
    """``.data``/``.diff`` of a top that only a layer the fake does not compute would fill.

    Real Caffe would have computed it, so this is not a :class:`CaffeAbort`.
    """


def check(condition: bool, what: str) -> None:
    """Raise :class:`CaffeAbort` with ``what`` unless ``condition`` holds (Caffe's ``CHECK``)."""
    if not condition:
        raise CaffeAbort(what)


def no_converter(value: object, cpp_type: str) -> TypeError:
    """The TypeError Boost.Python raises when it cannot convert ``value`` to ``cpp_type``."""
    return TypeError(f"No registered converter was able to produce a C++ rvalue of type "
                     f"{cpp_type} from this Python object of type {type(value).__name__}")


def extract_int(value: object) -> int:
    """``bp::extract<int>(value)``: Python ``int``/``bool`` only, in the C ``int`` range."""
    if not isinstance(value, int):
        raise no_converter(value, "int")
    if not -2**31 <= value < 2**31:
        raise OverflowError(f"bad numeric conversion: {value} does not fit a C int")
    return int(value)


def argument_error(call: str, args: tuple, signatures: str) -> TypeError:
    """The TypeError (Boost.Python.ArgumentError) for a call no C++ overload accepts."""
    types = ", ".join(type(arg).__name__ for arg in args)
    return TypeError(f"Python argument types in\n    {call}({types})\n"
                     f"did not match C++ signature:\n    {signatures}")
