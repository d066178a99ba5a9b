"""``facever calibrate``: choose the decision threshold τ of a model bundle on a labelled pairs file."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Any, Optional

import typer

from .common import JSON_OPTION, MODEL_OPTION, err, fail, handle_errors, out, print_json, progress_bar

class Target(str, Enum):
    """How τ is chosen: the largest τ whose FAR ≤ --far, or the τ of best accuracy."""

    far = "far"
    accuracy = "accuracy"


#: LFW pairs files used for *evaluation* (View 1 test split, View 2): calibrating on them biases results.
EVALUATION_PAIRS = {"pairsdevtest.txt": "LFW View 1 DevTest", "pairs.txt": "LFW View 2"}


def calibrate(
    pairs: Optional[Path] = typer.Option(None, "--pairs", help="Pairs file in LFW format (View 1 'N' header or View 2 'FOLDS N' header)."),
    images: Optional[Path] = typer.Option(None, "--images", help="Folder the pair image paths are relative to (for LFW: .../lfw-deepfunneled). "
                                          "Default: the LFW image folder when the pairs file is in an LFW root's protocol/, else the pairs file's folder."),
    target: Target = typer.Option(Target.far, "--target", help="far: the largest τ whose FAR ≤ --far; accuracy: the τ "
                                  "of best accuracy."),
    far: float = typer.Option(1e-3, "--far", help="Target false accept rate for --target far (0 < FAR < 1)."),
    model: Optional[Path] = MODEL_OPTION,
    batch_size: int = typer.Option(32, min=1, help="Images per face-detection batch."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Compute and print the result; do not write the bundle."),
    open_set: bool = typer.Option(False, "--open-set", help="Calibrate open-set identification (the FPIR promise) on "
                                  "your own people (--data) instead of τ on pairs."),
    data: Optional[Path] = typer.Option(None, "--data", help="--open-set: folder with one sub-folder of photos per person."),
    out_dir: Optional[Path] = typer.Option(None, "--out", help="--open-set: write a copy of the bundle here (the model "
                                           "version stays the same; use it with --model / FACEVER_MODEL)."),
    as_json: bool = JSON_OPTION,
) -> None:
    """Calibrate a model's threshold τ on labelled pairs and store it in the bundle.

    Every image of the pairs file is detected (the face nearest the image centre), aligned and
    embedded once; pairs with an image where no face is found are left out and counted. τ is chosen
    on the distances of the remaining pairs, and τ with the FAR and FRR it gives there, plus a
    logistic "same person" head fitted on the same pairs, are written into the bundle's
    metadata.json. The model weights, and so the model version, do not change.

    Use pairs of people the model did not train on, and not the pairs you will evaluate on (LFW's
    pairsDevTest.txt and pairs.txt are evaluation sets; calibrating on them makes evaluation figures
    optimistic).

    With --open-set, the open-set data (how often a stranger comes near an enrolled face) is fitted
    on your people instead (--data, a folder per person; at least 24 people), its FPIR is measured
    on held-out halves of them, and both are written into a copy of the bundle (--out).

    Examples:

        facever calibrate --model runs/m1/bundle --pairs data/lfw/protocol/pairsDevTrain.txt

        facever calibrate --open-set --data my_people/ --out my_model/ --json

        facever calibrate --model runs/m1/bundle --pairs my_pairs.txt --images photos/ --target accuracy --dry-run --json
    """
    if open_set:
        from .calibrate_open_set import calibrate_open_set

        return calibrate_open_set(data, out_dir, model, batch_size, dry_run, as_json)
    with handle_errors(as_json):
        if pairs is None:
            fail("give --pairs FILE (τ on labelled pairs) or --open-set --data DIR", as_json=as_json)
        if not 0.0 < far < 1.0:
            fail(f"--far must be between 0 and 1 (exclusive), got {far:g}", as_json=as_json)
        from facever.training import lfw

        pair_list = lfw.read_pairs(pairs)
        root = images if images is not None else _default_image_root(pairs)
        if not root.is_dir():
            fail(f"{root}: image folder not found (give --images DIR)", as_json=as_json)
        warnings = _evaluation_set_warning(pairs, pair_list)

        from facever.api import FaceVerifier
        from facever.training.evaluation import embed_lfw_images

        verifier = FaceVerifier(model=model, calibrated=False)  # embeddings do not depend on τ
        bundle = verifier.bundle
        paths = sorted({p for pair in pair_list for p in (pair.path1, pair.path2)})
        with progress_bar(enabled=not as_json) as bar:
            task = bar.add_task("embedding pair images", total=len(paths))
            embedded = embed_lfw_images(verifier, root, paths, batch_size=batch_size,
                                        progress=lambda done, total: bar.update(task, completed=done, total=total))
        from facever.training.calibration import calibrate_on_pairs

        result = calibrate_on_pairs(bundle.metadata, embedded.paths, embedded.embeddings, pair_list, target.value, far,
                                    set_name=f"{pairs.name} ({pairs}; images under {root})")
        result = {"model": {"path": str(bundle.path), "version": bundle.version}, "pairs_file": str(pairs),
                  "images": str(root), **result, "unreadable": dict(embedded.errors)}
        result["warnings"] = warnings + result["warnings"]
        result["written"] = not dry_run
        if not dry_run:
            bundle.save_metadata()
    _report(result, as_json)


def _default_image_root(pairs: Path) -> Path:
    """``<lfw>/lfw-deepfunneled`` for a pairs file in ``<lfw>/protocol/``, else the file's folder."""
    from facever.training.lfw import IMAGES_DIR, PROTOCOL_DIR

    folder = pairs.resolve().parent if pairs.exists() else pairs.parent
    if folder.name == PROTOCOL_DIR and (folder.parent / IMAGES_DIR).is_dir():
        return folder.parent / IMAGES_DIR
    return folder


def _evaluation_set_warning(pairs: Path, pair_list: list) -> list[str]:
    kind = EVALUATION_PAIRS.get(pairs.name.lower())
    if kind is None and any(p.fold > 0 for p in pair_list):
        kind = "a View 2 (10-fold) pairs file"
    if kind is None:
        return []
    return [f"{pairs.name} looks like {kind}, an evaluation set: evaluation figures on it will be optimistic "
            f"after calibrating on it (calibrate on pairs of other people, e.g. LFW pairsDevTrain.txt)"]


def _report(result: dict[str, Any], as_json: bool) -> None:
    if as_json:
        print_json(result)
        return
    for w in result["warnings"]:
        err.print(f"warning: {w}", markup=False)
    p = result["pairs"]
    out.print(f"τ = {result['threshold']:.4f} ({result['target']}): FAR {result['far']:.3%}, FRR {result['frr']:.3%}, "
              f"accuracy {result['accuracy']:.2%}", markup=False)
    out.print(f"  pairs used {p['used']}/{p['total']} ({p['genuine']} genuine, {p['impostor']} impostor); "
              f"failures: {result['failures']}/{result['images_total']} images without a face "
              f"({p['left_out']} pairs left out)", markup=False)
    prev = result["previous_threshold"]
    if prev is not None:
        out.print(f"  previous τ = {prev['value']:.4f} ({prev['target'] or 'unknown target'})", markup=False)
    model = result["model"]
    if result["written"]:
        out.print(f"wrote τ, its FAR/FRR and the verification head to {model['path']}/metadata.json "
                  f"(model version {model['version']} unchanged)", markup=False)
    else:
        out.print(f"dry run: {model['path']} not changed", markup=False)
