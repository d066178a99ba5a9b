"""Help screens without markdown-it: typer's rich help, minus an import facever never uses.

``typer.rich_utils`` (imported by typer only to draw a help screen or a usage error) imports
``rich.markdown`` at its top, which imports ``markdown-it`` and its plugins: about 40 ms of a cold
``facever --help`` (≈ 0.15 s in all), for typer's ``rich_markup_mode="markdown"``. facever's help uses
the default ``"rich"`` mode, so markdown is never rendered.

:func:`import_rich_utils_lightly` imports ``typer.rich_utils`` while ``sys.modules["rich.markdown"]``
holds a stand-in whose ``Markdown`` builds the real class on first use, then removes the stand-in:
typer's module keeps the stand-in name, and anything else that imports ``rich.markdown`` later gets
the real module. The help screens are byte-identical (``tests/test_cli_help.py`` checks it).
"""

from __future__ import annotations

import importlib
import sys
import types


class _DeferredMarkdown:
    """Stands for ``rich.markdown.Markdown`` inside ``typer.rich_utils``: instantiating it returns a
    real ``Markdown`` (the module is imported then), so markdown mode would still work."""

    def __new__(cls, *args, **kwargs):
        return importlib.import_module("rich.markdown").Markdown(*args, **kwargs)


def import_rich_utils_lightly() -> None:
    """Import ``typer.rich_utils`` without ``rich.markdown`` (nothing happens when either is loaded
    already, or when typer cannot be imported that way)."""
    if "typer.rich_utils" in sys.modules or "rich.markdown" in sys.modules:
        return
    stand_in = types.ModuleType("rich.markdown")
    stand_in.Markdown = _DeferredMarkdown  # type: ignore[attr-defined]
    sys.modules["rich.markdown"] = stand_in
    try:
        importlib.import_module("typer.rich_utils")
    except Exception:  # noqa: BLE001 - a typer without rich: its own import path decides
        pass
    finally:
        if sys.modules.get("rich.markdown") is stand_in:
            del sys.modules["rich.markdown"]
