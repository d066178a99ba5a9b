"""Render ``benchmarks/RESULTS.md`` and the PNG plots from ``compare.json`` (written by compare.py).

``benchmarks/compare.py`` calls :func:`write_report` at the end of a run; to re-render from a JSON
alone (no image is processed)::

    python benchmarks/make_results.py [--results benchmarks/results/compare.json] [--md benchmarks/RESULTS.md]

Plots (matplotlib, Agg; next to the JSON): ``roc_p1.png`` and ``roc_p2.png`` (both systems' ROC on
one chart, log FAR axis, each system's default threshold marked), ``search_latency.png`` (search
latency against gallery size), ``speed_stages.png`` (per-image latency by stage).
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
SYSTEMS = ("facever", "face_recognition")
LABELS = {"facever": "facever", "face_recognition": "face_recognition (dlib)"}
COLOURS = {"facever": "tab:blue", "face_recognition": "tab:orange"}
REGENERATE = "python benchmarks/compare.py --gallery-bench"


# ----------------------------------------------------------------------------------------------
# Formatting
# ----------------------------------------------------------------------------------------------


def pct(x: float | None, digits: int = 2) -> str:
    """``0.9712`` → ``97.12%``; None → ``—``."""
    return "—" if x is None else f"{100 * x:.{digits}f}%"


def num(x: float | None, digits: int = 4) -> str:
    return "—" if x is None else f"{x:.{digits}f}"


def ms(stat: dict[str, Any] | None, digits: int = 1) -> str:
    """A spread of seconds as ``median ms [min–max]``."""
    if not stat:
        return "—"
    f = 1000.0
    return f"{stat['median'] * f:.{digits}f} [{stat['min'] * f:.{digits}f}–{stat['max'] * f:.{digits}f}]"


def secs(stat: dict[str, Any] | None, digits: int = 2) -> str:
    if not stat:
        return "—"
    return f"{stat['median']:.{digits}f} [{stat['min']:.{digits}f}–{stat['max']:.{digits}f}]"


def ratio(stat: dict[str, Any] | None) -> str:
    """Paired ratios as ``median× [min–max]``."""
    if not stat:
        return "—"
    return f"{stat['median']:.2f}× [{stat['min']:.2f}–{stat['max']:.2f}]"


def table(header: list[str], rows: list[list[str]]) -> list[str]:
    """A Markdown table."""
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return lines


def _tar(entry: dict[str, Any], key: str) -> str:
    t = (entry.get("tar_at_far") or {}).get(key)
    if t is None:
        return "—"
    if not t["resolvable"]:
        return f"n/r ({entry['n_impostor']:,} impostor pairs)"
    return f"{pct(t['tar'])} (τ {t['threshold']:.3f})"


# ----------------------------------------------------------------------------------------------
# Plots
# ----------------------------------------------------------------------------------------------


def _figure():
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    return Figure(figsize=(6, 4.5), dpi=110)


def plot_roc(section: dict[str, Any], title: str, path: Path) -> Path:
    """Both systems' ROC (TAR against log FAR) with their default-threshold operating points."""
    fig = _figure()
    ax = fig.add_subplot()
    floor = 1.0
    for system in SYSTEMS:
        r = section.get(system) or {}
        if "roc" not in r:
            continue
        far, tar = r["roc"]["far"], r["roc"]["tar"]
        floor = min(floor, far[0])
        ax.plot(far, tar, lw=1.6, color=COLOURS[system],
                label=f"{LABELS[system]} (AUC {r['roc_auc']:.4f}, EER {pct(r['eer'])})")
        dt = r.get("default_threshold")
        if dt:
            ax.plot([max(dt["far"], far[0])], [dt["tar"]], "o", color=COLOURS[system], ms=6,
                    label=f"{LABELS[system]} default τ={dt['value']:.3f}")
    ax.set_xscale("log")
    ax.set_xlim(floor, 1.0)
    ax.set_ylim(0.0, 1.01)
    ax.set_xlabel("false accept rate (FAR)")
    ax.set_ylabel("true accept rate (TAR)")
    ax.set_title(title, fontsize=10)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    fig.savefig(path)
    return path


def plot_search(section: dict[str, Any], path: Path) -> Path:
    """Median search latency per query against gallery size (log-log, min–max bars)."""
    fig = _figure()
    ax = fig.add_subplot()
    sizes = [int(n) for n in section["sizes"]]
    for system in SYSTEMS:
        stats = [section["by_size"][str(n)][system] for n in sizes]
        med = [s["median"] * 1000 for s in stats]
        lo = [(s["median"] - s["min"]) * 1000 for s in stats]
        hi = [(s["max"] - s["median"]) * 1000 for s in stats]
        ax.errorbar(sizes, med, yerr=[lo, hi], marker="o", capsize=3, color=COLOURS[system], label=LABELS[system])
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("gallery size (faces)")
    ax.set_ylabel("latency per query (ms)")
    ax.set_title("1:K search latency (in memory, one query)", fontsize=10)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    return path


def plot_stages(section: dict[str, Any], path: Path) -> Path:
    """Median per-image latency of each stage, both systems side by side."""
    fig = _figure()
    ax = fig.add_subplot()
    stages = [s for s in section["stages"] if s not in ("total", "detection_batched")]
    width = 0.38
    for k, system in enumerate(SYSTEMS):
        vals = [((section["stages"][s].get(system) or {}).get("median") or 0.0) * 1000 for s in stages]
        ax.bar([i + (k - 0.5) * width for i in range(len(stages))], vals, width, color=COLOURS[system], label=LABELS[system])
    ax.set_xticks(range(len(stages)), stages)
    ax.set_ylabel("ms per image (median of repeats)")
    ax.set_title("Per-image latency by stage, one image at a time", fontsize=10)
    ax.grid(True, axis="y", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    return path


# ----------------------------------------------------------------------------------------------
# Markdown sections
# ----------------------------------------------------------------------------------------------


def _img(md_dir: Path, png: Path, alt: str) -> str:
    return f"![{alt}]({Path(os.path.relpath(png, md_dir)).as_posix()})"


def header_lines(results: dict[str, Any]) -> list[str]:
    meta = results["meta"]
    env = meta.get("environment", {})
    fv, fr = results["systems"]["facever"], results["systems"]["face_recognition"]
    lines = ["# facever vs face_recognition: side-by-side benchmark", "",
             f"Regenerate everything (JSON, plots, this file) with one command from the repository root, with "
             f"facever's Python: `{REGENERATE}` (add `--model BUNDLE` for another model; about 25 minutes on 2 "
             f"idle CPU cores). Installing the peer, face_recognition, in its own environment: "
             f"`benchmarks/README.md`. Re-render this file from the JSON only: `python benchmarks/make_results.py`.", ""]
    if meta.get("smoke"):
        lines += ["> **SMOKE RUN: NOT RESULTS.** This file came from a reduced run (`--limit`, skipped sections or "
                  "fewer than 3 repeats); its figures only show that the scripts work. Run the command above for the "
                  "real benchmark.", ""]
    load = f"{meta.get('load_average_start')} → {meta.get('load_average_end')}"
    lines += table(["", ""], [
        ["run", f"{meta.get('started')}, {meta.get('duration_s', 0) / 60:.1f} min; command `{meta.get('command')}`"],
        ["machine", f"{env.get('cpu')}, {env.get('cpus')} CPUs, load average (1/5/15 min) {load}"],
        ["facever", f"model `{fv['model_version']}` ({fv['architecture']}, {fv['input_size']}×{fv['input_size']}, "
                    f"flip TTA {fv['flip_tta']}), {fv['detector']}; τ = {num(fv['default_threshold'])} "
                    f"from {fv['threshold_source']}"],
        ["face_recognition", f"{', '.join(f'{k} {v}' for k, v in (fr.get('versions') or {}).items())}; "
                             f"{fr['detector']}; τ = {fr['default_threshold']} ({fr['threshold_source']})"],
    ])
    return lines + [""]


def accuracy_lines(acc: dict[str, Any], out_dir: Path, md_dir: Path, written: list[Path]) -> list[str]:
    lines = ["## Accuracy", "",
             "Same images and pairs for both systems. A system that finds no face in an image fails every pair "
             "holding it: distance 2.0, i.e. rejected (counted below). Where several faces are found, both keep the "
             "one nearest the image centre. Metrics from `facever.evaluation`.", ""]
    imgs = acc["images"]
    p1 = acc["p1"]
    rows = []
    rows.append(["accuracy, τ by 10-fold CV"]
                + [f"{pct(p1[s]['kfold']['mean'])} ± {pct(p1[s]['kfold']['stderr'])}" for s in SYSTEMS])
    rows.append(["ROC AUC"] + [num(p1[s]["roc_auc"]) for s in SYSTEMS])
    rows.append(["EER"] + [pct(p1[s]["eer"]) for s in SYSTEMS])
    for key in ("0.01", "0.001"):
        rows.append([f"TAR @ FAR={key}"] + [_tar(p1[s], key) for s in SYSTEMS])
    rows.append(["accuracy at own default τ"] + [
        f"{pct(p1[s]['default_threshold']['accuracy'])} (τ {p1[s]['default_threshold']['value']:.3f}; "
        f"FAR {pct(p1[s]['default_threshold']['far'])}, FRR {pct(p1[s]['default_threshold']['frr'])})"
        if p1[s].get("default_threshold") else "— (no calibrated τ)" for s in SYSTEMS])
    rows.append(["best accuracy (τ fitted on these pairs: optimistic)"] + [
        f"{pct(p1[s]['best_accuracy'])} (τ {p1[s]['best_accuracy_threshold']:.3f})" for s in SYSTEMS])
    rows.append(["images without a face"] + [f"{p1[s]['n_images_no_face']} / {p1['n_images']}" for s in SYSTEMS])
    rows.append(["failed pairs (scored 2.0)"] + [f"{p1[s]['n_failed_pairs']} / {p1['n_pairs']}" for s in SYSTEMS])
    lines += [f"### P1: {p1['name']}, {p1['n_pairs']:,} pairs", ""]
    lines += table(["figure", LABELS["facever"], LABELS["face_recognition"]], rows) + [""]
    png = plot_roc(p1, f"P1 LFW View 1 ({p1['n_pairs']:,} pairs)", out_dir / "roc_p1.png")
    written.append(png)
    lines += [_img(md_dir, png, "ROC P1"), ""]
    p2 = acc.get("p2")
    if p2:
        lines += [f"### P2: {p2['name']}, {p2['n_images']:,} images", ""]
        if any("error" in (p2.get(s) or {}) for s in SYSTEMS):
            lines += [f"- {s}: {p2[s]['error']}" for s in SYSTEMS if "error" in p2[s]] + [""]
        else:
            rows = [["pairs (genuine / impostor)"] + [f"{p2[s]['n_genuine']:,} / {p2[s]['n_impostor']:,}" for s in SYSTEMS]]
            for key in ("0.01", "0.001", "0.0001"):
                rows.append([f"TAR @ FAR={key}"] + [_tar(p2[s], key) for s in SYSTEMS])
            rows.append(["EER"] + [pct(p2[s]["eer"]) for s in SYSTEMS])
            rows.append(["ROC AUC"] + [num(p2[s]["roc_auc"]) for s in SYSTEMS])
            rows.append(["TAR / FAR at own default τ"] + [
                f"{pct(p2[s]['default_threshold']['tar'])} / {pct(p2[s]['default_threshold']['far'], 3)} "
                f"(τ {p2[s]['default_threshold']['value']:.3f})" if p2[s].get("default_threshold") else "—"
                for s in SYSTEMS])
            rows.append(["images without a face"] + [f"{p2[s]['n_images_no_face']} / {p2['n_images']}" for s in SYSTEMS])
            rows.append(["failed pairs (scored 2.0)"] + [f"{p2[s]['n_failed_pairs']:,}" for s in SYSTEMS])
            lines += table(["figure", LABELS["facever"], LABELS["face_recognition"]], rows) + [""]
            png = plot_roc(p2, f"P2 LFW DevTest all pairs ({p2['n_images']:,} images)", out_dir / "roc_p2.png")
            written.append(png)
            lines += [_img(md_dir, png, "ROC P2"), ""]
    lines += ["Embedding throughput in this accuracy run (all protocol images; facever detects in batches, "
              "face_recognition one image at a time, as each library is meant to be used):", ""]
    lines += table(["", LABELS["facever"], LABELS["face_recognition"]], [
        ["images / s"] + [num(imgs[s].get("images_per_s"), 1) + (" (from the cache's run)" if imgs[s].get("cached") else "")
                          for s in SYSTEMS],
        ["images with several faces"] + [str(imgs[s]["n_multiple_faces"]) for s in SYSTEMS],
        ["unreadable images"] + [str(imgs[s]["n_errors"]) for s in SYSTEMS],
    ]) + [""]
    return lines


def speed_lines(sp: dict[str, Any], out_dir: Path, md_dir: Path, written: list[Path]) -> list[str]:
    notes = sp["notes"]
    lines = ["## Speed per image", "",
             f"{sp['n_images']} LFW images (250×250), one at a time, largest face (as `facever verify` and "
             f"`face_recognition.face_encodings` work); {sp['repeats']} repeats alternating between the systems. "
             "Each cell: median over images, then median [min–max] over repeats, in ms. Ratio = facever / "
             "face_recognition per repeat, median [min–max]; below 1 means facever is faster.", ""]
    rows = []
    for stage, e in sp["stages"].items():
        what = ("sum of the stages, images where a face was found" if stage == "total" else
                " / ".join(filter(None, [notes["facever"].get(stage), notes["face_recognition"].get(stage)])))
        label = {"total": "**total**", "detection_batched": "detection, batched"}.get(stage, stage)
        rows.append([label, ms(e.get("facever")), ms(e.get("face_recognition")),
                     ratio(e.get("ratio")), what])
    lines += table(["stage", "facever ms", "face_recognition ms", "ratio", "what is timed (facever / peer)"], rows) + [""]
    found = sp.get("n_faces_found", {})
    lines += [f"Faces found: facever {found.get('facever')}, face_recognition {found.get('face_recognition')} of "
              f"{sp['n_images']}. Landmarks come with MTCNN's detection in facever; dlib's alignment happens inside "
              "its encoder call (—: no separate stage).", ""]
    png = plot_stages(sp, out_dir / "speed_stages.png")
    written.append(png)
    return lines + [_img(md_dir, png, "latency by stage"), ""]


def cli_lines(cli: dict[str, Any]) -> list[str]:
    lines = ["## Cold command-line process", "",
             f"A new process per run comparing two images ({' vs '.join(Path(p).name for p in cli['images'])}); "
             f"{cli['repeats']} timed runs each, alternating, after one untimed run of each. Median [min–max]; peak "
             "memory is the process's maximum resident set (`wait4` rusage).", ""]
    lines += table(["", "facever verify", "face_recognition", "ratio"], [
        ["wall time (s)", secs(cli["facever"]["wall_s"]), secs(cli["face_recognition"]["wall_s"]),
         ratio(cli["ratio"]["wall_s"])],
        ["peak memory (MB)", secs(cli["facever"]["maxrss_mb"], 0), secs(cli["face_recognition"]["maxrss_mb"], 0),
         ratio(cli["ratio"]["maxrss_mb"])],
        ["CPU time (s)", secs(cli["facever"]["cpu_s"]), secs(cli["face_recognition"]["cpu_s"]), "—"],
    ]) + [""]
    lines += ["Commands:", ""] + [f"- {s}: `{c}`" for s, c in cli["commands"].items()] + [""]
    return lines


def _flatten(value: Any, prefix: str = "") -> list[tuple[str, Any]]:
    if isinstance(value, dict):
        return [kv for k, v in value.items() for kv in _flatten(v, f"{prefix}.{k}" if prefix else str(k))]
    if isinstance(value, list) and len(value) > 8:
        return [(prefix, f"[{len(value)} values]")]
    return [(prefix, value)]


def gallery_lines(g: dict[str, Any], out_dir: Path, md_dir: Path, written: list[Path]) -> list[str]:
    lines = ["## Search latency against gallery size", "",
             f"One query against random 128-d vectors, in memory. facever: `{g['facever_function']}` (float32 unit "
             f"vectors, one face per person). face_recognition has no gallery; its equivalent is "
             f"`{g['peer_function']}`, given one float64 array (its fastest input). Median per query over queries, "
             "then median [min–max] over repeats, in ms.", ""]
    rows = []
    for n in g["sizes"]:
        e = g["by_size"][str(n)]
        rows.append([f"{int(n):,}", ms(e["facever"], 3), ms(e["face_recognition"], 3), ratio(e["ratio"]),
                     f"{e['facever_matrix_mb']:.0f} / {e['face_recognition_matrix_mb']:.0f}"])
    lines += table(["faces", "facever ms", "face_recognition ms", "ratio", "matrix MB (facever / peer)"], rows) + [""]
    png = plot_search(g, out_dir / "search_latency.png")
    written.append(png)
    lines += [_img(md_dir, png, "search latency"), ""]
    db = g.get("facever_db") or {}
    lines += ["### facever's gallery (`benchmarks/gallery_bench.py`)", "",
              "face_recognition has no gallery and no enrolment: its equivalent of enrolling a face is encoding it "
              "(the speed table's total, per image).", ""]
    if db.get("status") != "ok":
        lines += [f"Not measured in this run: {db.get('note') or db.get('status')}"
                  + (f" (exit {db.get('rc')})" if db.get("rc") is not None else "") + ".", ""]
    else:
        lines += [f"From `{db['command']}` ({db['wall_s']:.0f} s, peak {db['maxrss_mb']:.0f} MB):", ""]
        if db.get("results") is not None:
            lines += table(["figure", "value"], [[k, v] for k, v in _flatten(db["results"])]) + [""]
        else:
            lines += ["```", db.get("stdout", "").rstrip(), "```", ""]
    return lines


def method_lines(results: dict[str, Any]) -> list[str]:
    fv = results["systems"]["facever"]
    seen = fv.get("devtest_people_in_training")
    trained = ("facever's training people are not recorded in its bundle, so its overlap with LFW DevTest is unknown"
               if seen is None else
               f"{seen} of the {fv.get('n_devtest_people', 0):,} LFW DevTest people (P1/P2) are among facever's "
               f"training people" + (" (P1/P2 people are unseen)" if seen == 0 else ": its figures are CONTAMINATED"))
    return ["## Method notes", "",
            "- Both systems run on the CPU of the same machine in the same run; facever in-process (TensorFlow CPU), "
            "face_recognition in its own virtual environment through `benchmarks/peer_face_recognition.py`.",
            "- face_recognition: `face_locations` (HOG, 1 upsampling), the 5-point landmarks and 1 jitter that "
            "`face_encodings` uses by default; distance = Euclidean between dlib encodings, same person when ≤ 0.6.",
            "- facever: MTCNN detection, 5-point similarity alignment, the bundle's encoder with flip TTA; distance = "
            "Euclidean between unit vectors (0–2), same person when ≤ the bundle's calibrated τ.",
            "- P1's 10-fold split is the same stratified, seeded split for both systems. TAR at a FAR needs at least "
            "1/FAR impostor pairs (n/r: not resolvable, e.g. FAR=1e-3 on P1's 500 impostor pairs).",
            "- Best-threshold accuracy picks τ on the very pairs it scores: an upper bound, not a result.",
            f"- Training data: face_recognition's dlib ResNet was trained on its author's data set of about 3 million "
            f"faces (whether it holds LFW DevTest people is not checked here); {trained}.",
            "- Peak memory is measured on a launcher's child (a bare interpreter forks, then execs the command), so "
            "it includes at most the launcher's ~8 MB, not the benchmark process's.", ""]


def write_report(results: dict[str, Any], out_dir: str | os.PathLike[str], md_path: str | os.PathLike[str]) -> list[Path]:
    """Write the PNGs into ``out_dir`` and the Markdown report at ``md_path``; returns the paths."""
    out_dir, md_path = Path(out_dir), Path(md_path)
    out_dir.mkdir(parents=True, exist_ok=True)
    md_path.parent.mkdir(parents=True, exist_ok=True)
    md_dir = md_path.parent
    written: list[Path] = []
    lines = header_lines(results)
    if results.get("accuracy"):
        lines += accuracy_lines(results["accuracy"], out_dir, md_dir, written)
    if results.get("speed"):
        lines += speed_lines(results["speed"], out_dir, md_dir, written)
    if results.get("cli"):
        lines += cli_lines(results["cli"])
    if results.get("gallery"):
        lines += gallery_lines(results["gallery"], out_dir, md_dir, written)
    lines += method_lines(results)
    md_path.write_text("\n".join(lines).rstrip() + "\n", encoding="utf-8")
    return [*written, md_path]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--results", type=Path, default=HERE / "results" / "compare.json", help="compare.py's JSON")
    ap.add_argument("--out", type=Path, default=None, help="folder for the PNGs (default: the JSON's folder)")
    ap.add_argument("--md", type=Path, default=HERE / "RESULTS.md", help="Markdown file to write")
    args = ap.parse_args()
    results = json.loads(args.results.read_text(encoding="utf-8"))
    for path in write_report(results, args.out or args.results.parent, args.md):
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
