"""From a data layer's output batch back to pictures: undo mean and scale, tile, caption, note.

The layer computes ``(pixel - mean) * scale`` (Caffe's DataTransformer). The layers of this
package undo that exactly, row by row (``undo_normalization`` of their producers, see
:mod:`caffe_layers.pipeline`); for any other layer :func:`undo` guesses from its ``param_str``
keys: it divides by ``scale`` and adds the mean back, a ``mean_file`` larger than the (cropped)
images at its centre window, which is exact only for centre crops, and says so. :func:`to_uint8`
rounds and clips to 8 bits. Channels stay BGR, the order OpenCV writes, so a PNG shows true
colours. :func:`with_note` writes what a picture shows (or approximates) under it.
"""

from __future__ import annotations

import math
from typing import List, Sequence, Tuple, Union

import numpy as np

from caffe_layers.errors import ConfigError, DataError
from caffe_layers.tools import _cli

Mean = Union[None, np.ndarray, Tuple[float, ...]]
GAP = 2
CAPTION_HEIGHT = 14
NOTE_LINE_HEIGHT = 14
BACKGROUND = 48
MIN_TILE = 80  # the automatic zoom enlarges smaller images to at least this many pixels
PNG_COMPRESSION = 9  # zlib's best: enlarged, noisy images take half the bytes of OpenCV's default
_FONT_SCALE = 0.4


def check_images(shape: Sequence[int], where: str) -> None:
    """ConfigError unless ``shape`` is ``(N, C, H, W)`` with C 1 or 3."""
    shape = tuple(int(d) for d in shape)
    if len(shape) != 4 or shape[1] not in (1, 3) or min(shape) < 1:
        raise ConfigError(f"{where} has shape {shape}; preview shows image batches shaped (N, C, "
                          f"H, W) with C = 1 (gray) or 3 (BGR); pick another layer with --layer")


def mean_window(mean: np.ndarray, height: int, width: int) -> Tuple[np.ndarray, str]:
    """The centre ``height x width`` window of a ``(C, Hm, Wm)`` mean, or its channel means;
    and what that approximates ('' when the mean has the images' size)."""
    _, mean_h, mean_w = mean.shape
    if mean_h < height or mean_w < width:
        return (mean.mean(axis=(1, 2), keepdims=True),
                f"the mean_file ({mean_h}x{mean_w}) is smaller than the images: its channel "
                f"means were added back instead")
    if (mean_h, mean_w) == (height, width):
        return mean, ""
    top, left = (mean_h - height) // 2, (mean_w - width) // 2
    return (mean[:, top:top + height, left:left + width],
            "approximate: the mean_file was added back at its centre window, since this layer "
            "does not say where it cropped (exact only for centre crops)")


def undo(data: np.ndarray, mean: Mean = None, scale: float = 1.0) -> Tuple[np.ndarray, str]:
    """``data / scale + mean`` in float64, and what was approximated ('' when nothing)."""
    values = data.astype(np.float64)
    if scale not in (0, 1):
        values /= scale
    note = ""
    if isinstance(mean, np.ndarray):
        window, note = mean_window(mean.astype(np.float64), *values.shape[2:])
        values += window
    elif mean:
        values += np.asarray(mean, np.float64).reshape(-1, 1, 1)
    return values, note


def to_uint8(values: np.ndarray, stretch: bool = False) -> np.ndarray:
    """``(N, C, H, W)`` pixel values -> ``(N, H, W, C)`` uint8, rounded and clipped.

    ``stretch`` maps the batch's min..max to 0..255 instead (for data that are not pixels).
    """
    if stretch:
        low, high = values.min(), values.max()
        values = (values - low) * (255.0 / (high - low) if high > low else 0.0)
    return np.clip(np.rint(values), 0, 255).astype(np.uint8).transpose(0, 2, 3, 1)


def to_pixels(data: np.ndarray, mean: Mean = None, scale: float = 1.0,
              stretch: bool = False) -> np.ndarray:
    """:func:`undo` then :func:`to_uint8`."""
    return to_uint8(undo(data, mean, scale)[0], stretch)


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
    return _text_strip([text], width, CAPTION_HEIGHT, channels)


def _text_strip(lines: Sequence[str], width: int, line_height: int, channels: int
                ) -> np.ndarray:
    import cv2

    strip = np.full((line_height * len(lines), width), BACKGROUND, np.uint8)
    for number, line in enumerate(lines):
        cv2.putText(strip, line, (2, (number + 1) * line_height - 4), cv2.FONT_HERSHEY_SIMPLEX,
                    _FONT_SCALE, 255, 1, cv2.LINE_AA)
    return np.repeat(strip[:, :, np.newaxis], channels, axis=2)


def text_width(text: str) -> int:
    """Pixels ``text`` takes in the captions' font."""
    import cv2

    return int(cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, _FONT_SCALE, 1)[0][0])


def wrap(text: str, width: int) -> List[str]:
    """``text`` in lines that fit ``width`` pixels (a word longer than a line gets its own)."""
    lines: List[str] = []
    for word in text.split():
        if lines and text_width(f"{lines[-1]} {word}") + 4 <= width:
            lines[-1] = f"{lines[-1]} {word}"
        else:
            lines.append(word)
    return lines


def with_note(picture: np.ndarray, text: str) -> np.ndarray:
    """``picture`` (``(H, W)`` or ``(H, W, 3)`` uint8) with ``text`` written below it, wrapped
    to its width; unchanged for an empty text."""
    if not text:
        return picture
    channels = 1 if picture.ndim == 2 else picture.shape[2]
    strip = _text_strip(wrap(text, picture.shape[1]), picture.shape[1], NOTE_LINE_HEIGHT,
                        channels)
    if picture.ndim == 2:
        strip = strip[:, :, 0]
    gap = np.full((GAP,) + picture.shape[1:], BACKGROUND, np.uint8)
    return np.concatenate([picture, strip, gap])


def save_png(path: str, picture: np.ndarray) -> None:
    """Write ``picture`` as a PNG (creating its folder), compressed with zlib's best (the
    pictures are small; OpenCV's default run-length coding doubles an enlarged grid's bytes);
    DataError if OpenCV cannot."""
    import cv2

    _cli.make_parent(path)
    if not cv2.imwrite(path, picture, [cv2.IMWRITE_PNG_COMPRESSION, PNG_COMPRESSION]):
        raise DataError(f"OpenCV could not write '{path}'; check that the folder is writable")


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
