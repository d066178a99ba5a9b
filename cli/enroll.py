"""``facever enroll``: add people to the gallery from their photos (idempotent by image content)."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer
from rich.markup import escape

from .common import DB_OPTION, JSON_OPTION, MODEL_OPTION, exit_code, fail, handle_errors, out, print_json, progress_bar


def enroll(
    name: Optional[str] = typer.Argument(None, help="The person's name, stored exactly as given (quote spaces)."),
    images: Optional[List[Path]] = typer.Argument(None, help="Photos of that person (one face each; the largest is used)."),
    from_dir: Optional[Path] = typer.Option(None, "--from-dir", "-d", file_okay=False,
                                            help="Folder holding one sub-folder of photos per person (folder name = name)."),
    force: bool = typer.Option(False, "--force", help="Accept faces below the quality bar (too small or blurry)."),
    allow_duplicate: bool = typer.Option(False, "--allow-duplicate",
                                         help="Enroll even if a face is nearer to another enrolled person than a stranger's face "
                                              "plausibly comes (the duplicate gate)."),
    model: Optional[Path] = MODEL_OPTION,
    db: Optional[str] = DB_OPTION,
    as_json: bool = JSON_OPTION,
) -> None:
    """Enroll a person from photos, or many people from a folder.

    Each photo is reported as enrolled, skipped (the same image bytes are already enrolled for this
    person) or rejected (unreadable, no face, face too small or blurry). Accepted faces of a person
    are written in one transaction. A new person whose face is nearer to someone already
    enrolled than a stranger's face comes with probability 1e-6 is refused as a possible duplicate
    (the message names who; --allow-duplicate overrides). A face within the identification threshold
    of someone else is enrolled with a yellow warning naming them and the distance (--json:
    "look_alikes"). This command creates the gallery database
    if there is none. Exit code: 0 all enrolled or skipped, 3 some photo or person rejected (the rest
    enrolled), 2 error (nothing enrolled).

    Examples:

        facever enroll "Ada Lovelace" ada1.jpg ada2.jpg

        facever enroll --from-dir photos/people --json
    """
    with handle_errors(as_json):
        if from_dir is not None and (name is not None or images):
            fail("give either NAME IMAGE... or --from-dir DIR, not both", as_json=as_json)
        if from_dir is None and (name is None or not images):
            fail("give NAME and at least one IMAGE, or --from-dir DIR", as_json=as_json)
        from facever.gallery import Gallery, person_folders

        with Gallery(db, model=model, actor="cli") as gallery:
            if from_dir is None:
                with progress_bar(not as_json) as bar:
                    task = bar.add_task("enrolling", total=len(images))
                    report = gallery.enroll(name, images, force=force, allow_duplicate=allow_duplicate,
                                            progress=lambda done, total: bar.update(task, completed=done, total=total))
                reports = [report]
            else:
                reports = []
                total = sum(len(files) for _, files in person_folders(from_dir))
                with progress_bar(not as_json) as bar:
                    task = bar.add_task("enrolling", total=total)
                    for report in gallery.enroll_dir(from_dir, force=force, allow_duplicate=allow_duplicate,
                                                     progress=lambda done, t: bar.update(task, completed=done, total=t)):
                        reports.append(report)
                        if not as_json:
                            _print_report(report)
    if as_json:
        if from_dir is None:
            print_json(reports[0].to_dict())
        else:
            print_json({"enrolled": sum(r.enrolled for r in reports), "skipped": sum(r.skipped for r in reports),
                        "rejected": sum(r.rejected for r in reports), "refused": sum(r.error is not None for r in reports),
                        "people": [r.to_dict() for r in reports]})
    elif from_dir is None:
        _print_report(reports[0])
    else:
        out.print(f"{len(reports)} {'person' if len(reports) == 1 else 'people'}: {sum(r.enrolled for r in reports)} enrolled, "
                  f"{sum(r.skipped for r in reports)} skipped, {sum(r.rejected for r in reports)} rejected, "
                  f"{sum(r.error is not None for r in reports)} people refused")
    done = sum(r.enrolled + r.skipped for r in reports if r.error is None)
    failed = sum(r.rejected for r in reports) + sum(r.error is not None for r in reports)
    raise typer.Exit(exit_code(done=done, failed=failed))


_STYLE = {"enrolled": "green", "skipped": "dim", "rejected": "red"}


def _print_report(report) -> None:
    """One summary line per person, then one line per image."""
    if report.error is not None:
        out.print(f"[red]refused[/] {escape(report.person)}: {escape(report.error)}")
        return
    out.print(f"[bold]{escape(report.person)}[/]: {report.enrolled} enrolled, {report.skipped} skipped, "
              f"{report.rejected} rejected")
    for o in report.outcomes:
        detail = o.reason.removeprefix(f"{o.source}: ")
        if o.status == "enrolled" and o.quality:
            detail = f"face {o.quality.face_size:.0f} px, sharpness {o.quality.sharpness:.0f}"
        out.print(f"  [{_STYLE[o.status]}]{o.status:<8}[/] {escape(o.source)}  {escape(detail)}")
    for a in report.look_alikes:
        out.print(f"  [yellow]warning: {escape(a.source)} looks like enrolled person {escape(repr(a.name))}: "
                  f"distance {a.distance:.3f} <= identification threshold {a.threshold:.3f}; identify may name "
                  f"{escape(repr(a.name))} for {escape(repr(report.person))}. If they are one person, enroll "
                  f"the photos under one name[/]")
