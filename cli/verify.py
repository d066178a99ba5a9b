"""``facever verify``: are two faces the same person? Exit 0 same, 1 different, 2 error."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from .common import DB_OPTION, JSON_OPTION, MODEL_OPTION, fail, handle_errors, out, print_json


def verify(
    image1: Path = typer.Argument(..., help="First image (JPEG, PNG, BMP, WebP, TIFF, PGM/PPM, GIF)."),
    image2: Optional[Path] = typer.Argument(None, help="Second image; omit it when using --person."),
    person: Optional[str] = typer.Option(None, "--person", "-p", help="Compare IMAGE1 with this enrolled person instead."),
    threshold: Optional[float] = typer.Option(None, "--threshold", "-t", min=0.0, max=2.0,
                                              help="Override the calibrated distance threshold τ (0..2)."),
    strict: bool = typer.Option(False, "--strict", help="Fail when an image holds more than one face (default: use the largest)."),
    model: Optional[Path] = MODEL_OPTION,
    db: Optional[str] = DB_OPTION,
    as_json: bool = JSON_OPTION,
) -> None:
    """Decide whether two face images show the same person.

    Prints the decision, the distance between the embeddings, the threshold τ and the error rates
    measured at τ. Exit code: 0 same person, 1 different people, 2 error.

    Examples:

        facever verify alice1.jpg alice2.jpg

        facever verify photo.jpg --person "Alice Smith" --json
    """
    with handle_errors(as_json):
        if (image2 is None) == (person is None):
            fail("give either IMAGE2 or --person NAME (exactly one)", as_json=as_json)
        from facever.api import FaceVerifier

        def load_verifier() -> FaceVerifier:
            return FaceVerifier(model=model, face_policy="strict" if strict else "largest", threshold=threshold)

        if person is not None:
            from facever.gallery import Gallery

            with Gallery(db, create=False) as gallery:  # no gallery: fail before loading the model
                gallery.verifier = load_verifier()
                result = gallery.verify_person(image1, person)
            labels = (str(image1), person)
        else:
            from facever.imaging import load_image

            # decode both images first: a missing or corrupt file fails before the model loads
            images = (load_image(image1, name=str(image1)), load_image(image2, name=str(image2)))
            result = load_verifier().verify(*images, names=(str(image1), str(image2)))
            labels = (str(image1), str(image2))
    _report(result, labels, as_json)
    raise typer.Exit(0 if result.same else 1)


def _report(result, labels: tuple[str, str], as_json: bool) -> None:
    if as_json:
        data = result.to_dict()
        data["inputs"] = list(labels)
        print_json(data)
        return
    verdict = "[bold green]same person[/]" if result.same else "[bold red]different people[/]"
    out.print(f"{verdict}: {labels[0]} vs {labels[1]}")
    out.print(f"  distance  {result.distance:.4f}  ({'≤' if result.same else '>'} τ = {result.threshold:.4f})")
    if result.far is not None and result.frr is not None:
        out.print(f"  at τ: false accept rate {result.far:.2%}, false reject rate {result.frr:.2%} (calibration pairs)")
    if result.probability is not None:
        out.print(f"  P(same person) = {result.probability:.3f}")
    out.print(f"  model {result.model_version}", style="dim")
