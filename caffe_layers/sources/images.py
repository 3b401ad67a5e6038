"""Reading one image file as Caffe's ``ImageData`` does: OpenCV, 8-bit, BGR or gray.

The file's bytes are read by :func:`caffe_layers.files.read_bytes` (a local path or a URL; or
handed in, already read ahead) and decoded with ``cv2.imdecode``, so a missing file, an
unreadable one and a corrupt one give different :class:`DataError` messages, and non-ASCII paths
work everywhere. A JPEG without its end-of-image marker is refused as truncated: libjpeg
would only warn and fill the missing rows with gray (older OpenCV) or fail (newer OpenCV).

Images are returned HWC, ``(H, W, 3)`` BGR or ``(H, W, 1)`` gray, so that every later step sees
the channel axis. Optional reduced decoding (``reduce`` 2, 4 or 8) lets libjpeg decode at 1/2,
1/4 or 1/8 of the size, which is much cheaper when the image is resized down afterwards.
"""

from __future__ import annotations

import functools
import os
import re
import struct
from typing import Any, Mapping, Sequence, Tuple

import numpy as np

from caffe_layers.errors import ConfigError, DataError
from caffe_layers.files import is_url, read_bytes, shown

REDUCE_FACTORS = (1, 2, 4, 8)
_JPEG_SOI = b"\xff\xd8"
_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
# A marker ending entropy-coded data: 0xFF not followed by a stuffed 0x00, a restart marker
# (RST0-7) or another 0xFF (fill byte).
_SCAN_END = re.compile(rb"\xff[^\x00\xd0-\xd7\xff]")
_STANDALONE = frozenset(range(0xD0, 0xD8)) | {0x01}
_SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
_EOI, _SOS = 0xD9, 0xDA


def _prefix(where: str) -> str:
    return f"{where}: " if where else ""


def _jpeg_walk(data: bytes, stop_at_sof: bool) -> Tuple[bool, Tuple[int, int] | None]:
    """Walk a JPEG's markers: (whether the end-of-image marker is reached, (H, W) from the SOF).

    Stops early at the frame header when ``stop_at_sof`` is set.
    """
    size = None
    pos = 2
    end = len(data)
    while pos < end:
        pos = data.find(b"\xff", pos)
        while 0 <= pos < end - 1 and data[pos + 1] == 0xFF:
            pos += 1
        if pos < 0 or pos >= end - 1:
            return False, size
        marker = data[pos + 1]
        if marker == _EOI:
            return True, size
        if marker in _STANDALONE:
            pos += 2
            continue
        if pos + 4 > end:
            return False, size
        length = struct.unpack_from(">H", data, pos + 2)[0]
        if marker in _SOF and pos + 9 <= end:
            size = struct.unpack_from(">HH", data, pos + 5)
            if stop_at_sof:
                return False, size
        pos += 2 + length
        if marker == _SOS:
            match = _SCAN_END.search(data, pos)
            if match is None:
                return False, size
            pos = match.start()
    return False, size


def jpeg_is_complete(data: bytes) -> bool:
    """Whether a JPEG's bytes reach its end-of-image marker (trailing bytes after it are fine)."""
    if data.endswith(b"\xff\xd9"):
        return True
    return _jpeg_walk(data, stop_at_sof=False)[0]


def stored_size(data: bytes) -> Tuple[int, int] | None:
    """``(height, width)`` from a JPEG or PNG header without decoding, else ``None``.

    This is the size as stored: an EXIF orientation may swap it when decoded.
    """
    if data.startswith(_JPEG_SOI):
        return _jpeg_walk(data, stop_at_sof=True)[1]
    if data.startswith(_PNG_MAGIC) and data[12:16] == b"IHDR" and len(data) >= 24:
        width, height = struct.unpack_from(">II", data, 16)
        return height, width
    return None


def reduce_factor(stored_h: int, stored_w: int, new_h: int, new_w: int) -> int:
    """The largest factor in {1, 2, 4, 8} decoding at least ``new_h`` x ``new_w`` pixels.

    Uses ``stored // factor``, a lower bound of every decoder's reduced size (libjpeg rounds up,
    OpenCV's resize of other formats rounds down), so the target is never undershot.
    No resize (``new_h`` or ``new_w`` 0) means 1.
    """
    if new_h <= 0 or new_w <= 0:
        return 1
    for factor in reversed(REDUCE_FACTORS):
        if stored_h // factor >= new_h and stored_w // factor >= new_w:
            return factor
    return 1


def _flags(is_color: bool, factor: int) -> int:
    import cv2

    if factor == 1:
        return cv2.IMREAD_COLOR if is_color else cv2.IMREAD_GRAYSCALE
    kind = "COLOR" if is_color else "GRAYSCALE"
    return getattr(cv2, f"IMREAD_REDUCED_{kind}_{factor}")


@functools.lru_cache(maxsize=None)
def imdecode_reduces() -> bool:
    """Whether ``cv2.imdecode`` honours the reduced flags (OpenCV 4.2 only does in ``imread``)."""
    import cv2

    ok, encoded = cv2.imencode(".jpg", np.zeros((16, 16, 3), np.uint8))
    decoded = cv2.imdecode(encoded, cv2.IMREAD_REDUCED_COLOR_2)
    return bool(ok) and decoded is not None and decoded.shape[:2] == (8, 8)


def read_image_bytes(path: str, where: str = "",
                     storage_options: Mapping[str, Any] | None = None) -> bytes:
    """The bytes of the image file ``path``; DataError naming ``where`` if missing or empty."""
    data = read_bytes(path, "image", prefix=_prefix(where), storage_options=storage_options)
    _refuse_empty(data, path, where)
    return data


def _refuse_empty(data: bytes, path: str, where: str) -> None:
    if not data:
        raise DataError(f"{_prefix(where)}image '{shown(path)}' is empty (0 bytes)")


def _choose_factor(data: bytes, reduce: int, min_hw: Sequence[int] | None) -> int:
    if reduce == 1 or not data.startswith(_JPEG_SOI):
        return 1
    if min_hw is None:
        return reduce
    size = stored_size(data)
    if size is None:
        return 1
    return min(reduce, reduce_factor(size[0], size[1], min_hw[0], min_hw[1]))


def _decode(data: bytes, flags: int) -> np.ndarray | None:
    import cv2

    return cv2.imdecode(np.frombuffer(data, np.uint8), flags)


def _decode_reduced(path: str, data: bytes, flags: int) -> np.ndarray | None:
    """Reduced decoding, through ``cv2.imread`` where ``imdecode`` ignores the flag (a URL is
    decoded in full there)."""
    if imdecode_reduces() or is_url(path):
        return _decode(data, flags)
    import cv2

    try:
        image = cv2.imread(path, flags)
    except UnicodeEncodeError:  # a path OpenCV cannot take: decode at full size instead
        image = None
    return image if image is not None else _decode(data, flags)


def read_image(path: str, is_color: bool = True, reduce: int = 1, where: str = "",
               min_hw: Sequence[int] | None = None, data: bytes | None = None,
               storage_options: Mapping[str, Any] | None = None) -> np.ndarray:
    """Read an image file as ``(H, W, 3)`` BGR or ``(H, W, 1)`` gray uint8.

    ``is_color`` as Caffe's: alpha dropped, gray expanded to BGR, or decoded to one channel.
    ``reduce`` (1, 2, 4 or 8) decodes JPEGs at that fraction of their size; other formats are
    always decoded in full (OpenCV would decode them in full and resize, which is slower). With
    ``min_hw = (new_height, new_width)`` the factor is lowered per image so the decoded image is
    never smaller than that. ``where`` (e.g. ``'train.txt:17'``) prefixes error messages.
    ``data`` is the file's bytes when already read (ahead of time), ``storage_options`` go to the
    storage client of a URL. Raises :class:`DataError` for a missing, unreadable, empty,
    truncated or corrupt file, and :class:`ConfigError` for a ``reduce`` not in {1, 2, 4, 8}.
    """
    if reduce not in REDUCE_FACTORS:
        raise ConfigError(f"reduce: must be one of {REDUCE_FACTORS}, got {reduce!r}")
    path = os.fspath(path)
    if data is None:
        data = read_image_bytes(path, where, storage_options)
    else:
        _refuse_empty(data, path, where)
    what = f"image '{shown(path)}'"
    _refuse_truncated(data, what, where)
    factor = _choose_factor(data, reduce, min_hw)
    if factor > 1:
        image = _decode_reduced(path, data, _flags(is_color, factor))
        if image is not None and min_hw is not None and (
                image.shape[0] < min_hw[0] or image.shape[1] < min_hw[1]):
            image = None  # rotated by its EXIF orientation: decode in full
    else:
        image = None
    if image is None:
        return _decoded(data, _flags(is_color, 1), what, where)
    return image[:, :, np.newaxis] if image.ndim == 2 else image


def decode_image(data: bytes, flags: int, what: str) -> np.ndarray:
    """Decode an encoded image's bytes with ``cv2.imdecode(data, flags)`` as ``(H, W, C)`` uint8.

    ``what`` names the image in messages (e.g. ``"record '00000017_cat.jpg' of 'train_lmdb'"``).
    DataError for a truncated JPEG, bytes OpenCV cannot decode, or an image deeper than 8 bits
    (e.g. a 16-bit PNG with ``cv2.IMREAD_UNCHANGED``), which Caffe's transformer refuses too.
    """
    _refuse_truncated(data, what, "")
    return _decoded(data, flags, what, "")


def _refuse_truncated(data: bytes, what: str, where: str) -> None:
    if data.startswith(_JPEG_SOI) and not jpeg_is_complete(data):
        raise DataError(f"{_prefix(where)}{what} is a truncated JPEG ({len(data)} bytes, no "
                        f"end-of-image marker)")


def _decoded(data: bytes, flags: int, what: str, where: str) -> np.ndarray:
    image = _decode(data, flags)
    if image is None:
        raise DataError(f"{_prefix(where)}cannot decode {what} ({len(data)} bytes): corrupt, "
                        f"truncated or not an image format OpenCV reads")
    if image.dtype != np.uint8:
        raise DataError(f"{_prefix(where)}{what} decodes to {image.dtype} pixels; Caffe reads "
                        f"8-bit images only: store it as an 8-bit image")
    return image[:, :, np.newaxis] if image.ndim == 2 else image


MISSING, UNREADABLE, EMPTY, TRUNCATED, UNDECODABLE = (
    "missing", "unreadable", "empty", "truncated", "undecodable")
_PNG_END = b"IEND\xaeB`\x82"


def problem_kind(path: str) -> str:
    """Which of :data:`MISSING`, :data:`UNREADABLE`, :data:`EMPTY`, :data:`TRUNCATED` or
    :data:`UNDECODABLE` an image file is that :func:`read_image` refused.

    Told from the file without decoding it: the checks :func:`read_image` makes, in its order;
    a file that passes them all is one OpenCV could not decode.
    """
    if not os.path.exists(path):
        return MISSING
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError:
        return UNREADABLE
    if not data:
        return EMPTY
    if data.startswith(_JPEG_SOI) and not jpeg_is_complete(data):
        return TRUNCATED
    if data.startswith(_PNG_MAGIC) and _PNG_END not in data[-64:]:
        return TRUNCATED
    return UNDECODABLE


RESIZE_FIX = "set new_height and new_width"


def check_size(image: np.ndarray, expected_hw: Sequence[int], path: str, where: str = "",
               fix: str = RESIZE_FIX) -> None:
    """Raise :class:`DataError` unless ``image`` is ``expected_hw`` (the first image's size).

    Without ``new_height``/``new_width`` every image must have the same size, as in Caffe.
    ``fix`` names the settings that resize (a tool's flags are not the layer's keys).
    """
    height, width = image.shape[:2]
    if (height, width) != tuple(expected_hw):
        raise DataError(f"{_prefix(where)}image '{shown(path)}' is {height}x{width} (HxW) but the "
                        f"first image is {expected_hw[0]}x{expected_hw[1]}; {fix} to resize every "
                        f"image to one size")
