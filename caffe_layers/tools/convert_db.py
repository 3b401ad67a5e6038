"""``caffe-layers-convert-db``: Caffe's ``convert_imageset``, in parallel and atomic.

``caffe-layers-convert-db ROOT LIST DB`` writes one ``Datum`` per list line into a new LMDB (or
LevelDB) that Caffe's ``Data`` layer and ``DBDataLayer`` read, with ``convert_imageset``'s keys
(``%08d_<path as in the list>``, the number being the sample's position after ``--shuffle``) and
Datum fields:

- raw (default): ``channels``, ``height``, ``width``, the C x H x W uint8 pixels (BGR, or gray
  with ``--gray``), ``label``, ``encoded: false``;
- ``--encoded``: ``data`` is the image file's own bytes when no resize is asked and its extension
  is the encoding (``--encode-type``, default each file's extension; ``jpeg`` counts as ``jpg``),
  else the image re-encoded by OpenCV; ``label``; ``encoded: true``. As in Caffe, ``--gray`` does
  not turn a colour file kept as it is into gray: set ``force_gray`` in the layer.

Images are read exactly as ``SampleListDataLayer`` reads them (same list parser, decoder and
resize), decoded and encoded in ``--workers`` processes, and written in key order by this one.
Differences from ``convert_imageset``: an unreadable image is listed by list line (and skipped,
as Caffe does, or with ``--on-error raise`` fatal); ``--shuffle`` is seeded (``--seed``); lines
whose label is not an integer are refused (Caffe's ``atoi`` reads 0); blank lines are not
counted; and the database appears at DB only once complete (a Ctrl-C leaves none behind).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
from typing import List, Sequence

import numpy as np

from caffe_layers.datum import serialize_datum
from caffe_layers.errors import ConfigError, DataError
from caffe_layers.sources.image_list import SampleList
from caffe_layers.tools import _cli, _images, _pool
from caffe_layers.tools._db_write import check_target, new_database
from caffe_layers.tools.progress import Progress
from caffe_layers.transforms import check_resize

BLOCK = 32  # images per task sent to a worker
_INT32 = (-(1 << 31), (1 << 31) - 1)


@dataclasses.dataclass(frozen=True)
class Converter:
    """Turns list samples into ``(key, Datum bytes, (C, H, W))``; picklable for the workers."""

    reader: _images.ImageReader
    order: np.ndarray  # position -> sample
    encoded: bool
    encode_type: str

    def record(self, position: int) -> tuple:
        """``(key, value, shape)`` of the sample at ``position``; DataError if unreadable."""
        images = self.reader.images
        sample = int(self.order[position])
        relative = images.written_path(sample)
        key = b"%08d_" % position + relative
        image = self.reader.read(sample)
        label = int(images.labels[sample, 0])
        shape = (image.shape[2],) + image.shape[:2]
        if not self.encoded:
            pixels = np.ascontiguousarray(image.transpose(2, 0, 1)).tobytes()
            return key, serialize_datum(pixels, label, shape), shape
        return key, serialize_datum(self._encode(sample, relative, image), label), shape

    def _encode(self, sample: int, relative: bytes, image: np.ndarray) -> bytes:
        images = self.reader.images
        extension = os.path.splitext(os.fsdecode(relative))[1][1:].lower()
        kind = self.encode_type or extension
        if not kind:
            raise DataError(f"{images.where(sample)}: cannot guess the encoding of "
                            f"'{os.fsdecode(relative)}' from its extension; give --encode-type")
        if self.reader.new_hw == (0, 0) and (extension == kind or
                                             (kind == "jpg" and extension == "jpeg")):
            with open(images.path(sample), "rb") as f:  # the file's own bytes, as Caffe
                return f.read()
        import cv2

        try:
            ok, buffer = cv2.imencode(f".{kind}", image)
        except cv2.error:
            ok = False
        if not ok:
            raise DataError(f"{images.where(sample)}: OpenCV cannot encode '{kind}' images; give "
                            f"--encode-type jpg or png")
        return buffer.tobytes()


def _convert_block(converter: Converter, positions: Sequence[int]) -> list:
    """``(position, (key, value, shape) or None, problem or None)`` of each position."""
    results = []
    for position in positions:
        try:
            results.append((position, converter.record(position), None))
        except (DataError, OSError) as exc:
            results.append((position, None, str(exc)))
    return results


def _parser() -> argparse.ArgumentParser:
    parser = _cli.make_parser(
        "convert-db",
        "Convert a list of images to an LMDB or LevelDB of Caffe Datums, as Caffe's\n"
        "convert_imageset does (same keys and records), decoding in parallel. Caffe's Data\n"
        "layer and DBDataLayer read the result.",
        epilog="example:\n  caffe-layers-convert-db photos/ photos/train.txt train_lmdb "
               "--resize-height 256 --resize-width 256 --shuffle\n  -> train_lmdb/ (use as "
               "source: train_lmdb)\n")
    parser.add_argument("root", metavar="ROOT", help="prepended to every path of the list "
                                                     "(plain concatenation: end it with '/')")
    parser.add_argument("list", metavar="LIST", help="image list: one 'path label' per line")
    parser.add_argument("db", metavar="DB", help="the database directory to create")
    parser.add_argument("--resize-height", type=_cli.non_negative_int, default=0, metavar="H",
                        help="resize every image to H x W (give both or neither)")
    parser.add_argument("--resize-width", type=_cli.non_negative_int, default=0, metavar="W")
    parser.add_argument("--gray", action="store_true", help="read images as 1-channel gray")
    parser.add_argument("--encoded", action="store_true",
                        help="store encoded images (the file's bytes when possible)")
    parser.add_argument("--encode-type", default="", metavar="EXT",
                        help="encode as EXT (jpg, png, ...); implies --encoded")
    parser.add_argument("--shuffle", action="store_true", help="store the images in a random "
                                                               "order (seeded by --seed)")
    parser.add_argument("--seed", type=_cli.non_negative_int, default=0,
                        help="seed of --shuffle (default: 0)")
    parser.add_argument("--backend", choices=("lmdb", "leveldb"), default="lmdb",
                        help="database kind (default: lmdb)")
    parser.add_argument("--check-size", action="store_true",
                        help="fail unless every image has the first image's size")
    parser.add_argument("--on-error", choices=("skip", "raise"), default="skip",
                        help="an unreadable image: skip it and list it at the end (default, as "
                             "convert_imageset), or stop and write nothing")
    parser.add_argument("--workers", type=_cli.positive_int, default=_cores(), metavar="N",
                        help="decode and encode in N processes (default: one per core)")
    _cli.add_quiet(parser)
    return parser


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def _read_list(args: argparse.Namespace) -> SampleList:
    if check_resize(args.resize_height, args.resize_width):
        raise ConfigError(f"--resize-height and --resize-width: give both (> 0) to resize, or "
                          f"neither (got {args.resize_height} and {args.resize_width})")
    _cli.require_file(args.list, "image list", "give a file of 'path label' lines, e.g. made by "
                                               "caffe-layers-make-list")
    images = SampleList.read(args.list, args.root, 1)
    labels = images.labels[:, 0]
    bad = np.flatnonzero((labels != np.round(labels)) | (labels < _INT32[0])
                         | (labels > _INT32[1]))
    if len(bad):
        shown = ", ".join(f"{images.where(i)} ({labels[i]:g})" for i in bad[:10])
        raise DataError(f"{len(bad)} label(s) are not integers (a Datum's label is an int32): "
                        f"{shown}")
    return images


def _converter(args: argparse.Namespace, images: SampleList) -> Converter:
    order = np.arange(len(images))
    if args.shuffle:
        order = np.random.default_rng(args.seed).permutation(len(images))
    reader = _images.ImageReader(images, not args.gray, (args.resize_height, args.resize_width))
    return Converter(reader, order, args.encoded or bool(args.encode_type),
                     args.encode_type.lower().lstrip("."))


class _Run:
    """What the conversion found: the first shape, the records written, the problems."""

    def __init__(self, check_size: bool, raise_errors: bool) -> None:
        self.check_size = check_size
        self.raise_errors = raise_errors
        self.first_shape = None
        self.written = 0
        self.problems: List[str] = []

    def take(self, writer, position: int, record: tuple | None, problem: str | None,
             images: SampleList, sample: int) -> None:
        if record is None:
            if self.raise_errors:
                raise DataError(f"{problem} (nothing written: --on-error raise)")
            self.problems.append(problem)
            return
        key, value, shape = record
        if self.first_shape is None:
            self.first_shape = shape
        elif self.check_size and shape != self.first_shape:
            raise DataError(f"{images.where(sample)}: the image is {_size(shape)} but the first "
                            f"one is {_size(self.first_shape)} (--check-size); resize with "
                            f"--resize-height and --resize-width (nothing written)")
        writer.put(key, value)
        self.written += 1


def _size(shape: tuple) -> str:
    return "x".join(map(str, shape)) + " (C x H x W)"


def _run(args: argparse.Namespace) -> None:
    images = _read_list(args)
    check_target(args.db)
    converter = _converter(args, images)
    run = _Run(args.check_size, args.on_error == "raise")
    blocks = [range(start, min(start + BLOCK, len(images)))
              for start in range(0, len(images), BLOCK)]
    with Progress(len(images), "convert-db", enabled=False if args.quiet else None) as bar, \
            new_database(args.db, args.backend.upper()) as writer:
        for results in _pool.map_blocks(_convert_block, converter, blocks, args.workers):
            for position, record, problem in results:
                run.take(writer, position, record, problem, images, int(converter.order[position]))
            bar.advance(len(results))
        if not run.written:
            raise DataError(f"none of the {len(images)} images of {args.list} could be read "
                            f"(the first: {run.problems[0]}); nothing written")
    _report(args, converter, run)


def _report(args: argparse.Namespace, converter: Converter, run: _Run) -> None:
    for problem in run.problems:
        sys.stderr.write(f"skipped: {problem}\n")
    kind = "encoded" if converter.encoded else "raw"
    shape = f" of {_size(run.first_shape)} (the first)" if run.first_shape else ""
    print(f"{run.written} images -> {args.db} ({args.backend.upper()}): {kind} Datums{shape}"
          + (f"; {len(run.problems)} unreadable image(s) skipped (listed above)"
             if run.problems else ""))
    if converter.encoded and args.gray and (args.resize_height, args.resize_width) == (0, 0):
        print("  note: files stored as they are keep their colour (as in convert_imageset); set "
              "force_gray: true in the layer to read them as gray")
    print(f"  use in param_str: {{source: {args.db}, backend: {args.backend.upper()}}}")


def main(argv: Sequence[str] | None = None) -> int:
    """The command line; returns the exit status."""
    return _cli.run(_parser(), _run, argv)


if __name__ == "__main__":
    raise SystemExit(main())
