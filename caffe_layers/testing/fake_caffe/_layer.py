"""``caffe.Layer``, how a net drives a Python layer, and ``Layer::SetUp``.

A net holds one *driver* per layer: the object through which ``Net::Init``, ``Forward`` and
``Backward`` reach it (``do_setup``, ``do_reshape``, ``do_forward``, ``do_backward``, blob-count
limits, default loss weights). A Python layer is driven by :class:`PythonLayerDriver`, which
routes every call into user code through :func:`call_layer`; built-in types (``_builtin``) are
their own drivers.
"""

from __future__ import annotations

import contextlib
import importlib
from typing import Any, Callable, Sequence, TypeVar

import numpy as np

from caffe_layers.testing.fake_caffe._blob import BlobVec
from caffe_layers.testing.fake_caffe._errors import argument_error, check
from caffe_layers.testing.fake_caffe._netparam import LayerSpec
from caffe_layers.testing.fake_caffe._state import settings

T = TypeVar("T")
TRAIN, TEST = 0, 1

_BLOBS = "_fake_layer_blobs"  # set by Layer.__init__: the C++ half exists


def tag(exc: BaseException, layer_name: str, method: str) -> None:
    """Record on ``exc`` which layer call it escaped from, for the ``caffe train`` runner."""
    with contextlib.suppress(AttributeError):  # an exception type with __slots__
        exc.fake_caffe_call = (layer_name, method)  # type: ignore[attr-defined]


def call_layer(layer_name: str, method: str, func: Callable[..., T], *args: Any) -> T:
    """Call ``func(*args)`` on behalf of layer ``layer_name``'s ``method``.

    An exception escaping it gets ``exc.fake_caffe_call = (layer_name, method)`` and is re-raised
    unchanged (same object, same type), as pycaffe passes layer exceptions through. ``method`` is
    ``'import'``, ``'__init__'``, ``'setup'``, ``'reshape'``, ``'forward'`` or ``'backward'``.
    """
    try:
        return func(*args)
    except BaseException as exc:
        tag(exc, layer_name, method)
        raise


class LayerParameter:
    """The opaque argument a layer class is instantiated with (``caffe._caffe.LayerParameter``)."""

    __slots__ = ("_spec",)

    def __init__(self, spec: LayerSpec) -> None:
        self._spec = spec

    def __repr__(self) -> str:
        return f"<LayerParameter of layer '{self._spec.name}' ({self._spec.type})>"


class Layer:
    """Base class of Python layers, as pycaffe's Boost.Python ``caffe.Layer``.

    Instantiated by the net as ``cls(param)``; ``param_str`` and ``phase`` appear just before
    ``setup``. A subclass overriding ``__init__`` must call ``Layer.__init__(self, param)``, or
    the net cannot use the object. The base ``setup`` and ``reshape`` call back into the
    subclass's (C++ dispatches them to the Python object), so a subclass missing either recurses
    until RecursionError; ``forward`` and ``backward`` do not exist on the base.
    """

    def __init__(self, param: LayerParameter) -> None:
        if not isinstance(param, LayerParameter):
            raise argument_error("Layer.__init__", (self, param),
                                 "__init__(_object*, caffe::LayerParameter)")
        setattr(self, _BLOBS, BlobVec())

    @property
    def blobs(self) -> BlobVec:
        """The layer's learnable parameter blobs; ``self.blobs.add_blob(*dims)`` adds one."""
        blobs = getattr(self, "__dict__", {}).get(_BLOBS)
        if blobs is None:
            raise argument_error("Layer.blobs", (self,), "blobs(caffe::Layer<float> {lvalue})")
        return blobs

    @property
    def type(self) -> str:
        return "Python"

    def setup(self, bottom: Any, top: Any) -> None:
        return self.setup(bottom, top)  # PythonLayer::LayerSetUp calls self.setup again

    def reshape(self, bottom: Any, top: Any) -> None:
        return self.reshape(bottom, top)  # PythonLayer::Reshape calls self.reshape again


def _constructed(obj: object) -> bool:
    return isinstance(obj, Layer) and _BLOBS in getattr(obj, "__dict__", {})


def _python_setup(layer: Any, param_str: str, phase: int, bottom: Any, top: Any) -> None:
    layer.param_str = param_str
    layer.phase = phase
    layer.setup(bottom, top)


def _call_method(layer: Any, method: str, *args: Any) -> None:
    getattr(layer, method)(*args)


class PythonLayerDriver:
    """Drives a ``type: "Python"`` layer as ``PythonLayer<float>`` and the layer factory do."""

    type = "Python"
    computed = True
    exact_num_bottom = min_bottom = exact_num_top = min_top = -1
    auto_top_count = 0

    def __init__(self, spec: LayerSpec, phase: int) -> None:
        self.name, self.phase, self.param_str = spec.name, phase, spec.param_str
        module = call_layer(spec.name, "import", importlib.import_module, spec.module)
        cls = call_layer(spec.name, "import", getattr, module, spec.layer_class)
        self.layer = call_layer(spec.name, "__init__", cls, LayerParameter(spec))
        if not _constructed(self.layer):
            error = TypeError(
                f"No registered converter was able to produce a C++ rvalue of type "
                f"boost::shared_ptr<caffe::PythonLayer<float> > from this Python object of type "
                f"{type(self.layer).__name__} (layer '{spec.name}': an __init__ override must "
                f"call caffe.Layer.__init__(self, param))")
            tag(error, spec.name, "__init__")
            raise error

    @property
    def blobs(self) -> BlobVec:
        return self.layer.__dict__[_BLOBS]

    def default_loss(self, top_index: int) -> float:
        return 0.0

    def allow_force_backward(self, bottom_index: int) -> bool:
        return True

    def do_setup(self, bottom: Any, top: Any) -> None:
        check(not (self.phase == TRAIN and settings.solver_count > 1
                   and not settings.multiprocess),
              "PythonLayer does not support CLI Multi-GPU, use train.py")
        call_layer(self.name, "setup", _python_setup, self.layer, self.param_str, self.phase,
                   bottom, top)

    def do_reshape(self, bottom: Any, top: Any) -> None:
        call_layer(self.name, "reshape", _call_method, self.layer, "reshape", bottom, top)

    def do_forward(self, bottom: Any, top: Any) -> None:
        call_layer(self.name, "forward", _call_method, self.layer, "forward", bottom, top)

    def do_backward(self, top: Any, propagate_down: Any, bottom: Any) -> None:
        call_layer(self.name, "backward", _call_method, self.layer, "backward", top,
                   propagate_down, bottom)




# ---------------------------------------------------- Layer::SetUp and Layer::Forward

def set_up(driver: Any, spec: LayerSpec, bottom: Any, top: Any) -> list:
    """``Layer::SetUp``: check blob counts, ``setup``, ``reshape``; returns each top's loss."""
    _check_blob_counts(driver, bottom, top)
    driver.do_setup(bottom, top)
    driver.do_reshape(bottom, top)
    return _set_loss_weights(driver, spec, top)


def _check_blob_counts(driver: Any, bottom: Any, top: Any) -> None:
    """``Layer::CheckBlobCounts``."""
    kind = driver.type
    if driver.exact_num_bottom >= 0:
        check(len(bottom) == driver.exact_num_bottom,
              f"{kind} Layer takes {driver.exact_num_bottom} bottom blob(s) as input.")
    if driver.min_bottom >= 0:
        check(len(bottom) >= driver.min_bottom,
              f"{kind} Layer takes at least {driver.min_bottom} bottom blob(s) as input.")
    if driver.exact_num_top >= 0:
        check(len(top) == driver.exact_num_top,
              f"{kind} Layer produces {driver.exact_num_top} top blob(s) as output.")
    if driver.min_top >= 0:
        check(len(top) >= driver.min_top,
              f"{kind} Layer produces at least {driver.min_top} top blob(s) as output.")


def _set_loss_weights(driver: Any, spec: LayerSpec, top: Any) -> list:
    """``Layer::SetLossWeights``: one loss weight per top, written into computed tops' diffs."""
    weights = spec.loss_weights
    if not weights:
        return [driver.default_loss(i) for i in range(len(top))]
    if driver.computed:
        check(len(top) == len(weights), f"layer '{spec.name}': loss_weight must be unspecified "
                                        f"or specified once per top blob.")
        for i, weight in enumerate(weights):
            if weight:
                top[i].diff[...] = weight
    return [float(weights[i]) if i < len(weights) else 0.0 for i in range(len(top))]


def param_lr_mults(driver: Any, spec: LayerSpec) -> list:
    """The ``lr_mult`` of each parameter blob (1 unless a ``param { }`` says otherwise)."""
    if not driver.computed:
        return driver.assumed_lr_mults()
    count = len(driver.blobs)
    check(len(spec.lr_mults) <= count, f"Too many params specified for layer {spec.name}")
    return [spec.lr_mults[k] if k < len(spec.lr_mults) else 1.0 for k in range(count)]


def weighted_loss(top: Any, losses: Sequence[float]) -> float:
    """What ``Layer::Forward`` adds to the net's loss: sum of data * diff of loss tops."""
    total = 0.0
    for i, loss in enumerate(losses):
        if loss:
            total += float(np.dot(top[i].data.ravel(), top[i].diff.ravel()))
    return total
