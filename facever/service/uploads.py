"""Uploaded images: size cap, multipart only, a safe label for reports and logs."""

from __future__ import annotations

import os
import unicodedata

from fastapi import Request, UploadFile

from facever.service.problems import Problem

#: Longest file name kept as an image's label, characters.
LABEL_MAX = 120


def require_multipart(request: Request) -> None:
    """A dependency: 415 unless the body is ``multipart/form-data``."""
    ctype = request.headers.get("content-type", "")
    if not ctype.lower().startswith("multipart/form-data"):
        raise Problem(415, "unsupported_media_type",
                      f"send the images as multipart/form-data, not {ctype.split(';')[0] or 'no content type'}")


def safe_label(filename: str | None, fallback: str) -> str:
    """The base name of an uploaded file without control characters, at most :data:`LABEL_MAX` long."""
    name = os.path.basename((filename or "").replace("\\", "/"))
    name = "".join(c for c in name if unicodedata.category(c)[0] != "C").strip()
    return (name or fallback)[:LABEL_MAX]


def person_name(segment: str) -> str:
    """The person name of a path segment (percent-decoded); 422 ``invalid_request`` for an invalid name."""
    from urllib.parse import unquote

    from facever.gallery.records import check_name

    try:
        return check_name(unquote(segment))
    except ValueError as exc:
        raise Problem(422, "invalid_request", str(exc)) from exc


async def read_image(upload: UploadFile, max_bytes: int, fallback: str) -> tuple[bytes, str]:
    """The bytes and label of one uploaded image; 413 ``upload_too_large`` past ``max_bytes``."""
    data = await upload.read(max_bytes + 1)
    label = safe_label(upload.filename, fallback)
    if len(data) > max_bytes:
        raise Problem(413, "upload_too_large", f"{label}: image larger than the limit of {max_bytes} bytes")
    return data, label
