"""What the ``caffe`` binary does to the process around its Python layers, for the runner's CLI.

The embedded interpreter (CAFFE.md, "The embedded interpreter"), Caffe's SIGINT/SIGHUP handler
that only sets flags the solver polls ("Signals"), and the abort of a CMake-built ``caffe`` on a
layer exception or a failed ``CHECK`` ("Errors": a Make-built one prints the exception and exits
1 instead; the runner emulates the build that prints nothing, which the layers must survive).
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import traceback
import types
from typing import Any

__all__ = ["EFFECTS", "NONE", "SNAPSHOT", "STOP", "SignalActions", "abort_like_caffe",
           "aborts_caffe", "emulate_embedded"]

# Caffe's SolverAction: what the solver does when it polls the signal handler.
NONE, STOP, SNAPSHOT = "none", "stop", "snapshot"
EFFECTS = (STOP, SNAPSHOT, NONE)


def emulate_embedded(executable: str = "") -> None:
    """Make this process look like Python embedded in the ``caffe`` binary (CAFFE.md).

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


class SignalActions:
    """Caffe's ``SignalHandler``: SIGINT/SIGHUP only set flags, polled by the solver."""

    def __init__(self, sigint_effect: str, sighup_effect: str) -> None:
        self.effects = {signal.SIGHUP: sighup_effect, signal.SIGINT: sigint_effect}
        self.pending: set = set()
        self.previous: dict = {}

    def install(self) -> None:
        """Handle SIGINT and SIGHUP here, remembering the handlers they replace."""
        for signum in self.effects:
            self.previous[signum] = signal.signal(signum, self._handle)

    def uninstall(self) -> None:
        """Put back the handlers :meth:`install` replaced."""
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


def aborts_caffe(exc: BaseException) -> bool:
    """Whether real ``caffe train`` aborts on ``exc``: a layer's exception or a failed CHECK."""
    return hasattr(exc, "fake_caffe_call") or _failed_check(exc) is not None


def abort_like_caffe(exc: BaseException, show: bool) -> None:
    """Print what a CMake-built ``caffe train`` prints, then abort as it does (CAFFE.md, "Errors").

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
