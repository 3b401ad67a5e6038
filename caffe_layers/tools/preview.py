"""``caffe-layers-preview``: see one batch as the net receives it, as a PNG grid.

Builds a net holding only the chosen Python data layer of a prototxt (with ``caffe.Net``: real
Caffe when importable, else the package's fake), runs one forward pass, undoes the layer's
``mean_file``/``mean_value`` and ``scale`` for display, and tiles the first top's images (crop and
mirror as applied, BGR written as OpenCV expects, gray as gray) with each sample's label below
it. The layer is closed afterwards, so its workers stop.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import io
import os
import sys
import tempfile
from typing import Any, Iterator, List, Sequence, Tuple

import numpy as np

from caffe_layers.errors import CaffeLayersError, ConfigError, DataError
from caffe_layers.testing import netstate, prototxt
from caffe_layers.testing.netstate import PHASES, NetState, Rule
from caffe_layers.tools import _cli, _grid


class LayerFailed(CaffeLayersError, RuntimeError):
    """The previewed layer raised something other than a caffe_layers error."""


# ---------------------------------------------------------------------------- choosing the layer

def included(layer: prototxt.Message, state: NetState) -> bool:
    """Whether Caffe's ``FilterNet`` keeps ``layer`` in a net of this state."""
    return netstate.included(state, [Rule.from_message(r) for r in layer.getall("include")],
                             [Rule.from_message(r) for r in layer.getall("exclude")])


def _net_state(net: prototxt.Message, phase: str) -> NetState:
    state = net.get("state")
    if not isinstance(state, prototxt.Message):
        return NetState(PHASES[phase])
    return NetState(PHASES[phase], prototxt.as_int(state.get("level", 0)),
                    tuple(state.getall("stage")))


def _layer_name(layer: prototxt.Message) -> str:
    return str(layer.get("name", "?"))


def select_layer(net: prototxt.Message, phase: str, name: str | None, source: str
                 ) -> prototxt.Message:
    """The Python layer ``name`` of the ``phase`` net (the first Python data layer if None)."""
    state = _net_state(net, phase)
    layers = net.getall("layer")
    kept = [layer for layer in layers if included(layer, state)]
    python = [layer for layer in kept if layer.get("type") == "Python"
              and not layer.getall("bottom")]
    known = ", ".join(f"'{_layer_name(layer)}'" for layer in python) or "none"
    if name is None:
        if not python:
            raise ConfigError(f"{source}: the {phase} net has no Python data layer (type: "
                              f"\"Python\", no bottom); try --phase TEST or another net")
        return python[0]
    for layer in python:
        if _layer_name(layer) == name:
            return layer
    if any(_layer_name(layer) == name for layer in kept):
        raise ConfigError(f"{source}: layer '{name}' is not a Python data layer; Python data "
                          f"layers of the {phase} net: {known}")
    other = "TEST" if phase == "TRAIN" else "TRAIN"
    if any(_layer_name(layer) == name for layer in layers):
        raise ConfigError(f"{source}: layer '{name}' is not in the {phase} net (its include/"
                          f"exclude rules leave it out); try --phase {other}")
    raise ConfigError(f"{source}: no layer named '{name}'; Python data layers of the {phase} "
                      f"net: {known}")


def one_layer_net(net: prototxt.Message, layer: prototxt.Message) -> str:
    """Prototxt text of a net holding only ``layer`` (and the net's ``state``)."""
    fields = [("name", "preview")]
    if isinstance(net.get("state"), prototxt.Message):
        fields.append(("state", net.get("state")))
    fields.append(("layer", layer))
    return prototxt.to_text(prototxt.Message(fields))


# -------------------------------------------------------------------------------- running it

@dataclasses.dataclass
class Batch:
    """One forward pass of the layer: its tops, by name, in top order."""

    layer: str
    python_class: str
    param_str: str
    tops: List[Tuple[str, np.ndarray]]


@contextlib.contextmanager
def _layer_calls(layer: str, python_class: str, show_traceback: bool) -> Iterator[None]:
    """Turn what a layer raises into one clean error; keep its stderr unless it fails.

    Our layers print their traceback before raising (``caffe train`` would not); a tool shows
    only the message, and the traceback with ``--traceback``.
    """
    captured = io.StringIO()
    try:
        with contextlib.redirect_stderr(captured):
            yield
    except Exception as exc:
        if show_traceback:
            sys.stderr.write(captured.getvalue())
        raise _explain(exc, layer, python_class) from None
    except BaseException as exc:  # the fake's CaffeAbort: where real Caffe aborts the process
        if type(exc).__name__ != "CaffeAbort":
            raise
        raise ConfigError(f"Caffe refuses layer '{layer}': {exc}") from None
    sys.stderr.write(captured.getvalue())


def _explain(exc: BaseException, layer: str, python_class: str) -> CaffeLayersError:
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


def run_batch(net_path: str, phase: str = "TRAIN", layer_name: str | None = None,
              show_traceback: bool = False) -> Batch:
    """Build a net of only the chosen data layer of ``net_path``, run one forward, close it."""
    from caffe_layers.pycaffe import import_caffe

    _cli.require_file(net_path, "net prototxt")
    net_msg = prototxt.parse_file(net_path)
    layer = select_layer(net_msg, phase, layer_name, net_path)
    name = _layer_name(layer)
    python_param = layer.get("python_param") or prototxt.Message()
    python_class = f"{python_param.get('module', '?')}.{python_param.get('layer', '?')}"
    caffe = import_caffe()
    with _layer_calls(name, python_class, show_traceback):
        with tempfile.TemporaryDirectory(prefix="caffe-layers-preview") as folder:
            path = os.path.join(folder, "preview.prototxt")
            with open(path, "w", encoding="utf-8") as f:
                f.write(one_layer_net(net_msg, layer))
            net = caffe.Net(path, getattr(caffe, phase))
        try:
            net.forward()
            tops = [(str(t), np.array(net.blobs[str(t)].data)) for t in layer.getall("top")]
        finally:
            close_layers(net)
    return Batch(name, python_class, str(python_param.get("param_str", "")), tops)


# ---------------------------------------------------------------------------- the transform

def _floats(value: Any, key: str) -> Tuple[float, ...]:
    items = value if isinstance(value, (list, tuple)) else [value]
    try:
        return tuple(float(v) for v in items)
    except (TypeError, ValueError):
        raise ConfigError(f"param_str.{key}: must be a number or a list of numbers, got "
                          f"{value!r}") from None


def display_transform(param_str: str) -> Tuple[_grid.Mean, float, str]:
    """``(mean, scale, description)`` to undo, from the layer's ``param_str`` keys."""
    from caffe_layers import config
    from caffe_layers.binaryproto import read_mean

    try:
        raw = config.parse_yaml(param_str)
    except ConfigError:  # another layer's own param_str format: nothing we know to undo
        return None, 1.0, "shown as stored (param_str is not a YAML mapping)"
    scale = _floats(raw.get("scale", 1.0), "scale")[0]
    notes = [f"divided by scale {scale:g}"] if scale not in (0, 1) else []
    mean: _grid.Mean = None
    if raw.get("mean_file"):
        try:
            mean = read_mean(str(raw["mean_file"]))
        except DataError as exc:
            raise ConfigError(str(exc)) from None
        notes.append(f"mean added back from {raw['mean_file']}")
    elif raw.get("mean_value") not in (None, [], ()):
        mean = _floats(raw["mean_value"], "mean_value")
        notes.append(f"mean_value {list(mean)} added back")
    return mean, scale, "; ".join(notes) or "shown as stored (no mean or scale in param_str)"


# ------------------------------------------------------------------------------ command line

def _parser() -> argparse.ArgumentParser:
    parser = _cli.make_parser(
        "preview",
        "Run one batch of a Python data layer of a net prototxt and save the images as the\n"
        "net receives them (crop and mirror applied, mean and scale undone for display) as a\n"
        "PNG grid with each sample's label written under it.",
        epilog="example:\n  caffe-layers-preview prototxt/imagelist_train_val.prototxt --phase "
               "TEST --out batch.png --labels demo_data/labels.txt\n")
    parser.add_argument("net", help="net prototxt (paths in it are relative to the working "
                                    "directory, as in Caffe)")
    parser.add_argument("--phase", type=str.upper, choices=sorted(PHASES), default="TRAIN",
                        help="which net to build (default: TRAIN)")
    parser.add_argument("--layer", metavar="NAME",
                        help="the data layer to show (default: the first Python layer with no "
                             "bottom in that phase)")
    parser.add_argument("-o", "--out", default="batch.png", metavar="PNG",
                        help="the picture to write (default: batch.png)")
    parser.add_argument("--columns", type=_cli.positive_int, default=8,
                        help="images per row (default: 8)")
    parser.add_argument("--zoom", type=_cli.positive_int, metavar="K",
                        help=f"enlarge each pixel K times (default: enough for "
                             f"{_grid.MIN_TILE}-pixel tiles)")
    parser.add_argument("--limit", type=_cli.positive_int, metavar="N",
                        help="show only the first N images of the batch")
    parser.add_argument("--labels", metavar="FILE",
                        help="labels.txt of caffe-layers-make-list: show class names")
    parser.add_argument("--stretch", action="store_true",
                        help="map the batch's min..max to black..white (for non-pixel data)")
    parser.add_argument("--traceback", action="store_true",
                        help="show the layer's traceback when it fails")
    return parser


def save_png(path: str, picture: np.ndarray) -> None:
    import cv2

    _cli.make_parent(path)
    if not cv2.imwrite(path, picture):
        raise DataError(f"OpenCV could not write '{path}'; check that the folder is writable")


def preview(args: argparse.Namespace) -> str:
    """Make and save the picture; the summary line."""
    from caffe_layers.tools.make_list import read_labels

    if not args.out.lower().endswith(".png"):
        raise ConfigError(f"--out '{args.out}': give a file name ending in .png")
    names = read_labels(_cli.require_file(args.labels, "--labels file")) if args.labels else []
    batch = run_batch(args.net, args.phase, args.layer, args.traceback)
    if not batch.tops:
        raise ConfigError(f"layer '{batch.layer}' has no top to show")
    top, data = batch.tops[0]
    _grid.check_images(data.shape, f"top '{top}' of layer '{batch.layer}'")
    count = min(len(data), args.limit or len(data))
    mean, scale, how = display_transform(batch.param_str)
    pixels = _grid.to_pixels(data[:count], mean, scale, args.stretch)
    labels = [values for _, values in batch.tops[1:] if len(values) == len(data)]
    texts = _grid.captions(count, [v[:count] for v in labels], names)
    save_png(args.out, _grid.tile(pixels, texts, args.columns, args.zoom))
    shape = "x".join(str(d) for d in data.shape[1:])
    return (f"{args.out}: {count} images of {shape} (C x H x W) from layer '{batch.layer}' "
            f"({batch.python_class}), {args.phase}; {how}")


def _run(args: argparse.Namespace) -> None:
    print(preview(args))


def main(argv: Sequence[str] | None = None) -> int:
    """The command line; returns the exit status."""
    return _cli.run(_parser(), _run, argv)


if __name__ == "__main__":
    raise SystemExit(main())
