"""Labeled Faces in the Wild: protocol files, image paths and annotations.

An LFW root folder (``lfw_root``) holds ``lfw-deepfunneled/NAME/NAME_NNNN.jpg`` (the images),
``protocol/`` (the official ``pairs*.txt`` / ``people*.txt`` files) and ``annotations/``. Image paths
returned here are *relative to the image root* ``lfw_root/lfw-deepfunneled``, with ``/`` separators,
e.g. ``"Abel_Pacheco/Abel_Pacheco_0001.jpg"``; a protocol line ``NAME  N`` means image ``N`` of NAME.

File formats (fields separated by any white space):

* ``pairsDevTrain.txt`` / ``pairsDevTest.txt`` (View 1): a line ``N``, then ``N`` same-person lines
  ``NAME i j`` and ``N`` different-people lines ``NAME1 i NAME2 j``.
* ``pairs.txt`` (View 2): a line ``F N``, then ``F`` folds, each ``N`` same lines then ``N`` different.
* ``peopleDevTrain.txt`` / ``peopleDevTest.txt``: a count line, then ``NAME COUNT`` lines.
* ``people.txt`` (View 2 identities): a fold count line, then per fold a count line and its
  ``NAME COUNT`` lines.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Mapping

import numpy as np

#: Folder of the images inside an LFW root.
IMAGES_DIR = "lfw-deepfunneled"
#: Folder of the official protocol files inside an LFW root.
PROTOCOL_DIR = "protocol"
#: 5-point landmark annotations inside an LFW root.
LANDMARKS_FILE = "annotations/lfw_landmark_5pt_original250.txt"


@dataclass(frozen=True)
class Pair:
    """One protocol pair.

    Attributes:
        path1, path2: image paths relative to the image root (``NAME/NAME_NNNN.jpg``).
        same: True for a same-person (genuine) pair.
        fold: 0-based fold index (always 0 in View 1 files).
    """

    path1: str
    path2: str
    same: bool
    fold: int

    @property
    def name1(self) -> str:
        """Person of the first image."""
        return self.path1.split("/", 1)[0]

    @property
    def name2(self) -> str:
        """Person of the second image."""
        return self.path2.split("/", 1)[0]


def image_path(name: str, index: int) -> str:
    """Relative path of image ``index`` (1-based) of ``name``: ``NAME/NAME_000N.jpg``."""
    return f"{name}/{name}_{int(index):04d}.jpg"


def image_root(lfw_root: str | os.PathLike[str]) -> Path:
    """The image folder of an LFW root (``lfw_root/lfw-deepfunneled``); ``lfw_root`` itself if it
    already is an image folder (it has no ``lfw-deepfunneled`` sub-folder)."""
    root = Path(lfw_root)
    sub = root / IMAGES_DIR
    return sub if sub.is_dir() or not root.is_dir() or (root / PROTOCOL_DIR).is_dir() else root


def protocol_file(lfw_root: str | os.PathLike[str], name: str) -> Path:
    """Path of protocol file ``name`` (e.g. ``"pairs.txt"``) under ``lfw_root/protocol``.

    Raises:
        FileNotFoundError: naming the missing path.
    """
    path = Path(lfw_root) / PROTOCOL_DIR / name
    if not path.is_file():
        raise FileNotFoundError(f"LFW protocol file not found: {path} (is {lfw_root} an LFW root with protocol/?)")
    return path


def _lines(path: str | os.PathLike[str]) -> list[tuple[int, list[str]]]:
    """Non-blank lines of a text file as ``(1-based line number, fields)``."""
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"file not found: {p}")
    out = []
    with open(p, encoding="utf-8") as fh:
        for number, line in enumerate(fh, start=1):
            fields = line.split()
            if fields:
                out.append((number, fields))
    return out


def _int(path: str | os.PathLike[str], number: int, text: str, what: str, minimum: int = 0) -> int:
    try:
        value = int(text)
    except ValueError:
        raise ValueError(f"{path}:{number}: {what} must be an integer, got {text!r}") from None
    if value < minimum:
        raise ValueError(f"{path}:{number}: {what} must be ≥ {minimum}, got {value}")
    return value


def read_pairs(path: str | os.PathLike[str]) -> list[Pair]:
    """Read a pairs file: View 1 (``pairsDevTrain.txt``, ``pairsDevTest.txt``) or View 2 (``pairs.txt``).

    Returns:
        The pairs in file order; ``fold`` is 0 for View 1 and 0..F−1 for View 2.

    Raises:
        FileNotFoundError: the file does not exist.
        ValueError: a malformed header or pair line, a same/different line where the format puts the
            other kind, or a wrong number of lines (the message gives the line number).
    """
    lines = _lines(path)
    if not lines:
        raise ValueError(f"{path}: empty pairs file")
    number, header = lines[0]
    if len(header) == 1:
        folds, per_kind = 1, _int(path, number, header[0], "pair count")
    elif len(header) == 2:
        folds = _int(path, number, header[0], "fold count", 1)
        per_kind = _int(path, number, header[1], "pairs per fold and kind")
    else:
        raise ValueError(f"{path}:{number}: header must be 'N' (View 1) or 'FOLDS N' (View 2), got {' '.join(header)!r}")
    body = lines[1:]
    expected = folds * 2 * per_kind
    if len(body) != expected:
        where = body[expected][0] if len(body) > expected else (body[-1][0] if body else number)
        raise ValueError(f"{path}:{where}: header promises {expected} pair lines, file has {len(body)}")
    pairs = []
    for k, (number, fields) in enumerate(body):
        fold, pos = divmod(k, 2 * per_kind)
        same = pos < per_kind
        if same:
            if len(fields) != 3:
                raise ValueError(f"{path}:{number}: expected a same-person line 'NAME i j', got {' '.join(fields)!r}")
            name, i, j = fields
            pairs.append(Pair(image_path(name, _int(path, number, i, "image index", 1)),
                              image_path(name, _int(path, number, j, "image index", 1)), True, fold))
        else:
            if len(fields) != 4:
                raise ValueError(f"{path}:{number}: expected a different-people line 'NAME1 i NAME2 j', got {' '.join(fields)!r}")
            name1, i, name2, j = fields
            pairs.append(Pair(image_path(name1, _int(path, number, i, "image index", 1)),
                              image_path(name2, _int(path, number, j, "image index", 1)), False, fold))
    return pairs


def read_people_folds(path: str | os.PathLike[str]) -> list[dict[str, int]]:
    """Read a people file as a list of folds, each ``{name: image count}``.

    ``people.txt`` gives its 10 folds; ``peopleDevTrain.txt`` / ``peopleDevTest.txt`` give one.

    Raises:
        FileNotFoundError: the file does not exist.
        ValueError: malformed lines, counts that do not match, a name listed twice (with line number).
    """
    lines = _lines(path)
    if not lines:
        raise ValueError(f"{path}: empty people file")
    number, header = lines[0]
    if len(header) != 1:
        raise ValueError(f"{path}:{number}: first line must be a single count, got {' '.join(header)!r}")
    first = _int(path, number, header[0], "count")
    folded = len(lines) > 1 and len(lines[1][1]) == 1
    pos = 1
    folds: list[dict[str, int]] = []
    seen: dict[str, int] = {}
    for _ in range(first if folded else 1):
        if folded:
            if pos >= len(lines):
                raise ValueError(f"{path}:{lines[-1][0]}: expected {first} folds, file ends after {len(folds)}")
            number, fields = lines[pos]
            if len(fields) != 1:
                raise ValueError(f"{path}:{number}: expected a fold size line, got {' '.join(fields)!r}")
            size = _int(path, number, fields[0], "fold size")
            pos += 1
        else:
            size = first
        fold: dict[str, int] = {}
        for _ in range(size):
            if pos >= len(lines):
                raise ValueError(f"{path}:{lines[-1][0]}: file ends before the {size} people announced")
            number, fields = lines[pos]
            if len(fields) != 2:
                raise ValueError(f"{path}:{number}: expected 'NAME COUNT', got {' '.join(fields)!r}")
            name = fields[0]
            if name in seen:
                raise ValueError(f"{path}:{number}: {name} already listed on line {seen[name]}")
            seen[name] = number
            fold[name] = _int(path, number, fields[1], "image count", 1)
            pos += 1
        folds.append(fold)
    if pos != len(lines):
        raise ValueError(f"{path}:{lines[pos][0]}: unexpected line after the announced people: {' '.join(lines[pos][1])!r}")
    return folds


def read_people(path: str | os.PathLike[str]) -> dict[str, int]:
    """Read a people file as ``{name: image count}`` (all folds merged, file order)."""
    merged: dict[str, int] = {}
    for fold in read_people_folds(path):
        merged.update(fold)
    return merged


def people_images(root: str | os.PathLike[str] | None, names: Mapping[str, int] | Iterable[str]) -> list[str]:
    """Relative paths of every image of ``names``.

    Args:
        root: the image root (or an LFW root, see :func:`image_root`); only read when ``names`` has
            no counts.
        names: ``{name: count}`` (e.g. from :func:`read_people`: paths are generated, images
            ``1..count``, without touching the disk) or plain names (their folders under ``root``
            are listed).

    Returns:
        Paths in the order of ``names``, each person's images in index order.

    Raises:
        FileNotFoundError: a person's folder is missing (listing mode).
    """
    if isinstance(names, Mapping):
        return [image_path(name, i) for name, count in names.items() for i in range(1, int(count) + 1)]
    if root is None:
        raise ValueError("people_images needs a root to list folders when no image counts are given")
    base = image_root(root)
    out = []
    for name in names:
        folder = base / name
        if not folder.is_dir():
            raise FileNotFoundError(f"LFW person folder not found: {folder}")
        files = sorted(p.name for p in folder.iterdir() if p.suffix.lower() == ".jpg" and p.name.startswith(f"{name}_"))
        out += [f"{name}/{f}" for f in files]
    return out


def read_landmarks(path: str | os.PathLike[str]) -> dict[str, np.ndarray]:
    """LFW 5-point annotations: relative image path → ``(5, 2)`` float32 ``(x, y)`` pixels.

    Points: left eye, right eye, nose, left mouth corner, right mouth corner (left = image left).

    Raises:
        FileNotFoundError: the file does not exist.
        ValueError: a line without a path and 10 numbers (with line number).
    """
    out = {}
    for number, fields in _lines(path):
        if len(fields) != 11:
            raise ValueError(f"{path}:{number}: expected a path and 10 numbers, got {len(fields)} fields")
        try:
            out[fields[0]] = np.asarray(fields[1:], np.float32).reshape(5, 2)
        except ValueError:
            raise ValueError(f"{path}:{number}: landmark coordinates must be numbers") from None
    return out
