"""A small synthetic image dataset that a net can learn: coloured shapes on noisy backgrounds.

Four classes (circle, cross, square, triangle). Every image draws its background colour and
gradient, the shape's colour (always contrasting with the background), size, position and
rotation, then adds Gaussian noise, so only the shape tells the class. Written as 64x64 JPEGs in
one subfolder per class, the layout :mod:`caffe_layers.tools.make_list` reads. Image ``i`` of a
class is a pure function of ``(seed, class, i)``.
"""

from __future__ import annotations

import math
import os
from typing import Callable, Dict, List

import numpy as np

SIZE = 64
CLASSES = ("circle", "cross", "square", "triangle")


def _colour_pair(rng: np.random.Generator) -> tuple:
    """A background and a shape colour (BGR) that differ clearly."""
    background = rng.integers(0, 256, 3)
    while True:
        colour = rng.integers(0, 256, 3)
        if np.abs(colour - background).sum() > 180:
            return background, colour


def _background(rng: np.random.Generator, colour: np.ndarray) -> np.ndarray:
    """A ``SIZE x SIZE`` float image: the colour with a soft random gradient."""
    ramp = np.linspace(-1.0, 1.0, SIZE)
    angle = rng.uniform(0, 2 * math.pi)
    gradient = math.cos(angle) * ramp[np.newaxis, :] + math.sin(angle) * ramp[:, np.newaxis]
    strength = rng.uniform(0, 30)
    return colour[np.newaxis, np.newaxis, :] + strength * gradient[:, :, np.newaxis]


def _polygon(centre: np.ndarray, radius: float, angle: float, points: np.ndarray) -> np.ndarray:
    """``points`` (unit shape) rotated by ``angle``, scaled by ``radius``, moved to ``centre``."""
    rotation = np.array([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]])
    return np.round(centre + radius * points @ rotation.T).astype(np.int32)


_SQUARE = np.array([[-1, -1], [1, -1], [1, 1], [-1, 1]]) * 0.75
_TRIANGLE = np.array([[0, -1], [0.866, 0.5], [-0.866, 0.5]])
_CROSS = np.array([[-0.3, -1], [0.3, -1], [0.3, -0.3], [1, -0.3], [1, 0.3], [0.3, 0.3],
                   [0.3, 1], [-0.3, 1], [-0.3, 0.3], [-1, 0.3], [-1, -0.3], [-0.3, -0.3]])


def _draw(name: str, canvas: np.ndarray, centre: np.ndarray, radius: float, angle: float,
          colour: tuple) -> None:
    import cv2

    if name == "circle":
        cv2.circle(canvas, tuple(int(c) for c in centre), int(radius), colour, -1, cv2.LINE_AA)
        return
    points = {"square": _SQUARE, "triangle": _TRIANGLE, "cross": _CROSS}[name]
    cv2.fillPoly(canvas, [_polygon(centre, radius, angle, points)], colour, cv2.LINE_AA)


def shape_image(name: str, rng: np.random.Generator) -> np.ndarray:
    """One ``SIZE x SIZE`` BGR uint8 image of shape ``name``."""
    background, colour = _colour_pair(rng)
    canvas = np.clip(_background(rng, background), 0, 255).astype(np.uint8)
    radius = rng.uniform(12, 24)
    margin = radius + 2
    centre = rng.uniform(margin, SIZE - margin, 2)
    _draw(name, canvas, centre, radius, rng.uniform(0, 2 * math.pi),
          tuple(int(c) for c in colour))
    noisy = canvas + rng.normal(0, 8, canvas.shape)
    return np.clip(noisy, 0, 255).astype(np.uint8)


def write_dataset(folder: str, per_class: int, seed: int = 0,
                  progress: Callable[[int], None] | None = None) -> Dict[str, List[str]]:
    """Write ``per_class`` JPEGs of every class into ``folder/<class>/``; the paths written."""
    import cv2

    written: Dict[str, List[str]] = {}
    for label, name in enumerate(CLASSES):
        os.makedirs(os.path.join(folder, name), exist_ok=True)
        written[name] = []
        for i in range(per_class):
            rng = np.random.default_rng([seed, label, i])
            path = os.path.join(folder, name, f"{name}_{i:04d}.jpg")
            if not cv2.imwrite(path, shape_image(name, rng), [cv2.IMWRITE_JPEG_QUALITY, 90]):
                raise OSError(f"OpenCV could not write '{path}'")
            written[name].append(path)
            if progress is not None:
                progress(1)
    return written
