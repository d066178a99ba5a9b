"""Safe image decoding: a path, encoded bytes or an array in, an ``(H, W, 3)`` uint8 RGB array out.

Everything that can go wrong with an input image (missing or unreadable file, empty or truncated data,
a file that is not an image, a format outside :data:`ALLOWED_FORMATS`, a decompression bomb) raises
:class:`~facever.errors.ImageError` whose message starts with the file's label (the path, the
``name`` given, ``"<bytes>"`` or ``"<array>"``) followed by the reason, e.g.
``"photo.jpg: truncated or corrupt image data (image file is truncated)"``.

Decoding is done by Pillow. The pixel count is read from the image header and checked against
``max_pixels`` *before* any pixel data is decoded, so a small file that claims a huge size is refused
without allocating memory for it. Pillow's own decompression-bomb limit (``2 * Image.MAX_IMAGE_PIXELS``,
about 179 Mpx by default) still applies on top of ``max_pixels``; this module never changes Pillow's
global settings, and in particular never enables ``ImageFile.LOAD_TRUNCATED_IMAGES``, so truncated
files are refused rather than padded with grey.
"""

from __future__ import annotations

import io
import os
import threading
import warnings
from typing import Union

import numpy as np
from PIL import Image, ImageOps

from facever.errors import ImageError, ImageTooLargeError, UnsupportedImageError
from facever.image_files import MAX_FILE_BYTES, image_sha256, read_image_bytes  # noqa: F401  (re-exported)

MAX_PIXELS = 40_000_000
"""Default cap on ``width * height`` of an image (40 Mpx)."""

ALLOWED_FORMATS: tuple[str, ...] = ("JPEG", "PNG", "BMP", "WEBP", "TIFF", "PPM", "GIF")
"""Pillow format names that may be decoded. ``"PPM"`` also covers PGM and PBM; ``"JPEG"`` also
opens multi-picture JPEGs (Pillow reports those as ``"MPO"``, which is not a format name it opens)."""

#: File name endings read as images when a folder is listed (enrolment, identity datasets): the
#: suffixes of :data:`ALLOWED_FORMATS`, compared in lower case.
IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".pgm", ".ppm", ".pbm", ".gif"})

ImageSource = Union[str, os.PathLike, bytes, bytearray, memoryview, np.ndarray]

_SIGNATURES: tuple[tuple[bytes, str], ...] = (
    (b"\x89PNG\r\n\x1a\n", "PNG"),
    (b"\xff\xd8\xff", "JPEG"),
    (b"GIF87a", "GIF"),
    (b"GIF89a", "GIF"),
    (b"II*\x00", "TIFF"),
    (b"MM\x00*", "TIFF"),
    (b"BM", "BMP"),
)
_WARNINGS_LOCK = threading.Lock()
_INT_MODES = frozenset({"I", "I;16", "I;16L", "I;16B", "I;16N"})


# ----------------------------------------------------------------------------------------------
# Public API
# ----------------------------------------------------------------------------------------------


def load_image(source: ImageSource, *, name: str | None = None, max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """Decode ``source`` into an ``(H, W, 3)`` uint8 RGB, C-contiguous array (values 0–255).

    ``source`` may be:

    * a path (``str`` or ``os.PathLike``) to a JPEG, PNG, BMP, WebP, TIFF, PGM/PPM or GIF file (only
      the first frame of a multi-frame file is used);
    * the encoded file contents as ``bytes``, ``bytearray`` or ``memoryview``;
    * a numpy array of shape ``(H, W)`` (grey), ``(H, W, 1)``, ``(H, W, 3)`` (taken as RGB) or
      ``(H, W, 4)`` (RGBA), with dtype uint8 (0–255), uint16 (0–65535, scaled by 1/257), bool
      (False → 0, True → 255) or float (0.0–1.0, scaled by 255 and clipped).

    EXIF orientation is applied. Grey, palette, 1-bit, CMYK and 16/32-bit integer images are converted
    to 8-bit RGB (16-bit samples are divided by 257 and rounded; 32-bit float images are clipped to
    0–255); transparency is composited onto a white background. The result never shares memory with
    an input array.

    ``name`` labels the source in error messages (default: the path, ``"<bytes>"`` or ``"<array>"``).
    Images with more than ``max_pixels`` pixels (``width * height``) are refused.

    Raises :class:`~facever.errors.ImageError` for any unreadable or unacceptable image, and
    ``TypeError`` when ``source`` is none of the types above.
    """
    if isinstance(source, np.ndarray):
        return _array_to_rgb(source, name or "<array>", max_pixels)
    if isinstance(source, (bytes, bytearray, memoryview)):
        return _decode_bytes(bytes(source), name or "<bytes>", max_pixels)
    if isinstance(source, (str, os.PathLike)):
        label = name or os.fsdecode(source)
        return _decode_bytes(read_image_bytes(source, name=label), label, max_pixels)
    raise TypeError(
        f"load_image() expects a path, bytes or a numpy array, not {type(source).__name__}"
    )


# ----------------------------------------------------------------------------------------------
# Encoded bytes
# ----------------------------------------------------------------------------------------------


def _decode_bytes(data: bytes, label: str, max_pixels: int) -> np.ndarray:
    if not data:
        raise ImageError(f"{label}: empty image data (0 bytes)")
    # warnings.catch_warnings swaps a process-wide list: two threads decoding at once (verify's two
    # images, enrolment workers) could leave one's filter installed for good, hence the lock
    with _WARNINGS_LOCK, warnings.catch_warnings():
        # Pillow warns about sizes (refused or accepted by our own cap below) and about damaged
        # metadata; a library must stay quiet, and real failures become ImageError anyway.
        warnings.filterwarnings("ignore", module=r"PIL\.")
        with _open(data, label) as img:
            _check_pixel_count(img.size, label, max_pixels)
            _load_pixels(img, label)
            _apply_exif_orientation(img)
            return _pil_to_rgb(img, label)


def _open(data: bytes, label: str) -> Image.Image:
    """Parse only the header of ``data`` (Pillow is lazy): format, mode and size, no pixels."""
    try:
        return Image.open(io.BytesIO(data), formats=ALLOWED_FORMATS)
    except Image.DecompressionBombError as exc:
        raise _bomb_error(label, exc) from exc
    except Image.UnidentifiedImageError as exc:
        reason = _unidentified_reason(data)
        kind = ImageError if reason.startswith("truncated") else UnsupportedImageError
        raise kind(f"{label}: {reason}") from exc
    except Exception as exc:  # noqa: BLE001 - any parser failure means corrupt data
        raise ImageError(f"{label}: truncated or corrupt image data ({_describe(exc)})") from exc


def _unidentified_reason(data: bytes) -> str:
    """Why no allowed format could open ``data``: corrupt, a disallowed format, or not an image."""
    looks_like = _sniff_format(data)
    if looks_like is not None:
        return f"truncated or corrupt image data (looks like {looks_like} but cannot be parsed)"
    other = _probe_any_format(data)
    if other is not None:
        return f"unsupported image format {other} (supported: {', '.join(ALLOWED_FORMATS)})"
    return "not a recognised image format"


def _sniff_format(data: bytes) -> str | None:
    for signature, fmt in _SIGNATURES:
        if data.startswith(signature):
            return fmt
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "WEBP"
    if len(data) > 2 and data[0:1] == b"P" and data[1:2] in b"123456" and data[2:3].isspace():
        return "PPM"
    return None


def _probe_any_format(data: bytes) -> str | None:
    """Name of the format Pillow would recognise among *all* its plugins (header only), if any."""
    try:
        with Image.open(io.BytesIO(data)) as img:
            return img.format
    except Exception:  # noqa: BLE001 - a failed probe just means "not an image"
        return None


def _check_pixel_count(size: tuple[int, int], label: str, max_pixels: int) -> None:
    width, height = size
    if width <= 0 or height <= 0:
        raise ImageError(f"{label}: image has no pixels ({width}x{height})")
    if width * height > max_pixels:
        raise ImageTooLargeError(f"{label}: {width}x{height} pixels exceeds the cap of {max_pixels}")


def _load_pixels(img: Image.Image, label: str) -> None:
    try:
        img.load()
    except Image.DecompressionBombError as exc:
        raise _bomb_error(label, exc) from exc
    except Exception as exc:  # noqa: BLE001 - decoder errors come as OSError, SyntaxError, ValueError...
        raise ImageError(f"{label}: truncated or corrupt image data ({_describe(exc)})") from exc


def _apply_exif_orientation(img: Image.Image) -> None:
    """Rotate/flip ``img`` in place per its EXIF orientation; a broken EXIF block is ignored."""
    try:
        ImageOps.exif_transpose(img, in_place=True)
    except Exception:  # noqa: BLE001 - bad metadata must not make a decodable photo unreadable
        pass


def _pil_to_rgb(img: Image.Image, label: str) -> np.ndarray:
    if img.mode in _INT_MODES:
        return _grey_to_rgb(_int_to_uint8(np.asarray(img)))
    bands = img.getbands()
    has_alpha = "A" in bands or "a" in bands or "transparency" in img.info
    target = "RGBA" if has_alpha else "RGB"
    try:
        converted = img if img.mode == target else img.convert(target)
    except (ValueError, OSError) as exc:
        raise ImageError(f"{label}: unsupported pixel mode {img.mode}") from exc
    pixels = np.asarray(converted)
    if has_alpha:
        return _composite_on_white(pixels)
    return np.ascontiguousarray(pixels, dtype=np.uint8)


def _bomb_error(label: str, exc: Image.DecompressionBombError) -> ImageError:
    return ImageTooLargeError(f"{label}: image size exceeds Pillow's decompression-bomb limit ({exc})")


def _describe(exc: BaseException) -> str:
    return str(exc) or type(exc).__name__


# ----------------------------------------------------------------------------------------------
# Arrays and pixel conversions
# ----------------------------------------------------------------------------------------------


def _array_to_rgb(array: np.ndarray, label: str, max_pixels: int) -> np.ndarray:
    if array.size == 0:
        raise ImageError(f"{label}: empty array (shape {array.shape})")
    if array.ndim == 2:
        array = array[:, :, np.newaxis]
    if array.ndim != 3 or array.shape[2] not in (1, 3, 4):
        raise ImageError(
            f"{label}: unsupported array shape {array.shape}; expected (H, W), (H, W, 1), "
            "(H, W, 3) or (H, W, 4)"
        )
    height, width, channels = array.shape
    _check_pixel_count((width, height), label, max_pixels)
    pixels = _array_to_uint8(array, label)
    if channels == 1:
        return _grey_to_rgb(pixels[:, :, 0])
    if channels == 4:
        return _composite_on_white(pixels)
    return np.array(pixels, dtype=np.uint8, order="C", copy=True)


def _array_to_uint8(array: np.ndarray, label: str) -> np.ndarray:
    """Scale an array of any accepted dtype to uint8 (0–255); may return ``array`` itself."""
    kind, itemsize = array.dtype.kind, array.dtype.itemsize
    if kind == "b":
        return array.astype(np.uint8) * np.uint8(255)
    if kind == "u" and itemsize == 1:
        return array
    if kind == "u" and itemsize == 2:
        return _int_to_uint8(array)
    if kind == "f":
        values = array.astype(np.float32, copy=False)
        if not np.isfinite(values).all():
            raise ImageError(f"{label}: array contains NaN or infinite values")
        return np.clip(np.rint(values * 255.0), 0, 255).astype(np.uint8)
    raise ImageError(
        f"{label}: unsupported array dtype {array.dtype}; expected uint8, uint16, bool "
        "or float in [0, 1]"
    )


def _int_to_uint8(values: np.ndarray) -> np.ndarray:
    """16-bit (0–65535, rounded ``v / 257``) or wider integer samples → uint8.

    Values of 32-bit images (Pillow mode ``"I"``) that all fit in 0–65535 are taken as 16-bit;
    otherwise the signed 32-bit range is used (negative values clip to 0).
    """
    if values.dtype.itemsize > 2 and values.size and (values.min() < 0 or values.max() > 0xFFFF):
        return (np.clip(values, 0, 2**31 - 1) >> 23).astype(np.uint8)
    return ((values.astype(np.uint32) + 128) // 257).astype(np.uint8)


def _grey_to_rgb(grey: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(np.repeat(grey[:, :, np.newaxis], 3, axis=2), dtype=np.uint8)


def _composite_on_white(rgba: np.ndarray) -> np.ndarray:
    """``(H, W, 4)`` uint8 RGBA → ``(H, W, 3)`` uint8 RGB over a white background (rounded)."""
    rgb = rgba[:, :, :3].astype(np.uint16)
    alpha = rgba[:, :, 3:4].astype(np.uint16)
    out = (rgb * alpha + 255 * (255 - alpha) + 127) // 255
    return np.ascontiguousarray(out, dtype=np.uint8)
