"""The ``facever`` command: a thin typer layer over the facever library.

Each command group lives in its own module; this file only assembles them.
"""

from __future__ import annotations

import typer

from . import calibrate, db, enroll, evaluate, export, identify, people, reindex, train
from . import verify as verify_cmd

app = typer.Typer(
    name="facever",
    help="Face verification and recognition: verify two faces, enroll people, identify faces.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

app.command("verify")(verify_cmd.verify)

app.command("enroll")(enroll.enroll)
app.command("identify")(identify.identify)
app.add_typer(people.app, name="people")
app.add_typer(db.app, name="db")
app.command("reindex")(reindex.reindex)
app.command("train")(train.train)
app.command("evaluate")(evaluate.evaluate)
app.command("calibrate")(calibrate.calibrate)
app.command("export")(export.export)


@app.callback()
def _root(version: bool = typer.Option(False, "--version", help="Show the facever version and exit.", is_eager=True)) -> None:
    if version:
        import facever

        typer.echo(f"facever {facever.__version__}")
        raise typer.Exit(0)


def main() -> None:
    """Console-script entry point."""
    app()
