"""Shared CLI plumbing: JSON/text output, one-line errors, exit codes, progress bars."""

from __future__ import annotations

import json
import os
import sys
from contextlib import contextmanager
from enum import Enum
from typing import TYPE_CHECKING, Any, Iterator

import typer

if TYPE_CHECKING:
    from rich.console import Console
    from rich.progress import Progress

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

# Exit codes, the same for every command (README.md, "Command-line examples"):
#: done; ``verify``: the same person; ``db check``: healthy.
EXIT_OK = 0
#: a negative answer: ``verify``: different people (or a capture that is not live); ``db check``:
#: problems found; a question answered "no".
EXIT_NO = 1
#: an error, nothing done: bad input or usage, no model, database trouble (like ``cmp``).
EXIT_ERROR = 2
#: done in part: some inputs failed (each one reported), the others were processed.
EXIT_PARTIAL = 3
#: interrupted (Ctrl-C).
EXIT_INTERRUPTED = 130


def __getattr__(name: str) -> "Console":
    """``out`` / ``err``: rich consoles on stdout / stderr, created on first use (importing rich costs
    a cold ``facever verify --json`` or a one-line error time it does not need)."""
    if name in ("out", "err"):
        from rich.console import Console

        console = Console(stderr=name == "err", highlight=False, soft_wrap=True)
        globals()[name] = console
        return console
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

JSON_OPTION = typer.Option(False, "--json", help="Print machine-readable JSON on stdout.")
MODEL_OPTION = typer.Option(None, "--model", "-m", help="Model bundle directory (default: FACEVER_MODEL or the shipped model).")
DB_OPTION = typer.Option(None, "--db", help="SQLAlchemy database URL (default: FACEVER_DB or SQLite in FACEVER_HOME).")


class IndexBackend(str, Enum):
    """Where a gallery search runs (``--index`` of ``identify`` and ``reindex``)."""

    auto = "auto"
    exact = "exact"
    ann = "ann"
    pgvector = "pgvector"


#: Packages only the training side (train, evaluate, calibrate, export) needs: ``facever[train]``.
TRAINING_MODULES = frozenset({"tensorflow", "keras", "tf2onnx", "onnx", "sklearn", "mtcnn", "matplotlib"})


def print_json(data: Any) -> None:
    """Write ``data`` as JSON to stdout (no rich markup)."""
    sys.stdout.write(json.dumps(data, indent=2, ensure_ascii=False, default=_json_default) + "\n")
    sys.stdout.flush()


def print_line(*parts: str | tuple[str, str]) -> None:
    """Print one line made of plain strings and ``(text, rich style)`` pairs; text is never read as
    markup. On a terminal (or with ``FORCE_COLOR``) rich styles it; to a pipe or file the plain text
    is written without importing rich (a cold ``facever verify`` needs nothing else from it)."""
    if sys.stdout.isatty() or os.environ.get("FORCE_COLOR"):
        from rich.text import Text

        __getattr__("out").print(Text.assemble(*parts))
        return
    sys.stdout.write("".join(p if isinstance(p, str) else p[0] for p in parts) + "\n")


def _json_default(obj: Any) -> Any:
    if hasattr(obj, "tolist"):
        return obj.tolist()
    if hasattr(obj, "isoformat"):
        return obj.isoformat()
    return str(obj)


def fail(message: str, code: int = EXIT_ERROR, as_json: bool = False) -> "typer.Exit":
    """Print a one-line error on stderr (and JSON on stdout if asked) and exit with ``code``."""
    if as_json:
        print_json({"error": message})
    sys.stderr.write(f"error: {message}\n")
    sys.stderr.flush()
    raise typer.Exit(code)


#: ``facever --debug`` (set by the root command on every run).
DEBUG = False


def exit_code(done: int, failed: int) -> int:
    """The exit code of a command over several inputs: :data:`EXIT_OK` when none failed,
    :data:`EXIT_PARTIAL` when some failed and others were done, :data:`EXIT_ERROR` when all failed."""
    if failed == 0:
        return EXIT_OK
    return EXIT_PARTIAL if done > 0 else EXIT_ERROR


def debug_enabled() -> bool:
    """``facever --debug`` (or ``FACEVER_DEBUG=1``): errors print their traceback too."""
    return DEBUG or os.environ.get("FACEVER_DEBUG", "").strip().lower() not in ("", "0", "false", "no")


@contextmanager
def handle_errors(as_json: bool = False) -> Iterator[None]:
    """Turn facever errors (and other foreseeable ones) into one clean line and exit code 2; with
    ``--debug`` the traceback is printed first."""
    from facever.errors import FaceverError

    try:
        yield
    except typer.Exit:
        raise
    except FaceverError as exc:
        _fail_from(exc, str(exc), as_json=as_json)
    except ModuleNotFoundError as exc:
        if exc.name and exc.name.split(".")[0] in TRAINING_MODULES:
            _fail_from(exc, f"this command needs the training extra ({exc.name} is not installed): "
                       "pip install 'facever[train]'", as_json=as_json)
        raise
    except (OSError, ValueError) as exc:
        _fail_from(exc, f"{type(exc).__name__}: {exc}", as_json=as_json)
    except KeyboardInterrupt as exc:
        _fail_from(exc, "interrupted", code=EXIT_INTERRUPTED, as_json=as_json)


def _fail_from(exc: BaseException, message: str, code: int = EXIT_ERROR, as_json: bool = False) -> None:
    if debug_enabled():
        import traceback

        traceback.print_exception(exc, file=sys.stderr)
    fail(message, code=code, as_json=as_json)


@contextmanager
def progress_bar(enabled: bool = True) -> Iterator[Progress]:
    """A rich progress bar on stderr (disabled for --json or when stderr is not a terminal)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    console = __getattr__("err")
    progress = Progress(TextColumn("[progress.description]{task.description}"), BarColumn(), MofNCompleteColumn(),
                        TimeElapsedColumn(), TimeRemainingColumn(), console=console,
                        disable=not enabled or not console.is_terminal)
    with progress:
        yield progress
