#!/usr/bin/env python3
"""Regenerate the pictures the README shows, in docs/images/, from the demo's data.

    python scripts/readme_pictures.py [--out docs/images]

Deterministic: the demo's shapes (seed 0, a smaller set), its lists and mean as ``make demo``
makes them, and the repository's ``prototxt/imagelist_train_val.prototxt`` (seeded shuffle,
crops and mirrors), all in a temporary folder; always the package's fake ``caffe``, so the
pictures do not depend on which Caffe is installed. Writes

- ``train_preview.png``: the first 8 images of a TRAIN batch (random crop and mirror, exact);
- ``test_preview.png``: the first 8 images of a TEST batch (centre crop);
- ``augment.png``: one training image (a triangle) under 8 draws of the TRAIN transform;
- ``mean.png``: the mean image, as ``caffe-layers-compute-mean --png`` writes it.

They are documentation, committed with the README (each well under 100 KB); run this again
after changing a tool's pictures or the example net.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import sys
import tempfile
from typing import Iterator, Sequence

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)
os.environ["CAFFE_LAYERS_FAKE_CAFFE"] = "1"  # before anything imports caffe

from caffe_layers.tools import _shapes, compute_mean, make_list, preview  # noqa: E402

PER_CLASS = 40
NET = os.path.join("prototxt", "imagelist_train_val.prototxt")
AUGMENTED_CLASS = "triangle"  # not mirror-symmetric, so the mirrored draws show
PICTURES = ("train_preview.png", "test_preview.png", "augment.png", "mean.png")


@contextlib.contextmanager
def working_directory(path: str) -> Iterator[None]:
    """Run in ``path`` (the example net's paths are relative to it, as in Caffe)."""
    before = os.getcwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(before)


def call(tool_main, argv: Sequence[str]) -> None:
    status = tool_main([str(a) for a in argv])
    if status:
        raise SystemExit(f"readme_pictures.py: `{' '.join(map(str, argv))}` exited with {status}")


def make(out: str) -> None:
    """Every picture into ``out`` (an absolute folder)."""
    with tempfile.TemporaryDirectory(prefix="readme_pictures_") as tmp, working_directory(tmp):
        _shapes.write_dataset("demo_data", PER_CLASS, seed=0)
        call(make_list.main, ["demo_data", "--val-fraction", "0.2", "--seed", "0"])
        call(compute_mean.main, ["demo_data/train.txt", "--root-folder", "demo_data/", "--out",
                                 "demo_data/mean.binaryproto", "--png",
                                 os.path.join(out, "mean.png"), "--quiet"])
        os.makedirs("prototxt")
        shutil.copy(os.path.join(REPO, NET), NET)
        labels = ["--labels", "demo_data/labels.txt"]
        call(preview.main, [NET, "--phase", "TRAIN", "--limit", "8", *labels, "--out",
                            os.path.join(out, "train_preview.png")])
        call(preview.main, [NET, "--phase", "TEST", "--limit", "8", *labels, "--out",
                            os.path.join(out, "test_preview.png")])
        call(preview.main, [NET, "--augment", "8", "--sample", str(first_of(AUGMENTED_CLASS)),
                            "--out", os.path.join(out, "augment.png")])


def first_of(name: str) -> int:
    """The index in demo_data/train.txt of the first image of class ``name``."""
    label = _shapes.CLASSES.index(name)
    with open(os.path.join("demo_data", "train.txt")) as f:
        labels = [int(line.rsplit(" ", 1)[1]) for line in f if line.strip()]
    return labels.index(label)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="readme_pictures.py",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default=os.path.join(REPO, "docs", "images"),
                        help="the folder to write (default: docs/images of this repository)")
    args = parser.parse_args(argv)
    out = os.path.abspath(args.out)
    os.makedirs(out, exist_ok=True)
    make(out)
    for name in PICTURES:
        size = os.path.getsize(os.path.join(out, name))
        print(f"{os.path.join(out, name)}: {size / 1024:.0f} KB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
