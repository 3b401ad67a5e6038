"""From a prototxt file to the layers ``Net::Init`` builds: read, upgrade, filter, insert splits.

Reading follows protobuf's text parser where the fake relies on a field: unknown fields of the
messages read here, a repeated singular field or a value of the wrong kind fail as they do in
Caffe (which aborts: ``Failed to parse NetParameter file``). The contents of ``*_param`` messages
of layers the fake does not compute are not checked.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Sequence

from caffe_layers.testing.fake_caffe._errors import CaffeAbort, check
from caffe_layers.testing.netstate import PHASES, NetState, Rule, included
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

_SHARE_MODES = {"STRICT": 0, "PERMISSIVE": 1}
_STR, _INT, _FLOAT, _BOOL, _MSG = "str", "int", "float", "bool", "msg"

# message type -> field name -> (kind, repeated); kind is a converter name or an enum's names
_SCHEMAS: dict = {
    "NetParameter": {
        "name": (_STR, False), "input": (_STR, True), "input_shape": (_MSG, True),
        "input_dim": (_INT, True), "force_backward": (_BOOL, False), "state": (_MSG, False),
        "debug_info": (_BOOL, False), "layer": (_MSG, True), "layers": (_MSG, True),
    },
    "LayerParameter": {
        "name": (_STR, False), "type": (_STR, False), "bottom": (_STR, True),
        "top": (_STR, True), "phase": (PHASES, False), "loss_weight": (_FLOAT, True),
        "param": (_MSG, True), "blobs": (_MSG, True), "propagate_down": (_BOOL, True),
        "include": (_MSG, True), "exclude": (_MSG, True),
    },
    "NetState": {"phase": (PHASES, False), "level": (_INT, False), "stage": (_STR, True)},
    "NetStateRule": {
        "phase": (PHASES, False), "min_level": (_INT, False), "max_level": (_INT, False),
        "stage": (_STR, True), "not_stage": (_STR, True),
    },
    "ParamSpec": {"name": (_STR, False), "share_mode": (_SHARE_MODES, False),
                  "lr_mult": (_FLOAT, False), "decay_mult": (_FLOAT, False)},
    "PythonParameter": {"module": (_STR, False), "layer": (_STR, False),
                        "param_str": (_STR, False), "share_in_parallel": (_BOOL, False)},
    "InputParameter": {"shape": (_MSG, True)},
    "BlobShape": {"dim": (_INT, True)},
}
_CONVERTERS = {_STR: as_str, _INT: as_int, _FLOAT: as_float, _BOOL: as_bool}


@dataclass
class LayerSpec:
    """What ``Net::Init`` needs of one ``LayerParameter``."""

    name: str
    type: str
    bottoms: list = field(default_factory=list)
    tops: list = field(default_factory=list)
    phase: int | None = None
    loss_weights: list = field(default_factory=list)
    propagate_down: list = field(default_factory=list)
    lr_mults: list = field(default_factory=list)
    include: list = field(default_factory=list)
    exclude: list = field(default_factory=list)
    module: str = ""
    layer_class: str = ""
    param_str: str = ""
    input_shapes: list = field(default_factory=list)


@dataclass
class NetSpec:
    """A net file with the state the ``caffe.Net`` constructor gives it."""

    name: str
    force_backward: bool
    phase: int
    level: int
    stages: list
    layers: list


# ---------------------------------------------------------------------------------- reading

def _fail(msg: Message, name: str | None, what: str) -> CaffeAbort:
    return CaffeAbort(f"Failed to parse NetParameter file: {msg.where(name)}: {what}")


def _read(msg: Any, type_name: str, where: Message, name: str) -> dict:
    """The fields of ``msg`` (a message of ``type_name``) converted; singular ones unwrapped."""
    if not isinstance(msg, Message):
        raise _fail(where, name, f"{name}: expected a message {{ ... }}")
    schema = _SCHEMAS[type_name]
    fields = {}
    for field_name in msg.names():
        kind, repeated = schema.get(field_name) or _free_param(type_name, field_name, msg)
        values = msg.getall(field_name)
        if not repeated and len(values) > 1:
            raise _fail(msg, field_name,
                        f'Non-repeated field "{field_name}" is specified multiple times.')
        converted = [_convert(value, kind, msg, field_name) for value in values]
        fields[field_name] = converted if repeated else converted[0]
    return fields


def _free_param(type_name: str, field_name: str, msg: Message) -> tuple:
    if type_name == "LayerParameter" and field_name.endswith("_param"):
        return _MSG, False
    raise _fail(msg, field_name,
                f'Message type "caffe.{type_name}" has no field named "{field_name}".')


def _convert(value: Any, kind: Any, msg: Message, name: str) -> Any:
    try:
        if kind == _MSG:
            if not isinstance(value, Message):
                raise PrototxtError(f"{name}: expected a message {{ ... }}")
            return value
        if isinstance(kind, dict):
            return as_enum(value, kind, name)
        return _CONVERTERS[kind](value, name)
    except PrototxtError as exc:
        raise _fail(msg, name, str(exc)) from exc


def read_net(path: str, phase: int, level: int, stages: Sequence[str]) -> NetSpec:
    """Parse and upgrade the net at ``path`` for the given state, as ``Net(path, phase, ...)``."""
    try:
        root = parse_file(path)
    except (PrototxtError, UnicodeDecodeError) as exc:
        raise CaffeAbort(f"Failed to parse NetParameter file: {path}: {exc}") from exc
    net = _read(root, "NetParameter", root, "")
    if "layers" in net:
        raise NotImplementedError(
            f"{root.where('layers')}: the fake caffe does not read V1 'layers {{ }}' nets; "
            f"convert the file with Caffe's tools/upgrade_net_proto_text and use 'layer {{ }}'")
    state = _read(net["state"], "NetState", root, "state") if "state" in net else {}
    layers = [_layer_spec(msg, root) for msg in net.get("layer", [])]
    if net.get("input"):
        layers = _upgrade_input(net, root) + layers
    return NetSpec(name=net.get("name", ""), force_backward=net.get("force_backward", False),
                   phase=phase, level=level, stages=state.get("stage", []) + list(stages),
                   layers=layers)


def _layer_spec(msg: Message, root: Message) -> LayerSpec:
    layer = _read(msg, "LayerParameter", root, "layer")
    python = _read(layer["python_param"], "PythonParameter", msg, "python_param") \
        if "python_param" in layer else {}
    inputs = _read(layer["input_param"], "InputParameter", msg, "input_param") \
        if "input_param" in layer else {}
    return LayerSpec(
        name=layer.get("name", ""), type=layer.get("type", ""),
        bottoms=layer.get("bottom", []), tops=layer.get("top", []), phase=layer.get("phase"),
        loss_weights=layer.get("loss_weight", []),
        propagate_down=layer.get("propagate_down", []),
        lr_mults=[_read(p, "ParamSpec", msg, "param").get("lr_mult", 1.0)
                  for p in layer.get("param", [])],
        include=[_rule(r, msg, "include") for r in layer.get("include", [])],
        exclude=[_rule(r, msg, "exclude") for r in layer.get("exclude", [])],
        module=python.get("module", ""), layer_class=python.get("layer", ""),
        param_str=python.get("param_str", ""),
        input_shapes=[_read(s, "BlobShape", msg, "shape").get("dim", [])
                      for s in inputs.get("shape", [])])


def _rule(msg: Message, layer: Message, name: str) -> Rule:
    rule = _read(msg, "NetStateRule", layer, name)
    return Rule(phase=rule.get("phase"), min_level=rule.get("min_level"),
                max_level=rule.get("max_level"), stages=tuple(rule.get("stage", [])),
                not_stages=tuple(rule.get("not_stage", [])))


def _upgrade_input(net: dict, root: Message) -> list:
    """``UpgradeNetInput``: legacy ``input:`` fields become a first layer ``input`` of Input."""
    names, shapes, dims = net["input"], net.get("input_shape", []), net.get("input_dim", [])
    if shapes:
        check(len(shapes) >= len(names),
              f"{root.where('input_shape')}: {len(names)} inputs need as many input_shape")
        input_shapes = [_read(s, "BlobShape", root, "input_shape").get("dim", [])
                        for s in shapes[:len(names)]]
    elif dims:
        check(len(dims) >= 4 * len(names),
              f"{root.where('input_dim')}: {len(names)} inputs need {4 * len(names)} input_dim")
        input_shapes = [dims[4 * i:4 * i + 4] for i in range(len(names))]
    else:
        return []  # a bare `input:` is a legacy caffemodel's: Caffe simply drops it
    return [LayerSpec(name="input", type="Input", tops=list(names), input_shapes=input_shapes)]


# -------------------------------------------------------------------------------- filtering

def filter_layers(net: NetSpec) -> list:
    """``Net::FilterNet``: the layers whose include/exclude rules admit the net's state."""
    state = NetState(net.phase, net.level, tuple(net.stages))
    kept = []
    for layer in net.layers:
        check(not (layer.include and layer.exclude),
              f"layer '{layer.name}': Specify either include rules or exclude rules; not both.")
        if included(state, layer.include, layer.exclude):
            kept.append(layer)
    return kept


# ---------------------------------------------------------------------------------- splits

def insert_splits(layers: Sequence[LayerSpec]) -> list:
    """``InsertSplits``: a Split layer after every top read by more than one consumer.

    Also where Caffe reports an unknown bottom blob, before any layer is constructed.
    """
    last_top: dict = {}
    source: dict = {}
    consumers: Counter = Counter()
    loss_weights: dict = {}
    for i, layer in enumerate(layers):
        for j, blob in enumerate(layer.bottoms):
            check(blob in last_top,
                  f"Unknown bottom blob '{blob}' (layer '{layer.name}', bottom index {j})")
            source[i, j] = last_top[blob]
            consumers[last_top[blob]] += 1
        for j, blob in enumerate(layer.tops):
            last_top[blob] = (i, j)
        for j in range(min(len(layer.loss_weights), len(layer.tops))):
            top = last_top[layer.tops[j]]
            loss_weights[top] = layer.loss_weights[j]
            if loss_weights[top]:
                consumers[top] += 1
    return _with_splits(layers, source, consumers, loss_weights)


def _with_splits(layers: Sequence[LayerSpec], source: dict, consumers: Counter,
                 loss_weights: dict) -> list:
    out = []
    next_split: Counter = Counter()
    for i, layer in enumerate(layers):
        bottoms = list(layer.bottoms)
        for j, blob in enumerate(bottoms):
            top = source[i, j]
            if consumers[top] > 1:
                bottoms[j] = _split_blob(layers[top[0]].name, blob, top[1], next_split[top])
                next_split[top] += 1
        copy = dataclasses.replace(layer, bottoms=bottoms)
        out.append(copy)
        for j, blob in enumerate(layer.tops):
            if consumers[i, j] > 1:
                weight = loss_weights.get((i, j), 0.0)
                out.append(_split_layer(layer.name, blob, j, consumers[i, j], weight))
                if weight:
                    copy.loss_weights = []
                    next_split[i, j] += 1
    return out


def _split_blob(layer: str, blob: str, top_index: int, split_index: int) -> str:
    return f"{blob}_{layer}_{top_index}_split_{split_index}"


def _split_layer(layer: str, blob: str, top_index: int, count: int, weight: float) -> LayerSpec:
    return LayerSpec(
        name=f"{blob}_{layer}_{top_index}_split", type="Split", bottoms=[blob],
        tops=[_split_blob(layer, blob, top_index, k) for k in range(count)],
        loss_weights=[weight] + [0.0] * (count - 1) if weight else [])
