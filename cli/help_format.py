"""How every command's ``--help`` reads: flags as flags, arguments in capitals, sentences unbroken.

typer 0.29's rich help prints a flag as ``--json <bool>``, a required argument in the usage line as
``{image1}``, and keeps the line breaks of a docstring (wrapped for the source at 100 columns), so a
sentence breaks wherever the source did. :func:`tidy_help` fixes the three on a built click command
(and its subcommands): flags get no type column, arguments read ``IMAGE1`` / ``[IMAGE2]``, and the
lines of a prose paragraph are joined (indented lines, such as the examples, are kept as they are).
It only changes attributes typer reads when it renders help, so parsing is untouched; on a typer
without these internals it changes nothing.
"""

from __future__ import annotations

import inspect
from typing import Any, Iterable


def tidy_help(command: Any) -> None:
    """Tidy the help of ``command`` and of its loaded subcommands (see the module docstring)."""
    for cmd in _commands(command):
        if cmd.help:
            cmd.help = join_paragraph_lines(cmd.help)
        for param in cmd.params:
            _tidy_param(param)
        original = getattr(cmd, "get_help_option", None)
        if original is not None and not getattr(original, "_tidy", False):
            def get_help_option(ctx: Any, _original: Any = original) -> Any:
                option = _original(ctx)
                if option is not None:
                    _tidy_param(option)
                return option

            get_help_option._tidy = True  # type: ignore[attr-defined]
            get_help_option._light = getattr(original, "_light", False)  # type: ignore[attr-defined]
            cmd.get_help_option = get_help_option


def join_paragraph_lines(text: str) -> str:
    """``text`` with the lines of each prose paragraph joined by spaces.

    Paragraphs are separated by blank lines; a paragraph with an indented line (an example, a
    table) or click's ``\\b`` no-rewrap marker is kept line by line.
    """
    paragraphs = inspect.cleandoc(text).split("\n\n")
    out = []
    for para in paragraphs:
        lines = para.split("\n")
        if para.startswith("\b") or any(line[:1].isspace() for line in lines):
            out.append(para)
        else:
            out.append(" ".join(line.strip() for line in lines))
    return "\n\n".join(out)


def _tidy_param(param: Any) -> None:
    if getattr(param, "help", None):
        param.help = " ".join(param.help.split())
    if getattr(param, "param_type_name", "") == "argument":
        if param.metavar is None:
            param.metavar = param.name.upper()
        if hasattr(param, "_usage_display_name"):
            param._usage_display_name = lambda p=param: _usage_name(p)
    elif getattr(param, "is_flag", False) and hasattr(param, "display_type_rich"):
        param.display_type_rich = lambda ctx=None: None


def _usage_name(param: Any) -> str:
    name = param.metavar if param.required else f"[{param.metavar}]"
    return name + ("..." if param.nargs != 1 else "")


def _commands(command: Any) -> Iterable[Any]:
    yield command
    for sub in getattr(command, "commands", {}).values():
        if hasattr(sub, "params") and not type(sub).__name__ == "_Placeholder":
            yield from _commands(sub)
