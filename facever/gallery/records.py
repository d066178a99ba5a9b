"""How gallery records are made: person-name rules, crop PNG encoding, image reading and hashing."""

from __future__ import annotations

import os
import unicodedata
from datetime import datetime, timezone
from typing import Any, Sequence

import numpy as np

from facever.errors import DatabaseError, ImageError, ModelError
from facever.store.schema import NAME_MAX_LENGTH


def check_name(name: str) -> str:
    """Validate a person name and return it unchanged (names are stored exactly as given).

    Raises ValueError for a non-string, an empty or blank name, control characters (newline, tab...)
    or more than :data:`~facever.store.schema.NAME_MAX_LENGTH` characters.
    """
    if not isinstance(name, str) or not name.strip():
        raise ValueError("a person name must be a non-empty string")
    if len(name) > NAME_MAX_LENGTH:
        raise ValueError(f"a person name must be at most {NAME_MAX_LENGTH} characters, got {len(name)}")
    if any(unicodedata.category(c) in ("Cc", "Cs") for c in name):
        raise ValueError(f"a person name must not contain control characters: {name!r}")
    return name


def encode_png(crop: np.ndarray) -> bytes:
    """An ``(H, W, 3)`` uint8 RGB crop → PNG bytes (lossless)."""
    import cv2

    ok, buf = cv2.imencode(".png", cv2.cvtColor(np.ascontiguousarray(crop, np.uint8), cv2.COLOR_RGB2BGR))
    if not ok:
        raise ValueError("could not encode crop as PNG")
    return buf.tobytes()


def decode_png(data: bytes) -> np.ndarray:
    """PNG bytes → ``(H, W, 3)`` uint8 RGB. Raises :class:`DatabaseError` for damaged data."""
    import cv2

    bgr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if bgr is None:
        raise DatabaseError("a stored face crop is damaged (not a PNG image)")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def templates_of(rows: Sequence[tuple[int, bytes, str | None]]) -> dict[str | None, tuple[int, int]]:
    """Crop template → ``(faces, lowest face id)`` of ``(face id, crop, template)`` rows
    (:func:`facever.store.repository.crops`), the form :func:`check_crop_templates` takes."""
    out: dict[str | None, tuple[int, int]] = {}
    for face_id, _crop, template in rows:
        n, first = out.get(template, (0, face_id))
        out[template] = (n + 1, min(first, face_id))
    return out


def check_crop_templates(found: dict[str | None, tuple[int, int]], template: str, model_version: str) -> None:
    """Refuse to re-embed stored crops aligned to another template than the model's.

    Args:
        found: crop template (None: not recorded) → ``(faces, lowest face id)`` of the crops to embed
            (:func:`facever.store.repository.templates_without_embedding`).
        template: the model's template (``metadata.alignment``); model_version: for the message.
    Raises:
        ModelError: some crops have another or an unrecorded template. Crops are never re-warped
            between templates, nor is a template guessed from a crop's size.
    """
    other = sorted(((t, n, first) for t, (n, first) in found.items() if t != template), key=lambda x: x[2])
    if not other:
        return
    parts = [f"{n} face(s) {'aligned to ' + repr(t) if t is not None else 'of unrecorded geometry'} "
             f"(first face id {first})" for t, n, first in other]
    raise ModelError(f"cannot re-embed stored crops with model {model_version}, which expects {template!r} crops: "
                     f"{'; '.join(parts)}. Use a model of the crops' template, or remove those faces and enrol them "
                     f"again from their photos")


def _label(image, i: int) -> str:
    if isinstance(image, (str, os.PathLike)):
        return os.fsdecode(image)
    if isinstance(image, np.ndarray):
        return f"<array #{i + 1}>"
    return f"<bytes #{i + 1}>"


def _read_and_hash(image, label: str) -> tuple[Any, str]:
    """The image data to decode and the SHA-256 hex digest identifying it."""
    from facever.imaging import image_sha256, read_image_bytes

    if isinstance(image, (str, os.PathLike)):
        data = read_image_bytes(image, name=label)
        return data, image_sha256(data)
    if isinstance(image, (bytes, bytearray, memoryview)):
        data = bytes(image)
        if not data:
            raise ImageError(f"{label}: empty image data")
        return data, image_sha256(data)
    if isinstance(image, np.ndarray):
        arr = np.ascontiguousarray(image)
        header = f"{arr.dtype.str}{arr.shape}".encode()
        return arr, image_sha256(header + arr.tobytes())
    raise TypeError(f"an image must be a path, bytes or a numpy array, not {type(image).__name__}")


def _metadata_json(verifier) -> dict[str, Any]:
    meta = getattr(verifier.bundle, "metadata", None)
    try:
        return dict(meta.to_json()) if meta is not None else {}
    except Exception:  # metadata is informative only
        return {}


def _utc(value: datetime) -> datetime:
    """Datetimes come back naive from SQLite; they are UTC."""
    return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value

