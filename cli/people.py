"""``facever people``: list, show, rename and remove enrolled people (no model needed)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.markup import escape

from .common import DB_OPTION, EXIT_NO, JSON_OPTION, fail, handle_errors, out, print_json

app = typer.Typer(help="Manage enrolled people: list, show, rename, remove.", no_args_is_help=True)


@app.command("list")
def list_people(db: Optional[str] = DB_OPTION, as_json: bool = JSON_OPTION) -> None:
    """List enrolled people with their number of faces.

    One line per person, or a JSON list with --json.

    Example:

        facever people list --json
    """
    with handle_errors(as_json):
        from facever.gallery import Gallery

        with Gallery(db, create=False) as gallery:
            people = gallery.people()
    if as_json:
        print_json({"people": [p.to_dict() for p in people]})
        return
    if not people:
        out.print("no one is enrolled yet (see `facever enroll --help`)")
        return
    width = max(len(p.name) for p in people)
    for p in people:
        out.print(f"{p.name:<{width}}  {p.n_faces:>4} face(s)  enrolled {p.created:%Y-%m-%d %H:%M} UTC", markup=False)
    out.print(f"{len(people)} people, {sum(p.n_faces for p in people)} faces", style="dim")


@app.command("show")
def show(name: str = typer.Argument(..., help="The person's exact name."),
         montage: Optional[Path] = typer.Option(
             None, "--montage",
             help="Also write the person's stored face crops tiled into one picture (e.g. faces.jpg): "
                  "a mislabelled enrolment stands out."),
         db: Optional[str] = DB_OPTION, as_json: bool = JSON_OPTION) -> None:
    """Show one person's faces: source, image hash, quality, model versions.

    One line per stored face; --montage also writes the face crops tiled into one picture.

    Examples:

        facever people show "Ada Lovelace"

        facever people show "Ada Lovelace" --montage ada-faces.jpg
    """
    written = None
    with handle_errors(as_json):
        from facever.gallery import Gallery

        with Gallery(db, create=False) as gallery:
            person = gallery.person(name)
            if montage is not None:
                written = _write_montage(gallery, name, montage)
    if as_json:
        data = person.to_dict()
        if written is not None:
            data["montage"] = str(written)
        print_json(data)
        return
    out.print(f"[bold]{escape(person.name)}[/]: {person.n_faces} face(s), enrolled {person.created:%Y-%m-%d %H:%M} UTC")
    for f in person.faces:
        q = f.quality
        out.print(f"  #{f.id}  {escape(f.source)}  sha256 {f.sha256[:12]}  face {q['face_size']:.0f} px  "
                  f"sharpness {q['sharpness']:.0f}  models {', '.join(f.model_versions) or '-'}")
    if written is not None:
        out.print(f"montage of {person.n_faces} face(s) → {escape(str(written))}")


def _write_montage(gallery, name: str, dest: Path) -> Path:
    """Tile the person's crops (labelled with their face ids) into ``dest``."""
    from facever.drawing import montage, write_image

    crops = gallery.face_crops(name)
    if not crops:
        raise ValueError(f"{name!r} has no stored face to show")
    return write_image(dest, montage([c for _, c in crops], labels=[f"#{i}" for i, _ in crops]))


@app.command("rename")
def rename(old: str = typer.Argument(..., help="Current name."), new: str = typer.Argument(..., help="New name."),
           db: Optional[str] = DB_OPTION, as_json: bool = JSON_OPTION) -> None:
    """Rename a person (their faces stay).

    The faces, their embeddings and the person's history are kept; the audit log records the rename.

    Example:

        facever people rename "Ada" "Ada Lovelace"
    """
    with handle_errors(as_json):
        from facever.gallery import Gallery

        with Gallery(db, create=False, actor="cli") as gallery:
            gallery.rename(old, new)
    if as_json:
        print_json({"renamed": old, "to": new})
    else:
        out.print(f"renamed {escape(old)} → {escape(new)}")


@app.command("remove")
def remove(name: str = typer.Argument(..., help="The person's exact name."),
           yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask for confirmation (needed without a terminal)."),
           vacuum: bool = typer.Option(False, "--vacuum", help="Also compact the SQLite file."),
           db: Optional[str] = DB_OPTION, as_json: bool = JSON_OPTION) -> None:
    """Remove a person with every face crop and vector of theirs.

    On SQLite the deleted data is overwritten in the database file.

    Example:

        facever people remove "Ada Lovelace" --yes
    """
    with handle_errors(as_json):
        from facever.gallery import Gallery

        with Gallery(db, create=False, actor="cli") as gallery:
            n = gallery.person(name).n_faces
            if not yes and not _interactive():
                fail(f"not removed: no terminal to ask on; pass --yes to remove {name!r} and their {n} face(s)",
                     as_json=as_json)
            if not yes and not _confirm(f"remove {name!r} and their {n} face(s)?"):
                fail("not removed (pass --yes to skip the question)", code=EXIT_NO, as_json=as_json)
            removed = gallery.remove(name, vacuum=vacuum)
    if as_json:
        print_json({"removed": name, "faces": removed})
    else:
        out.print(f"removed {escape(name)} ({removed} face(s))")


def _interactive() -> bool:
    """Whether a question can be asked: stdin and stderr are a terminal."""
    import sys

    return sys.stdin.isatty() and sys.stderr.isatty()


def _confirm(question: str) -> bool:
    """Ask on stderr; no answer (closed stdin) is a no."""
    try:
        return typer.confirm(question, err=True)
    except typer.Abort:
        return False
