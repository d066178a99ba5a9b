"""The ``facever`` command: a thin typer layer over the facever library.

Each command group lives in its own module; this file only assembles them.
"""

from __future__ import annotations

import importlib

import typer

from . import verify as verify_cmd

app = typer.Typer(
    name="facever",
    help="Face verification and recognition: verify two faces, enroll people, identify faces.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

app.command("verify")(verify_cmd.verify)

#: Optional command modules: (module, attribute, kind, name); kind "command" or "group".
_EXTRA = [
    ("enroll", "enroll", "command", "enroll"),
    ("identify", "identify", "command", "identify"),
    ("reindex", "reindex", "command", "reindex"),
    ("people", "app", "group", "people"),
    ("db", "app", "group", "db"),
    ("train", "train", "command", "train"),
    ("evaluate", "evaluate", "command", "evaluate"),
    ("calibrate", "calibrate", "command", "calibrate"),
]

for module_name, attr, kind, name in _EXTRA:
    try:
        module = importlib.import_module(f"{__package__}.{module_name}")
    except ModuleNotFoundError as exc:
        if exc.name != f"{__package__}.{module_name}":
            raise
        continue
    target = getattr(module, attr)
    if kind == "group":
        app.add_typer(target, name=name)
    else:
        app.command(name)(target)


@app.callback()
def _root(version: bool = typer.Option(False, "--version", help="Show the facever version and exit.", is_eager=True)) -> None:
    if version:
        import facever

        typer.echo(f"facever {facever.__version__}")
        raise typer.Exit(0)


def main() -> None:
    """Console-script entry point."""
    app()
