"""``facever identify``: who is in these photos? Best enrolled person or ``unknown`` per face."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer
from rich.markup import escape

from .common import DB_OPTION, JSON_OPTION, MODEL_OPTION, err, fail, handle_errors, out, print_json


def identify(
    images: List[Path] = typer.Argument(..., help="Photos, or folders (every photo directly inside)."),
    top_k: int = typer.Option(5, "--top-k", "-k", min=1, help="How many nearest people to list per face."),
    threshold: Optional[float] = typer.Option(None, "--threshold", "-t", min=0.0, max=2.0,
                                              help="Identification threshold (distance, 0..2); default: the model's."),
    scoring: str = typer.Option("nearest", "--scoring",
                                help="Person score: 'nearest' enrolled face or 'mean3' (mean of the 3 nearest)."),
    largest: bool = typer.Option(False, "--largest", help="Only the largest face of each photo (default: every face)."),
    model: Optional[Path] = MODEL_OPTION,
    db: Optional[str] = DB_OPTION,
    as_json: bool = JSON_OPTION,
) -> None:
    """Identify every face in photos against the enrolled people.

    For each face prints the best person, or `unknown` when even the nearest person is farther than
    the threshold, with the distance and the top-k nearest people. A photo that cannot be read or
    holds no face is reported and the others go on. Exit code: 0 done, 2 error (some photo failed).

    Examples:

        facever identify group.jpg

        facever identify photos/ --top-k 3 --json
    """
    failed = False
    results: list[dict] = []
    with handle_errors(as_json):
        if scoring not in ("nearest", "mean3"):
            raise ValueError(f"--scoring must be 'nearest' or 'mean3', not {scoring!r}")
        from facever.errors import ImageError, MultipleFacesError, NoFaceError
        from facever.gallery import Gallery, image_files

        files: list[Path] = []
        for path in images:
            files.extend(image_files(path) if path.is_dir() else [path])
        if not files:
            fail("no images found in " + ", ".join(str(p) for p in images), as_json=as_json)
        with Gallery(db, model=model) as gallery:
            thr = gallery.identify_threshold if threshold is None else threshold
            for path in files:
                try:
                    faces = gallery.identify(path, top_k=top_k, threshold=thr, scoring=scoring,
                                             faces="largest" if largest else "all")
                except (ImageError, NoFaceError, MultipleFacesError) as exc:
                    failed = True
                    results.append({"image": str(path), "error": str(exc)})
                    if not as_json:
                        err.print(f"error: {exc}", markup=False)
                    continue
                results.append({"image": str(path), "faces": [f.to_dict() for f in faces]})
                if not as_json:
                    _print_faces(str(path), faces)
            version = gallery.model_version
    if as_json:
        print_json({"threshold": thr, "scoring": scoring, "model_version": version, "images": results})
    raise typer.Exit(2 if failed else 0)


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
