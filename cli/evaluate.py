"""``facever evaluate``: score a model on the LFW protocols P1–P4 (see DESIGN.md, "Evaluation protocols")."""

from __future__ import annotations

import json
from enum import Enum
from pathlib import Path
from typing import Any, List, Optional

import typer

from .common import JSON_OPTION, MODEL_OPTION, err, fail, handle_errors, out, print_json, progress_bar


class Protocol(str, Enum):
    """The LFW protocols (DESIGN.md, "Evaluation protocols")."""

    p1 = "p1"
    p2 = "p2"
    p3 = "p3"
    p4 = "p4"


def evaluate(
    lfw: Optional[Path] = typer.Option(None, "--lfw", help="LFW root (lfw-deepfunneled/, protocol/, annotations/); "
                                       "needed unless --data is given."),
    protocol: List[Protocol] = typer.Option(list(Protocol), "--protocol", help="Protocol to run, repeat for several: "
                                            "p1 (View 1), p2 (DevTest all pairs), p3 (open-set), p4 (View 2). "
                                            "Default: all four."),
    model: Optional[Path] = MODEL_OPTION,
    out_dir: Optional[Path] = typer.Option(None, "--out", "-o", help="Directory for results.json and ROC/histogram PNGs."),
    seed: int = typer.Option(0, help="Seed of P1's random folds and P3's enrolment choice."),
    batch_size: int = typer.Option(32, min=1, help="Images per face-detection batch."),
    crop_cache: Optional[Path] = typer.Option(None, "--crop-cache", help="Crop cache folder made by `facever train` "
                                              "(the same detection and alignment): cached images skip detection."),
    data: Optional[Path] = typer.Option(None, "--data", help="Evaluate on your own photos instead: a folder with one "
                                        "sub-folder per person; every genuine and impostor pair is scored."),
    people: Optional[Path] = typer.Option(None, "--people", help="With --data: only the people (folder names) listed "
                                          "in this file, one per line (e.g. those held out of fine-tuning)."),
    as_json: bool = JSON_OPTION,
) -> None:
    """Evaluate a model on LFW (P1 View 1, P2 DevTest all pairs, P3 open-set, P4 View 2), or on your
    own folder-per-person photos with --data.

    Every needed LFW image is detected (MTCNN, the face nearest the image centre), aligned and
    embedded once. Images without a face count as failures at the maximum distance 2.0. LFW comes
    from its own site (lfw-deepfunneled.tgz, with the protocol files and annotations).

    Examples:

        facever evaluate --lfw data/lfw --protocol p1 --protocol p4 --model runs/m1/bundle

        facever evaluate --lfw data/lfw --out reports/m1 --json

        facever evaluate --data my_people/ --people held_out.txt --model runs/mine/bundle
    """
    if data is not None:
        _evaluate_folders(data, people, model, batch_size, as_json)
        return
    with handle_errors(as_json):
        if lfw is None:
            fail("give --lfw DIR (an LFW root) or --data DIR (a folder per person)", as_json=as_json)
        if not (lfw / "protocol").is_dir():
            fail(f"{lfw}: not an LFW root (no protocol/ folder)", as_json=as_json)
        results = _evaluate_lfw(lfw, [p.value for p in dict.fromkeys(protocol)], model, out_dir, seed, batch_size,
                                crop_cache, as_json)
    if as_json:
        print_json(results)
    else:
        _summary(results)
        if out_dir is not None:
            err.print(f"wrote {out_dir / 'results.json'}", markup=False)


def _evaluate_lfw(root: Path, protocols: list[str], model: Optional[Path], out_dir: Optional[Path], seed: int,
                  batch_size: int, crop_cache: Optional[Path], as_json: bool) -> dict[str, Any]:
    """Embed the protocols' images, run them, add the model and detection figures; write results.json."""
    from facever.api import FaceVerifier
    from facever.training.evaluation import evaluate_all, evaluate_detection, merge_lfw_embeddings
    from facever.training.lfw import LANDMARKS_FILE

    verifier = FaceVerifier(model=model, calibrated=False)  # embeddings do not depend on τ
    meta = verifier.bundle.metadata
    tau = float(meta.threshold.value) if meta.threshold is not None else None
    people = (meta.training or {}).get("data", {}).get("people")
    trained_people = set(people) if people else None
    cache = None
    if crop_cache is not None:
        from facever.training.datasets import CropCache

        cache = CropCache(crop_cache, verifier.embedder.input_size, verifier.embedder.template_name)
    detections = []

    def embed(paths: list[str]):
        res = _embed_lfw_images(verifier, root, paths, batch_size=batch_size, crop_cache=cache)
        detections.append(res)
        return res.embeddings

    with progress_bar(enabled=not as_json) as bar:
        task = bar.add_task("embedding LFW images", total=None)
        results = evaluate_all(root, embed, protocols=protocols, trained_people=trained_people,
                               progress=lambda done, total: bar.update(task, completed=done, total=total),
                               threshold=tau, plots_dir=_plots_dir(out_dir), seed=seed)
    results["model"] = {"path": str(verifier.bundle.path) if verifier.bundle.path else None,
                        "version": verifier.model_version, "threshold": tau,
                        "trained_people_known": trained_people is not None}
    results["detection"] = evaluate_detection(merge_lfw_embeddings(detections), root / LANDMARKS_FILE) if detections else {}
    if out_dir is not None:
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / "results.json").write_text(json.dumps(results, indent=2, ensure_ascii=False) + "\n")
    return results


def _embed_lfw_images(*args, **kwargs):
    """:func:`facever.training.evaluation.embed_lfw_images`, looked up on each call (tests replace it)."""
    from facever.training import evaluation

    return evaluation.embed_lfw_images(*args, **kwargs)


def _plots_dir(out_dir: Optional[Path]) -> Optional[Path]:
    """Where plots go: ``out_dir``, unless matplotlib is missing (then none, with a warning)."""
    if out_dir is None:
        return None
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        err.print("warning: matplotlib is missing, no plots (pip install 'facever[plots]')", markup=False)
        return None
    return out_dir


def _pct(x: Optional[float], digits: int = 2) -> str:
    return "—" if x is None else f"{100 * x:.{digits}f}%"


def _contamination(r: dict[str, Any]) -> str:
    if r.get("contaminated") is None:
        return "training people unknown"
    return (f"CONTAMINATED: {r['n_people_in_training']}/{r['n_people']} people seen in training"
            if r["contaminated"] else "clean")


def _summary(results: dict[str, Any]) -> None:
    from rich.table import Table

    table = Table(title=f"LFW evaluation: model {results['model']['version']}", show_lines=False)
    for col in ("protocol", "figure", "value", "notes"):
        table.add_column(col)
    for key, rows in (("p1", _rows_pairs), ("p2", _rows_p2), ("p3", _rows_p3), ("p4", _rows_pairs)):
        if key in results:
            for row in rows(key, results[key]):
                table.add_row(*row)
    det = results.get("detection") or {}
    if det:
        note = ""
        if det.get("landmark_error") and det["landmark_error"]["n"]:
            le = det["landmark_error"]
            note = f"landmark error {le['mean']:.4f} IOD (median {le['median']:.4f}), >0.1: {_pct(le['failure_rate'])}"
        table.add_row("detection", "faces found", f"{det['n_found']}/{det['n_images']} ({_pct(det['found_rate'])})", note)
    out.print(table)


def _rows_pairs(key: str, r: dict[str, Any]) -> list[tuple[str, ...]]:
    """P1 (10-fold accuracy, accuracy at τ) and P4 (official folds)."""
    name, folds = ("P1 View 1", "accuracy (10-fold)") if key == "p1" else ("P4 View 2", "accuracy (official folds)")
    rows = [(name, folds, f"{_pct(r['accuracy'])} ± {_pct(r['stderr'])}",
             f"{r['n_pairs']} pairs, {r['n_failed']} failed; {_contamination(r)}"),
            ("", "ROC AUC / EER", f"{r['roc_auc']:.4f} / {_pct(r['eer'])}", "")]
    if r.get("at_threshold"):
        a = r["at_threshold"]
        rows.append(("", f"accuracy at τ={a['threshold']:.3f}", _pct(a["accuracy"]), f"FAR {_pct(a['far'])}, FRR {_pct(a['frr'])}"))
    return rows


def _rows_p2(key: str, r: dict[str, Any]) -> list[tuple[str, ...]]:
    rows = [("P2 DevTest all pairs", "EER", _pct(r["eer"]),
             f"{r['n_genuine']:,} genuine, {r['n_impostor']:,} impostor, {r['n_failed']:,} failed pairs")]
    for k, t in r["tar_at_far"].items():
        rows.append(("", f"TAR @ FAR={k}", _pct(t["tar"]) if t["resolvable"] else "not resolvable",
                     f"τ={t['threshold']:.4f}" if t["threshold"] is not None else ""))
    return rows


def _rows_p3(key: str, r: dict[str, Any]) -> list[tuple[str, ...]]:
    rows = []
    for k, e in r["enroll"].items():
        for variant in ("nearest", "mean3"):
            if variant in e:
                v = e[variant]
                dirs = ", ".join(f"DIR@{f} {_pct(x['dir'])}" for f, x in v["dir_at_fpir"].items())
                rows.append(("P3 open-set" if not rows else "", f"enroll {k}, {variant}: rank-1", _pct(v["rank1"]), dirs))
    return rows


def _evaluate_folders(data: Path, people_file: Optional[Path], model: Optional[Path], batch_size: int, as_json: bool) -> None:
    """``--data``: all pairs among the photos of a folder-per-person dataset."""
    with handle_errors(as_json):
        import numpy as np

        from facever.api import FaceVerifier
        from facever.gallery import person_folders
        from facever.training.evaluation import evaluate_identity_pairs

        wanted = None
        if people_file is not None:
            wanted = {line.strip() for line in people_file.read_text().splitlines() if line.strip()}
        folders = [(name, files) for name, files in person_folders(data) if wanted is None or name in wanted]
        if not folders:
            fail(f"{data}: no person folders with images" + (" among --people" if wanted else ""), as_json=as_json)
        paths = [str(f.relative_to(data)) for _, files in folders for f in files]
        labels = np.array([i for i, (_, files) in enumerate(folders) for _ in files])
        verifier = FaceVerifier(model=model, calibrated=False)
        with progress_bar(enabled=not as_json) as bar:
            task = bar.add_task("embedding photos", total=len(paths))
            emb = _embed_lfw_images(verifier, data, paths, batch_size=batch_size,
                                    progress=lambda done, total: bar.update(task, completed=done, total=total)).embeddings
        tau = verifier.bundle.metadata.threshold
        result = evaluate_identity_pairs(emb, labels, threshold=None if tau is None else float(tau.value))
        result["model"] = {"path": str(verifier.bundle.path), "version": verifier.model_version}
    if as_json:
        print_json(result)
        return
    out.print(f"{result['n_people']} people, {result['n_images']} photos ({result['failed_images']} without a face), "
              f"{result['n_genuine']} genuine / {result['n_impostor']} impostor pairs; model {result['model']['version']}",
              markup=False)
    tars = ", ".join(f"{v['tar']:.2%} at FAR {k}" if v.get("tar") is not None else f"— at FAR {k}"
                     for k, v in result["tar_at_far"].items())
    out.print(f"  pair accuracy {result['pair_accuracy']:.2%} ± {result['pair_accuracy_stderr']:.2%} (balanced, 10-fold)")
    out.print(f"  ROC AUC {result['roc_auc']:.4f}, EER {result['eer']:.2%}; TAR {tars}")
    if "at_threshold" in result:
        t = result["at_threshold"]
        out.print(f"  at the model's τ = {t['threshold']:.4f}: FAR {t['far']:.2%}, FRR {t['frr']:.2%}")
