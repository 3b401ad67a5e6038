"""What every tool's command line shares: the parser, the error convention, argument types.

:func:`run` parses the arguments and calls the tool's body; it turns the package's errors into one
line ``caffe-layers-<tool>: error: <message>`` on stderr and an exit status instead of a
traceback: 2 for bad arguments or configuration (:class:`ConfigError`, argparse's own errors),
1 for bad data (:class:`DataError` and the other package errors) and for files that cannot be
read or written (:class:`OSError`), 130 for Ctrl-C.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Callable, Sequence

from caffe_layers.errors import CaffeLayersError, ConfigError

USAGE_ERROR = 2
DATA_ERROR = 1
INTERRUPTED = 130


def make_parser(tool: str, description: str, epilog: str = "") -> argparse.ArgumentParser:
    """An ``ArgumentParser`` named ``caffe-layers-<tool>`` that keeps the text's line breaks."""
    return argparse.ArgumentParser(
        prog=f"caffe-layers-{tool}", description=description, epilog=epilog,
        formatter_class=argparse.RawDescriptionHelpFormatter)


NO_PROGRESS_BAR = "accepted as by every tool; this one shows no progress bar"


def add_quiet(parser: argparse.ArgumentParser,
              meaning: str = "no progress bar (it is shown only when stderr is a terminal)"
              ) -> None:
    """``-q``/``--quiet``, which every tool takes."""
    parser.add_argument("-q", "--quiet", action="store_true", help=meaning)


def print_error(prog: str, message: object) -> None:
    """``prog: error: message`` on stderr, argparse's format."""
    sys.stderr.write(f"{prog}: error: {message}\n")
    sys.stderr.flush()


def describe_os_error(exc: OSError) -> str:
    """``cannot access 'path': No such file or directory`` for an OSError."""
    reason = exc.strerror or str(exc)
    if exc.filename is not None:
        return f"cannot access '{os.fsdecode(exc.filename)}': {reason}"
    return reason


def run(parser: argparse.ArgumentParser, body: Callable[[argparse.Namespace], int | None],
        argv: Sequence[str] | None) -> int:
    """Parse ``argv`` (``sys.argv[1:]`` when None), call ``body(args)``; the exit status."""
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, or argparse's own usage error (already printed)
        return exc.code if isinstance(exc.code, int) else USAGE_ERROR
    try:
        status = body(args)
    except ConfigError as exc:
        print_error(parser.prog, exc)
        return USAGE_ERROR
    except CaffeLayersError as exc:
        print_error(parser.prog, exc)
        return DATA_ERROR
    except OSError as exc:
        print_error(parser.prog, describe_os_error(exc))
        return DATA_ERROR
    except KeyboardInterrupt:
        print_error(parser.prog, "interrupted")
        return INTERRUPTED
    return 0 if status is None else status


# ----------------------------------------------------------------------------- argument types

def positive_int(text: str) -> int:
    """argparse type: an integer >= 1."""
    value = _int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be an integer >= 1, got {text!r}")
    return value


def non_negative_int(text: str) -> int:
    """argparse type: an integer >= 0."""
    value = _int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be an integer >= 0, got {text!r}")
    return value


def _int(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be an integer, got {text!r}") from None


def require_file(path: str, what: str, hint: str = "") -> str:
    """``path`` if it is an existing file, else a ConfigError naming ``what`` and ``hint``."""
    if os.path.isfile(path):
        return path
    problem = "is a folder, not a file" if os.path.isdir(path) else "does not exist"
    where = "" if os.path.isabs(path) else f" (relative to the working directory '{os.getcwd()}')"
    message = f"{what} '{path}' {problem}{where}"
    raise ConfigError(f"{message}; {hint}" if hint else message)


def require_folder(path: str, what: str, hint: str = "") -> str:
    """``path`` if it is an existing folder, else a ConfigError naming ``what`` and ``hint``."""
    if os.path.isdir(path):
        return path
    problem = "is a file, not a folder" if os.path.exists(path) else "does not exist"
    message = f"{what} '{path}' {problem}"
    raise ConfigError(f"{message}; {hint}" if hint else message)


def make_parent(path: str) -> None:
    """Create the folder that will hold the output file ``path``, if missing."""
    parent = os.path.dirname(path)
    if parent:
        if os.path.exists(parent) and not os.path.isdir(parent):
            raise ConfigError(f"cannot write '{path}': '{parent}' is a file, not a folder")
        os.makedirs(parent, exist_ok=True)
