"""Reading an image list for the tools exactly as ``ImageListDataLayer`` reads it.

The same list parser (:class:`~caffe_layers.sources.image_list.SampleList`), decoder
(:func:`~caffe_layers.sources.images.read_image`) and resize
(:func:`~caffe_layers.transforms.resize`) as the layer, so a mean computed or a file converted
here matches what the layer would feed the net. :func:`blocks` cuts the samples into the blocks
that :func:`caffe_layers.tools._pool.map_blocks` hands to worker processes.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
from typing import Iterator, Tuple

import numpy as np

from caffe_layers.errors import ConfigError, DataError
from caffe_layers.sources.image_list import SampleList
from caffe_layers.sources.images import check_size, read_image
from caffe_layers.tools import _cli
from caffe_layers.transforms import check_resize, resize


def add_image_options(parser: argparse.ArgumentParser) -> None:
    """The layer's keys that decide which pixels a tool reads."""
    parser.add_argument("list", help="image list: one 'path label' per line (Caffe's format)")
    parser.add_argument("--root-folder", default="", metavar="DIR",
                        help="prepended to every path of the list, as the layer's root_folder "
                             "(plain concatenation: end it with '/')")
    parser.add_argument("--new-height", type=_cli.non_negative_int, default=0, metavar="H",
                        help="resize every image to H x W first, as the layer's new_height")
    parser.add_argument("--new-width", type=_cli.non_negative_int, default=0, metavar="W",
                        help="as the layer's new_width (give both or neither)")
    parser.add_argument("--gray", action="store_true",
                        help="read 1-channel gray images (the layer's is_color: false)")
    parser.add_argument("--label-columns", type=_cli.non_negative_int, default=1, metavar="K",
                        help="labels per line, the last K columns (default: 1)")
    parser.add_argument("--workers", type=_cli.positive_int, default=1, metavar="N",
                        help="decode in N processes (default: 1, this process)")


def open_list(args: argparse.Namespace) -> SampleList:
    """The list named by ``args.list``, after checking the resize options."""
    if check_resize(args.new_height, args.new_width):
        raise ConfigError(f"--new-height and --new-width: give both (> 0) to resize, or neither "
                          f"to keep the stored size (got {args.new_height} and "
                          f"{args.new_width})")
    _cli.require_file(args.list, "image list", "give a file of 'path label' lines, e.g. made "
                                               "by caffe-layers-make-list")
    return SampleList.read(args.list, args.root_folder, args.label_columns)


@dataclasses.dataclass(frozen=True)
class ImageReader:
    """Reads sample ``i`` as ``(H, W, C)`` uint8, as the layer does; picklable for workers.

    Every image must have ``size`` (the first image's, after the resize) as in the layer.
    """

    images: SampleList
    is_color: bool = True
    new_hw: Tuple[int, int] = (0, 0)
    size: Tuple[int, int] | None = None

    def read(self, i: int) -> np.ndarray:
        path, where = self.images.path(i), self.images.where(i)
        try:
            image = resize(read_image(path, self.is_color, where=where), *self.new_hw)
        except DataError as exc:
            if os.path.exists(path):
                raise
            raise DataError(f"{exc}; the list's paths are appended to --root-folder (now "
                            f"'{self.images.root_folder}')") from None
        if self.size is not None:
            check_size(image, self.size, path, where)
        return image

    def sized(self) -> Tuple[ImageReader, np.ndarray]:
        """A reader fixed to the first image's size, and that first image."""
        first = self.read(0)
        return dataclasses.replace(self, size=tuple(first.shape[:2])), first


def reader_for(args: argparse.Namespace, images: SampleList) -> ImageReader:
    return ImageReader(images, not args.gray, (args.new_height, args.new_width))


def blocks(start: int, stop: int, size: int) -> Iterator[range]:
    """Consecutive ranges of at most ``size`` indices covering ``[start, stop)``."""
    for begin in range(start, stop, size):
        yield range(begin, min(begin + size, stop))
