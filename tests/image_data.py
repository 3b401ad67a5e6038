"""Write small image datasets into a directory: image files, list files and mean files.

Used by the layer tests and to make the ``demo_data`` folder that
``prototxt/imagelist_train_val.prototxt`` reads. Images are random but seeded; PNG files are
lossless, so a test can compare the layer's output with the array that was written. ``smooth``
images (low-frequency patterns) are for JPEG tests, where random noise would be mostly artefact.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import List, Sequence, Tuple

import cv2
import numpy as np

from caffe_layers.binaryproto import write_blobproto


@dataclasses.dataclass
class Dataset:
    """What :func:`write_dataset` wrote: the list file and, per line, the path as written in the
    list, the full path, the labels and the image array (HWC uint8, BGR or ``(H, W, 1)`` gray)."""

    list_path: Path
    names: List[str]
    files: List[Path]
    labels: np.ndarray
    images: List[np.ndarray]

    def __len__(self) -> int:
        return len(self.names)


def random_image(rng: np.random.Generator, height: int, width: int,
                 channels: int = 3) -> np.ndarray:
    """Uniform noise, ``(H, W, channels)`` uint8: every pixel tells crops and flips apart."""
    return rng.integers(0, 256, (height, width, channels), dtype=np.uint8)


def smooth_image(rng: np.random.Generator, height: int, width: int,
                 channels: int = 3) -> np.ndarray:
    """A few random low-frequency waves per channel, ``(H, W, channels)`` uint8."""
    y, x = np.mgrid[0:height, 0:width] / max(height, width)
    image = np.empty((height, width, channels), np.float64)
    for c in range(channels):
        fy, fx, phase = rng.uniform(0.5, 2.0), rng.uniform(0.5, 2.0), rng.uniform(0, 2 * np.pi)
        image[:, :, c] = 128 + 90 * np.sin(2 * np.pi * (fy * y + fx * x) + phase)
    return np.clip(np.rint(image), 0, 255).astype(np.uint8)


def write_image(path: os.PathLike, image: np.ndarray) -> Path:
    """Write ``image`` (HWC BGR or gray uint8) in the format of ``path``'s extension."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    ok, encoded = cv2.imencode(path.suffix, image)
    assert ok, f"OpenCV could not encode {path.suffix}"
    path.write_bytes(encoded.tobytes())
    return path


def write_list(path: os.PathLike, lines: Sequence[str], newline: str = "\n") -> Path:
    """Write an image list: one ``path label...`` line per entry, each ended by ``newline``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes("".join(line + newline for line in lines).encode("utf-8"))
    return path


def list_line(name: str, labels: Sequence[float]) -> str:
    return " ".join([name] + [f"{label:g}" for label in labels])


def write_dataset(root: os.PathLike, count: int, size: Tuple[int, int] = (8, 10), *,
                  channels: int = 3, seed: int = 0, list_name: str = "list.txt",
                  folder: str = "images", ext: str = ".png", labels: Sequence | None = None,
                  classes: int = 0, smooth: bool = False, name_format: str = "img_{:03d}",
                  root_folder: str | None = None, sizes: Sequence[Tuple[int, int]] = ()
                  ) -> Dataset:
    """Write ``count`` images of ``size`` (H, W) under ``root/folder`` and a list naming them.

    Labels default to the line index (unique, so a test can tell every sample apart), or the index
    modulo ``classes``; ``labels`` (``(count,)`` or ``(count, k)``) overrides both. The list names
    images relative to ``root_folder`` when given (``'<root>/'`` prefix stripped, for the layer's
    ``root_folder`` key), else by absolute path. ``sizes`` overrides the size of the first images.
    """
    root = Path(root)
    rng = np.random.default_rng(seed)
    if labels is None:
        labels = np.arange(count) % classes if classes else np.arange(count)
    labels = np.asarray(labels, np.float64).reshape(count, -1)
    make = smooth_image if smooth else random_image
    names, files, images = [], [], []
    for i in range(count):
        height, width = sizes[i] if i < len(sizes) else size
        image = make(rng, height, width, channels)
        file = write_image(root / folder / (name_format.format(i) + ext), image)
        names.append(str(file) if root_folder is None else os.path.relpath(file, root_folder))
        files.append(file)
        images.append(image)
    list_path = write_list(root / list_name, [list_line(n, row) for n, row in zip(names, labels)])
    return Dataset(list_path, names, files, labels, images)


def mean_of(images: Sequence[np.ndarray]) -> np.ndarray:
    """The per-pixel mean ``(C, H, W)`` float32 of equally sized HWC images, as
    ``compute_image_mean`` computes it."""
    stack = np.stack([image.astype(np.float64) for image in images])
    return stack.mean(axis=0).transpose(2, 0, 1).astype(np.float32)


def write_demo_data(root: os.PathLike, train: int = 48, val: int = 16, classes: int = 4,
                    size: Tuple[int, int] = (64, 64), seed: int = 0) -> Path:
    """Make ``root/demo_data``: ``train.txt``, ``val.txt`` (paths relative to ``demo_data/``),
    PNG images in ``train/`` and ``val/``, and ``mean.binaryproto`` of the training images.

    Returns the ``demo_data`` folder. Run the image-list solver from ``root``.
    """
    folder = Path(root) / "demo_data"
    train_set = write_dataset(folder, train, size, seed=seed, list_name="train.txt",
                              folder="train", classes=classes, smooth=True,
                              root_folder=str(folder))
    write_dataset(folder, val, size, seed=seed + 1, list_name="val.txt", folder="val",
                  classes=classes, smooth=True, root_folder=str(folder))
    write_blobproto(folder / "mean.binaryproto", mean_of(train_set.images)[np.newaxis])
    return folder


# A folder of photos as users have them: line: (list text, what check-list says; None: fine).
BAD_FOLDER_LINES = {
    1: ("circle/a.png 0", None),
    2: ("circle/b.jpg 0", None),
    3: ("circle/empty.jpg 0", "empty: 0 bytes"),
    4: ("cross/c.png 1", None),
    5: ("", None),  # a blank line: skipped, as by the layer
    6: ("cross/trunc.jpg 1", "truncated: cut short: no end-of-image marker"),
    7: ("cross/junk.png 1", "undecodable: OpenCV cannot decode it: corrupt, or not an image"),
    8: ("square/gone.png 2", "missing: no such file"),
    9: ("square/e.png 2", None),
    10: ("cross/d.png one", "malformed line: labels must be numbers (integer or float) within "
                            "float32, got 'one' in 'cross/d.png one'"),
    11: ("justapath", "malformed line: expected a path and 1 label separated by spaces, got "
                      "'justapath'"),
    12: ("cross/d.png 1", None),
    13: ("cross/folder.png 1", "unreadable: cannot be read (a folder? permissions?)"),
}
BAD_FOLDER_GOOD = ("circle/a.png", "circle/b.jpg", "cross/c.png", "square/e.png", "cross/d.png")


def _gradient(seed: int) -> np.ndarray:
    """A smooth 6x5 BGR image (JPEG keeps it close)."""
    y, x = np.mgrid[0:6, 0:5]
    return np.stack([(y * 40 + x * 10 + seed * 7 + c * 50) % 256 for c in range(3)],
                    axis=2).astype(np.uint8)


def write_bad_folder(root: Path) -> Path:
    """``root`` with good 6x5 images and bad ones (empty, truncated, not an image, a folder),
    ``train.txt`` (:data:`BAD_FOLDER_LINES`) and ``labels.txt``; returns ``root``."""
    for seed, name in enumerate(BAD_FOLDER_GOOD):
        write_image(root / name, _gradient(seed))
    (root / "circle" / "empty.jpg").write_bytes(b"")
    whole = (root / "circle" / "b.jpg").read_bytes()
    (root / "cross" / "trunc.jpg").write_bytes(whole[:len(whole) // 2])
    (root / "cross" / "junk.png").write_text("not an image at all")
    (root / "cross" / "folder.png").mkdir()
    (root / "train.txt").write_text("".join(text + "\n" for text, _ in
                                            BAD_FOLDER_LINES.values()))
    (root / "labels.txt").write_text("0 circle\n1 cross\n2 square\n")
    return root
