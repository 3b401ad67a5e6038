"""``caffe-layers-compute-mean``: Caffe's ``compute_image_mean`` for an image list.

Reads every image of a list as ``ImageListDataLayer`` reads it (same decoding, ``--root-folder``,
``--new-height``/``--new-width``, ``--gray``), sums the pixels in float64 one image at a time
(memory stays one image plus one accumulator, whatever the dataset's size; the sums of 8-bit
pixels are exact, so the result does not depend on ``--workers``), and writes

- the mean image as a ``.binaryproto`` that real Caffe's ``mean_file`` accepts: legacy
  ``num = 1, channels, height, width`` at the resized size, float32 data, as Caffe's tool writes;
- the per-channel means (B, G, R), printed and, with ``--values-out``, saved as YAML
  ``mean_value: [b, g, r]`` for the layer's ``mean_value`` key;
- with ``--png``, a picture of the mean image: as is and contrast-stretched, side by side,
  enlarged, its size written under it.
"""

from __future__ import annotations

import argparse
import functools
import os
from typing import List, Sequence, Tuple

import numpy as np

from caffe_layers.binaryproto import write_blobproto
from caffe_layers.errors import ConfigError
from caffe_layers.tools import _cli, _grid, _images, _pool
from caffe_layers.tools.progress import Progress

BLOCK = 64  # images per task: progress granularity and work unit of a worker


def _block_sum(reader: _images.ImageReader, indices: Sequence[int], skip_bad: bool = False
               ) -> Tuple[np.ndarray, int, List[_images.BadImage]]:
    """The float64 sum of the images ``indices``, how many there were, and (``skip_bad``) the
    bad ones left out."""
    total = np.zeros(reader.size + (3 if reader.is_color else 1,), np.float64)
    bad = []
    for i in indices:
        image = reader.try_read(i) if skip_bad else reader.read(i)
        if isinstance(image, _images.BadImage):
            bad.append(image)
        else:
            total += image
    return total, len(indices), bad


def mean_image(reader: _images.ImageReader, workers: int = 1, progress: Progress | None = None,
               skip_bad: bool = False) -> Tuple[np.ndarray, List[_images.BadImage]]:
    """The float64 ``(C, H, W)`` mean of every image of ``reader``'s list and, with
    ``skip_bad``, the images left out of it (in list order; else the first one raises)."""
    reader, first, _ = reader.sized(skip_bad)
    total = np.zeros(first.shape, np.float64)
    count = len(reader.images)
    spans = list(_images.blocks(0, count, BLOCK))
    bad: List[_images.BadImage] = []
    block_sum = functools.partial(_block_sum, skip_bad=skip_bad)
    for block_total, done, block_bad in _pool.map_blocks(block_sum, reader, spans, workers,
                                                         False):
        total += block_total
        bad += block_bad
        if progress is not None:
            progress.advance(done)
    return (total / (count - len(bad))).transpose(2, 0, 1), sorted(bad, key=lambda b: b.index)


def channel_means(mean: np.ndarray) -> list:
    """Per-channel means of a ``(C, H, W)`` mean image (each pixel weighs the same)."""
    return [float(v) for v in mean.mean(axis=(1, 2))]


def format_values(values: Sequence[float]) -> str:
    """``mean_value: [104.0081, 116.6695, 122.6789]`` (YAML, for param_str)."""
    return "mean_value: [" + ", ".join(f"{v:.4f}" for v in values) + "]"


def mean_picture(mean: np.ndarray, count: int) -> Tuple[np.ndarray, int]:
    """The ``(C, H, W)`` mean as a picture (channels as OpenCV writes them: BGR) and its zoom.

    Left the mean as is (rounded to 8 bits), right the same stretched from its min..max to
    0..255 (one range for all channels, so colours keep their balance), enlarged by the preview's
    automatic zoom, with what it shows written under it.
    """
    low, high = float(mean.min()), float(mean.max())
    stretched = (mean - low) * (255.0 / (high - low)) if high > low else np.zeros_like(mean)
    pixels = _grid.to_uint8(np.stack([mean, stretched]))
    channels, height, width = mean.shape
    zoom = _grid.auto_zoom(height, width)
    picture = _grid.tile(pixels, ["as is", "stretched"], columns=2, zoom=zoom)
    note = (f"mean of {count} images, {channels} x {height} x {width} (C x H x W), shown "
            f"{zoom}x; stretched: {low:.1f}..{high:.1f} to 0..255")
    return _grid.with_note(picture, note), zoom


def _parser() -> argparse.ArgumentParser:
    parser = _cli.make_parser(
        "compute-mean",
        "Compute the mean image of an image list (a .binaryproto Caffe's mean_file accepts) and "
        "the per-channel mean values, reading images exactly as ImageListDataLayer does.",
        epilog="example:\n  caffe-layers-compute-mean photos/train.txt --root-folder photos/ "
               "--new-height 256 --new-width 256\n  -> photos/mean.binaryproto (1 x 3 x 256 x "
               "256) and mean_value: [b, g, r]")
    _images.add_image_options(parser)
    _images.add_skip_bad(parser, "counted in the mean")
    parser.add_argument("-o", "--out", metavar="FILE",
                        help="the .binaryproto to write (default: mean.binaryproto beside LIST)")
    parser.add_argument("--values-out", metavar="FILE",
                        help="also write 'mean_value: [b, g, r]' (YAML) to FILE")
    parser.add_argument("--png", metavar="FILE",
                        help="also write a picture of the mean image (as is and stretched)")
    _cli.add_quiet(parser)
    return parser


def _run(args: argparse.Namespace) -> None:
    images = _images.open_list(args)
    out = args.out or os.path.join(os.path.dirname(args.list), "mean.binaryproto")
    reader = _images.reader_for(args, images)
    _cli.make_parent(out)
    if args.png and not args.png.lower().endswith(".png"):
        raise ConfigError(f"--png '{args.png}': give a file name ending in .png")
    for path in (args.values_out, args.png):
        if path:
            _cli.make_parent(path)
    with Progress(len(images), "compute-mean", enabled=False if args.quiet else None) as bar:
        mean, bad = mean_image(reader, args.workers, bar, args.skip_bad)
    write_blobproto(out, mean[np.newaxis])
    values = channel_means(mean)
    order = "(B, G, R)" if len(values) == 3 else "(gray)"
    channels, height, width = mean.shape
    skipped = f" ({len(bad)} skipped)" if bad else ""
    print(f"mean of {len(images) - len(bad)} images{skipped} -> {out} (1 x {channels} x "
          f"{height} x {width}, N x C x H x W)")
    print(f"{format_values(values)}   per channel {order}")
    _write_extras(args, mean, values, len(images) - len(bad))
    if bad:
        print(_images.report_skipped(bad, "the mean"))


def _write_extras(args: argparse.Namespace, mean: np.ndarray, values: list, count: int) -> None:
    """``--values-out`` and ``--png`` (the mean of ``count`` images)."""
    if args.values_out:
        with open(args.values_out, "w") as f:
            f.write(format_values(values) + "\n")
        print(f"mean values -> {args.values_out}")
    if args.png:
        channels, height, width = mean.shape
        picture, zoom = mean_picture(mean, count)
        _grid.save_png(args.png, picture)
        print(f"mean image -> {args.png} ({channels} x {height} x {width} shown {zoom}x, as is "
              f"and stretched)")


def main(argv: Sequence[str] | None = None) -> int:
    """The command line; returns the exit status."""
    return _cli.run(_parser(), _run, argv)


if __name__ == "__main__":
    raise SystemExit(main())
