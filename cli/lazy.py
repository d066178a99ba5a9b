"""A typer group that imports a command's module only when that command runs.

``facever verify`` should not pay for ``calibrate``'s or ``serve``'s imports, and ``facever --help``
should not import any command module: :class:`LazyGroup` holds a placeholder per registered command
(its one-line summary, kept beside the registry in ``app.py``) and swaps in the real command the first
time it is resolved. The help listing uses the placeholders.

:func:`light_coercion` keeps pydantic off the common paths: recent typer (0.29 here) converts every argument
value through a pydantic ``TypeAdapter`` (≈ 0.1 s of imports and schema building per cold process).
For plain values that convert without error (``str``, ``int``/``float`` in range, ``pathlib.Path``,
a ``str`` Enum's member by its value, lists of those) it converts them directly; anything else (an error, a choice, a file, a custom parser,
a typer version without these internals) goes through typer's own conversion, so messages and
behaviour of every other case are typer's.
"""

from __future__ import annotations

import importlib
import re
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any, Iterable, get_args, get_origin

import typer
from typer.core import TyperCommand, TyperGroup

from .help_format import tidy_help


@dataclass(frozen=True)
class LazyCommand:
    """A registered command: ``attribute`` of ``facever_cli.<module>`` is a command function or a
    ``typer.Typer`` (a command group); ``summary`` is its one-line help shown by ``facever --help``."""

    module: str
    attribute: str
    summary: str

    def load(self, name: str, package: str) -> Any:
        """Import the module and build the click command (a group for a ``typer.Typer``)."""
        target = getattr(importlib.import_module(f"{package}.{self.module}"), self.attribute)
        if isinstance(target, typer.Typer):
            command = typer.main.get_group(target)
            command.name = name
        else:
            single = typer.Typer(add_completion=False)
            single.command(name)(target)
            command = typer.main.get_command(single)
        light_coercion(command)
        tidy_help(command)
        return command


class _Placeholder(TyperCommand):
    """Stands for a command not imported yet: its name and summary, for help listings."""

    def __init__(self, name: str, spec: LazyCommand) -> None:
        summary = " ".join(spec.summary.split())  # one line, however the registry wraps it
        super().__init__(name, help=summary, short_help=summary)
        self.spec = spec


class LazyGroup(TyperGroup):
    """A :class:`typer.core.TyperGroup` whose lazily registered commands load on first use.

    Subclasses (or :func:`lazy_group`) set :attr:`lazy_commands` (name → :class:`LazyCommand`, in the
    order ``--help`` lists them) and :attr:`package` (where the modules live). Commands registered the
    usual typer way (``app.command(...)``) work too; they are simply loaded eagerly.
    """

    lazy_commands: dict[str, LazyCommand] = {}
    package: str = ""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        light_coercion(self)  # its own options and the eagerly registered commands
        tidy_help(self)
        eager = dict(self.commands)
        self.commands.clear()
        for name, spec in self.lazy_commands.items():
            self.commands[name] = eager.pop(name, None) or _Placeholder(name, spec)
        self.commands.update(eager)
        self._listing = False

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        command = self.commands.get(cmd_name)
        if isinstance(command, _Placeholder) and not self._listing:
            command = self.commands[cmd_name] = command.spec.load(cmd_name, self.package)
        return command

    def format_help(self, ctx: Any, formatter: Any) -> None:
        self._listing = True  # list the placeholders: no command module is imported for --help
        try:
            return super().format_help(ctx, formatter)
        finally:
            self._listing = False


def lazy_group(commands: dict[str, LazyCommand], package: str) -> type[LazyGroup]:
    """A :class:`LazyGroup` subclass for ``typer.Typer(cls=...)`` holding ``commands``."""
    return type("FaceverGroup", (LazyGroup,), {"lazy_commands": dict(commands), "package": package})


# ---- argument conversion without pydantic -----------------------------------------------------------
_INT = re.compile(r"[+-]?\d+")
_FLOAT = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")


class _Unsupported(Exception):
    """This value or annotation is left to typer's own conversion."""


class _LightRuntimeParam:
    """typer's per-parameter converter (``coerce(value, param, ctx)``) for plain values; any other
    value is handed to the converter typer would have built (pydantic)."""

    def __init__(self, descriptor: Any) -> None:
        self.descriptor = descriptor
        self._typer = None

    def coerce(self, value: Any, param: Any, ctx: Any) -> Any:
        try:
            return self._convert(value, param, ctx)
        except _Unsupported:
            pass
        if self._typer is None:
            from typer._coercion import build_runtime_param

            self._typer = build_runtime_param(self.descriptor)
        return self._typer.coerce(value, param=param, ctx=ctx)

    def _convert(self, value: Any, param: Any, ctx: Any) -> Any:
        multi = bool(param.multiple) or param.nargs == -1
        if value is None:
            return () if multi else None
        annotation = self.descriptor.annotation
        if not multi:
            return self._leaf(value, annotation, param, ctx)
        if get_origin(annotation) is not list or isinstance(value, (str, bytes)):
            raise _Unsupported
        (item,) = get_args(annotation)
        return [self._leaf(v, item, param, ctx) for v in value]

    def _leaf(self, value: Any, annotation: Any, param: Any, ctx: Any) -> Any:
        info = self.descriptor.parameter_info
        if annotation is bool or annotation is str:
            if type(value) is annotation:
                return value
            raise _Unsupported
        if annotation is int or annotation is float:
            return self._number(value, annotation, info)
        if isinstance(annotation, type) and issubclass(annotation, Enum):
            if isinstance(value, annotation):
                return value
            if isinstance(value, str) and getattr(info, "case_sensitive", True):
                for member in annotation:
                    if member.value == value:
                        return member
            raise _Unsupported  # typer's own message (and case-insensitive matching)
        if isinstance(annotation, type) and issubclass(annotation, Path) and isinstance(value, (str, Path)):
            path_type = getattr(info, "path_type", None) or annotation
            if not (isinstance(path_type, type) and issubclass(path_type, Path)):
                raise _Unsupported
            from typer._param_types import coerce_cli_path  # exists, readable, ... checks (no pydantic for a Path)

            return coerce_cli_path(path_type(value), info, path_type=path_type, param=param, ctx=ctx)
        raise _Unsupported

    @staticmethod
    def _number(value: Any, annotation: type, info: Any) -> Any:
        if getattr(info, "clamp", False):
            raise _Unsupported
        if type(value) is annotation or (annotation is float and type(value) is int):
            number = annotation(value)
        elif isinstance(value, str) and (_INT if annotation is int else _FLOAT).fullmatch(value):
            number = annotation(value)
        else:
            raise _Unsupported
        if (info.min is not None and number < info.min) or (info.max is not None and number > info.max):
            raise _Unsupported  # typer's own message
        return number


def _simple(descriptor: Any) -> bool:
    if getattr(descriptor, "file_annotation", None) is not None:
        return False
    if getattr(descriptor, "is_choice", False):  # only a str Enum's choices are converted here
        annotation = getattr(descriptor, "annotation", None)
        if not (isinstance(annotation, type) and issubclass(annotation, Enum) and issubclass(annotation, str)):
            return False
    info = descriptor.parameter_info
    return getattr(info, "parser", None) is None and getattr(info, "click_type", None) is None


def light_coercion(command: Any) -> None:
    """Give every plain parameter of ``command`` and of its loaded subcommands (their ``--help``
    options included) the pydantic-free converter. A no-op for parameters whose converter typer
    already built, and for typer versions without per-parameter converters."""
    for cmd in _commands(command):
        for param in cmd.params:
            _install(param)
        original = getattr(cmd, "get_help_option", None)
        if original is not None and not getattr(original, "_light", False):
            def get_help_option(ctx: Any, _original: Any = original) -> Any:
                option = _original(ctx)  # built on first use; typer would convert its value through pydantic
                if option is not None:
                    _install(option)
                return option

            get_help_option._light = True  # type: ignore[attr-defined]
            cmd.get_help_option = get_help_option


def _install(param: Any) -> None:
    descriptor = getattr(param, "type_descriptor", None)
    if descriptor is not None and getattr(param, "_runtime_param", 0) is None and _simple(descriptor):
        param._runtime_param = _LightRuntimeParam(descriptor)


def _commands(command: Any) -> Iterable[Any]:
    yield command
    for sub in getattr(command, "commands", {}).values():
        if not isinstance(sub, _Placeholder):
            yield from _commands(sub)
