"""Which ``caffe`` module the layers subclass: real pycaffe, or the package's fake.

The rules (CAFFE.md, "Finding pycaffe"):

1. A ``caffe`` with a ``Layer`` class already imported in this process is used as it is: a pycaffe
   script imports Caffe before Caffe loads our layers.
2. Inside the ``caffe`` binary (any process that has loaded ``libcaffe``) only real pycaffe will do:
   the binary hands each Python layer a C++ ``LayerParameter`` that only pycaffe's ``_caffe``
   module can convert. When ``import caffe`` fails there, :class:`PycaffeError` says why and how
   to fix ``PYTHONPATH``; the fake is never used.
3. Elsewhere ``import caffe`` decides: real pycaffe when it loads; the fake when there is none, when
   the module found is the empty PyPI placeholder, or with ``CAFFE_LAYERS_FAKE_CAFFE=1``. A pycaffe
   that is present but cannot load (built against numpy 1.x, for another Python, without
   ``_caffe.so``) is explained once on stderr, with the fix, and the fake is used.

The fake lives in :mod:`caffe_layers.testing.fake_caffe`; it is imported by name, only when used.

:func:`printing_errors` is for the layers' methods: a ``caffe`` binary built with CMake aborts on
an exception in a Python layer (SIGABRT, exit 134) without printing its traceback, so the layers
print it there, and only where nobody else will (:func:`layer_errors_printed`; CAFFE.md, "Errors").
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import io
import os
import re
import subprocess
import sys
import traceback
from types import ModuleType
from typing import Any, Callable

from caffe_layers.errors import PycaffeError

__all__ = ["FAKE_ENV", "FAKE_NAME", "binary_prints_python_errors", "caffe_process",
           "emulate_binary", "import_caffe", "install_fake", "is_fake", "layer_errors_printed",
           "printing_errors"]

FAKE_ENV = "CAFFE_LAYERS_FAKE_CAFFE"
FAKE_NAME = "caffe_layers.testing.fake_caffe"
_noted: set = set()
_emulated: dict = {}  # {"prints_layer_errors": bool} once emulate_binary() was called
_binary: dict = {}  # {"exe": path} once caffe_process() found this process is the binary


def is_fake(module: ModuleType) -> bool:
    """Whether ``module`` is the package's fake ``caffe``."""
    return getattr(module, "__name__", "") == FAKE_NAME


def caffe_process() -> str | None:
    """The executable's path when this process runs Caffe's C++ (the ``caffe`` binary), else None.

    True when ``libcaffe`` is mapped before pycaffe is imported, or the executable is named
    ``caffe*`` (a statically linked binary). Once true, true for the life of the process.
    """
    if "exe" in _binary:
        return _binary["exe"]
    try:
        exe = os.readlink("/proc/self/exe")
    except OSError:
        return None
    if os.path.basename(exe).startswith("caffe") or \
            ("caffe" not in sys.modules and _libcaffe()):  # pycaffe itself maps libcaffe
        _binary["exe"] = exe
        return exe
    return None


def emulate_binary(prints_layer_errors: bool | None) -> None:
    """Declare this process an emulation of the ``caffe`` binary (the runner's command line).

    ``prints_layer_errors``: whether the emulated binary prints a Python layer's exception;
    None ends the emulation.
    """
    if prints_layer_errors is None:
        _emulated.clear()
    else:
        _emulated["prints_layer_errors"] = prints_layer_errors


def layer_errors_printed() -> bool:
    """Whether whoever called a Python layer prints the exception it raises.

    Under pycaffe (and the fake) the exception reaches the Python caller. The ``caffe`` binary
    prints it when built with Make and ``WITH_PYTHON_LAYER``: its ``main`` catches
    ``boost::python::error_already_set`` and calls ``PyErr_Print``. A CMake build compiles the
    tool without that definition, so the exception aborts the process unprinted. The binary is
    told apart by whether it imports ``PyErr_Print`` (its dynamic symbols).
    """
    if "prints_layer_errors" in _emulated:
        return _emulated["prints_layer_errors"]
    binary = caffe_process()
    return True if binary is None else binary_prints_python_errors(binary)


@functools.lru_cache(maxsize=None)
def binary_prints_python_errors(path: str) -> bool:
    """Whether the executable at ``path`` catches a Python error and calls ``PyErr_Print``.

    True when its dynamic symbols name both ``PyErr_Print`` and Boost.Python's
    ``error_already_set`` (what the catch in Caffe's ``tools/caffe.cpp`` needs); False when it
    cannot be read.
    """
    try:
        with open(path, "rb") as executable:
            image = executable.read()
    except OSError:
        return False
    return b"\0PyErr_Print\0" in image and b"error_already_set" in image


def printing_errors(method: Callable) -> Callable:
    """Decorate a ``caffe.Layer`` method: print the full traceback to stderr, then re-raise,
    where the caller would not print it (:func:`layer_errors_printed`).

    A CMake-built ``caffe train`` would abort without showing it. The line before the traceback
    names the layer class and the method, e.g. ``caffe_layers: ImageListDataLayer.forward
    failed:``.
    """

    @functools.wraps(method)
    def wrapper(self: Any, *args: Any) -> Any:
        try:
            return method(self, *args)
        except Exception:
            if not layer_errors_printed():
                print(f"caffe_layers: {type(self).__name__}.{method.__name__} failed:\n"
                      f"{traceback.format_exc()}", file=sys.stderr, flush=True)
            raise

    return wrapper


def _fake() -> ModuleType:
    fake = importlib.import_module(FAKE_NAME)
    sys.modules["caffe"] = fake
    return fake


def install_fake(force: bool = False) -> ModuleType:
    """Make ``import caffe`` give the fake unless real Caffe is usable (or ``force``)."""
    return _fake() if force else import_caffe()


def _note(text: str) -> None:
    if text not in _noted:
        _noted.add(text)
        print(f"caffe_layers: {text}", file=sys.stderr, flush=True)


def _forget_partial_import() -> None:
    for name in [n for n in sys.modules if n == "caffe" or n.startswith("caffe.")]:
        del sys.modules[name]


def import_caffe() -> ModuleType:
    """The ``caffe`` module to subclass, by the module's rules; also ``sys.modules['caffe']``."""
    current = sys.modules.get("caffe")
    binary = caffe_process()
    if current is not None and hasattr(current, "Layer") and not (binary and is_fake(current)):
        return current
    if binary is None and os.environ.get(FAKE_ENV) == "1":
        return _fake()
    noise = io.StringIO()
    try:
        with contextlib.redirect_stderr(noise):
            module = importlib.import_module("caffe")
    except Exception as exc:  # noqa: BLE001 - any failure of a present pycaffe is explained
        # What the failed import wrote (numpy 2 prints its own notice and a stack for a module
        # built against numpy 1.x) is replaced by one explanation.
        _forget_partial_import()
        return _unusable(exc, binary)
    sys.stderr.write(noise.getvalue())
    if hasattr(module, "Layer"):
        return module
    where = getattr(module, "__file__", None) or "?"
    reason = (f"the 'caffe' module at {where} has no Layer class (the empty PyPI placeholder "
              f"'caffe'?)")
    if binary:
        raise PycaffeError(f"{reason}, but this process is the caffe binary ({binary}); "
                           f"{_path_fix(binary)}")
    _forget_partial_import()
    _note(f"{reason}; using caffe_layers' fake caffe instead")
    return _fake()


def _unusable(exc: Exception, binary: str | None) -> ModuleType:
    """Raise inside the caffe binary; elsewhere explain once and use the fake."""
    missing = isinstance(exc, ModuleNotFoundError) and exc.name == "caffe"
    if binary:
        if missing:
            raise PycaffeError(
                f"this process is the caffe binary ({binary}), whose Python layers need "
                f"pycaffe, but `import caffe` finds none on sys.path; "
                f"{_path_fix(binary)}") from exc
        raise PycaffeError(f"this process is the caffe binary ({binary}), but "
                           f"{diagnose(exc)}") from exc
    if missing:
        return _fake()
    _note(f"{diagnose(exc)}. Using caffe_layers' fake caffe instead: nothing in this process "
          f"runs on real Caffe")
    return _fake()


def _libcaffe() -> str | None:
    """The path of the ``libcaffe`` this process has mapped, if any."""
    try:
        with open("/proc/self/maps", encoding="utf-8", errors="replace") as maps:
            for line in maps:
                fields = line.split(None, 5)  # address perms offset dev inode [path]
                if len(fields) == 6 and "/libcaffe" in fields[5]:
                    return fields[5].strip()
    except OSError:
        pass
    return None


def _path_fix(binary: str) -> str:
    # <root>/build/tools/caffe and <root>/build/lib/libcaffe.so: pycaffe is <root>/python
    roots = [os.path.dirname(os.path.dirname(os.path.dirname(path)))
             for path in (binary, _libcaffe()) if path]
    pythons = [os.path.join(root, "python") for root in roots]
    example = next((python for python in pythons
                    if os.path.isfile(os.path.join(python, "caffe", "__init__.py"))),
                   "<caffe>/python")
    package = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    return (f"put Caffe's python directory on PYTHONPATH, e.g. "
            f"PYTHONPATH={example}:{package} caffe train ...")


def _pycaffe_dir(exc: Exception) -> str | None:
    """The directory of the pycaffe package that failed to import, from the traceback."""
    tb = exc.__traceback__
    found = None
    while tb is not None:
        filename = tb.tb_frame.f_code.co_filename
        if os.path.basename(os.path.dirname(filename)) == "caffe":
            found = os.path.dirname(filename)
        tb = tb.tb_next
    return found


def _linked_python(package: str | None) -> tuple:
    """``('3.11', '/usr/bin/python3.11')`` when ``<package>/_caffe.so`` links libpython3.11.

    The interpreter is the one installed beside the libpython the loader resolves (``ldd``), or
    just ``python3.11``; ``(None, 'python3')`` when unknown.
    """
    if package is None:
        return None, "python3"
    path = os.path.join(package, "_caffe.so")
    try:
        with open(path, "rb") as so:
            match = re.search(rb"libpython(\d+\.\d+)", so.read())
    except OSError:
        return None, "python3"
    if not match:
        return None, "python3"
    version = match.group(1).decode()
    return version, _interpreter_beside(path, version) or f"python{version}"


def _interpreter_beside(library: str, version: str) -> str | None:
    try:
        out = subprocess.run(["ldd", library], capture_output=True, text=True, timeout=10,
                             check=False).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    found = re.search(rf"libpython{re.escape(version)}\S* => (\S+)", out)
    if not found:
        return None
    prefix = found.group(1).split("/lib/")[0] or "/usr"
    for candidate in (f"{prefix}/bin/python{version}", f"/usr/bin/python{version}"):
        if os.path.isfile(candidate):
            return candidate
    return None


def diagnose(exc: Exception) -> str:
    """Why a present pycaffe failed to import, and the fix, in one sentence."""
    package = _pycaffe_dir(exc)
    where = f"pycaffe at {package}" if package else "pycaffe"
    text = f"{type(exc).__name__}: {exc}"
    running = "{}.{}".format(*sys.version_info[:2])
    built_for, python = _linked_python(package)
    venv = (f"run it with the Python Caffe was built for ({python}), e.g. in a virtualenv made "
            f"with `{python} -m venv --system-site-packages`")
    if built_for and built_for != running:
        return (f"{where} cannot load ({text}): its _caffe.so was built for Python {built_for}, "
                f"this is Python {running} ({sys.executable}); {venv}")
    if "_ARRAY_API" in text or "numpy.core.multiarray failed" in text or \
            "initialization of _caffe" in text:
        import numpy

        return (f"{where} cannot load ({text}): its _caffe.so was built against numpy 1.x and "
                f"this Python ({sys.executable}) has numpy {numpy.__version__}; {venv} (its "
                f"numpy is the one Caffe was built against), or install 'numpy<2' here")
    if isinstance(exc, ImportError) and (exc.name or "").endswith("_caffe"):
        return (f"{where} has no compiled _caffe module ({text}); build it with "
                f"`make pycaffe` in the Caffe source tree")
    return (f"{where} cannot be imported ({text}); fix that import error, or remove pycaffe "
            f"from PYTHONPATH to use the fake")
