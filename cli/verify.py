"""``facever verify``: are two faces the same person? Exit 0 same, 1 different, 2 error.

With ``--live`` IMAGE1 is a video: it must show a live head turning (``facever.liveness``) before its
most frontal frame is compared; a capture that is not live exits 1 like a different person."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from .common import DB_OPTION, JSON_OPTION, MODEL_OPTION, fail, handle_errors, print_json, print_line


def verify(
    image1: Path = typer.Argument(..., help="First image (JPEG, PNG, BMP, WebP, TIFF, PGM/PPM, GIF)."),
    image2: Optional[Path] = typer.Argument(None, help="Second image; omit it when using --person."),
    person: Optional[str] = typer.Option(None, "--person", "-p", help="Compare IMAGE1 with this enrolled person instead."),
    threshold: Optional[float] = typer.Option(None, "--threshold", "-t", min=0.0, max=2.0,
                                              help="Override the calibrated distance threshold τ (0..2)."),
    one_face: bool = typer.Option(False, "--one-face", help="Fail when an image holds more than one face (default: use "
                                  "the largest)."),
    strict: bool = typer.Option(False, "--strict", hidden=True, help="0.3's name of --one-face."),
    live: bool = typer.Option(False, "--live", help="IMAGE1 is a video of the person turning their head to one side and "
                              "the other: refuse it unless the turn shows 3D parallax (not a photo), then verify its "
                              "most frontal frame."),
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

        facever verify selfie.mp4 --person "Alice Smith" --live
    """
    with handle_errors(as_json):
        if (image2 is None) == (person is None):
            fail("give either IMAGE2 or --person NAME (exactly one)", as_json=as_json)
        data_a = data_b = None
        if person is None and not live:
            from facever.image_files import read_image_bytes

            # two photos: read both files first (standard library only), so that a missing one fails
            # before NumPy, the decoders and the model runtime are imported (same order as decoding)
            data_b = read_image_bytes(image2, name=str(image2))
            data_a = read_image_bytes(image1, name=str(image1))
        from facever.api import FaceVerifier

        def load_verifier() -> FaceVerifier:
            return FaceVerifier(model=model, faces="one" if one_face or strict else "largest", threshold=threshold)

        liveness, probe = None, image1
        if live:
            from facever.liveness import read_video_frames

            frames = read_video_frames(image1)  # an unreadable video fails before the model loads
        if person is not None:
            from facever.gallery import Gallery

            with Gallery(db, create=False) as gallery:  # no gallery: fail before loading the model
                gallery.verifier = load_verifier()
                if live:
                    liveness, probe = _check_live(frames, gallery.verifier)
                result = gallery.verify_person(probe, person) if probe is not None else None
            labels = (str(image1), person)
        else:
            from facever.imaging import load_image

            # decode both images first: a corrupt file fails before the model loads
            image_b = load_image(data_b if data_b is not None else image2, name=str(image2))
            image_a = None if live else load_image(data_a, name=str(image1))
            verifier = load_verifier()
            if live:
                liveness, image_a = _check_live(frames, verifier)
            result = verifier.verify(image_a, image_b, names=(str(image1), str(image2))) if image_a is not None else None
            labels = (str(image1), str(image2))
    _report(result, labels, as_json, liveness)
    raise typer.Exit(0 if result is not None and result.same else 1)


def _check_live(frames, verifier):
    """Liveness of a video's frames (steps read from its own motion): (result, frame to verify or None)."""
    from facever.liveness import check_liveness

    result = check_liveness(frames, None, verifier)
    return result, (frames[result.best_frame] if result.live else None)


def _report(result, labels: tuple[str, str], as_json: bool, liveness=None) -> None:
    if as_json:
        data = result.to_dict() if result is not None else {"same": None}
        data["inputs"] = list(labels)
        if liveness is not None:
            data["liveness"] = liveness.to_dict()
        print_json(data)
        return
    if liveness is not None:
        verdict = ("live", "bold green") if liveness.live else ("not live", "bold red")
        print_line(verdict, f": {labels[0]}: {liveness.reason}")
        par = liveness.checks.get("parallax", {})
        if par.get("value") is not None:
            print_line(f"  turns seen {liveness.steps_seen}, parallax {par['value']:.3f} (live ≥ {par['threshold']:.3f})")
        if result is None:
            return
    verdict = ("same person", "bold green") if result.same else ("different people", "bold red")
    print_line(verdict, f": {labels[0]} vs {labels[1]}")
    print_line(f"  distance  {result.distance:.4f}  ({'≤' if result.same else '>'} τ = {result.threshold:.4f})")
    if result.far is not None and result.frr is not None:
        print_line(f"  at τ: false accept rate {result.far:.2%}, false reject rate {result.frr:.2%} (calibration pairs)")
    if result.probability is not None:
        print_line(f"  P(same person) = {result.probability:.3f}")
    print_line((f"  model {result.model_version}", "dim"))
