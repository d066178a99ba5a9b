"""``facever people``: list, show, rename and remove enrolled people (no model needed)."""

from __future__ import annotations

from typing import Optional

import typer
from rich.markup import escape

from .common import DB_OPTION, JSON_OPTION, fail, handle_errors, out, print_json

app = typer.Typer(help="Manage enrolled people: list, show, rename, remove.", no_args_is_help=True)


@app.command("list")
def list_people(db: Optional[str] = DB_OPTION, as_json: bool = JSON_OPTION) -> None:
    """List enrolled people with their number of faces.

    Example:

        facever people list --json
    """
    with handle_errors(as_json):
        from facever.gallery import Gallery

        with Gallery(db) as gallery:
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
         db: Optional[str] = DB_OPTION, as_json: bool = JSON_OPTION) -> None:
    """Show one person's faces: source, image hash, quality, model versions.

    Example:

        facever people show "Ada Lovelace"
    """
    with handle_errors(as_json):
        from facever.gallery import Gallery

        with Gallery(db) as gallery:
            person = gallery.person(name)
    if as_json:
        print_json(person.to_dict())
        return
    out.print(f"[bold]{escape(person.name)}[/]: {person.n_faces} face(s), enrolled {person.created:%Y-%m-%d %H:%M} UTC")
    for f in person.faces:
        q = f.quality
        out.print(f"  #{f.id}  {escape(f.source)}  sha256 {f.sha256[:12]}  face {q['face_size']:.0f} px  "
                  f"sharpness {q['sharpness']:.0f}  models {', '.join(f.model_versions) or '-'}")


@app.command("rename")
def rename(old: str = typer.Argument(..., help="Current name."), new: str = typer.Argument(..., help="New name."),
           db: Optional[str] = DB_OPTION, as_json: bool = JSON_OPTION) -> None:
    """Rename a person (their faces stay).

    Example:

        facever people rename "Ada" "Ada Lovelace"
    """
    with handle_errors(as_json):
        from facever.gallery import Gallery

        with Gallery(db) as gallery:
            gallery.rename(old, new)
    if as_json:
        print_json({"renamed": old, "to": new})
    else:
        out.print(f"renamed {escape(old)} → {escape(new)}")


@app.command("remove")
def remove(name: str = typer.Argument(..., help="The person's exact name."),
           yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask for confirmation."),
           vacuum: bool = typer.Option(False, "--vacuum", help="Also compact the SQLite file."),
           db: Optional[str] = DB_OPTION, as_json: bool = JSON_OPTION) -> None:
    """Remove a person with every face crop and vector of theirs.

    On SQLite the deleted data is overwritten in the database file.

    Example:

        facever people remove "Ada Lovelace" --yes
    """
    with handle_errors(as_json):
        from facever.gallery import Gallery

        with Gallery(db) as gallery:
            n = gallery.person(name).n_faces
            if not yes and not _confirm(f"remove {name!r} and their {n} face(s)?"):
                fail("not removed (pass --yes to skip the question)", code=1, as_json=as_json)
            removed = gallery.remove(name, vacuum=vacuum)
    if as_json:
        print_json({"removed": name, "faces": removed})
    else:
        out.print(f"removed {escape(name)} ({removed} face(s))")


def _confirm(question: str) -> bool:
    """Ask on stderr; no answer (closed stdin) is a no."""
    try:
        return typer.confirm(question, err=True)
    except typer.Abort:
        return False
