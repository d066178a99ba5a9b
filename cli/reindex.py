"""``facever reindex``: re-embed every stored face crop with the current model."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from .common import DB_OPTION, JSON_OPTION, MODEL_OPTION, IndexBackend, handle_errors, out, print_json, progress_bar


def reindex(
    index: IndexBackend = typer.Option(
        IndexBackend.auto, "--index",
        help="Index to rebuild afterwards: 'auto' (pgvector's HNSW index on PostgreSQL with the extension, "
             "else faiss when the gallery is large enough and faiss is installed), 'pgvector', 'ann' (always) "
             "or 'exact' (none)."),
    prune: bool = typer.Option(False, "--prune", help="Then delete the vectors of every other model version."),
    batch_size: int = typer.Option(256, "--batch-size", min=1, help="Faces embedded (and committed) per batch."),
    model: Optional[Path] = MODEL_OPTION,
    db: Optional[str] = DB_OPTION,
    as_json: bool = JSON_OPTION,
) -> None:
    """Embed the stored crops of every enrolled face with the current model.

    Needed after changing the model: identification refuses to compare vectors of different model
    versions. Faces already embedded by this model are left alone, so an interrupted run resumes.

    Example:

        facever reindex --model models/new-bundle
    """
    with handle_errors(as_json):
        from facever.gallery import Gallery

        with Gallery(db, model=model, create=False, index=index.value, actor="cli") as gallery, progress_bar(not as_json) as bar:
            task = bar.add_task("re-embedding", total=None)
            report = gallery.reindex(progress=lambda done, total: bar.update(task, completed=done, total=total),
                                     batch_size=batch_size, prune=prune)
            status = gallery.rebuild_index()
    if as_json:
        print_json({**report.to_dict(), **({"index": status.to_dict()} if status.backend != "exact" else {})})
        return
    out.print(f"model {report.model_version}: embedded {report.embedded} face(s); "
              f"all {report.total} enrolled faces now have a vector" + (f"; deleted {report.pruned} old vector(s)"
                                                                         if prune else ""))
    if status.backend != "exact":
        out.print(f"search index: {status.note}", markup=False)
