"""The lazy command registry (cli/app.py, cli/lazy.py): ``facever --help`` lists every command without
importing one, each summary matches its command's own help, and the pydantic-free argument conversion
gives what typer's own gives (errors included)."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path
from enum import Enum
from typing import List, Optional

import pytest
import typer
from typer.testing import CliRunner

from facever_cli.app import COMMANDS, app
from facever_cli.lazy import LazyCommand, light_coercion

runner = CliRunner()


def _first_paragraph(command) -> str:
    return (command.short_help or command.help or "").split("\n\n")[0].strip()


def test_help_lists_every_registered_command_with_its_own_summary():
    res = runner.invoke(app, ["--help"], env={"COLUMNS": "400"})
    assert res.exit_code == 0
    listed = [line.split()[1] for line in res.stdout.splitlines() if line.startswith("│ ") and len(line.split()) > 2
              and line.split()[1] in COMMANDS]
    assert listed == list(COMMANDS)
    group = typer.main.get_command(app)
    for name, spec in COMMANDS.items():
        command = group.get_command(None, name)  # loads the module
        assert command.name == name and not command.hidden
        assert " ".join(spec.summary.split()) == " ".join(_first_paragraph(command).split()), name


def test_each_command_loads_and_has_help_with_an_example():
    for name in COMMANDS:
        res = runner.invoke(app, [name, "--help"], env={"COLUMNS": "200"})
        assert res.exit_code == 0, (name, res.output)
        assert "Usage:" in res.stdout


def test_unknown_command_suggests_a_registered_one():
    res = runner.invoke(app, ["verfy", "a.jpg", "b.jpg"])
    assert res.exit_code == 2 and "verify" in res.output


def _imports_after(args: list[str]) -> dict:
    code = textwrap.dedent("""
        import json, sys
        from facever_cli.app import main
        try:
            main()
        except SystemExit as exc:
            code = exc.code
        mods = sorted({m.split(".")[0] if not m.startswith("facever_cli.") else m for m in sys.modules})
        sys.stdout.write("\\nMODULES " + json.dumps([code, mods]) + "\\n")
    """)
    out = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=300)
    code, mods = json.loads(out.stdout.rsplit("MODULES ", 1)[1])
    return {"code": code, "modules": set(mods), "stderr": out.stderr}


def test_help_and_a_usage_error_import_no_command_module_and_no_pydantic(tmp_path):
    for args in (["--help"], ["verify", str(tmp_path / "a.jpg"), str(tmp_path / "b.jpg"), "--no-such-option"]):
        run = _imports_after(args)
        commands = {m for m in run["modules"] if m.startswith("facever_cli.")} - {"facever_cli.app", "facever_cli.lazy",
                                                                                   "facever_cli.help_format",
                                                                                   "facever_cli.light_help"}
        if args[0] == "verify":
            assert run["code"] == 2 and run["stderr"].count("\n") == 1 and "No such option" in run["stderr"]
            commands -= {"facever_cli.verify", "facever_cli.common"}
        assert commands == set(), args
        assert not run["modules"] & {"pydantic", "numpy", "sqlalchemy", "onnxruntime"}, args


# ---- pydantic-free conversion: same values and errors as typer's -------------------------------------
class Colour(str, Enum):
    red = "red"
    blue = "blue"


def _probe_app(light: bool, seen: dict) -> typer.Typer:
    def probe(path: Path = typer.Argument(...), more: Optional[List[Path]] = typer.Argument(None),
              colour: Colour = typer.Option(Colour.red, "--colour"),
              k: int = typer.Option(3, "--k", min=1), f: float = typer.Option(0.5, "--f", min=0.0, max=2.0),
              name: Optional[str] = typer.Option(None, "--name"), flag: bool = typer.Option(False, "--flag"),
              folder: Optional[Path] = typer.Option(None, "--folder", exists=True, file_okay=False)) -> None:
        seen.update(path=path, more=more, k=k, f=f, name=name, flag=flag, folder=folder, colour=colour)

    class Group(typer.core.TyperGroup):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            if light:
                light_coercion(self)

    sub = typer.Typer(cls=Group, add_completion=False)
    sub.command("probe")(probe)
    sub.command("other")(lambda: None)
    return sub


@pytest.mark.parametrize("args", [
    ["p.jpg"],
    ["p.jpg", "q.png", "r.png", "--k", "7", "--f", "1.25", "--name", "Ada", "--flag"],
    ["p.jpg", "--f", "2", "--k", "+4", "--folder", "."],
    ["p.jpg", "--f", "1e-3"],
    ["p.jpg", "--k", "0"],          # below min: typer's message
    ["p.jpg", "--f", "2.5"],        # above max
    ["p.jpg", "--k", "x"],          # not a number
    ["p.jpg", "--f", "nan"],
    ["p.jpg", "--folder", "absent-folder"],
    ["p.jpg", "--colour", "blue"],   # an Enum choice
    ["p.jpg", "--colour", "green"],  # not a choice: typer's message
])
def test_light_conversion_equals_typers(args, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    results = []
    for light in (False, True):
        seen: dict = {}
        res = runner.invoke(_probe_app(light, seen), ["probe", *args])
        results.append((res.exit_code, res.output, {k: (type(v).__name__, v) for k, v in seen.items()}))
    assert results[0] == results[1]


def test_light_conversion_is_installed_on_plain_parameters():
    group = typer.main.get_command(_probe_app(True, {}))
    probe = group.get_command(None, "probe")
    kinds = {p.name: type(p._runtime_param).__name__ for p in probe.params}
    assert set(kinds.values()) == {"_LightRuntimeParam"}, kinds
    assert type(probe.get_help_option(probe.make_context("probe", ["x"]))._runtime_param).__name__ == "_LightRuntimeParam"


def test_lazy_command_spec_builds_commands_and_groups():
    verify = LazyCommand("verify", "verify", "x").load("verify", "facever_cli")
    people = LazyCommand("people", "app", "x").load("people", "facever_cli")
    assert verify.name == "verify" and people.name == "people" and "list" in people.commands
