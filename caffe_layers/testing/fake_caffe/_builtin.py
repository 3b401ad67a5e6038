"""The built-in (C++) layer types: those the fake computes, and the stand-in for the others."""

from __future__ import annotations

from typing import Any

from caffe_layers.testing.fake_caffe._errors import check
from caffe_layers.testing.fake_caffe._layer import Layer, LayerParameter, PythonLayerDriver
from caffe_layers.testing.fake_caffe._netparam import LayerSpec

# LayerRegistry<float>::LayerTypeList() of a BVLC master CPU build with WITH_PYTHON_LAYER.
LAYER_TYPES = (
    "AbsVal", "Accuracy", "ArgMax", "BNLL", "BatchNorm", "BatchReindex", "Bias", "Clip", "Concat",
    "ContrastiveLoss", "Convolution", "Crop", "Data", "Deconvolution", "Dropout", "DummyData",
    "ELU", "Eltwise", "Embed", "EuclideanLoss", "Exp", "Filter", "Flatten", "HDF5Data",
    "HDF5Output", "HingeLoss", "Im2col", "ImageData", "InfogainLoss", "InnerProduct", "Input",
    "LRN", "LSTM", "LSTMUnit", "Log", "MVN", "MemoryData", "MultinomialLogisticLoss", "PReLU",
    "Parameter", "Pooling", "Power", "Python", "RNN", "ReLU", "Reduction", "Reshape", "SPP",
    "Scale", "Sigmoid", "SigmoidCrossEntropyLoss", "Silence", "Slice", "Softmax",
    "SoftmaxWithLoss", "Split", "Swish", "TanH", "Threshold", "Tile", "WindowData",
)
# LossLayer subclasses: a loss weight of 1 on their first top and an automatic top if none.
LOSS_TYPES = frozenset(name for name in LAYER_TYPES if name.endswith("Loss"))
# Types with learnable parameters (lr_mult 1 unless `param { }` says otherwise); Scale only
# with one bottom. Used to decide which not-computed layers need backward.
PARAM_TYPES = frozenset(("Convolution", "Deconvolution", "InnerProduct", "Embed", "PReLU",
                         "Bias", "LSTM", "RNN", "Parameter"))


class CppLayer(Layer):
    """A built-in (C++) layer type: its own driver, and what ``net.layers`` shows for it."""

    cpp_type = ""
    computed = True
    exact_num_bottom = min_bottom = exact_num_top = min_top = -1
    auto_top_count = 0

    def __init__(self, spec: LayerSpec) -> None:
        super().__init__(LayerParameter(spec))
        self._spec = spec

    @property
    def type(self) -> str:
        return self.cpp_type

    @property
    def layer(self) -> CppLayer:
        return self

    def setup(self, bottom: Any, top: Any) -> None:
        self.do_setup(bottom, top)

    def reshape(self, bottom: Any, top: Any) -> None:
        self.do_reshape(bottom, top)

    def default_loss(self, top_index: int) -> float:
        return 0.0

    def allow_force_backward(self, bottom_index: int) -> bool:
        return True

    def do_setup(self, bottom: Any, top: Any) -> None:
        """``LayerSetUp``."""

    def do_reshape(self, bottom: Any, top: Any) -> None:
        """``Reshape``."""

    def do_forward(self, bottom: Any, top: Any) -> None:
        """``Forward_cpu``."""

    def do_backward(self, top: Any, propagate_down: Any, bottom: Any) -> None:
        """``Backward_cpu``."""


class InputLayer(CppLayer):
    """Shapes its tops from ``input_param { shape }`` once; the caller fills them."""

    cpp_type = "Input"
    exact_num_bottom, min_top = 0, 1

    def do_setup(self, bottom: Any, top: Any) -> None:
        shapes = self._spec.input_shapes
        check(len(shapes) in (0, 1, len(top)),
              f"Check failed: num_shape == 0 || num_shape == 1 || num_shape == num_top "
              f"Must specify 'shape' once, once per top blob, or not at all: "
              f"{len(top)} tops vs. {len(shapes)} shapes.")
        for i in range(len(top) if shapes else 0):
            top[i]._reshape_to(shapes[0 if len(shapes) == 1 else i])


class SplitLayer(CppLayer):
    """Inserted where one top feeds several bottoms: shares the data, sums the diffs.

    A split of a blob that only a not-computed layer fills is not computed either: its tops say
    so, and it does nothing while that blob holds no data.
    """

    cpp_type = "Split"
    exact_num_bottom, min_top = 1, 1

    def do_setup(self, bottom: Any, top: Any) -> None:
        for i in range(len(top)):
            top[i]._uncomputed_source = bottom[0]._uncomputed_source

    @staticmethod
    def _idle(bottom: Any) -> bool:
        return bool(bottom[0]._uncomputed_source) and not bottom[0]._readable

    def do_reshape(self, bottom: Any, top: Any) -> None:
        if self._idle(bottom):
            return
        for i in range(len(top)):
            check(top[i] is not bottom[0], "Check failed: top[i] != bottom[0] "
                                           "Layer does not allow in-place computation.")
            top[i]._reshape_like(bottom[0])

    def do_forward(self, bottom: Any, top: Any) -> None:
        if self._idle(bottom):
            return
        for i in range(len(top)):
            top[i]._share_data(bottom[0])

    def do_backward(self, top: Any, propagate_down: Any, bottom: Any) -> None:
        if not propagate_down[0] or self._idle(bottom):
            return
        diff = bottom[0].diff
        diff[...] = top[0].diff
        for i in range(1, len(top)):
            diff += top[i].diff


class SilenceLayer(CppLayer):
    """Consumes blobs so that they are not net outputs; zeroes their diffs on backward."""

    cpp_type = "Silence"
    min_bottom, exact_num_top = 1, 0

    def do_backward(self, top: Any, propagate_down: Any, bottom: Any) -> None:
        for i in range(len(bottom)):
            if propagate_down[i]:
                bottom[i].diff[...] = 0


class NotComputedLayer(CppLayer):
    """A real Caffe type the fake wires but does not compute: its tops stay as they are."""

    computed = False

    @property
    def type(self) -> str:
        return self._spec.type

    @property
    def auto_top_count(self) -> int:  # type: ignore[override]
        return 1 if self._spec.type in LOSS_TYPES else 0

    def default_loss(self, top_index: int) -> float:
        return 1.0 if top_index == 0 and self._spec.type in LOSS_TYPES else 0.0

    def assumed_lr_mults(self) -> list:
        """The ``lr_mult`` of its parameter blobs as far as the prototxt tells."""
        spec = self._spec
        learnable = spec.type in PARAM_TYPES or (spec.type == "Scale" and len(spec.bottoms) == 1)
        return list(spec.lr_mults) or ([1.0] if learnable else [])


_BUILTIN = {layer.cpp_type: layer for layer in (InputLayer, SplitLayer, SilenceLayer)}
COMPUTED_TYPES = frozenset(("Python", *_BUILTIN))


def create_layer(spec: LayerSpec, phase: int) -> Any:
    """``LayerRegistry::CreateLayer``: the driver of a layer of ``spec.type``."""
    check(spec.type in LAYER_TYPES,
          f"Check failed: registry.count(type) == 1 (0 vs. 1) Unknown layer type: {spec.type} "
          f"(layer '{spec.name}'; known types: {', '.join(LAYER_TYPES)})")
    if spec.type == "Python":
        return PythonLayerDriver(spec, phase)
    return _BUILTIN.get(spec.type, NotComputedLayer)(spec)
