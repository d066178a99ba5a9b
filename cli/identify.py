"""``facever identify``: who is in these photos? Best enrolled person or ``unknown`` per face."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import List, Optional

import typer
from rich.markup import escape

from .common import DB_OPTION, JSON_OPTION, MODEL_OPTION, IndexBackend, err, exit_code, fail, handle_errors, out, print_json


class Scoring(str, Enum):
    """How a person is scored against a face: the nearest enrolled face, or the mean of the 3 nearest."""

    nearest = "nearest"
    mean3 = "mean3"


def identify(
    images: List[Path] = typer.Argument(..., help="Photos, or folders (every photo directly inside)."),
    top_k: int = typer.Option(5, "--top-k", "-k", min=1, help="How many nearest people to list per face."),
    fpir: Optional[float] = typer.Option(
        None, "--fpir",
        help="Target chance that a stranger is named as someone (e.g. 0.01); the threshold follows the "
             "gallery size. Default: the model's (1%)."),
    threshold: Optional[float] = typer.Option(None, "--threshold", "-t", min=0.0, max=2.0,
                                              help="Fixed identification threshold (distance, 0..2); overrides --fpir."),
    scoring: Scoring = typer.Option(Scoring.nearest, "--scoring",
                                    help="Person score: the nearest enrolled face, or the mean of the 3 nearest."),
    largest: bool = typer.Option(False, "--largest", help="Only the largest face of each photo (default: every face)."),
    index: IndexBackend = typer.Option(
        IndexBackend.auto, "--index",
        help="Search backend: 'exact' scan, 'ann' (approximate in memory, needs faiss-cpu), 'pgvector' (search "
             "inside PostgreSQL, no copy in memory), or 'auto' (pgvector on PostgreSQL with the extension; "
             "otherwise approximate for large galleries when faiss is installed). A missing or stale index "
             "file is rebuilt and reported; PostgreSQL without pgvector falls back to memory and says so."),
    annotate: Optional[Path] = typer.Option(
        None, "--annotate", "-a",
        help="Write the photo with each face boxed and labelled (name or unknown, distance) to this file; "
             "with several photos give a folder (no suffix)."),
    model: Optional[Path] = MODEL_OPTION,
    db: Optional[str] = DB_OPTION,
    as_json: bool = JSON_OPTION,
) -> None:
    """Identify every face in photos against the enrolled people.

    For each face prints the best person, or `unknown` when even the nearest person is farther than
    the threshold, with the distance and the top-k nearest people. The threshold follows the number
    of enrolled people so that a stranger is named as someone with the target probability (FPIR);
    the threshold used and the FPIR it gives are printed (JSON: `threshold`, `threshold_policy`,
    `expected_fpir`). A photo that cannot be read or holds no face is reported and the others go
    on. Exit code: 0 done, 3 some photos failed (the others are reported), 2 error (every photo
    failed, or no gallery at --db).

    Examples:

        facever identify group.jpg --annotate group-named.jpg

        facever identify photos/ --top-k 3 --fpir 0.001 --json
    """
    with handle_errors(as_json):
        files = _image_files(images, as_json)
        if fpir is not None and not 0 < fpir < 1:
            fail(f"--fpir must be between 0 and 1 (exclusive), e.g. 0.01, not {fpir}", as_json=as_json)
        from facever.gallery import Gallery

        with Gallery(db, model=model, create=False, index=index.value) as gallery:
            targets = _annotation_targets(annotate, files, as_json) if annotate is not None else {}
            choice = gallery.threshold_for(fpir=fpir, threshold=threshold, scoring=scoring.value)
            results = [_identify_one(gallery, path, targets, as_json, top_k=top_k, threshold=threshold,
                                     scoring=scoring.value, faces="largest" if largest else "all", fpir=fpir)
                       for path in files]
            version = gallery.model_version
            index_status = gallery.index_status
    if as_json:
        print_json({**choice.to_dict(), "scoring": scoring.value, "model_version": version,
                    "index": index_status.to_dict(), "images": results})
    else:
        out.print(_threshold_line(choice), style="dim")
        if index_status.backend == "ann":
            out.print(f"search: approximate ({index_status.kind}); {escape(index_status.note)}", style="dim")
        elif index_status.backend == "pgvector" or "pgvector" in index_status.note:
            out.print(f"search: {escape(index_status.note)}", style="dim")
    failed = sum("error" in r for r in results)
    raise typer.Exit(exit_code(done=len(results) - failed, failed=failed))


def _image_files(images: List[Path], as_json: bool) -> list[Path]:
    """The photos given: files as they are, folders as every photo directly inside."""
    from facever.gallery import image_files

    files: list[Path] = []
    for path in images:
        files.extend(image_files(path) if path.is_dir() else [path])
    if not files:
        fail("no images found in " + ", ".join(str(p) for p in images), as_json=as_json)
    return files


def _identify_one(gallery, path: Path, targets: dict[Path, Path], as_json: bool, **options) -> dict:
    """Identify the faces of one photo; print them (text mode); return its JSON entry (``error`` when
    the photo cannot be read or holds no face)."""
    from facever.errors import ImageError, MultipleFacesError, NoFaceError

    try:
        faces = gallery.identify(path, **options)
    except (ImageError, NoFaceError, MultipleFacesError) as exc:
        if not as_json:
            err.print(f"error: {exc}", markup=False)
        return {"image": str(path), "error": str(exc)}
    entry = {"image": str(path), "faces": [f.to_dict() for f in faces]}
    if path in targets:
        entry["annotated"] = str(_write_annotation(path, faces, targets[path]))
    if not as_json:
        _print_faces(str(path), faces)
        if "annotated" in entry:
            out.print(f"    annotated → {escape(entry['annotated'])}", style="dim")
    return entry


def _threshold_line(choice) -> str:
    head = f"threshold {choice.threshold:.4f} ({choice.policy})"
    if choice.expected_fpir is not None:
        head += f", expected FPIR {choice.expected_fpir:.3%}"
    return f"{head}: {choice.note}"


def _annotation_targets(target: Path, files: list[Path], as_json: bool) -> dict[Path, Path]:
    """Where each annotated photo goes: ``target`` itself for one photo, else one file per photo in
    the folder ``target`` (created)."""
    from facever.gallery import IMAGE_SUFFIXES

    if target.suffix.lower() in IMAGE_SUFFIXES and not target.is_dir():
        if len(files) > 1:
            fail(f"--annotate {target} names one file but {len(files)} photos were given; "
                 "give a folder (a name without suffix) to annotate several", as_json=as_json)
        if not target.parent.is_dir():
            fail(f"--annotate {target}: folder {target.parent} does not exist", as_json=as_json)
        return {files[0]: target}
    target.mkdir(parents=True, exist_ok=True)
    used: set[str] = set()
    out_paths = {}
    for path in files:
        name, n = f"{path.stem}.jpg", 1
        while name in used:
            n += 1
            name = f"{path.stem}-{n}.jpg"
        used.add(name)
        out_paths[path] = target / name
    return out_paths


def _write_annotation(photo: Path, faces, dest: Path) -> Path:
    from facever.drawing import annotate, write_image
    from facever.imaging import load_image

    labels = []
    for f in faces:
        who = f.person if f.person is not None else "unknown"
        labels.append(who if f.distance is None else f"{who} {f.distance:.3f}")
    boxes = [list(f.face.box) for f in faces]
    return write_image(dest, annotate(load_image(photo), boxes, labels, [f.known for f in faces]))


def _print_faces(label: str, faces) -> None:
    for n, f in enumerate(faces, start=1):
        head = f"{escape(label)}" + (f" face {n}" if len(faces) > 1 else "")
        if f.person is not None:
            out.print(f"{head}: [bold green]{escape(f.person)}[/]  distance {f.distance:.4f} ≤ {f.threshold:.4f}")
        elif f.distance is None:
            out.print(f"{head}: [bold yellow]unknown[/]  (the gallery is empty)")
        else:
            out.print(f"{head}: [bold yellow]unknown[/]  nearest {escape(f.candidates[0].person)} "
                      f"{f.distance:.4f} > {f.threshold:.4f}")
        if f.candidates:
            out.print("    top: " + ", ".join(f"{escape(c.person)} {c.distance:.4f}" for c in f.candidates))
