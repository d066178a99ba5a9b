"""Every command's ``--help`` reads well: flags without a type, arguments in capitals, sentences on
one line, examples indented, every option explained (cli/help_format.py)."""

from __future__ import annotations

import pytest
import typer
from typer.testing import CliRunner

from facever_cli.app import COMMANDS, app
from facever_cli.help_format import join_paragraph_lines

runner = CliRunner()


def _commands() -> list[list[str]]:
    group = typer.main.get_command(app)
    names = []
    for name in COMMANDS:
        command = group.get_command(None, name)
        subs = getattr(command, "commands", None)
        names += [[name, sub] for sub in subs] if subs else [[name]]
    return names


COMMAND_PATHS = _commands()

#: Commands whose docstrings are maintained elsewhere right now: only the rendering rules shared by
#: every command (flags, arguments) are checked on them here.
OTHER_OWNERS = {"serve", "keys", "audit", "embed"}


def _help(path: list[str]) -> str:
    res = runner.invoke(app, [*path, "--help"], env={"COLUMNS": "400"})
    assert res.exit_code == 0, res.output
    return res.stdout


@pytest.mark.parametrize("path", COMMAND_PATHS, ids=" ".join)
def test_help_renders_flags_arguments_and_examples(path):
    text = _help(path)
    usage = next(line for line in text.splitlines() if "Usage:" in line)
    arguments = usage.split("[OPTIONS]", 1)[-1].strip()
    assert "{" not in arguments and arguments == arguments.upper(), usage  # IMAGE1 [IMAGE2], not {image1}
    assert "<bool>" not in text
    if path[0] in OTHER_OWNERS:
        return
    examples = [line for line in text.splitlines() if line.strip().startswith("facever ")]
    assert examples and all(line.startswith("     facever ") for line in examples), examples


@pytest.mark.parametrize("path", COMMAND_PATHS, ids=" ".join)
def test_every_option_has_help(path):
    group = typer.main.get_command(app)
    command = group.get_command(None, path[0])
    for name in path[1:]:
        command = command.commands[name]
    missing = [p.name for p in command.params if p.param_type_name == "option" and not (p.help or "").strip()]
    assert not missing, missing


def test_prose_lines_are_joined_and_examples_kept():
    text = """First line
    goes on.

    A paragraph wrapped
    in the source.

    Examples:

        facever verify a.jpg b.jpg
        facever verify c.jpg d.jpg
    """
    assert join_paragraph_lines(text) == ("First line goes on.\n\nA paragraph wrapped in the source.\n\nExamples:\n\n"
                                          "    facever verify a.jpg b.jpg\n    facever verify c.jpg d.jpg")


def test_a_wrapped_sentence_renders_on_one_line():
    text = _help(["evaluate"])
    assert any("aligned and embedded once." in line and "Every needed LFW image" in line for line in text.splitlines())


_HELP_SCRIPT = """
import sys
if sys.argv[1] == "eager":
    import typer.rich_utils  # the real rich.markdown, as typer imports it on its own
sys.argv = ["facever", *sys.argv[2:]]
from facever_cli.app import main
try:
    main()
except SystemExit:
    pass
print("MODULES", "markdown_it" in sys.modules, "rich.markdown" in sys.modules)
"""


@pytest.mark.parametrize("args", [["--help"], ["verify", "--help"], ["people", "--help"]])
def test_help_screens_skip_markdown_and_stay_identical(args):
    """``facever --help`` draws the same screen without importing markdown-it (cli/light_help.py)."""
    import subprocess
    import sys

    def run(mode: str) -> tuple[str, str]:
        out = subprocess.run([sys.executable, "-c", _HELP_SCRIPT, mode, *args], capture_output=True, text=True,
                             timeout=60, env={**__import__("os").environ, "COLUMNS": "100"}, check=True).stdout
        screen, _, modules = out.rpartition("MODULES")
        return screen, modules.strip()

    light, light_modules = run("light")
    eager, eager_modules = run("eager")
    assert light == eager and "Usage" in light
    assert light_modules == "False False"
    assert eager_modules == "True True"


def test_deferred_markdown_still_renders_markdown():
    """The stand-in typer keeps builds a real rich Markdown when markdown mode is ever used."""
    from facever_cli.light_help import _DeferredMarkdown

    from rich.markdown import Markdown

    assert isinstance(_DeferredMarkdown("# title"), Markdown)


def test_the_entry_point_freezes_the_collector_before_exit():
    """``main`` ends with :func:`gc.freeze` (a quicker interpreter shutdown), on success and on errors."""
    import subprocess
    import sys

    script = ("import atexit, gc, sys\n"
              "atexit.register(lambda: sys.stderr.write(f'FROZEN {gc.get_freeze_count() > 0}\\n'))\n"
              "from facever_cli.app import main\n"
              "main()\n")
    for args, code in ((["--version"], 0), (["--no-such-option"], 2)):
        out = subprocess.run([sys.executable, "-c", script, *args], capture_output=True, text=True, timeout=60)
        assert out.returncode == code and out.stderr.rstrip().endswith("FROZEN True"), (args, out.stderr)
