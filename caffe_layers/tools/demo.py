"""``caffe-layers-demo``: the README's first command, from nothing to a trained net and a preview.

Works in any directory, also outside the repository: what it needs ships in the package.

1. Writes the solver and net into ``prototxt/`` unless they are there (the package's copies,
   ``caffe_layers/tools/demo_files/``, which equal the repository's ``prototxt/`` files).
2. Makes ``demo_data/`` in the working directory unless it is already complete: coloured shapes
   in four classes as 64x64 JPEGs (:mod:`caffe_layers.tools._shapes`), then ``train.txt``,
   ``val.txt``, ``labels.txt`` with ``caffe-layers-make-list`` and ``mean.binaryproto`` with
   ``caffe-layers-compute-mean`` (no resize).
3. Trains ``prototxt/imagelist_solver.prototxt``: through real Caffe (pycaffe's solver) when
   ``import caffe`` finds it, else through :func:`caffe_layers.testing.runner.run`, where only
   the Python data layers compute; prints the loss and the test accuracy (real Caffe only) and
   the data layer's steady-state images per second (:mod:`caffe_layers.tools._train`).
4. Writes ``demo_output/preview.png``: one TRAIN batch as the net receives it.
5. Prints where everything is and the commands to try next.

``--example hdf5|npy|multi|dataset`` does the same for the other examples of ``prototxt/``,
their data in ``example_data/`` (:mod:`caffe_layers.tools._examples`). Running it again reuses
the data and rewrites ``demo_output/``; the solver's paths are relative to the working
directory, as in Caffe.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import time
from typing import Any, Sequence

from caffe_layers.errors import DataError
from caffe_layers.tools import _cli, _examples, _shapes, _train
from caffe_layers.tools.progress import Progress

DATA = "demo_data"
SOLVER = os.path.join("prototxt", "imagelist_solver.prototxt")
PER_CLASS = 400
EXAMPLES_SHOWN = ("hdf5", "npy", "multi", "dataset")
DATA_FILES = ("train.txt", "val.txt", "labels.txt", "mean.binaryproto")


def _complete(folder: str) -> bool:
    return all(os.path.isfile(os.path.join(folder, name)) for name in DATA_FILES)


def _call(tool_main: Any, argv: Sequence[str]) -> None:
    status = tool_main(list(argv))
    if status:
        raise DataError(f"the demo dataset could not be made (step `{' '.join(argv)}` exited "
                        f"with {status}, see above); delete '{DATA}/' and run the demo again")


def make_dataset(folder: str, per_class: int, quiet: bool) -> None:
    """Images, lists and mean of the demo dataset in ``folder``."""
    from caffe_layers.tools import compute_mean, make_list

    total = per_class * len(_shapes.CLASSES)
    with Progress(total, "shapes", enabled=False if quiet else None) as bar:
        _shapes.write_dataset(folder, per_class, seed=0, progress=bar.advance)
    print(f"wrote {total} JPEGs ({_shapes.SIZE}x{_shapes.SIZE}) of "
          f"{', '.join(_shapes.CLASSES)} into {folder}/")
    _call(make_list.main, [folder, "--val-fraction", "0.2", "--seed", "0"])
    _call(compute_mean.main, [os.path.join(folder, "train.txt"), "--root-folder",
                              folder + "/", "--out", os.path.join(folder, "mean.binaryproto"),
                              "--quiet"])


def _next_steps(out: str, preview_png: str, net: str, solver: str, seconds: float) -> str:
    return f"""
done in {seconds:.1f} s
  dataset:  {DATA}/<class>/*.jpg, {DATA}/train.txt, val.txt, labels.txt, mean.binaryproto
  net:      {net}
  preview:  {preview_png}

next, try:
  caffe-layers-preview {net} --phase TEST --labels {DATA}/labels.txt --out {out}/val.png
  caffe-layers-make-list path/to/images --val-fraction 0.2      (one subfolder per class)
  caffe-layers-check-list path/to/images/train.txt --root-folder path/to/images/
  caffe-layers-compute-mean path/to/images/train.txt --root-folder path/to/images/ \\
      --new-height 64 --new-width 64
  then point source, root_folder and mean_file in {net} at your files and train:
  caffe train --solver {solver}     (or: python -m caffe_layers.testing.runner {solver})
  the other examples: caffe-layers-demo --example {{{','.join(EXAMPLES_SHOWN)}}}"""


def _example_steps(example: _examples.Example, preview_png: str, net: str, solver: str,
                   seconds: float) -> str:
    data = f"{_examples.DATA}/" if example.write_data else "none (the dataset is Python code)"
    return f"""
done in {seconds:.1f} s
  data:     {data}
  net:      {net}
  preview:  {preview_png}
train it again:
  python -m caffe_layers.testing.runner {solver}   (or: caffe train --solver {solver})"""


def _parser() -> argparse.ArgumentParser:
    parser = _cli.make_parser(
        "demo",
        "Make a small synthetic dataset (coloured shapes, 4 classes) in demo_data/, train the\n"
        "example solver on it (real Caffe when importable, else caffe_layers' runner), print\n"
        "the loss, the accuracy and the data layer's images/s, and write a preview of one\n"
        "training batch. Works in any directory: the prototxt files are written into\n"
        "prototxt/ unless they are there. --example runs the other examples (their data in\n"
        "example_data/).")
    parser.add_argument("--example", choices=sorted(_examples.EXAMPLES), default="imagelist",
                        help="which example to make and train (default: imagelist, the image "
                             "list demo)")
    parser.add_argument("--out", default="demo_output", metavar="DIR",
                        help="where the preview goes (default: demo_output)")
    parser.add_argument("--iterations", type=_cli.non_negative_int, metavar="N",
                        help="training iterations (default: the solver's max_iter)")
    parser.add_argument("--solver", help="solver prototxt (default: the example's, "
                                         "prototxt/<example>_solver.prototxt)")
    parser.add_argument("--fresh", action="store_true",
                        help="remake the example's data even if it is complete")
    _cli.add_quiet(parser)
    return parser


def _make_data(example: _examples.Example, args: argparse.Namespace) -> None:
    """The example's data, unless it is complete (and not ``--fresh``)."""
    if example.name == "imagelist":
        if args.fresh or not _complete(DATA):
            make_dataset(DATA, PER_CLASS, args.quiet)
        else:
            print(f"using the existing {DATA}/ (--fresh remakes it)")
    elif example.write_data is not None:
        if args.fresh or not example.data_complete():
            os.makedirs(_examples.DATA, exist_ok=True)
            example.write_data(_examples.DATA)
            print(f"wrote the {example.name} example's data into {_examples.DATA}/")
        else:
            print(f"using the existing {_examples.DATA}/ (--fresh remakes it)")


def _preview(example: _examples.Example, net: str, out: str) -> str:
    """Write the preview of one TRAIN batch; its path."""
    from caffe_layers.tools import preview

    name = "preview.png" if example.name == "imagelist" else f"preview_{example.name}.png"
    png = os.path.join(out, name)
    argv = [net, "--phase", "TRAIN", "--out", png]
    if example.name == "imagelist":
        argv += ["--labels", os.path.join(DATA, "labels.txt")]
    if example.stretch:
        argv.append("--stretch")
    if preview.main(argv):
        raise DataError(f"the preview of {net} failed (see above)")
    return png


def _run(args: argparse.Namespace) -> None:
    from caffe_layers.testing.runner import read_solver

    started = time.perf_counter()
    example = _examples.EXAMPLES[args.example]
    solver = args.solver
    if solver is None:
        solver = example.solver
        for path in _examples.write_prototxt(example):
            print(f"wrote {path} (the package's copy)")
    _cli.require_file(solver, "solver", "give an existing solver prototxt, or leave out "
                                        "--solver to use the example's")
    _make_data(example, args)
    os.makedirs(args.out, exist_ok=True)
    os.makedirs("demo_output", exist_ok=True)  # the solvers' snapshot_prefix folder
    os.environ.setdefault("GLOG_minloglevel", "1")  # real Caffe: warnings only (0 shows its log)
    _train.train(solver, args.iterations)
    net = read_solver(solver).train_net
    png = _preview(example, net, args.out)
    seconds = time.perf_counter() - started
    if example.name == "imagelist":
        print(_next_steps(args.out, png, net, solver, seconds))
    else:
        print(_example_steps(example, png, net, solver, seconds))


def main(argv: Sequence[str] | None = None) -> int:
    """The command line; returns the exit status."""
    return _cli.run(_parser(), _run, argv)


if __name__ == "__main__":
    with contextlib.suppress(BrokenPipeError):
        sys.exit(main())
