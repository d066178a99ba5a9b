"""Write a file or a whole folder atomically: build it beside its final place, then swap it in.

A reader sees either the old one or the complete new one, never a half-written file or bundle; a
failed write removes its temporary copy and leaves the old one as it was.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator


@contextmanager
def atomic_file(path: str | os.PathLike[str], suffix: str = "") -> Iterator[Path]:
    """Yield a temporary path beside ``path`` (ending in ``suffix``, e.g. ``".npz"`` for writers that
    add one); when the block ends without an error it is moved onto ``path``, otherwise removed."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".{path.name}.{os.getpid()}.tmp{suffix}"
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


@contextmanager
def atomic_directory(directory: str | os.PathLike[str], prefix: str = ".bundle-") -> Iterator[Path]:
    """Yield an empty temporary folder next to ``directory``; when the block ends without an error it
    replaces ``directory`` (made readable by everyone, ``0o755``), otherwise it is removed."""
    directory = Path(directory)
    directory.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=prefix, dir=directory.parent))
    try:
        yield tmp
        os.chmod(tmp, 0o755)
        if directory.exists():
            shutil.rmtree(directory)
        os.replace(tmp, directory)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
