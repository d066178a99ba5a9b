"""The ``facever`` command: a thin typer layer over the facever library.

Each command group lives in its own module; this file only assembles them.
"""

from __future__ import annotations

import typer

from . import calibrate, db, enroll, evaluate, export, identify, people, reindex, serve, train
from . import audit, keys
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
app.add_typer(keys.app, name="keys")
app.command("audit")(audit.audit)
app.command("serve")(serve.serve)


def _show_version(value: bool) -> None:
    if value:
        from importlib.metadata import PackageNotFoundError, version

        try:
            typer.echo(f"facever {version('facever')}")
        except PackageNotFoundError:
            typer.echo("facever (not installed)")
        raise typer.Exit(0)


@app.callback()
def _root(version: bool = typer.Option(False, "--version", help="Show the facever version and exit.", is_eager=True,
                                       callback=_show_version)) -> None:
    """Face verification and recognition: verify two faces, enroll people, identify faces."""


def main() -> None:
    """Console-script entry point.

    Usage errors (unknown option, missing argument, bad value) are one line on stderr, ``error: ...``
    with a pointer to ``--help``, and exit code 2, like every other facever error.
    """
    import sys

    try:
        code = app(standalone_mode=False)
    except Exception as exc:  # click's exception classes (typer may vendor click): matched by name
        kinds = {cls.__name__ for cls in type(exc).__mro__}
        if "UsageError" in kinds:
            ctx = getattr(exc, "ctx", None)
            cmd = ctx.command_path if ctx is not None else "facever"
            message = exc.format_message()
            if message:  # (no arguments at all: the help was shown instead)
                sys.stderr.write(f"error: {message} (see '{cmd} --help')\n")
            raise SystemExit(2) from None
        if "Abort" in kinds:
            sys.stderr.write("error: aborted\n")
            raise SystemExit(130) from None
        if "Exit" in kinds:
            raise SystemExit(getattr(exc, "exit_code", 0)) from None
        if "ClickException" in kinds:
            sys.stderr.write(f"error: {exc.format_message()}\n")
            raise SystemExit(getattr(exc, "exit_code", 1) or 1) from None
        raise
    raise SystemExit(code if isinstance(code, int) else 0)
