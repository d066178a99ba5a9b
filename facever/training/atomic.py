"""Write a whole folder atomically: build it beside its final place, then swap it in.

A reader sees either the old folder or the complete new one, never a half-written bundle; a failed
build removes its temporary folder and leaves the old one as it was.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator


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
