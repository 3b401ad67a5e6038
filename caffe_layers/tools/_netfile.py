"""A net prototxt's Python data layers: which ones a phase's net holds, and nets made of them.

Shared by ``caffe-layers-preview`` (one layer's batch) and ``caffe-layers-bench`` (every data
layer, with ``workers`` overridden, then the net with its data layers replaced by ``Input``). A
data layer is a ``type: "Python"`` layer without bottoms; Caffe's include/exclude rules decide
which layers a phase's net holds (:mod:`caffe_layers.testing.netstate`).
"""

from __future__ import annotations

import argparse
from typing import Any, List, Sequence, Tuple

from caffe_layers.errors import ConfigError
from caffe_layers.testing import netstate, prototxt
from caffe_layers.testing.netstate import PHASES, NetState, Rule


def add_net_arguments(parser: argparse.ArgumentParser, layer_help: str) -> None:
    """The arguments naming a net, its phase and a data layer of it (preview, bench)."""
    parser.add_argument("net", help="net prototxt (paths in it are relative to the working "
                                    "directory, as in Caffe)")
    parser.add_argument("--phase", type=str.upper, choices=sorted(PHASES), default="TRAIN",
                        help="which net to build (default: TRAIN)")
    parser.add_argument("--layer", metavar="NAME", help=layer_help)


def included(layer: prototxt.Message, state: NetState) -> bool:
    """Whether Caffe's ``FilterNet`` keeps ``layer`` in a net of this state."""
    return netstate.included(state, [Rule.from_message(r) for r in layer.getall("include")],
                             [Rule.from_message(r) for r in layer.getall("exclude")])


def net_state(net: prototxt.Message, phase: str) -> NetState:
    """The state of ``net`` built for ``phase`` (its own ``state`` gives level and stages)."""
    state = net.get("state")
    if not isinstance(state, prototxt.Message):
        return NetState(PHASES[phase])
    return NetState(PHASES[phase], prototxt.as_int(state.get("level", 0)),
                    tuple(state.getall("stage")))


def layer_name(layer: prototxt.Message) -> str:
    return str(layer.get("name", "?"))


def python_class(layer: prototxt.Message) -> str:
    """``module.Layer`` of a Python layer's ``python_param``."""
    python_param = layer.get("python_param") or prototxt.Message()
    return f"{python_param.get('module', '?')}.{python_param.get('layer', '?')}"


def param_str(layer: prototxt.Message) -> str:
    python_param = layer.get("python_param") or prototxt.Message()
    return str(python_param.get("param_str", ""))


def data_layers(net: prototxt.Message, phase: str) -> List[prototxt.Message]:
    """The Python layers without bottoms of the ``phase`` net, in net order."""
    state = net_state(net, phase)
    return [layer for layer in net.getall("layer") if included(layer, state)
            and layer.get("type") == "Python" and not layer.getall("bottom")]


def select_layer(net: prototxt.Message, phase: str, name: str | None, source: str
                 ) -> prototxt.Message:
    """The Python layer ``name`` of the ``phase`` net (the first Python data layer if None)."""
    python = data_layers(net, phase)
    known = ", ".join(f"'{layer_name(layer)}'" for layer in python) or "none"
    if name is None:
        if not python:
            raise ConfigError(f"{source}: the {phase} net has no Python data layer (type: "
                              f"\"Python\", no bottom); try --phase TEST or another net")
        return python[0]
    for layer in python:
        if layer_name(layer) == name:
            return layer
    state = net_state(net, phase)
    layers = net.getall("layer")
    if any(layer_name(layer) == name for layer in layers if included(layer, state)):
        raise ConfigError(f"{source}: layer '{name}' is not a Python data layer; Python data "
                          f"layers of the {phase} net: {known}")
    other = "TEST" if phase == "TRAIN" else "TRAIN"
    if any(layer_name(layer) == name for layer in layers):
        raise ConfigError(f"{source}: layer '{name}' is not in the {phase} net (its include/"
                          f"exclude rules leave it out); try --phase {other}")
    raise ConfigError(f"{source}: no layer named '{name}'; Python data layers of the {phase} "
                      f"net: {known}")


def one_layer_net(net: prototxt.Message, layer: prototxt.Message) -> str:
    """Prototxt text of a net holding only ``layer`` (and the net's ``state``)."""
    fields: List[Tuple[str, Any]] = [("name", "one_layer")]
    if isinstance(net.get("state"), prototxt.Message):
        fields.append(("state", net.get("state")))
    fields.append(("layer", layer))
    return prototxt.to_text(prototxt.Message(fields))


def _replaced(message: prototxt.Message, name: str, value: Any) -> prototxt.Message:
    """A copy of ``message`` whose field ``name`` is ``value`` (added when missing)."""
    fields = [(field, value if field == name else old) for field, old in message]
    if name not in message:
        fields.append((name, value))
    return prototxt.Message(fields)


def with_param(layer: prototxt.Message, key: str, value: Any) -> prototxt.Message:
    """A copy of the Python ``layer`` whose ``param_str`` sets ``key: value``."""
    import yaml

    from caffe_layers.config import parse_yaml

    try:
        raw = parse_yaml(param_str(layer))
    except ConfigError as exc:
        raise ConfigError(f"layer '{layer_name(layer)}': {exc}") from None
    raw[key] = value
    text = yaml.safe_dump(raw, default_flow_style=True, width=float("inf")).strip()
    python_param = _replaced(layer.get("python_param") or prototxt.Message(), "param_str", text)
    return _replaced(layer, "python_param", python_param)


def input_layer(layer: prototxt.Message, shapes: Sequence[Tuple[str, Sequence[int]]]
                ) -> prototxt.Message:
    """An ``Input`` layer with ``layer``'s name, include/exclude rules and tops of ``shapes``."""
    fields: List[Tuple[str, Any]] = [("name", layer_name(layer)),
                                     ("type", "Input")]
    fields += [("top", top) for top, _ in shapes]
    fields += [(rule, value) for rule, value in layer if rule in ("include", "exclude")]
    blob_shapes = [("shape", prototxt.Message([("dim", int(d)) for d in shape]))
                   for _, shape in shapes]
    fields.append(("input_param", prototxt.Message(blob_shapes)))
    return prototxt.Message(fields)


def with_inputs(net: prototxt.Message,
                replacements: Sequence[Tuple[prototxt.Message, Sequence[Tuple[str, Sequence[int]]]]]
                ) -> str:
    """Prototxt text of ``net`` with each layer of ``replacements`` (``(layer, [(top, shape)])``,
    the layer message itself, as :func:`data_layers` gives it) replaced by an ``Input`` layer of
    those tops, so the rest of the net runs on blobs the caller fills."""
    fields = []
    for field, value in net:
        for layer, shapes in replacements:
            if value is layer:
                value = input_layer(layer, shapes)
        fields.append((field, value))
    return prototxt.to_text(prototxt.Message(fields))
