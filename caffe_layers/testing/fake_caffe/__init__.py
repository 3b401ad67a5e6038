"""A fake ``caffe`` module: pycaffe's Python-layer API without Caffe installed.

Install it with :func:`caffe_layers.testing.install_fake_caffe` (or
:func:`~caffe_layers.testing.import_caffe`), then ``import caffe`` as usual. It reproduces what
CAFFE.md describes under "Life of a Python layer" and "Blobs" (tests/test_fake_contract.py checks
each point on the fake and on real pycaffe): how a Python layer is constructed and driven
(``cls(param)``, then ``param_str``/``phase``, ``setup``, ``reshape``; ``reshape`` + ``forward``
per pass; ``backward`` only when Caffe would call it), blobs whose ``data``/``diff`` are fresh
float32 views, ``reshape(*ints)`` only, ``IntVec`` shapes, non-iterable ``top``/``bottom``, and
``caffe.Net`` over prototxt files with Input, Python, Split and Silence layers.

Deliberate differences from real Caffe:

- Where Caffe aborts the process (a failed ``CHECK``/``LOG(FATAL)``: negative reshape dim,
  legacy accessor on a blob of more than 4 axes, ``.data`` of a blob without memory, unknown
  layer type or bottom blob, duplicate top, unparsable net file, ...) the fake raises
  :class:`CaffeAbort`, a ``BaseException``.
- Memory freed by a reallocating reshape is not freed: it is filled with NaN and the views
  handed out of it are made read-only, so reading a stale view shows NaN and writing through one
  raises ValueError (slices taken of such a view read NaN but stay writable).
- A Python layer's import or constructor error is re-raised unchanged. Real pycaffe prints it
  with ``PyErr_Print`` and the caller then gets an unrelated error (a SystemError), because the
  layer factory clears the Python error before rethrowing.
- Every exception escaping a Python layer's import, ``__init__``, ``setup``, ``reshape``,
  ``forward`` or ``backward`` carries ``exc.fake_caffe_call = (layer_name, method_name)``
  (method ``'import'`` for the module or class lookup), for the ``caffe train`` runner.
- Layers of any type but Input, Python, Split and Silence (``COMPUTED_TYPES``) are wired but
  not computed: no parameter blobs, no shape checks, tops left as they are; construction warns
  once with :class:`NotComputedWarning` listing them. Reading such a never-shaped top raises
  :class:`NotComputedError` (not an abort: real Caffe would have shaped it), and
  ``Net.forward``/``backward`` leave such blobs out of the dicts they return. Whether these
  layers need backward is inferred from their type and ``param { lr_mult }``.
- ``Net.save``/``copy_from`` use the fake's own ``.npz`` format (see ``_weights``), whatever the
  file name; no ``save_hdf5``/``load_hdf5``. Parameter sharing by ``param { name }`` is not done.
- The net file is read by a schema-less parser: unknown fields are rejected only in the
  messages the fake reads (net, layer except ``*_param`` contents, ``python_param``,
  ``input_param``, ``include``/``exclude``, ``param``); V1 ``layers { }`` nets are refused with
  NotImplementedError instead of being upgraded.
- ``caffe.Net`` accepts only phases 0 and 1 (ValueError otherwise). Boost.Python's
  ``ArgumentError`` is a plain TypeError with a similar message. ``set_device`` only records the
  id (a real CPU-only build aborts); ``set_mode_gpu`` is a no-op that says so once on stderr.
- ``Blob()`` can be constructed (real pycaffe cannot, and does not export ``Blob`` from
  ``caffe``). Numpy views' ``base`` is the buffer, not the blob. Vector reprs show their
  contents; iterating ``top`` fails with a different message.
- Glog output (layer creation, "Ignoring source layer", deprecation notes) is not printed.
- Not provided: solvers (``SGDSolver``, ``get_solver``; see ``caffe_layers.testing.runner``),
  ``caffe.io``, ``caffe.proto``, ``NetSpec``/``layers``/``params``, ``Classifier``/``Detector``,
  ``forward_all``, ``forward_backward_all``, ``set_input_arrays``, ``preprocess``, NCCL,
  ``Timer``, ``init_log``/``log``.
"""

from __future__ import annotations

from typing import Any

from caffe_layers.testing.fake_caffe._blob import Blob
from caffe_layers.testing.fake_caffe._builtin import COMPUTED_TYPES, LAYER_TYPES
from caffe_layers.testing.fake_caffe._errors import (
    CaffeAbort,
    NotComputedError,
    NotComputedWarning,
)
from caffe_layers.testing.fake_caffe._layer import TEST, TRAIN, Layer
from caffe_layers.testing.fake_caffe._state import (
    set_device,
    set_mode_cpu,
    set_mode_gpu,
    set_multiprocess,
    set_random_seed,
    set_solver_count,
    set_solver_rank,
    solver_count,
    solver_rank,
)
from caffe_layers.testing.fake_caffe._vectors import StringVec

__all__ = ["COMPUTED_TYPES", "TEST", "TRAIN", "Blob", "CaffeAbort", "Layer", "Net",
           "NotComputedError", "NotComputedWarning",
           "layer_type_list", "set_device", "set_mode_cpu", "set_mode_gpu", "set_multiprocess",
           "set_random_seed", "set_solver_count", "set_solver_rank", "solver_count",
           "solver_rank"]


def layer_type_list() -> StringVec:
    """The layer types a real BVLC master CPU build with Python layers registers, sorted."""
    return StringVec(LAYER_TYPES)


def __getattr__(name: str) -> Any:
    # Net lives in caffe_layers.testing.net, which imports this package's modules: resolve it on
    # first use so that either module can be imported first.
    if name == "Net":
        from caffe_layers.testing.net import Net

        globals()["Net"] = Net
        return Net
    raise AttributeError(f"module 'caffe' (the fake caffe) has no attribute {name!r}")


def __dir__() -> list:
    return sorted(set(globals()) | {"Net"})
