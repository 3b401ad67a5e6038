"""``caffe-layers-preview``: see one batch as the net receives it, as a PNG grid.

Builds a net holding only the chosen Python data layer of a prototxt (with ``caffe.Net``: real
Caffe when importable, else the package's fake), runs one forward pass, undoes the layer's
``mean_file``/``mean_value`` and ``scale`` for display, and tiles the first top's images (crop and
mirror as applied, BGR written as OpenCV expects, gray as gray) with each sample's label below
it. The layer is closed afterwards, so its workers stop.

The layers of this package undo their own normalisation row by row (each image's mean at its own
random crop window, mirrored as the image), exactly. For any other layer the mean and scale are
read from its ``param_str`` keys and a ``mean_file`` is added at its centre window; what that
approximates is written on the picture. ``--augment N`` shows one image under N draws of the
layer's transform instead (see :mod:`caffe_layers.tools._augment`).
"""

from __future__ import annotations

import argparse
import dataclasses
from typing import Any, List, Sequence, Tuple

import numpy as np

from caffe_layers.errors import ConfigError, DataError
from caffe_layers.testing import prototxt
from caffe_layers.tools import _augment, _cli, _grid, _netfile, _netrun
from caffe_layers.tools._netfile import included, one_layer_net, select_layer  # noqa: F401
from caffe_layers.tools._netrun import LayerFailed, close_layers  # noqa: F401 (demo uses them)

# -------------------------------------------------------------------------------- running it


@dataclasses.dataclass
class Batch:
    """One forward pass of the layer: its tops, by name, in top order.

    ``restored`` is the first top with mean and scale undone exactly, row by row, by the layer's
    own producer (None for a layer that cannot: not one of ours, or a generator); ``draws`` the
    ``--augment`` rows.
    """

    layer: str
    python_class: str
    param_str: str
    tops: List[Tuple[str, np.ndarray]]
    restored: np.ndarray | None = None
    draws: _augment.Draws | None = None


def exact_pixels(engine: Any, data: np.ndarray) -> np.ndarray | None:
    """``data`` (the first top) with mean and scale undone by the layer's own producer, for the
    samples the layer delivered; None when the layer cannot say (see :class:`Batch`)."""
    undo = getattr(getattr(engine, "producer", None), "undo_normalization", None)
    task = engine.last_task() if undo is not None else None
    if task is None or task.indices is None:
        return None
    return undo(data, task)


def run_batch(net_path: str, phase: str = "TRAIN", layer_name: str | None = None,
              show_traceback: bool = False, augment: int = 0, sample: int | None = None
              ) -> Batch:
    """Build a net of only the chosen data layer of ``net_path``, run one forward, close it."""
    _cli.require_file(net_path, "net prototxt")
    net_msg = prototxt.parse_file(net_path)
    layer = select_layer(net_msg, phase, layer_name, net_path)
    name, python_class = _netfile.layer_name(layer), _netfile.python_class(layer)
    with _netrun.layer_calls(name, python_class, show_traceback), \
            _netrun.built_net(one_layer_net(net_msg, layer), phase) as net:
        net.forward()
        tops = [(str(t), np.array(net.blobs[str(t)].data)) for t in layer.getall("top")]
        engine = getattr(net.layers[0], "engine", None)
        restored = exact_pixels(engine, tops[0][1]) if tops else None
        draws = None
        if augment:
            if engine is None:
                raise ConfigError("--augment draws with the layer's own transform, which only "
                                  "the layers of caffe_layers.layers expose")
            draws = _augment.draw(engine, augment, sample)
    return Batch(name, python_class, _netfile.param_str(layer), tops, restored, draws)


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


def _mirrors(param_str: str) -> bool:
    """Whether the layer's ``param_str`` says it mirrors (a key of the same name, true)."""
    from caffe_layers import config

    try:
        return config.parse_yaml(param_str).get("mirror") is True
    except ConfigError:
        return False


def restored_values(batch: Batch, count: int) -> Tuple[np.ndarray, str, str]:
    """``(values, description, note)`` of the first ``count`` images: exact when the layer undid
    its own normalisation, else guessed from ``param_str``; ``note`` says what was approximated
    (empty when nothing was)."""
    mean, scale, how = display_transform(batch.param_str)
    if batch.restored is not None:
        if isinstance(mean, np.ndarray):
            how += " at each image's own crop window, mirrored as the image (exact)"
        return batch.restored[:count], how, ""
    values, note = _grid.undo(batch.tops[0][1][:count], mean, scale)
    if isinstance(mean, np.ndarray) and mean.shape[2] > 1 and _mirrors(batch.param_str):
        note = "; ".join(filter(None, [note, "mirrored images got the mean_file unmirrored"]))
    return values, how, note


# ------------------------------------------------------------------------------ command line

def _parser() -> argparse.ArgumentParser:
    parser = _cli.make_parser(
        "preview",
        "Run one batch of a Python data layer of a net prototxt and save the images as the\n"
        "net receives them (crop and mirror applied, mean and scale undone for display) as a\n"
        "PNG grid with each sample's label written under it. With --augment N: one image\n"
        "under N draws of the layer's random crop and mirror instead.",
        epilog="examples:\n  caffe-layers-preview prototxt/imagelist_train_val.prototxt --phase "
               "TEST --out batch.png --labels demo_data/labels.txt\n"
               "  caffe-layers-preview prototxt/imagelist_train_val.prototxt --augment 8 --out "
               "augment.png\n")
    _netfile.add_net_arguments(parser, "the data layer to show (default: the first Python layer "
                                       "with no bottom in that phase)")
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
    _add_augment_options(parser)
    _cli.add_quiet(parser, _cli.NO_PROGRESS_BAR)
    return parser


def _add_augment_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--augment", type=_cli.positive_int, metavar="N",
                        help="show one image under N draws of the layer's transform (random "
                             "crop and mirror): what the net gets in epochs 0..N-1")
    parser.add_argument("--sample", type=_cli.non_negative_int, metavar="I",
                        help="with --augment: the sample to show, by 0-based index in the list "
                             "(default: the first image of the batch)")


def _batch_picture(args: argparse.Namespace, batch: Batch, names: List[str]) -> str:
    top, data = batch.tops[0]
    count = min(len(data), args.limit or len(data))
    values, how, note = restored_values(batch, count)
    labels = [values for _, values in batch.tops[1:] if len(values) == len(data)]
    texts = _grid.captions(count, [v[:count] for v in labels], names)
    picture = _grid.tile(_grid.to_uint8(values, args.stretch), texts, args.columns, args.zoom)
    _grid.save_png(args.out, _grid.with_note(picture, note))
    shape = "x".join(str(d) for d in data.shape[1:])
    return (f"{args.out}: {count} images of {shape} (C x H x W) from layer '{batch.layer}' "
            f"({batch.python_class}), {args.phase}; {how}" + (f"; {note}" if note else ""))


def _augment_picture(args: argparse.Namespace, batch: Batch) -> str:
    draws = batch.draws
    count = len(draws.crops)
    texts = [draws.caption(epoch) for epoch in range(count)]
    picture = _grid.tile(_grid.to_uint8(draws.values, args.stretch), texts, args.columns,
                         args.zoom)
    legend = (f"sample {draws.index}, epochs 0-{count - 1}: crop row,column; M = mirrored"
              + ("; every draw is the same: this transform has no random crop or mirror"
                 if draws.all_alike() else ""))
    _grid.save_png(args.out, _grid.with_note(picture, legend))
    shape = "x".join(str(d) for d in draws.values.shape[1:])
    return (f"{args.out}: sample {draws.index} under {count} draws of the {args.phase} transform "
            f"of layer '{batch.layer}' ({batch.python_class}), epochs 0-{count - 1}: "
            f"{draws.summary()}; images of {shape} (C x H x W), mean and scale undone")


def preview(args: argparse.Namespace) -> str:
    """Make and save the picture; the summary line."""
    from caffe_layers.tools.make_list import read_labels

    if not args.out.lower().endswith(".png"):
        raise ConfigError(f"--out '{args.out}': give a file name ending in .png")
    if args.sample is not None and not args.augment:
        raise ConfigError("--sample chooses the image --augment shows; give --augment N too")
    names = read_labels(_cli.require_file(args.labels, "--labels file")) if args.labels else []
    batch = run_batch(args.net, args.phase, args.layer, args.traceback, args.augment or 0,
                      args.sample)
    if not batch.tops:
        raise ConfigError(f"layer '{batch.layer}' has no top to show")
    top, data = batch.tops[0]
    _grid.check_images(data.shape, f"top '{top}' of layer '{batch.layer}'")
    if batch.draws is not None:
        return _augment_picture(args, batch)
    return _batch_picture(args, batch, names)


def _run(args: argparse.Namespace) -> None:
    print(preview(args))


def main(argv: Sequence[str] | None = None) -> int:
    """The command line; returns the exit status."""
    return _cli.run(_parser(), _run, argv)


if __name__ == "__main__":
    raise SystemExit(main())
