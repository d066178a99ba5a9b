"""Nothing machine-specific in the repository: no tracked file holds an absolute path into a home,
work or temporary folder (results record repo-relative paths and versions instead)."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

#: An absolute path into a home, work or temp folder (a path must follow the folder name).
MACHINE_PATH = re.compile(r"(?<![\w.~])/(?:root|home/[\w.-]+|Users/[\w.-]+|work|tmp|var/tmp)/[\w.-]")

#: Binary files are not read.
BINARY = {".png", ".jpg", ".jpeg", ".npz", ".onnx", ".keras", ".npy", ".y4m", ".gz", ".db"}


def tracked_files() -> list[Path]:
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    out = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True).stdout
    return [ROOT / p for p in out.decode().split("\0") if p and Path(p).suffix.lower() not in BINARY]


def offending_lines(text: str) -> list[str]:
    """Lines of ``text`` with a machine path (this file's own pattern lines excepted)."""
    return [line.strip()[:160] for line in text.splitlines() if MACHINE_PATH.search(line)]


def test_the_pattern_catches_machine_paths_and_spares_others():
    # built from pieces, so that this file itself holds no machine path
    bad = ["/" + p for p in ("root/.cache/pip", "work/main/.venv/bin/python x", "tmp/smoke/RESULTS.md",
                             "home/ada/x.jpg", "Users/ada/x", "var/tmp/facever-1/x")]
    bad += ["TEACHER=${3:-/" + "work/teacher-venv/bin/python}", 'cmd "/' + 'tmp/x"']
    good = ["../shared/data/lfw", "runs/smoke", "https://example.org/work/x", "~/.local/share/facever",
            "/usr/bin/chromium", "v1/people/x", "a/tmp/b", "/tmp", "mktemp -d", "${3:-.venv-teacher/bin/python}"]
    assert all(offending_lines(b) for b in bad)
    assert not any(offending_lines(g) for g in good)


def test_no_tracked_file_holds_a_machine_path():
    found = {}
    for path in tracked_files():
        if not path.is_file():
            continue
        try:
            text = path.read_text(encoding="utf-8")
        except (UnicodeDecodeError, OSError):
            continue
        lines = offending_lines(text)
        if lines:
            found[str(path.relative_to(ROOT))] = lines[:3]
    assert not found, f"absolute machine paths in tracked files: {found}"
