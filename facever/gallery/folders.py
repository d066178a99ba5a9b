"""Which files are photos, and which folders are people (for ``enroll --from-dir`` and ``identify DIR``)."""

from __future__ import annotations

import os
from pathlib import Path

from facever.imaging import IMAGE_SUFFIXES  # noqa: F401  (the file endings read as images)


def person_folders(root: str | os.PathLike[str]) -> list[tuple[str, list[Path]]]:
    """``(name, image files)`` for each non-hidden sub-folder of ``root``, sorted by name.

    Image files are those ending in :data:`IMAGE_SUFFIXES` (any case), not hidden, sorted; deeper
    folders and files directly in ``root`` are ignored. Raises NotADirectoryError/FileNotFoundError.
    """
    root = Path(root)
    if not root.exists():
        raise FileNotFoundError(f"{root}: no such folder")
    if not root.is_dir():
        raise NotADirectoryError(f"{root}: not a folder")
    out = []
    for sub in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        out.append((sub.name, image_files(sub)))
    return out


def image_files(folder: str | os.PathLike[str]) -> list[Path]:
    """Image files directly in ``folder`` (by suffix, not hidden), sorted by name."""
    return sorted(p for p in Path(folder).iterdir()
                  if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in IMAGE_SUFFIXES)
