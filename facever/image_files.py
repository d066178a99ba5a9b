"""Reading image files safely, with the standard library only (no NumPy, no Pillow).

:func:`read_image_bytes` is the file half of :func:`facever.imaging.load_image`: a missing, unreadable,
empty or oversized file raises :class:`~facever.errors.ImageError` whose message starts with the
file's label. It lives apart so that a command can refuse a bad path before it imports the decoders
and the model runtime (``facever verify missing.jpg b.jpg`` answers in about the time of a usage error).
"""

from __future__ import annotations

import hashlib
import os
import stat

from facever.errors import ImageError, ImageTooLargeError

MAX_FILE_BYTES = 100 * 2**20
"""Image files larger than this many bytes (100 MiB) are refused before being read."""


def read_image_bytes(path: str | os.PathLike, name: str | None = None) -> bytes:
    """Read the whole (encoded) image file at ``path`` and return its bytes.

    ``name`` labels the file in error messages (default: the path). Raises
    :class:`~facever.errors.ImageError` when the file is missing, a directory or another non-regular
    file, not readable, empty (0 bytes) or larger than :data:`MAX_FILE_BYTES`; the size limit is
    checked before the contents are read.
    """
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"read_image_bytes() expects a path, not {type(path).__name__}")
    label = name or os.fsdecode(path)
    try:
        info = os.stat(path)
    except OSError as exc:
        raise ImageError(f"{label}: {os_error_reason(exc)}") from exc
    check_file_stat(info, label)
    try:
        with open(path, "rb") as fh:
            data = fh.read(MAX_FILE_BYTES + 1)
    except OSError as exc:
        raise ImageError(f"{label}: {os_error_reason(exc)}") from exc
    check_byte_count(len(data), label)
    return data


def image_sha256(data: bytes | bytearray | memoryview) -> str:
    """Lower-case hex SHA-256 digest (64 characters) of the encoded image bytes ``data``."""
    return hashlib.sha256(data).hexdigest()


def os_error_reason(exc: OSError) -> str:
    """The reason part of a file error message, e.g. ``"file not found"``."""
    if isinstance(exc, FileNotFoundError):
        return "file not found"
    if isinstance(exc, IsADirectoryError):
        return "is a directory, not an image file"
    if isinstance(exc, NotADirectoryError):
        return "file not found (a parent of the path is not a directory)"
    if isinstance(exc, PermissionError):
        return "permission denied"
    return f"cannot read file ({exc.strerror or exc})"


def check_file_stat(info: os.stat_result, label: str) -> None:
    """Refuse a directory, a non-regular file, an empty or an oversized file (``ImageError``)."""
    if stat.S_ISDIR(info.st_mode):
        raise ImageError(f"{label}: is a directory, not an image file")
    if not stat.S_ISREG(info.st_mode):
        raise ImageError(f"{label}: not a regular file")
    check_byte_count(info.st_size, label)


def check_byte_count(size: int, label: str) -> None:
    """Refuse 0 bytes or more than :data:`MAX_FILE_BYTES` (``ImageError``/``ImageTooLargeError``)."""
    if size == 0:
        raise ImageError(f"{label}: empty file (0 bytes)")
    if size > MAX_FILE_BYTES:
        raise ImageTooLargeError(f"{label}: file is larger than the limit of {MAX_FILE_BYTES} bytes")
