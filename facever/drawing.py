"""Pictures for people: identified faces drawn on a photo, a person's stored crops as one sheet.

NumPy + OpenCV only. Images are ``(H, W, 3)`` uint8 RGB arrays; boxes are ``(x1, y1, x2, y2)``
pixels of that image. OpenCV's fonts draw ASCII only: other characters are transliterated where
Unicode allows (``Zoë`` → ``Zoe``) and shown as ``?`` otherwise.
"""

from __future__ import annotations

import math
import os
import unicodedata
from pathlib import Path
from typing import Sequence

import cv2
import numpy as np

#: Box and label colours (RGB): identified, unknown.
KNOWN_COLOUR = (40, 200, 60)
UNKNOWN_COLOUR = (235, 170, 0)

_FONT = cv2.FONT_HERSHEY_SIMPLEX


def ascii_label(text: str) -> str:
    """``text`` in characters OpenCV can draw (NFKD transliteration, ``?`` for the rest)."""
    out = []
    for ch in unicodedata.normalize("NFKD", text):
        if unicodedata.combining(ch):
            continue
        out.append(ch if 32 <= ord(ch) < 127 else "?")
    return "".join(out)


def _label(canvas: np.ndarray, text: str, x: int, y: int, colour: tuple[int, int, int], scale: float,
           thickness: int, above: bool = True) -> None:
    """``text`` on a filled background at ``(x, y)`` (its bottom-left corner, or top-left when not ``above``)."""
    text = ascii_label(text)
    (w, h), base = cv2.getTextSize(text, _FONT, scale, thickness)
    h_img, w_img = canvas.shape[:2]
    x = int(min(max(x, 0), max(w_img - w - 2, 0)))
    top = y - h - base - 2 if above else y
    if top < 0:
        top = y if above else 0
    top = int(min(max(top, 0), max(h_img - h - base - 2, 0)))
    cv2.rectangle(canvas, (x, top), (x + w + 2, top + h + base + 2), colour, cv2.FILLED)
    ink = (0, 0, 0) if sum(colour) > 380 else (255, 255, 255)
    cv2.putText(canvas, text, (x + 1, top + h + 1), _FONT, scale, ink, thickness, cv2.LINE_AA)


def annotate(image: np.ndarray, boxes: Sequence[Sequence[float]], labels: Sequence[str],
             known: Sequence[bool] | None = None) -> np.ndarray:
    """A copy of ``image`` with each box drawn and labelled.

    Args:
        image: ``(H, W, 3)`` uint8 RGB.
        boxes: ``(x1, y1, x2, y2)`` per face, in ``image`` pixels.
        labels: text per face, e.g. ``"Ada Lovelace 0.612"`` or ``"unknown 1.104"``.
        known: per face, True draws it in :data:`KNOWN_COLOUR`, False in :data:`UNKNOWN_COLOUR`
            (default: all known).
    Returns:
        A new ``(H, W, 3)`` uint8 RGB array of the same size.
    """
    canvas = np.ascontiguousarray(np.array(image, np.uint8, copy=True))
    if canvas.ndim != 3 or canvas.shape[2] != 3:
        raise ValueError(f"expected an (H, W, 3) RGB image, got shape {canvas.shape}")
    if len(boxes) != len(labels):
        raise ValueError("one label per box")
    known = [True] * len(boxes) if known is None else list(known)
    h, w = canvas.shape[:2]
    thickness = max(1, round(min(h, w) / 300))
    scale = max(0.4, min(h, w) / 900)
    for box, text, ok in zip(boxes, labels, known):
        x1, y1, x2, y2 = (int(round(float(v))) for v in box)
        colour = KNOWN_COLOUR if ok else UNKNOWN_COLOUR
        cv2.rectangle(canvas, (x1, y1), (x2, y2), colour, thickness + 1)
        _label(canvas, text, x1, y1, colour, scale, thickness)
    return canvas


def montage(crops: Sequence[np.ndarray], labels: Sequence[str] | None = None, tile: int = 112,
            columns: int | None = None, background: int = 32) -> np.ndarray:
    """Tile ``crops`` (each ``(h, w, 3)`` uint8 RGB, resized to ``tile``×``tile``) into one sheet.

    Args:
        labels: optional text per crop, drawn at its top-left corner.
        columns: tiles per row (default: ``ceil(sqrt(n))``).
        background: grey level of the unused tiles.
    Returns:
        ``(rows·tile, columns·tile, 3)`` uint8 RGB with ``rows = ceil(n / columns)``.
    Raises:
        ValueError: no crops, or labels of another length.
    """
    if not len(crops):
        raise ValueError("no crops to tile")
    if labels is not None and len(labels) != len(crops):
        raise ValueError("one label per crop")
    n = len(crops)
    columns = max(1, int(columns or math.ceil(math.sqrt(n))))
    rows = math.ceil(n / columns)
    sheet = np.full((rows * tile, columns * tile, 3), background, np.uint8)
    for i, crop in enumerate(crops):
        crop = np.asarray(crop, np.uint8)
        if crop.ndim == 2:
            crop = np.repeat(crop[:, :, None], 3, axis=2)
        interp = cv2.INTER_AREA if crop.shape[0] > tile else cv2.INTER_LINEAR
        r, c = divmod(i, columns)
        sheet[r * tile:(r + 1) * tile, c * tile:(c + 1) * tile] = cv2.resize(crop[:, :, :3], (tile, tile),
                                                                              interpolation=interp)
        if labels is not None and labels[i]:
            _label(sheet, labels[i], c * tile, r * tile, (0, 0, 0), max(0.3, tile / 300), 1, above=False)
    return sheet


def write_image(path: str | os.PathLike[str], image: np.ndarray, quality: int = 92) -> Path:
    """Write an RGB image; the format follows the suffix (``.jpg``, ``.png``, ``.webp``, ...).

    Raises:
        OSError: unknown format, missing folder, or the write failed.
    """
    path = Path(path)
    if not path.parent.is_dir():
        raise OSError(f"{path}: folder {path.parent} does not exist")
    bgr = cv2.cvtColor(np.ascontiguousarray(image, np.uint8), cv2.COLOR_RGB2BGR)
    params = [cv2.IMWRITE_JPEG_QUALITY, int(quality)] if path.suffix.lower() in (".jpg", ".jpeg") else []
    try:
        ok, buf = cv2.imencode(path.suffix or ".", bgr, params)
    except cv2.error:
        ok = False
    if not ok:
        raise OSError(f"{path}: cannot write an image with suffix {path.suffix!r} (use .jpg or .png)")
    path.write_bytes(buf.tobytes())
    return path
