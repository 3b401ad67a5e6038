"""``caffe-layers-make-list``: Caffe image lists from a folder tree, one subfolder per class.

Scans ``ROOT/<class>/**/<image>``, numbers the classes by sorted folder name (label 0 is the first
name), splits every class separately into train and val (a stratified split: each class keeps the
``--val-fraction``), and writes Caffe's ``path label`` lists with paths relative to ``ROOT``::

    train.txt   cat/001.jpg 0        (use root_folder: "ROOT/" in the layer's param_str)
    val.txt     dog/017.jpg 1
    labels.txt  0 cat                (label -> class name)

Hidden files and folders (starting with ``.``) and files that are not images are ignored.
The same ``--seed`` gives the same split on any machine.
"""

from __future__ import annotations

import argparse
import collections
import dataclasses
import os
import random
import shlex
from typing import List, Sequence, Tuple

from caffe_layers.errors import ConfigError, DataError
from caffe_layers.tools import _bars, _cli

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".ppm", ".pgm", ".tif", ".tiff", ".webp")
Sample = Tuple[str, int]


def is_image(name: str) -> bool:
    """Whether ``name`` has an image extension (case-insensitive)."""
    return os.path.splitext(name)[1].lower() in IMAGE_EXTENSIONS


@dataclasses.dataclass(frozen=True)
class Scan:
    """The classes found under a root: ``files[k]`` are class ``k``'s paths relative to root."""

    root: str
    classes: List[str]
    files: List[List[str]]
    ignored: int

    @property
    def total(self) -> int:
        return sum(len(f) for f in self.files)


def _visible(name: str) -> bool:
    return not name.startswith(".")


def _class_files(root: str, name: str) -> Tuple[List[str], int]:
    """Image paths under ``root/name`` (relative to root, ``/``-separated) and the ignored count."""
    found, ignored = [], 0
    for folder, subfolders, names in os.walk(os.path.join(root, name), followlinks=True):
        subfolders[:] = sorted(d for d in subfolders if _visible(d))
        for file_name in sorted(n for n in names if _visible(n)):
            if not is_image(file_name):
                ignored += 1
                continue
            relative = os.path.relpath(os.path.join(folder, file_name), root)
            found.append(relative.replace(os.sep, "/"))
    return found, ignored


def _check_paths(paths: Sequence[str]) -> None:
    """A path with a line break cannot be written in a list file."""
    bad = [p for p in paths if "\n" in p or "\r" in p]
    if bad:
        raise DataError(f"{len(bad)} file name(s) contain a line break, which a list file cannot "
                        f"hold, e.g. {bad[0]!r}; rename them")


def scan(root: str) -> Scan:
    """Find the class folders under ``root`` and their images; errors say how to fix the tree."""
    _cli.require_folder(root, "folder", "give the folder holding one subfolder per class")
    entries = sorted(e for e in os.listdir(root) if _visible(e))
    classes = [e for e in entries if os.path.isdir(os.path.join(root, e))]
    if not entries:
        raise DataError(f"folder '{root}' is empty; put the images in one subfolder per class, "
                        f"e.g. {os.path.join(root, 'cat', '001.jpg')}")
    if not classes:
        loose = sum(1 for e in entries if is_image(e))
        raise DataError(f"folder '{root}' has no class subfolders ({loose} images lie directly "
                        f"in it); move the images into one subfolder per class, e.g. "
                        f"{os.path.join(root, 'cat', '001.jpg')}")
    files, ignored = [], 0
    for name in classes:
        class_files, class_ignored = _class_files(root, name)
        files.append(class_files)
        ignored += class_ignored
    empty = [name for name, found in zip(classes, files) if not found]
    if empty:
        raise DataError(f"class folder(s) without images under '{root}': {', '.join(empty)} "
                        f"(image extensions: {' '.join(IMAGE_EXTENSIONS)}); add images or remove "
                        f"the folder(s), as every subfolder is a class")
    for found in files:
        _check_paths(found)
    return Scan(root, classes, files, ignored)


def val_count(size: int, val_fraction: float) -> int:
    """Images of a class of ``size`` going to val: rounded, leaving at least one for train."""
    return max(0, min(int(size * val_fraction + 0.5), size - 1))


def split(files: Sequence[Sequence[str]], val_fraction: float, seed: int,
          shuffle: bool = True) -> Tuple[List[Sample], List[Sample]]:
    """Stratified split of each class's files into (train, val) samples ``(path, label)``.

    Each class's files are shuffled with ``seed`` and the first :func:`val_count` go to val.
    With ``shuffle`` the lists are shuffled across classes too (an unshuffled list sorted by
    class would feed a net one class at a time); else they are sorted by label and path.
    """
    rng = random.Random(seed)
    train: List[Sample] = []
    val: List[Sample] = []
    for label, class_files in enumerate(files):
        order = sorted(class_files)
        rng.shuffle(order)
        cut = val_count(len(order), val_fraction)
        val.extend((path, label) for path in sorted(order[:cut]))
        train.extend((path, label) for path in sorted(order[cut:]))
    if shuffle:
        rng.shuffle(train)
        rng.shuffle(val)
    return train, val


def write_list(path: str, samples: Sequence[Sample]) -> None:
    """Write Caffe's ``path label`` lines (file names written byte for byte)."""
    with open(path, "wb") as f:
        for sample_path, label in samples:
            f.write(os.fsencode(sample_path) + b" " + str(label).encode() + b"\n")


def write_labels(path: str, classes: Sequence[str]) -> None:
    """Write ``label class-name`` lines."""
    with open(path, "wb") as f:
        for label, name in enumerate(classes):
            f.write(str(label).encode() + b" " + os.fsencode(name) + b"\n")


def read_labels(path: str) -> List[str]:
    """Class names by label from a ``labels.txt`` written by :func:`write_labels`."""
    names: dict = {}
    with open(path, "rb") as f:
        for number, raw in enumerate(f, 1):
            line = raw.rstrip(b"\r\n")
            if not line.strip():
                continue
            label, _, name = line.partition(b" ")
            if not label.isdigit():
                raise DataError(f"{path}:{number}: expected 'label name', got "
                                f"{line.decode('utf-8', 'replace')!r}")
            names[int(label)] = os.fsdecode(name)
    return [names.get(i, str(i)) for i in range(max(names, default=-1) + 1)]


def root_folder_value(root: str) -> str:
    """``root`` as a ``root_folder`` value: Caffe concatenates, so it must end with ``/``."""
    return root if root.endswith(("/", os.sep)) else root + "/"


def _fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number in [0, 1), got {text!r}") from None
    if not 0.0 <= value < 1.0:
        raise argparse.ArgumentTypeError(f"must be in [0, 1), got {text!r}")
    return value


def _parser() -> argparse.ArgumentParser:
    parser = _cli.make_parser(
        "make-list", "Make Caffe image lists (train.txt, val.txt, labels.txt) from a folder with "
                     "one\nsubfolder of images per class: labels by sorted folder name, a "
                     "stratified train/val\nsplit, paths relative to the folder (the layer's "
                     "root_folder).",
        epilog="example:\n  caffe-layers-make-list photos/ --val-fraction 0.2 --seed 1\n"
               "  -> photos/train.txt, photos/val.txt, photos/labels.txt")
    parser.add_argument("root", help="folder with one subfolder of images per class")
    parser.add_argument("--out-dir", metavar="DIR",
                        help="where to write train.txt, val.txt, labels.txt (default: ROOT)")
    parser.add_argument("--val-fraction", type=_fraction, default=0.2, metavar="F",
                        help="fraction of each class for val.txt, in [0, 1) (default: 0.2)")
    parser.add_argument("--seed", type=_cli.non_negative_int, default=0,
                        help="seed of the split and of the shuffle (default: 0)")
    parser.add_argument("--no-shuffle", dest="shuffle", action="store_false",
                        help="keep the lists sorted by label and path instead of shuffled")
    _cli.add_quiet(parser, _cli.NO_PROGRESS_BAR)
    return parser


def class_lines(found: Scan, train: list, val: list) -> List[str]:
    """The bar of images per class, with each class's train/val split."""
    train_counts = collections.Counter(label for _, label in train)
    val_counts = collections.Counter(label for _, label in val)
    counts = [len(files) for files in found.files]
    notes = [f"({train_counts[k]} train, {val_counts[k]} val)" for k in range(len(counts))]
    return ["images per class:"] + ["  " + line for line in
                                    _bars.class_bars(counts, found.classes, notes)]


def _report(found: Scan, out_dir: str, train: list, val: list) -> None:
    ignored = f" ({found.ignored} non-image files ignored)" if found.ignored else ""
    print(f"{len(found.classes)} classes, {found.total} images in '{found.root}'{ignored}")
    print(f"  train: {len(train):>7} images -> {os.path.join(out_dir, 'train.txt')}")
    print(f"  val:   {len(val):>7} images -> {os.path.join(out_dir, 'val.txt')}")
    print(f"  labels: {os.path.join(out_dir, 'labels.txt')}")
    print("\n".join(class_lines(found, train, val)))
    print(f"use in param_str: {{source: {os.path.join(out_dir, 'train.txt')}, "
          f"root_folder: \"{root_folder_value(found.root)}\"}}")
    print(f"check the images: caffe-layers-check-list "
          f"{shlex.quote(os.path.join(out_dir, 'train.txt'))} --root-folder "
          f"{shlex.quote(root_folder_value(found.root))}")


def _run(args: argparse.Namespace) -> None:
    found = scan(args.root)
    out_dir = args.root if args.out_dir is None else args.out_dir
    if os.path.exists(out_dir) and not os.path.isdir(out_dir):
        raise ConfigError(f"--out-dir '{out_dir}' is a file; give a folder")
    os.makedirs(out_dir, exist_ok=True)
    train, val = split(found.files, args.val_fraction, args.seed, args.shuffle)
    write_list(os.path.join(out_dir, "train.txt"), train)
    write_list(os.path.join(out_dir, "val.txt"), val)
    write_labels(os.path.join(out_dir, "labels.txt"), found.classes)
    _report(found, out_dir, train, val)


def main(argv: Sequence[str] | None = None) -> int:
    """The command line; returns the exit status."""
    return _cli.run(_parser(), _run, argv)


if __name__ == "__main__":
    raise SystemExit(main())
