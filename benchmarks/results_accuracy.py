"""Markdown of the accuracy sections of the report: LFW (P1, P2, P3, faces found) and the held-out
pins/bollywood people. Each function returns lines and appends the PNGs it writes to ``written``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from results_format import LABELS, SYSTEMS, img, num, pct, plot_roc, table, tar

HEADER = ["figure", LABELS["facever"], LABELS["face_recognition"]]


def _at_default(entry: dict[str, Any], far_digits: int = 2) -> str:
    dt = entry.get("default_threshold")
    if not dt:
        return "— (no calibrated τ)"
    return f"{pct(dt['accuracy'])} (τ {dt['value']:.3f}; FAR {pct(dt['far'], far_digits)}, FRR {pct(dt['frr'])})"


def _tar_far_at_default(entry: dict[str, Any]) -> str:
    dt = entry.get("default_threshold")
    return f"{pct(dt['frr'])} / {pct(dt['far'], 3)} (τ {dt['value']:.3f})" if dt else "—"


def _p1_lines(p1: dict[str, Any], out_dir: Path, md_dir: Path, written: list[Path]) -> list[str]:
    rows = [["accuracy, τ by 10-fold CV"]
            + [f"{pct(p1[s]['kfold']['mean'])} ± {pct(p1[s]['kfold']['stderr'])}" for s in SYSTEMS],
            ["ROC AUC"] + [num(p1[s]["roc_auc"]) for s in SYSTEMS],
            ["EER"] + [pct(p1[s]["eer"]) for s in SYSTEMS]]
    rows += [[f"TAR @ FAR={key}"] + [tar(p1[s], key) for s in SYSTEMS] for key in ("0.01", "0.001")]
    rows.append(["accuracy at own default τ"] + [_at_default(p1[s]) for s in SYSTEMS])
    rows.append(["best accuracy (τ fitted on these pairs: optimistic)"] + [
        f"{pct(p1[s]['best_accuracy'])} (τ {p1[s]['best_accuracy_threshold']:.3f})" for s in SYSTEMS])
    rows.append(["images without a face"] + [f"{p1[s]['n_images_no_face']} / {p1['n_images']}" for s in SYSTEMS])
    rows.append(["failed pairs (scored 2.0)"] + [f"{p1[s]['n_failed_pairs']} / {p1['n_pairs']}" for s in SYSTEMS])
    lines = [f"### P1: {p1['name']}, {p1['n_pairs']:,} pairs", ""] + table(HEADER, rows) + [""]
    png = plot_roc(p1, f"P1 LFW View 1 ({p1['n_pairs']:,} pairs)", out_dir / "roc_p1.png")
    written.append(png)
    return lines + [img(md_dir, png, "ROC P1"), ""]


def _p2_lines(p2: dict[str, Any], out_dir: Path, md_dir: Path, written: list[Path]) -> list[str]:
    lines = [f"### P2: {p2['name']}, {p2['n_images']:,} images", ""]
    if any("error" in (p2.get(s) or {}) for s in SYSTEMS):
        return lines + [f"- {s}: {p2[s]['error']}" for s in SYSTEMS if "error" in p2[s]] + [""]
    rows = [["pairs (genuine / impostor)"] + [f"{p2[s]['n_genuine']:,} / {p2[s]['n_impostor']:,}" for s in SYSTEMS]]
    rows += [[f"TAR @ FAR={key}"] + [tar(p2[s], key) for s in SYSTEMS] for key in ("0.01", "0.001", "0.0001")]
    rows.append(["EER"] + [pct(p2[s]["eer"]) for s in SYSTEMS])
    rows.append(["ROC AUC"] + [num(p2[s]["roc_auc"]) for s in SYSTEMS])
    rows.append(["FRR / FAR at own default τ"] + [_tar_far_at_default(p2[s]) for s in SYSTEMS])
    rows.append(["images without a face"] + [f"{p2[s]['n_images_no_face']} / {p2['n_images']}" for s in SYSTEMS])
    rows.append(["failed pairs (scored 2.0)"] + [f"{p2[s]['n_failed_pairs']:,}" for s in SYSTEMS])
    lines += table(HEADER, rows) + [""]
    png = plot_roc(p2, f"P2 LFW DevTest all pairs ({p2['n_images']:,} images)", out_dir / "roc_p2.png")
    written.append(png)
    return lines + [img(md_dir, png, "ROC P2"), ""]


def _p3_lines(p3: dict[str, Any]) -> list[str]:
    lines = [f"### P3: {p3['name']}", "",
             "People with two or more DevTest images are enrolled with 1 or 3 randomly chosen images (the same "
             "seeded choice for both systems); their other images are known probes, people with one image probe as "
             "unknowns. Person distance = distance to the person's nearest enrolled image. DIR at FPIR: share of "
             "known probes identified correctly with a distance below the τ that accepts that share of unknowns. "
             "face_recognition's encodings are L2-normalised here (P3's distances assume unit vectors).", ""]
    if not p3.get("complete", True):
        lines += ["> Partial run (`--limit`): DevTest images not embedded count as failures, figures meaningless.", ""]
    rows = []
    for k in ("1", "3"):
        rows.append([f"rank-1, {k} enrolled"] + [pct(p3[s]["enroll"][k]["nearest"]["rank1"]) for s in SYSTEMS])
        for fpir in ("0.01", "0.1"):
            rows.append([f"DIR @ FPIR={fpir}, {k} enrolled"] + [
                pct((p3[s]["enroll"][k]["nearest"]["dir_at_fpir"].get(fpir) or {}).get("dir")) for s in SYSTEMS])
    e3 = {s: p3[s]["enroll"]["3"] for s in SYSTEMS}
    rows.append(["probes known / unknown (3 enrolled)"] + [f"{e3[s]['n_known_probes']:,} / {e3[s]['n_unknown_probes']:,}"
                                                          for s in SYSTEMS])
    rows.append(["images without a face"] + [f"{p3[s]['n_failed_images']} / {p3[s]['n_images']}" for s in SYSTEMS])
    return lines + table(HEADER, rows) + [""]


def accuracy_lines(acc: dict[str, Any], out_dir: Path, md_dir: Path, written: list[Path]) -> list[str]:
    lines = ["## Accuracy on LFW", "",
             "Same images and pairs for both systems. A system that finds no face in an image fails every pair "
             "holding it: distance 2.0, i.e. rejected (counted below). Where several faces are found, both keep the "
             "one nearest the image centre (LFW's convention). Metrics from `facever.training.evaluation`.", ""]
    imgs = acc["images"]
    lines += ["### Faces found", ""]
    lines += table(["LFW protocol images (P1 ∪ P2)", LABELS["facever"], LABELS["face_recognition"]], [
        ["images with a face found"] + [f"{imgs[s].get('n_found', imgs[s]['n'] - imgs[s]['n_no_face'] - imgs[s]['n_errors']):,}"
                                        f" / {imgs[s]['n']:,} ({pct(imgs[s].get('found_rate'), 2)})" for s in SYSTEMS],
        ["images with several faces"] + [str(imgs[s]["n_multiple_faces"]) for s in SYSTEMS],
        ["unreadable images"] + [str(imgs[s]["n_errors"]) for s in SYSTEMS],
        ["embedding throughput, images/s"] + [num(imgs[s].get("images_per_s"), 1)
                                              + (" (cached run)" if imgs[s].get("cached") else "") for s in SYSTEMS],
    ]) + ["", "Throughput: facever detects in batches, face_recognition one image at a time, as each library is "
              "meant to be used.", ""]
    lines += _p1_lines(acc["p1"], out_dir, md_dir, written)
    if acc.get("p2"):
        lines += _p2_lines(acc["p2"], out_dir, md_dir, written)
    if acc.get("p3"):
        lines += _p3_lines(acc["p3"])
    return lines


def _domain_rows(by_domain: dict[str, Any]) -> list[list[str]]:
    rows = []
    for d, entry in by_domain.items():
        if not all(s in entry and "error" not in entry[s] for s in SYSTEMS):
            continue
        rows.append([f"{d}: pair accuracy"] + [pct(entry[s]["pair_accuracy"]["mean"]) for s in SYSTEMS])
        rows.append([f"{d}: TAR @ FAR=0.001"] + [tar(entry[s], "0.001") for s in SYSTEMS])
        rows.append([f"{d}: AUC / EER"] + [f"{num(entry[s]['roc_auc'])} / {pct(entry[s]['eer'])}" for s in SYSTEMS])
    return rows


def heldout_lines(h: dict[str, Any], out_dir: Path, md_dir: Path, written: list[Path]) -> list[str]:
    dom = ", ".join(f"{d} {v['n_people']} people / {v['n_images']:,} images" for d, v in h["domains"].items())
    lines = ["## Held-out people: pins and bollywood", "",
             f"The test people of `{'` and `'.join(h['people_files'])}` ({dom}; "
             f"{h['per_person'] or 'all'} images per person): never trained on, not used to calibrate "
             f"({h.get('in_facever_calibration', '?')} of them among facever's calibration people), none in LFW. Each "
             f"system runs its own user pipeline on the same images (facever: `FaceEmbedder`'s batched detection, "
             f"padded second try, alignment, encoder; face_recognition: `face_encodings`), keeping the {h['pick']} "
             "face. Scored on every genuine and impostor pair among these images; an image where a system finds no "
             "face scores 2.0 in all its pairs for that system. Pair accuracy: every genuine pair plus as many "
             "impostor pairs (seeded draw, the same pairs for both), τ by 10-fold cross-validation.", ""]
    a = h["all"]
    if any("error" in (a.get(s) or {}) for s in SYSTEMS):
        return lines + [f"- {s}: {a[s]['error']}" for s in SYSTEMS if "error" in a[s]] + [""]
    im = h["images"]
    rows = [["pair accuracy, τ by 10-fold CV"] + [f"{pct(a[s]['pair_accuracy']['mean'])} ± "
                                                  f"{pct(a[s]['pair_accuracy']['stderr'])}" for s in SYSTEMS]]
    rows += [[f"TAR @ FAR={key}"] + [tar(a[s], key) for s in SYSTEMS] for key in ("0.01", "0.001")]
    rows.append(["ROC AUC"] + [num(a[s]["roc_auc"]) for s in SYSTEMS])
    rows.append(["EER"] + [pct(a[s]["eer"]) for s in SYSTEMS])
    rows.append(["FRR / FAR at own default τ"] + [_tar_far_at_default(a[s]) for s in SYSTEMS])
    rows.append(["pairs (genuine / impostor)"] + [f"{a[s]['n_genuine']:,} / {a[s]['n_impostor']:,}" for s in SYSTEMS])
    rows.append(["failed images (no face / unreadable)"] + [
        f"{im[s]['n_no_face'] + im[s]['n_errors']} / {im[s]['n']:,} ({im[s]['n_no_face']} / {im[s]['n_errors']})"
        for s in SYSTEMS])
    rows.append(["failed pairs (scored 2.0)"] + [f"{a[s]['n_failed_pairs']:,}" for s in SYSTEMS])
    rows.append(["images/s (this run)"] + [num(im[s]["images_per_s"], 1) + (" (cached run)" if im[s]["cached"] else "")
                                           for s in SYSTEMS])
    rows += _domain_rows(h.get("by_domain") or {})
    lines += table(HEADER, rows) + [""]
    retried = im["facever"].get("n_found_on_retry")
    if retried is not None:
        lines += [f"facever found {retried} of its faces only on the padded second try.", ""]
    png = plot_roc(a, f"Held-out pins + bollywood ({h['n_images']:,} images)", out_dir / "roc_heldout.png")
    written.append(png)
    return lines + [img(md_dir, png, "ROC held-out"), ""]
