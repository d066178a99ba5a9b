"""``facever calibrate --open-set --data DIR``: fit the open-set data on the user's own people.

Every photo of every person folder is embedded once (the face nearest the centre, as for pairs);
:func:`facever.open_set.calibrate_population` fits the data, measures its FPIR on held-out halves
of the people, and the result goes into a copy of the bundle (``--out``): only ``metadata.json``
differs, so the model version, and every gallery embedded with the model, stay valid.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any, Optional

from .common import err, fail, handle_errors, out, print_json, progress_bar


def calibrate_open_set(data: Optional[Path], out_dir: Optional[Path], model: Optional[Path], batch_size: int,
                       dry_run: bool, as_json: bool) -> None:
    """Run the open-set calibration (see the module docstring); exit 2 with one line on any error."""
    with handle_errors(as_json):
        if data is None:
            fail("--open-set needs --data DIR (one sub-folder of photos per person)", as_json=as_json)
        if out_dir is None and not dry_run:
            fail("--open-set needs --out DIR: the calibrated copy of the bundle is written there", as_json=as_json)
        from facever.gallery.folders import person_folders

        folders = [(name, files) for name, files in person_folders(data) if files]
        paths = [f.relative_to(data).as_posix() for _, files in folders for f in files]
        labels = [name for name, files in folders for _ in files]
        from facever import open_set as osm

        if len(folders) < osm.USER_MIN_PEOPLE:
            fail(f"{data}: {len(folders)} people with photos; open-set calibration needs at least "
                 f"{osm.USER_MIN_PEOPLE} people (more photos of more people measure the FPIR better)", as_json=as_json)
        from facever.api import FaceVerifier
        from facever.training.evaluation import embed_lfw_images

        verifier = FaceVerifier(model=model, calibrated=False)  # embeddings do not depend on τ
        with progress_bar(enabled=not as_json) as bar:
            task = bar.add_task("embedding photos", total=len(paths))
            embedded = embed_lfw_images(verifier, data, paths, batch_size=batch_size,
                                        progress=lambda done, total: bar.update(task, completed=done, total=total))
        try:
            result = osm.calibrate_population(embedded.embeddings, labels, reference=verifier.bundle.metadata.open_set,
                                              description=f"user calibration: {data.name}/, {len(folders)} people")
        except osm.TooFewPeopleError as exc:
            fail(str(exc), as_json=as_json)
        report = _report_dict(result, verifier, len(paths), embedded, out_dir, dry_run)
        if not dry_run:
            _write_copy(Path(verifier.bundle.path), out_dir, result)
    _print(report, as_json)


def _report_dict(result: dict[str, Any], verifier, n_photos: int, embedded, out_dir: Optional[Path],
                 dry_run: bool) -> dict[str, Any]:
    import numpy as np

    found = int(np.isfinite(embedded.embeddings).all(axis=1).sum())
    return {"model": {"path": str(verifier.bundle.path), "version": verifier.model_version},
            "out": None if out_dir is None else str(out_dir), "written": not dry_run,
            "people": result["n_people"], "photos": n_photos, "faces": found, "faces_used": result["n_faces"],
            "held_out": result["transfer"]["user-calibrated"], "default_fpir": result["default_fpir"],
            "unreadable": dict(embedded.errors), "warnings": _warnings(result["transfer"]["user-calibrated"])}


def _warnings(held: dict[str, Any]) -> list[str]:
    """Say when the fitted data cannot keep its promise, or does worse than the bundle's own."""
    out = []
    promise = held.get("promise") or {}
    if promise and promise["expected_fpir"] > 1.01 * promise["fpir_target"]:
        out.append(f"these people are too few to resolve a {promise['fpir_target']:.1%} rate: for 10 enrolled people "
                   f"the data can promise only {promise['expected_fpir']:.2%} (identify will say so); add people")
    if held.get("ratio_max") is None:
        out.append(f"held-out people: {held.get('note')}")
    worse = [r for r in held["sizes"] if "bundle_fpir@0.01" in r and r["fpir@0.01"] > 0.01
             and r["fpir@0.01"] > 1.25 * r["bundle_fpir@0.01"]]
    if worse:
        r = worse[0]
        out.append(f"on your held-out people the bundle's own calibration did better ({r['people']} people: "
                   f"{r['bundle_fpir@0.01']:.2%} of strangers named against {r['fpir@0.01']:.2%} at a 1% target): "
                   f"keep it, or calibrate on more people")
    return out


def _write_copy(source: Path, out_dir: Path, open_set: dict[str, Any]) -> None:
    """Copy the bundle to ``out_dir`` (or update it when it is already that bundle) with ``open_set``."""
    from facever.bundle import METADATA_FILE

    if out_dir.resolve() != source.resolve():
        if out_dir.exists() and any(out_dir.iterdir()):
            raise FileExistsError(f"{out_dir}: not empty; give a new folder (or the bundle itself to update it)")
        shutil.copytree(source, out_dir, dirs_exist_ok=True)
    path = out_dir / METADATA_FILE
    meta = json.loads(path.read_text())
    meta["open_set"] = open_set
    tmp = path.with_name(METADATA_FILE + ".tmp")
    tmp.write_text(json.dumps(meta, indent=2, sort_keys=True))
    tmp.replace(path)


def _print(report: dict[str, Any], as_json: bool) -> None:
    if as_json:
        print_json(report)
        return
    held = report["held_out"]
    out.print(f"open-set data fitted on {report['people']} people ({report['faces_used']} of {report['faces']} faces; "
              f"{report['photos'] - report['faces']} photos without a face)", markup=False)
    if held.get("ratio_max") is not None:
        out.print(f"  held-out people: measured FPIR {held['ratio_min']:.2f}–{held['ratio_max']:.2f}× the target "
                  f"(worst: {held['worst']})", markup=False)
    for row in held["sizes"]:
        bundle = (f"; the bundle's own calibration: {row['bundle_fpir@0.01']:.2%} / {row['bundle_fpir@0.001']:.3%}"
                  if "bundle_fpir@0.01" in row else "")
        out.print(f"    {row['people']:>5} people: FPIR {row['fpir@0.01']:.2%} at a 1% target, {row['fpir@0.001']:.3%} "
                  f"at 0.1% ({row['stranger_photos']} stranger photos){bundle}", markup=False)
    for w in report["warnings"]:
        err.print(f"warning: {w}", markup=False)
    if report["written"]:
        out.print(f"wrote {report['out']} (model version {report['model']['version']} unchanged; use it with "
                  f"--model {report['out']})", markup=False)
    else:
        out.print("dry run: nothing written", markup=False)
