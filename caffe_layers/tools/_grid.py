"""From a data layer's output batch back to pictures: undo mean and scale, tile, caption.

The layer computes ``(pixel - mean) * scale`` (Caffe's DataTransformer); :func:`to_pixels`
divides by ``scale``, adds the mean back, rounds and clips to 8 bits. A ``mean_file`` larger than
the (cropped) images is added at its centre window: exact for TEST centre crops; for TRAIN's
random crops and mirrors the window is approximate, which is invisible for the smooth mean images
of real datasets. Channels stay BGR, the order OpenCV writes, so the PNG shows true colours.
"""

from __future__ import annotations

import math
from typing import Sequence, Tuple, Union

import numpy as np

from caffe_layers.errors import ConfigError

Mean = Union[None, np.ndarray, Tuple[float, ...]]
GAP = 2
CAPTION_HEIGHT = 14
BACKGROUND = 48
MIN_TILE = 80  # the automatic zoom enlarges smaller images to at least this many pixels


def check_images(shape: Sequence[int], where: str) -> None:
    """ConfigError unless ``shape`` is ``(N, C, H, W)`` with C 1 or 3."""
    shape = tuple(int(d) for d in shape)
    if len(shape) != 4 or shape[1] not in (1, 3) or min(shape) < 1:
        raise ConfigError(f"{where} has shape {shape}; preview shows image batches shaped (N, C, "
                          f"H, W) with C = 1 (gray) or 3 (BGR); pick another layer with --layer")


def mean_window(mean: np.ndarray, height: int, width: int) -> np.ndarray:
    """The centre ``height x width`` window of a ``(C, Hm, Wm)`` mean, or its channel means."""
    _, mean_h, mean_w = mean.shape
    if mean_h < height or mean_w < width:
        return mean.mean(axis=(1, 2), keepdims=True)
    top, left = (mean_h - height) // 2, (mean_w - width) // 2
    return mean[:, top:top + height, left:left + width]


def to_pixels(data: np.ndarray, mean: Mean = None, scale: float = 1.0,
              stretch: bool = False) -> np.ndarray:
    """``(N, C, H, W)`` layer output -> ``(N, H, W, C)`` uint8 pixels (see module docstring).

    ``stretch`` maps the batch's min..max to 0..255 instead (for data that are not pixels).
    """
    values = data.astype(np.float64)
    if scale not in (0, 1):
        values /= scale
    if isinstance(mean, np.ndarray):
        values += mean_window(mean.astype(np.float64), *values.shape[2:])
    elif mean:
        values += np.asarray(mean, np.float64).reshape(-1, 1, 1)
    if stretch:
        low, high = values.min(), values.max()
        values = (values - low) * (255.0 / (high - low) if high > low else 0.0)
    return np.clip(np.rint(values), 0, 255).astype(np.uint8).transpose(0, 2, 3, 1)


def auto_zoom(height: int, width: int) -> int:
    """The integer zoom that makes a tile at least ``MIN_TILE`` pixels on its longer side."""
    return max(1, math.ceil(MIN_TILE / max(height, width)))


def grid_shape(count: int, height: int, width: int, columns: int, zoom: int) -> Tuple[int, int]:
    """``(height, width)`` in pixels of the grid :func:`tile` makes."""
    columns = min(columns, count)
    rows = math.ceil(count / columns)
    return (GAP + rows * (height * zoom + CAPTION_HEIGHT + GAP),
            GAP + columns * (width * zoom + GAP))


def _caption(text: str, width: int, channels: int) -> np.ndarray:
    import cv2

    strip = np.full((CAPTION_HEIGHT, width), BACKGROUND, np.uint8)
    cv2.putText(strip, text, (2, CAPTION_HEIGHT - 4), cv2.FONT_HERSHEY_SIMPLEX, 0.4, 255, 1,
                cv2.LINE_AA)
    return np.repeat(strip[:, :, np.newaxis], channels, axis=2)


def tile(images: np.ndarray, captions: Sequence[str], columns: int = 8,
         zoom: int | None = None) -> np.ndarray:
    """A grid of ``(N, H, W, C)`` uint8 images, each with its caption written below it.

    Images are enlarged ``zoom`` times by repeating pixels (so every pixel stays visible);
    ``None`` chooses :func:`auto_zoom`. Returns ``(H, W)`` for gray images, else ``(H, W, 3)``.
    """
    count, height, width, channels = images.shape
    zoom = auto_zoom(height, width) if zoom is None else zoom
    columns = min(columns, count)
    out_h, out_w = grid_shape(count, height, width, columns, zoom)
    canvas = np.full((out_h, out_w, channels), BACKGROUND, np.uint8)
    tile_h, tile_w = height * zoom, width * zoom
    for i in range(count):
        top = GAP + (i // columns) * (tile_h + CAPTION_HEIGHT + GAP)
        left = GAP + (i % columns) * (tile_w + GAP)
        enlarged = images[i].repeat(zoom, axis=0).repeat(zoom, axis=1)
        canvas[top:top + tile_h, left:left + tile_w] = enlarged
        canvas[top + tile_h:top + tile_h + CAPTION_HEIGHT, left:left + tile_w] = \
            _caption(captions[i], tile_w, channels)
    return canvas[:, :, 0] if channels == 1 else canvas


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:.3g}"


def captions(count: int, labels: Sequence[np.ndarray], names: Sequence[str] = ()) -> list:
    """One caption per image: its label values (``k name`` with class names), else its index."""
    if not labels:
        return [f"#{i}" for i in range(count)]
    texts = []
    for i in range(count):
        values = [float(v) for top in labels for v in np.ravel(top[i])]
        text = ",".join(_number(v) for v in values)
        if len(values) == 1 and values[0].is_integer() and 0 <= values[0] < len(names):
            text += " " + names[int(values[0])]
        texts.append(text)
    return texts
