"""Reading an image list for the tools exactly as ``ImageListDataLayer`` reads it.

The same list parser (:class:`~caffe_layers.sources.image_list.SampleList`), decoder
(:func:`~caffe_layers.sources.images.read_image`) and resize
(:func:`~caffe_layers.transforms.resize`) as the layer, so a mean computed or a file converted
here matches what the layer would feed the net. :func:`blocks` cuts the samples into the blocks
that :func:`caffe_layers.tools._pool.map_blocks` hands to worker processes. An image the layer
would refuse is a :class:`BadImage` for the tools that skip and report them (``--skip-bad``,
``caffe-layers-check-list``).
"""

from __future__ import annotations

import argparse
import dataclasses
from typing import Iterator, List, Sequence, Tuple

import numpy as np

from caffe_layers.errors import ConfigError, DataError, first_few
from caffe_layers.sources import images as image_files
from caffe_layers.sources.image_list import SampleList, read_listed_image
from caffe_layers.sources.images import check_size
from caffe_layers.tools import _cli
from caffe_layers.transforms import check_resize, resize

ROOT_FOLDER = "--root-folder"
RESIZE_FIX = ("pass --new-height and --new-width (and give the layer the same new_height and "
              "new_width)")
OTHER_SIZE = "other size"
DETAILS = {
    image_files.MISSING: "no such file",
    image_files.UNREADABLE: "cannot be read (a folder? permissions?)",
    image_files.EMPTY: "0 bytes",
    image_files.TRUNCATED: "cut short: no end-of-image marker",
    image_files.UNDECODABLE: "OpenCV cannot decode it: corrupt, or not an image",
}


def add_list_options(parser: argparse.ArgumentParser) -> None:
    """The list, its ``--root-folder`` and ``--label-columns``, as the layer's keys."""
    parser.add_argument("list", help="image list: one 'path label' per line (Caffe's format)")
    parser.add_argument("--root-folder", default="", metavar="DIR",
                        help="prepended to every path of the list, as the layer's root_folder "
                             "(plain concatenation: end it with '/')")
    parser.add_argument("--label-columns", type=_cli.non_negative_int, default=1, metavar="K",
                        help="labels per line, the last K columns (default: 1)")


def add_image_options(parser: argparse.ArgumentParser) -> None:
    """The layer's keys that decide which pixels a tool reads."""
    add_list_options(parser)
    parser.add_argument("--new-height", type=_cli.non_negative_int, default=0, metavar="H",
                        help="resize every image to H x W first, as the layer's new_height")
    parser.add_argument("--new-width", type=_cli.non_negative_int, default=0, metavar="W",
                        help="as the layer's new_width (give both or neither)")
    parser.add_argument("--gray", action="store_true",
                        help="read 1-channel gray images (the layer's is_color: false)")
    parser.add_argument("--workers", type=_cli.positive_int, default=1, metavar="N",
                        help="decode in N processes (default: 1, this process)")


def add_skip_bad(parser: argparse.ArgumentParser, what: str) -> None:
    """``--skip-bad``: leave out the images the layer cannot read, and list them at the end."""
    parser.add_argument("--skip-bad", action="store_true",
                        help=f"leave out images the layer cannot read (missing, empty, truncated, "
                             f"undecodable, of another size) and list them at the end, instead "
                             f"of stopping at the first; they are not {what}")


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
class BadImage:
    """An image of the list the layer would refuse: its list line (``where``), ``path``,
    ``kind`` (missing, unreadable, empty, truncated, undecodable or other size), a short
    ``detail`` and the layer's full ``message``."""

    index: int
    where: str
    path: str
    kind: str
    detail: str
    message: str

    def line(self) -> str:
        """``list.txt:12  photos/cat/x.jpg  truncated: cut short: no end-of-image marker``."""
        return f"{self.where}  {self.path}  {self.kind}: {self.detail}"


def report_skipped(bad: Sequence[BadImage], left_out_of: str) -> str:
    """What ``--skip-bad`` skipped: a header and the first few, one per line."""
    lines = [bad_image.line() for bad_image in bad]
    return (f"--skip-bad: {len(bad)} image(s) the layer cannot read, left out of {left_out_of} "
            f"(caffe-layers-check-list lists them all and writes a list without them):\n  "
            + first_few(lines, "\n  ", "images"))


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
        """Image ``i``; DataError naming the list line, the path and the flag to fix."""
        image = self._decode(i)
        if self.size is not None:
            check_size(image, self.size, self.images.path(i), self.images.where(i), RESIZE_FIX)
        return image

    def try_read(self, i: int) -> np.ndarray | BadImage:
        """Image ``i``, or what is wrong with it."""
        try:
            image = self._decode(i)
        except DataError as exc:
            kind = image_files.problem_kind(self.images.path(i))
            return self._bad(i, kind, DETAILS[kind], exc)
        try:
            if self.size is not None:
                check_size(image, self.size, self.images.path(i), self.images.where(i),
                           RESIZE_FIX)
        except DataError as exc:
            height, width = image.shape[:2]
            return self._bad(i, OTHER_SIZE, f"{height}x{width}, the first image is "
                                            f"{self.size[0]}x{self.size[1]} (HxW)", exc)
        return image

    def _decode(self, i: int) -> np.ndarray:
        image = read_listed_image(self.images, i, self.is_color, key=ROOT_FOLDER)
        return resize(image, *self.new_hw)

    def _bad(self, i: int, kind: str, detail: str, exc: DataError) -> BadImage:
        return BadImage(i, self.images.where(i), self.images.path(i), kind, detail, str(exc))

    def sized(self, skip_bad: bool = False) -> Tuple[ImageReader, np.ndarray, List[BadImage]]:
        """A reader fixed to the first image's size, that first image and, with ``skip_bad``,
        the bad images before it (else the first image's error is raised)."""
        bad: List[BadImage] = []
        for i in range(len(self.images) if skip_bad else 1):
            first = self.try_read(i) if skip_bad else self.read(i)
            if isinstance(first, BadImage):
                bad.append(first)
                continue
            return dataclasses.replace(self, size=tuple(first.shape[:2])), first, bad
        raise DataError(f"none of the {len(bad)} images of {self.images.source} can be read: "
                        f"{bad[0].message}")


def reader_for(args: argparse.Namespace, images: SampleList) -> ImageReader:
    return ImageReader(images, not args.gray, (args.new_height, args.new_width))


def blocks(start: int, stop: int, size: int) -> Iterator[range]:
    """Consecutive ranges of at most ``size`` indices covering ``[start, stop)``."""
    for begin in range(start, stop, size):
        yield range(begin, min(begin + size, stop))
