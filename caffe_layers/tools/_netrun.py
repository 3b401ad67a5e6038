"""Building a net of a user's data layers for a tool: ``caffe.Net`` on prototxt text, then closed.

``caffe`` is real pycaffe when importable, else the package's fake
(:func:`~caffe_layers.pycaffe.import_caffe`). What a layer raises becomes one clean error that
names the layer (the traceback on request), its setup line is kept off the tool's output, and
every layer is closed afterwards, so its workers stop (Caffe never tears layers down).
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import sys
import tempfile
import traceback
from typing import Any, Iterator

from caffe_layers.errors import CaffeLayersError, ConfigError, DataError


class LayerFailed(CaffeLayersError, RuntimeError):
    """The layer raised something other than a caffe_layers error."""


@contextlib.contextmanager
def layer_calls(layer: str, python_class: str, show_traceback: bool,
                keep_stdout: bool = True) -> Iterator[None]:
    """Turn what a layer raises into one clean error; keep its stderr unless it fails.

    A tool shows only the message, and the layer's stderr and traceback with ``--traceback`` (in
    a Python process the layers leave the printing to their caller: CAFFE.md, "Errors").
    ``keep_stdout=False`` drops the layers' setup lines (a tool that builds a layer many times).
    """
    captured = io.StringIO()
    try:
        with contextlib.redirect_stderr(captured), _stdout(keep_stdout):
            yield
    except Exception as exc:
        if show_traceback:
            sys.stderr.write(captured.getvalue())
            traceback.print_exception(type(exc), exc, exc.__traceback__)
        raise explain(printed_instead(exc, captured.getvalue()), layer, python_class) from None
    except BaseException as exc:  # the fake's CaffeAbort: where real Caffe aborts the process
        if type(exc).__name__ != "CaffeAbort":
            raise
        raise ConfigError(f"Caffe refuses layer '{layer}': {exc}") from None
    sys.stderr.write(captured.getvalue())


def _stdout(keep: bool) -> contextlib.AbstractContextManager:
    return contextlib.nullcontext() if keep else contextlib.redirect_stdout(io.StringIO())


_IMPORT_ERRORS = {"ImportError": ImportError, "ModuleNotFoundError": ModuleNotFoundError}
_PRINTED = re.compile(r"^(?:[A-Za-z_][\w]*\.)*([A-Za-z_]\w*(?:Error|Exception)): ?(.*)$",
                      re.MULTILINE)


def printed_instead(exc: BaseException, stderr: str) -> BaseException:
    """The exception pycaffe printed, for the ``SystemError`` it raised instead.

    Real pycaffe imports a Python layer's module and makes its object in ``GetPythonLayer``,
    which calls ``PyErr_Print`` and rethrows: the exception goes to stderr (``ModuleNotFoundError:
    No module named 'x'``, after a traceback if it has frames) and the caller gets
    ``SystemError: ... returned NULL without setting an exception``.
    """
    printed = _PRINTED.findall(stderr) if isinstance(exc, SystemError) else []
    if not printed:
        return exc
    name, message = printed[-1]
    if name in _IMPORT_ERRORS:
        return _IMPORT_ERRORS[name](message)
    return type(name, (Exception,), {})(message)


def explain(exc: BaseException, layer: str, python_class: str) -> CaffeLayersError:
    """``exc`` as the error a tool reports, naming the layer."""
    if type(exc) in (ConfigError, DataError):  # name the layer the message is about
        return type(exc)(f"layer '{layer}' ({python_class}): {exc}")
    if isinstance(exc, CaffeLayersError):
        return exc
    if isinstance(exc, ImportError):
        return ConfigError(f"layer '{layer}': cannot import {python_class}: {exc}; add the "
                           f"folder of its module to PYTHONPATH")
    return LayerFailed(f"layer '{layer}' ({python_class}) raised {type(exc).__name__}: {exc} "
                       f"(--traceback shows where)")


def close_layers(*nets: Any) -> None:
    """Call ``close()`` on every layer of ``nets`` that has one (Caffe never tears them down)."""
    for net in nets:
        for i in range(len(net.layers)):
            close = getattr(net.layers[i], "close", None)
            if callable(close):
                close()


@contextlib.contextmanager
def built_net(text: str, phase: str) -> Iterator[Any]:
    """``caffe.Net`` of prototxt ``text`` for ``phase`` ("TRAIN"/"TEST"); its layers are closed
    at the end. Wrap it in :func:`layer_calls` to report a layer's errors."""
    from caffe_layers.pycaffe import import_caffe

    caffe = import_caffe()
    with tempfile.TemporaryDirectory(prefix="caffe-layers-net") as folder:
        path = os.path.join(folder, "net.prototxt")
        with open(path, "w", encoding="utf-8") as f:
            f.write(text)
        net = caffe.Net(path, getattr(caffe, phase))
    try:
        yield net
    finally:
        close_layers(net)
