"""The ``facever`` command: a thin typer layer over the facever library.

Each command (or command group) lives in its own module, registered in :data:`COMMANDS` with the
one-line summary ``facever --help`` shows; a module is imported only when its command runs
(:mod:`.lazy`), so ``facever verify`` never pays for ``calibrate`` or ``serve``. To add a command:
write ``cli/NAME.py`` and add a line here (a test checks every summary against the command's own help).
"""

from __future__ import annotations

import typer

from .lazy import LazyCommand, lazy_group

#: name → (module, function or ``typer.Typer`` in it, one-line summary), in ``--help`` order.
COMMANDS: dict[str, LazyCommand] = {name: LazyCommand(*spec) for name, spec in {
    "verify": ("verify", "verify", "Decide whether two face images show the same person."),
    "enroll": ("enroll", "enroll", "Enroll a person from photos, or many people from a folder."),
    "identify": ("identify", "identify", "Identify every face in photos against the enrolled people."),
    "embed": ("embed", "embed", "Embed every face of a folder of photos into one file (NPZ or Parquet), resumably."),
    "reindex": ("reindex", "reindex", "Embed the stored crops of every enrolled face with the current model."),
    "train": ("train", "train", "Train an encoder and write a calibrated bundle to --out/bundle."),
    "evaluate": ("evaluate", "evaluate", "Evaluate a model on LFW (P1 View 1, P2 DevTest all pairs, P3 open-set, "
                 "P4 View 2), or on your\nown folder-per-person photos with --data."),
    "calibrate": ("calibrate", "calibrate", "Calibrate a model's threshold τ on labelled pairs and store it in the bundle."),
    "export": ("export", "export", "Export a bundle's encoder to ONNX (encoder.onnx), checked against Keras, for the "
               "light runtime."),
    "audit": ("audit", "audit", "Show the audit log, newest first: enrolments, removals, renames, reindexing, API keys."),
    "serve": ("serve", "serve", "Serve the HTTP API (/v1/...), the web page (/) and the API docs (/docs)."),
    "people": ("people", "app", "Manage enrolled people: list, show, rename, remove."),
    "db": ("db", "app", "Gallery database maintenance: upgrade, check, backup."),
    "keys": ("keys", "app", "API keys of the HTTP service (facever serve): create, list, revoke."),
    "model": ("model", "app", "Build the default model from dlib's CC0 weights and public data."),
}.items()}

app = typer.Typer(
    name="facever",
    help="Face verification and recognition: verify two faces, enroll people, identify faces.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    cls=lazy_group(COMMANDS, __package__),
)


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
                                       callback=_show_version),
          debug: bool = typer.Option(False, "--debug", help="On an error, print the full traceback before the "
                                     "one-line message (also FACEVER_DEBUG=1).")) -> None:
    """Face verification and recognition: verify two faces, enroll people, identify faces."""
    from . import common

    common.DEBUG = debug  # set on every run: an earlier run in this process leaves nothing behind


def main() -> None:
    """Console-script entry point.

    Usage errors (unknown option, missing argument, bad value) are one line on stderr, ``error: ...``
    with a pointer to ``--help``, and exit code 2, like every other facever error.

    The process ends when this returns, so the garbage collector's passes over every object at
    interpreter shutdown are skipped (:func:`gc.freeze`: half of the ~50 ms a cold ``verify`` spent
    exiting). Objects are still released by reference counting and ``atexit`` handlers run; only
    cyclic garbage, which Python never promises to finalise at exit, is left to the OS.
    """
    try:
        _main()
    finally:
        import gc

        gc.freeze()


def _main() -> None:
    import sys

    if not sys.argv[1:] or any(a in ("--help", "-h") for a in sys.argv[1:]):  # a help screen: see light_help
        from .light_help import import_rich_utils_lightly

        import_rich_utils_lightly()
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
        from .common import EXIT_ERROR, debug_enabled

        if debug_enabled():
            raise
        sys.stderr.write(f"error: unexpected {type(exc).__name__}: {exc} (run 'facever --debug ...' for the traceback)\n")
        raise SystemExit(EXIT_ERROR) from None
    raise SystemExit(code if isinstance(code, int) else 0)
