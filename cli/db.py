"""``facever db``: schema upgrade, health check and backup of the gallery database."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.markup import escape

from .common import DB_OPTION, JSON_OPTION, handle_errors, out, print_json

app = typer.Typer(help="Gallery database maintenance: upgrade, check, backup.", no_args_is_help=True)


@app.command("upgrade")
def upgrade(db: Optional[str] = DB_OPTION, as_json: bool = JSON_OPTION) -> None:
    """Create the gallery schema or bring it to this facever's newest revision.

    Creates the database if there is none (as `facever enroll` does; other commands only read an
    existing one). facever also upgrades on first use; run it explicitly after upgrading facever.

    Example:

        facever db upgrade --db postgresql://user@host/facever
    """
    with handle_errors(as_json):
        from facever.store import Database

        database = Database(db, upgrade=False)
        try:
            before, now = database.upgrade()
        finally:
            database.close()
    if as_json:
        print_json({"database": database.label, "from": before, "to": now, "changed": before != now})
    elif before == now:
        out.print(f"{escape(database.label)}: schema already at revision {now}")
    else:
        out.print(f"{escape(database.label)}: schema upgraded from {before or 'nothing'} to revision {now}")


@app.command("check")
def check(db: Optional[str] = DB_OPTION, as_json: bool = JSON_OPTION) -> None:
    """Check the gallery: schema revision, file integrity (SQLite), orphan rows, counts, model versions.

    Never creates a database: a missing one is an error (exit 2). Exit code: 0 healthy, 1 problems
    found, 2 cannot read the database or there is none.

    Example:

        facever db check --json
    """
    with handle_errors(as_json):
        from facever.store import Database, check_database

        database = Database(db, upgrade=False, create=False)
        try:
            report = check_database(database)
        finally:
            database.close()
    if as_json:
        print_json(report.to_dict())
    else:
        out.print(f"database  {escape(report.database)} ({report.backend})")
        out.print(f"schema    revision {report.revision or '-'} (newest {report.head})")
        if report.integrity is not None:
            out.print(f"integrity {'; '.join(report.integrity[:3])}")
        if report.counts:
            out.print("rows      " + ", ".join(f"{k} {v}" for k, v in report.counts.items()))
            out.print("models    " + (", ".join(f"{k} ({v} vectors)" for k, v in report.model_versions.items()) or "-"))
            out.print("crops     " + (", ".join(f"{k} ({v} faces)" for k, v in report.crop_templates.items()) or "-"))
        if report.crop_templates.get("unknown"):
            out.print(f"note      {report.crop_templates['unknown']} face(s) have no recorded crop template: "
                      "`facever reindex` cannot re-embed them (enrol their photos again)", style="dim")
        for version, n in report.faces_missing_embeddings.items():
            out.print(f"note      {n} face(s) have no vector by model {version}", style="dim")
        if report.vector_search:
            out.print(f"search    {escape(report.vector_search['note'])}")
        for problem in report.problems:
            out.print(f"[red]problem[/]   {escape(problem)}")
        out.print("[green]ok[/]" if report.ok else f"[red]{len(report.problems)} problem(s)[/]")
    raise typer.Exit(0 if report.ok else 1)


@app.command("backup")
def backup(path: Path = typer.Argument(..., help="Where to write the copy."),
           force: bool = typer.Option(False, "--force", help="Replace PATH if it exists."),
           db: Optional[str] = DB_OPTION, as_json: bool = JSON_OPTION) -> None:
    """Copy a SQLite gallery consistently, even while others use it (SQLite's online backup).

    For PostgreSQL use pg_dump.

    Example:

        facever db backup ~/gallery-backup.db
    """
    with handle_errors(as_json):
        from facever.store import Database

        database = Database(db, upgrade=False, create=False)
        try:
            size = database.backup(path, overwrite=force)
        finally:
            database.close()
    if as_json:
        print_json({"database": database.label, "backup": str(path), "bytes": size})
    else:
        out.print(f"backed up {escape(database.label)} to {escape(str(path))} ({size:,} bytes)")
