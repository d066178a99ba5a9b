"""``facever embed``: every face of a folder of photos into one NPZ or Parquet file, resumably."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Optional

import typer

from .common import JSON_OPTION, MODEL_OPTION, handle_errors, print_json, progress_bar

#: Seconds between saves of the output file during a run (an interrupted run keeps what was saved).
SAVE_EVERY_S = 60.0


def embed(
    folder: Path = typer.Argument(..., file_okay=False, help="Folder of photos (sub-folders included)."),
    out_path: Path = typer.Option(..., "--out", "-o", dir_okay=False,
                                  help="Output file: .npz, or .parquet (needs pyarrow: pip install \"facever[parquet]\")."),
    largest: bool = typer.Option(False, "--largest", help="Only the largest face of each photo (default: every face)."),
    workers: Optional[int] = typer.Option(None, "--workers", "-w", min=1, help="Photos processed at once (default: one per core)."),
    chunk: int = typer.Option(16, "--batch-size", min=1, help="Photos per detection and encoder batch."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace OUT instead of resuming it (needed when OUT holds "
                                   "another model's embeddings)."),
    model: Optional[Path] = MODEL_OPTION,
    as_json: bool = JSON_OPTION,
) -> None:
    """Embed every face of a folder of photos into one file (NPZ or Parquet), resumably.

    One row per face: path (relative to FOLDER), face index (0 = largest), box, landmarks, score,
    quality (face size, sharpness, frontality), model version and the embedding. Photos are detected
    and encoded in batches on every core. Unreadable photos are reported and skipped; photos without
    a face are recorded. Run it again (after an interruption, or on a grown folder) and it embeds only
    the photos not yet in OUT under this model. Exit code 0 (even with unreadable photos), 2 error.

    Examples:

        facever embed photos/ --out faces.npz

        facever embed photos/ --out faces.parquet --largest --json
    """
    with handle_errors(as_json):
        if not folder.is_dir():
            raise FileNotFoundError(f"{folder}: no such folder")
        from facever.api import FaceVerifier
        from facever.faces_file import FacesFile

        verifier = FaceVerifier(model=model)
        store = FacesFile(out_path, verifier.model_version, overwrite=overwrite)
        files = _image_files(folder)
        stats = {rel: (st.st_size, st.st_mtime_ns) for rel, st in ((rel, path.stat()) for rel, path in files)}
        todo = [(rel, path) for rel, path in files if not store.is_done(rel, *stats[rel])]
        started = time.perf_counter()
        try:
            _run(verifier, store, todo, stats, largest, workers, chunk, as_json)
        finally:
            store.save()  # also after an interruption: a second run resumes from here
        elapsed = time.perf_counter() - started
    _report(store, out_path, len(files), todo, elapsed, as_json)


def _image_files(folder: Path) -> list[tuple[str, Path]]:
    """``(path relative to folder, path)`` of every photo under ``folder`` (by suffix, not hidden), sorted."""
    from facever.gallery.folders import IMAGE_SUFFIXES

    found = []
    for path in folder.rglob("*"):
        rel = path.relative_to(folder)
        if (path.suffix.lower() in IMAGE_SUFFIXES and not any(part.startswith(".") for part in rel.parts)
                and path.is_file()):
            found.append((rel.as_posix(), path))
    return sorted(found)


def _run(verifier, store, todo, stats, largest: bool, workers, chunk: int, as_json: bool) -> None:
    from facever.batch import iter_embed

    last_save = time.perf_counter()
    with progress_bar(not as_json) as bar:
        task = bar.add_task("embedding", total=len(todo))
        results = iter_embed(verifier.embedder, [path for _, path in todo], faces="largest" if largest else "all",
                             chunk=chunk, workers=workers,
                             progress=lambda done, total: bar.update(task, completed=done))
        for (rel, _), result in zip(todo, results):
            store.add(rel, *stats[rel], result)
            if time.perf_counter() - last_save > SAVE_EVERY_S:
                store.save()
                last_save = time.perf_counter()


def _report(store, out_path: Path, n_files: int, todo, elapsed: float, as_json: bool) -> None:
    done = [store.images[rel] for rel, _ in todo]
    errors = [{"path": image.path, "error": image.error} for image in done if image.status == "error"]
    summary = {
        "out": str(out_path), "model_version": store.model_version, "photos": n_files,
        "embedded_now": len(done), "skipped_already_embedded": n_files - len(done),
        "faces_now": sum(len(store.faces[rel]) for rel, _ in todo), "faces_total": store.n_faces,
        "no_face": sum(image.status == "no_face" for image in done), "unreadable": errors,
        "seconds": round(elapsed, 3), "photos_per_s": round(len(done) / elapsed, 2) if elapsed > 0 and done else None,
    }
    if as_json:
        print_json(summary)
        return
    from rich.markup import escape

    from .common import out

    rate = f" ({summary['photos_per_s']:.1f} photos/s)" if summary["photos_per_s"] else ""
    out.print(f"embedded {len(done)} photo(s), {summary['faces_now']} face(s) in {elapsed:.1f} s{rate}; "
              f"skipped {summary['skipped_already_embedded']} already in {escape(str(out_path))}; "
              f"{summary['no_face']} without a face; {len(errors)} unreadable")
    for item in errors:
        out.print(f"  unreadable: {escape(item['error'])}")
    out.print(f"  {escape(str(out_path))}: {store.n_faces} face(s) of model {store.model_version}", style="dim")
