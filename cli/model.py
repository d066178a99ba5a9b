"""``facever model``: build the default model from its public data (needs facever[build])."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any, Optional

import typer

from .common import JSON_OPTION, handle_errors, out, print_json

app = typer.Typer(help="Build the default model from dlib's CC0 weights and public data.", no_args_is_help=True)


class _Reporter:
    """Shows a build's :class:`~facever.training.default_recipe.BuildEvent` s: a rich progress bar per
    step on a terminal, else one line per step start and end on stderr, and a progress line at most
    every :attr:`EVERY_S` seconds (logs stay readable); nothing with ``--json`` except the final summary."""

    EVERY_S = 60.0

    def __init__(self, quiet: bool) -> None:
        from .common import err

        self.console = err
        self.quiet = quiet
        self.bar = not quiet and err.is_terminal
        self.progress: Any = None
        self.tasks: dict[str, Any] = {}
        self.last = 0.0

    def __enter__(self) -> "_Reporter":
        if self.bar:
            from .common import progress_bar

            self._context = progress_bar(True)
            self.progress = self._context.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.progress is not None:
            self._context.__exit__(*exc)

    def __call__(self, event: Any) -> None:
        if self.quiet:
            return
        if self.progress is not None and event.kind == "progress":
            task = self.tasks.get(event.step)
            if task is None:
                task = self.tasks[event.step] = self.progress.add_task(event.step, total=event.total or None)
            self.progress.update(task, completed=event.done, total=event.total or None)
        if event.kind == "progress" and not (event.step == "fine-tuning" and event.detail):
            if self.progress is not None or time.monotonic() - self.last < self.EVERY_S:
                return
            self.last = time.monotonic()
            event = type(event)(event.step, event.kind, event.done, event.total,
                                f"{event.done}/{event.total} {event.detail}".rstrip())
        text = {"start": "...", "skip": "done already:", "done": "done:", "progress": ""}.get(event.kind, event.kind)
        line = " ".join(part for part in (event.step, text, event.detail) if part)
        if self.progress is not None:
            self.progress.console.print(line, markup=False, highlight=False)
        else:
            sys.stderr.write(line + "\n")
            sys.stderr.flush()


@app.command("build")
def build(
    data_root: Path = typer.Argument(..., help="Folder holding lfw/ (lfw-deepfunneled/ and protocol/), pins/ and "
                                               "bollywood/ (a sub-folder of photos per person)."),
    work: Path = typer.Option(Path("runs/build"), "--work", help="Working folder for the steps' outputs (landmarks, "
                              "features, fine-tuning run, embeddings, eval.json); a second run resumes there."),
    out_dir: Optional[Path] = typer.Option(None, "--out", "-o", help="Where to write the bundle (default: WORK/bundle). "
                                           "An existing bundle there is replaced."),
    as_json: bool = JSON_OPTION,
) -> None:
    """Build the default model: dlib's CC0 ResNet fine-tuned, calibrated, exported and evaluated.

    The recipe of models/MODEL_CARD.md in one command: MTCNN landmarks of every LFW, pins and bollywood
    photo; trunk features of the training people; fine-tuning of the final projection (triplet loss with
    distillation); calibration of τ and the identification thresholds on held-out people; export with
    float16 weights; evaluation on LFW P1–P4 and the pins/bollywood test people, recorded in the
    bundle's metadata. People are split by identity (the split files ship in facever/training/splits).
    Each step is skipped when its output in WORK exists, so an interrupted build resumes. About 12
    minutes on two idle cores; with the OpenCV it was built with (5.0.0.93) the shipped bundle comes
    out bit-identical (the same model version; see the model card).
    Needs facever's build extra (README, "Install"). Exit code 0 done, 2 error (a missing dataset).

    Examples:

        facever model build ../shared/data --work runs/build

        facever model build ../shared/data --out models/default --json
    """
    with handle_errors(as_json):
        from facever.training.default_recipe import build as run_build, check_data_root

        check_data_root(data_root)  # before any heavy import: a wrong path fails at once
        target = out_dir or work / "bundle"
        with _Reporter(quiet=as_json) as reporter:
            summary = run_build(data_root, work, target, report=reporter)
    if as_json:
        print_json(summary)
        return
    out.print(f"built {summary['out']} (model version {summary['version']}) in {summary['seconds']:.0f}s", markup=False)
    p1 = summary["evaluation"].get("p1")
    if p1:
        out.print(f"LFW P1 accuracy {p1['accuracy']:.2%} ± {p1['stderr']:.2%}", markup=False)
