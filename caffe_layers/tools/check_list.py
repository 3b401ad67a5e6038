"""``caffe-layers-check-list``: every problem of an image list in one pass, before training.

Decodes every image of the list in worker processes, exactly as ``ImageListDataLayer`` reads it
(the same list parser, the same decoder, which refuses a JPEG without its end-of-image marker
although libjpeg would only warn), and reports every malformed line and every missing,
unreadable, empty (0 bytes), truncated or undecodable image, one per line: list line, path,
reason. Then a bar of the images per class, and the image sizes when they differ (the layer then
needs ``new_height`` and ``new_width``). Exits 1 when anything is bad, so it can guard a script;
``--write-clean OUT`` writes the list without the bad lines (the good ones byte for byte).
"""

from __future__ import annotations

import argparse
import collections
import dataclasses
import os
from typing import Dict, List, Sequence, Tuple

from caffe_layers.errors import DataError
from caffe_layers.files import write_atomically
from caffe_layers.sources import images as image_files
from caffe_layers.sources.image_list import BadLine, SampleList
from caffe_layers.tools import _bars, _cli, _images, _pool
from caffe_layers.tools.progress import Progress

BLOCK = 32  # images per task of a worker
PATH_COLUMN = 60  # longer paths push the reason column right on their own line


def _check_block(reader: _images.ImageReader, indices: Sequence[int]) -> list:
    """``(index, (height, width) or BadImage)`` for each image of ``indices``."""
    results = []
    for i in indices:
        image = reader.try_read(i)
        results.append((i, image if isinstance(image, _images.BadImage) else image.shape[:2]))
    return results


@dataclasses.dataclass
class Report:
    """What a check found: the list's samples (None if no line is good), its malformed lines,
    its bad images, and the size of every image that decodes (by sample index)."""

    source: str
    samples: SampleList | None
    bad_lines: List[BadLine]
    bad_images: List[_images.BadImage]
    sizes: Dict[int, Tuple[int, int]]

    @property
    def bad_count(self) -> int:
        return len(self.bad_lines) + len(self.bad_images)

    def bad_line_numbers(self) -> set:
        numbers = {bad.number for bad in self.bad_lines}
        return numbers | {self.samples.line(bad.index) for bad in self.bad_images}


def check(source: str, root_folder: str = "", label_columns: int = 1, workers: int = 1,
          quiet: bool = True) -> Report:
    """Read the list leniently and decode every image (in ``workers`` processes), with a
    progress bar on a terminal unless ``quiet``."""
    samples, bad_lines = SampleList.read_lenient(source, root_folder, label_columns)
    if samples is None:
        return Report(source, None, bad_lines, [], {})
    reader = _images.ImageReader(samples)
    spans = list(_images.blocks(0, len(samples), BLOCK))
    bad_images, sizes = [], {}
    with Progress(len(samples), "check-list", enabled=False if quiet else None) as progress:
        for results in _pool.map_blocks(_check_block, reader, spans, workers, ordered=False):
            for index, result in results:
                if isinstance(result, _images.BadImage):
                    bad_images.append(result)
                else:
                    sizes[index] = tuple(result)
            progress.advance(len(results))
    return Report(source, samples, bad_lines, sorted(bad_images, key=lambda b: b.index), sizes)


def problems_text(report: Report) -> List[str]:
    """Every problem in list order, in columns: ``list:line  path  reason``."""
    rows = [(bad.number, f"{report.source}:{bad.number}", bad.text,
             f"malformed line: {bad.message.split(': ', 1)[1]}") for bad in report.bad_lines]
    rows += [(report.samples.line(bad.index), bad.where, bad.path, f"{bad.kind}: {bad.detail}")
             for bad in report.bad_images]
    rows.sort()
    where_width = max((len(row[1]) for row in rows), default=0)
    path_width = min(PATH_COLUMN, max((len(row[2]) for row in rows), default=0))
    return [f"{where:<{where_width}}  {path:<{path_width}}  {reason}"
            for _, where, path, reason in rows]


def missing_hint(report: Report) -> str:
    """What to fix in --root-folder when no image of the list exists ("" otherwise)."""
    missing = [bad for bad in report.bad_images if bad.kind == image_files.MISSING]
    if not missing or len(missing) < len(report.samples):
        return ""
    return report.samples.missing_hint(missing[0].index, _images.ROOT_FOLDER)[2:]


def per_class(report: Report, names: Sequence[str]) -> List[str]:
    """The bar of images that decode, per class of the first label column."""
    samples = report.samples
    if samples is None or not samples.labels.shape[1] or not report.sizes:
        return []
    good = sorted(report.sizes)
    counts = _bars.class_counts(samples.labels[good, 0])
    if counts is None:
        return ["per class: none (the labels are not class numbers 0, 1, ...)"]
    return ["images per class (those that decode):"] + [
        "  " + line for line in _bars.class_bars(counts, names)]


def sizes_note(report: Report) -> str:
    """A note when the images differ in size ("" when they all have one size)."""
    counts = collections.Counter(report.sizes.values())
    if len(counts) <= 1:
        return ""
    (height, width), most = counts.most_common(1)[0]
    other = next(i for i, size in sorted(report.sizes.items()) if size != (height, width))
    other_h, other_w = report.sizes[other]
    return (f"sizes differ: {most} of {len(report.sizes)} images are {height}x{width} (HxW), "
            f"{len(report.sizes) - most} are not (e.g. {report.samples.where(other)} is "
            f"{other_h}x{other_w}): ImageListDataLayer needs new_height and new_width to read "
            f"them (compute-mean and convert-hdf5: --new-height and --new-width)")


def write_clean(report: Report, out: str) -> int:
    """Write the list without its bad lines (the others byte for byte); lines written."""
    with open(report.source, "rb") as f:
        lines = f.read().split(b"\n")
    bad = report.bad_line_numbers() if report.samples is not None else \
        {b.number for b in report.bad_lines}
    kept = [line for number, line in enumerate(lines, 1) if number not in bad]
    _cli.make_parent(out)
    write_atomically(out, b"\n".join(kept))
    return sum(1 for line in kept if line.strip())


def _parser() -> argparse.ArgumentParser:
    from caffe_layers.params import default_workers

    parser = _cli.make_parser(
        "check-list",
        "Decode every image of an image list as ImageListDataLayer reads it and report every\n"
        "malformed line and every missing, empty, truncated or undecodable image at once\n"
        "(list line, path, reason), then the images per class. Exits 1 if anything is bad.",
        epilog="example:\n  caffe-layers-check-list photos/train.txt --root-folder photos/ "
               "--write-clean photos/train_clean.txt\n")
    _images.add_list_options(parser)
    parser.add_argument("--labels", metavar="FILE",
                        help="labels.txt (label name per line) for class names (default: "
                             "labels.txt beside LIST, if there is one)")
    parser.add_argument("--workers", type=_cli.positive_int, default=default_workers(),
                        metavar="N", help="decode in N processes (default: one per core, at "
                                          "most 4)")
    parser.add_argument("--write-clean", metavar="OUT",
                        help="write the list without its bad lines to OUT")
    _cli.add_quiet(parser)
    return parser


def _class_names(args: argparse.Namespace) -> List[str]:
    from caffe_layers.tools.make_list import read_labels

    if args.labels:
        return read_labels(_cli.require_file(args.labels, "--labels file"))
    beside = os.path.join(os.path.dirname(args.list), "labels.txt")
    return read_labels(beside) if os.path.isfile(beside) else []


def _summary(report: Report) -> str:
    lines = len(report.samples or ()) + len(report.bad_lines)
    good = len(report.sizes)
    if not report.bad_count:
        return f"{report.source}: {lines} lines, all {good} images decode"
    return (f"{report.source}: {lines} lines, {good} images decode, {report.bad_count} "
            f"problem(s):")


def _run(args: argparse.Namespace) -> int:
    _cli.require_file(args.list, "image list", "give a file of 'path label' lines, e.g. made "
                                               "by caffe-layers-make-list")
    names = _class_names(args)
    report = check(args.list, args.root_folder, args.label_columns, args.workers, args.quiet)
    if report.samples is None and not report.bad_lines:
        raise DataError(f"{args.list}: the image list has no samples (the file is empty or has "
                        f"only blank lines)")
    print(_summary(report))
    for line in problems_text(report):
        print("  " + line)
    hint = missing_hint(report)
    if hint:
        print(f"hint: {hint}")
    for line in per_class(report, names) + [sizes_note(report)]:
        if line:
            print(line)
    if args.write_clean:
        kept = write_clean(report, args.write_clean)
        print(f"clean list: {args.write_clean} ({kept} lines, {report.bad_count} bad ones left "
              f"out)")
    return _cli.DATA_ERROR if report.bad_count else 0


def main(argv: Sequence[str] | None = None) -> int:
    """The command line; returns the exit status."""
    return _cli.run(_parser(), _run, argv)


if __name__ == "__main__":
    raise SystemExit(main())
