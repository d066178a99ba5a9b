"""Render ``benchmarks/RESULTS.md`` and the PNG plots from ``compare.json`` (written by compare.py).

``benchmarks/compare.py`` calls :func:`write_report` at the end of a run; to re-render from a JSON
alone (no image is processed)::

    python benchmarks/make_results.py [--results benchmarks/results/compare.json] [--md benchmarks/RESULTS.md]

The report opens with the targets listed in ``benchmarks/targets.json``, each with the measured figure; the sections
follow (``results_accuracy.py``: LFW and held-out people; ``results_system.py``: speed, CLI,
enrolment, search, environment). Plots (matplotlib, Agg; next to the JSON): ``roc_p1.png``,
``roc_p2.png``, ``roc_heldout.png`` (both systems' ROC, log FAR, default thresholds marked),
``speed_stages.png``, ``search_latency.png``.
"""

from __future__ import annotations

import argparse
import json
import re
import os
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

from results_accuracy import accuracy_lines, heldout_lines  # noqa: E402
from results_format import num, pct, table  # noqa: E402
from results_lodo import lodo_lines  # noqa: E402
from results_scale import ann_lines, open_set_lines  # noqa: E402
from results_system import cli_lines, enroll_lines, env_lines, gallery_lines, speed_lines  # noqa: E402

REGENERATE = "python benchmarks/compare.py --gallery-bench"
DURATION = "about 30 minutes on 2 idle CPU cores"


def header_lines(results: dict[str, Any]) -> list[str]:
    meta = results["meta"]
    env = meta.get("environment", {})
    fv, fr = results["systems"]["facever"], results["systems"]["face_recognition"]
    lines = ["# facever vs face_recognition: side-by-side benchmark", "",
             f"Regenerate everything (JSON, plots, this file) with one command from the repository root, with "
             f"facever's Python: `{REGENERATE}` (add `--model BUNDLE` for another model; {DURATION}). The peer, "
             f"face_recognition, lives in its own environment: `bash benchmarks/setup_peer.sh`. Re-render this file "
             f"from the JSON only: `python benchmarks/make_results.py`.", ""]
    if meta.get("smoke"):
        why = ([f"`--limit {meta['limit']}`"] if meta.get("limit") is not None else []) \
            + ([f"sections skipped: {', '.join(meta['skipped'])}"] if meta.get("skipped") else []) \
            + ([f"{meta.get('repeats')} repeats"] if (meta.get("repeats") or 0) < 3 else [])
        lines += ["> **SMOKE RUN: NOT RESULTS.** This file came from a reduced run ("
                  + ("; ".join(why) or "reduced options") + "); its figures only show that the scripts work. Run the "
                  "command above for the real benchmark.", ""]
    load = f"{meta.get('load_average_start')} → {meta.get('load_average_end')}"
    versions = env.get("versions") or {}
    libs = ", ".join(f"{k} {v}" for k, v in versions.items() if v)
    lines += table(["", ""], [
        ["run", f"{meta.get('started')}, {meta.get('duration_s', 0) / 60:.1f} min ("
                + ", ".join(f"{k} {v / 60:.1f}" for k, v in (results.get("durations_s") or {}).items())
                + f"); command `{meta.get('command')}`"],
        ["machine", f"{env.get('cpu')}, {env.get('cpus')} CPUs, load average (1/5/15 min) {load}"],
        ["facever", f"model `{fv['model_version']}` ({fv['architecture']}, {fv.get('training_method') or 'trained'}; "
                    f"{fv['input_size']}×{fv['input_size']} {fv.get('alignment', '')} crops, test-time views: zooms "
                    f"{', '.join(f'{z:g}' for z in fv.get('view_zooms', [1.0]))}{', each mirrored' if fv['flip_tta'] else ''}), "
                    f"{fv['detector']}; τ = {num(fv['default_threshold'])} from {fv['threshold_source']}; "
                    f"python {env.get('python')}, {libs}"],
        ["face_recognition", f"{', '.join(f'{k} {v}' for k, v in (fr.get('versions') or {}).items())}; "
                             f"{fr['detector']}; τ = {fr['default_threshold']} ({fr['threshold_source']})"],
    ])
    return lines + [""]


def _get(d: Any, *keys: Any) -> Any:
    for k in keys:
        if not isinstance(d, dict) or k not in d:
            return None
        d = d[k]
    return d


#: The targets the report opens with: what is measured, where in compare.json, and the bound.
TARGETS_FILE = HERE / "targets.json"

_FORMATS = {
    "pct": lambda x: pct(x), "pct1": lambda x: pct(x, 1), "pct3": lambda x: pct(x, 3),
    "s": lambda x: f"{num(x, 3)} s", "ms": lambda x: f"{num(x and x * 1000, 1)} ms", "mb": lambda x: f"{num(x, 0)} MB",
    "per_s": lambda x: f"{num(x, 1)} images/s",
    "ratio": lambda x: num(x, 2) + (f" ({1 / x:.1f}× faster)" if x else ""),
}


def _path(path: list[str], system: str) -> list[str]:
    return [system if part == "{system}" else part for part in path]


def _paths(spec: Any) -> list[list[str]]:
    """One path (a list of keys) or several (a list of such lists)."""
    return spec if spec and isinstance(spec[0], list) else [spec]


def _shown(results: dict[str, Any], t: dict[str, Any], system: str, paths: list[list[str]]) -> tuple[str, list]:
    """The figure(s) of one system as text, and their values."""
    fmt = _FORMATS[t["format"]]
    values = [_get(results, *_path(p, system)) for p in paths]
    if values[0] is None and t.get("also"):
        return "—", values
    text = "; ".join((t["label"] + " " if t.get("label") else "") + fmt(v) for v in values)
    for extra in t.get("also", []):
        if system != "facever" and "{system}" not in extra["metric"]:
            continue
        text += f", {extra['label']} {_FORMATS[extra['format']](_get(results, *_path(extra['metric'], system)))}"
    return text, values


def _verdict(results: dict[str, Any], t: dict[str, Any], fv: list, peer: list) -> bool | None:
    if t.get("ahead_of_peer"):
        return None if None in fv + peer else all(f > p for f, p in zip(fv, peer))
    value = _get(results, *t["check_metric"]) if t.get("check_metric") else fv[0]
    if value is None:
        return None
    ok = (value >= t["at_least"]) if "at_least" in t else (value <= t["at_most"]) if "at_most" in t else True
    if t.get("peer_at_least_times"):
        ok = ok and peer[0] is not None and peer[0] >= t["peer_at_least_times"] * value
    req = t.get("requires")
    if req:
        ok = ok and str(_get(results, *req["metric"]) or "").startswith(req["startswith"])
    return ok


def target_row(results: dict[str, Any], t: dict[str, Any]) -> list[str]:
    """One row of the targets table: target, source, facever's figure, the peer's, the verdict."""
    label = t["target"].format(**{k: _FORMATS[v["format"]](_get(results, *v["metric"]))
                                  for k, v in t.get("label_metrics", {}).items()})
    fv_text, fv = _shown(results, t, "facever", _paths(t["metric"]))
    if "peer_metric" in t:
        peer_paths = [] if t["peer_metric"] is None else _paths(t["peer_metric"])
    else:
        peer_paths = _paths(t["metric"])
    peer_text, peer = _shown(results, t, "face_recognition", peer_paths) if peer_paths else ("—", [None])
    if peer_text != "—" and t.get("peer_suffix"):
        peer_text += t["peer_suffix"]
    if t.get("peer_at_least_times") and fv[0] and peer[0]:
        fv_text += f" ({peer[0] / fv[0]:.1f}× faster)"
    req = t.get("requires")
    if req and fv[0] is not None:
        check = str(_get(results, *req["metric"]) or "")
        if not check.startswith(req["startswith"]):
            fv_text += f"; {req['otherwise']}: {check}"
    ok = _verdict(results, t, fv, peer)
    return [label, t["source"], fv_text, peer_text, "—" if ok is None else ("met" if ok else "**not met**")]


def targets_lines(results: dict[str, Any], targets_file: str | os.PathLike[str] = TARGETS_FILE) -> list[str]:
    """The targets of ``targets_file`` with this run's figures (— where a section was skipped)."""
    spec = json.loads(Path(targets_file).read_text(encoding="utf-8"))
    sources = list(dict.fromkeys(t["source"] for t in spec["targets"]))
    issues = " and ".join([", ".join(sources[:-1]), sources[-1]] if len(sources) > 1 else sources)
    lines = [f"## {spec['title']} (issue{'s' if len(sources) > 1 else ''} {issues})", "", spec["intro"], ""]
    rows = [target_row(results, t) for t in spec["targets"]]
    return lines + table(["target", "issue", "facever", "face_recognition", "verdict"], rows) + [""]


def method_lines(results: dict[str, Any]) -> list[str]:
    fv = results["systems"]["facever"]
    seen = fv.get("devtest_people_in_training")
    never = fv.get("never_trained_on")
    trained = (f"facever's bundle states it was never trained on: {never}" if never and seen is None else
               "facever's training people are not recorded in its bundle, so its overlap with LFW DevTest is unknown"
               if seen is None else
               f"{seen} of the {fv.get('n_devtest_people', 0):,} LFW DevTest people (P1/P2/P3) are among facever's "
               f"training people" + (" (P1/P2/P3 people are unseen)" if seen == 0 else ": its figures are CONTAMINATED"))
    return ["## Method notes", "",
            "- Both systems run on the CPU of the same machine in the same run; facever in-process (onnxruntime), "
            "face_recognition in its own virtual environment through `benchmarks/peer_face_recognition.py`.",
            "- face_recognition: `face_locations` (HOG, 1 upsampling), the 5-point landmarks and 1 jitter that "
            "`face_encodings` uses by default; distance = Euclidean between dlib encodings, same person when ≤ 0.6.",
            "- facever: MTCNN detection, 5-point similarity alignment to the model's template, the bundle's encoder "
            "on the crop's test-time views (the bundle's zooms, each mirrored), averaged; distance = Euclidean between unit vectors (0–2), same person when ≤ the bundle's "
            "calibrated τ.",
            "- The 10-fold splits are the same stratified, seeded splits for both systems. TAR at a FAR needs at "
            "least 1/FAR impostor pairs (n/r: not resolvable, e.g. FAR=1e-3 on P1's 500 impostor pairs).",
            "- Best-threshold accuracy picks τ on the very pairs it scores: an upper bound, not a result.",
            f"- Training data: face_recognition's dlib ResNet was trained on its author's data set of about 3 million "
            f"faces (whether it holds LFW DevTest people is not checked here); {trained}.",
            "- Peak memory is measured on a launcher's child (a bare interpreter forks, then execs the command), so "
            "it includes at most the launcher's ~8 MB, not the benchmark process's.",
            "- Embeddings are cached between runs (`$FACEVER_CACHE/benchmarks`, keyed by model and image list); a "
            "section whose embeddings came from the cache says so, and its throughput is the cached run's.", ""]


#: Sections rendered by their own benchmarks (``results/NAME.md``), appended in this order when present.
SECTION_FILES = ("serve", "liveness", "pgvector", "speed", "int8")
#: Heading for a section file that starts with a sub-heading only.
SECTION_TITLES = {"serve": "## Service: facever serve (issue 17)", "liveness": "## Liveness (issue 21)",
                  "pgvector": "## Search inside PostgreSQL: pgvector (issue 18)", "speed": "## Speed (issue 20)",
                  "int8": "## The int8 model against the float one (issue 20)"}


def section_lines(md_dir: Path) -> list[str]:
    """The Markdown sections of :data:`SECTION_FILES`, image links made relative to ``md_dir``."""
    lines: list[str] = []
    for name in SECTION_FILES:
        path = HERE / "results" / f"{name}.md"
        if not path.is_file():
            continue
        text = path.read_text(encoding="utf-8").strip()
        if not text.startswith("## "):
            text = SECTION_TITLES[name] + "\n\n" + text
        rel = os.path.relpath(path.parent, md_dir)
        text = re.sub(r"\]\((?!https?:|/|\.\./|results/)([^)]+\.png)\)", lambda m: f"]({rel}/{m.group(1)})", text)
        lines += [text, ""]
    return lines


def write_report(results: dict[str, Any], out_dir: str | os.PathLike[str], md_path: str | os.PathLike[str]) -> list[Path]:
    """Write the PNGs into ``out_dir`` and the Markdown report at ``md_path``; returns the paths."""
    out_dir, md_path = Path(out_dir), Path(md_path)
    out_dir.mkdir(parents=True, exist_ok=True)
    md_path.parent.mkdir(parents=True, exist_ok=True)
    md_dir = md_path.parent
    written: list[Path] = []
    lines = header_lines(results) + targets_lines(results)
    if results.get("accuracy"):
        lines += accuracy_lines(results["accuracy"], out_dir, md_dir, written)
    if results.get("heldout"):
        lines += heldout_lines(results["heldout"], out_dir, md_dir, written)
    if results.get("speed"):
        lines += speed_lines(results["speed"], out_dir, md_dir, written)
    if results.get("cli"):
        lines += cli_lines(results["cli"])
    if results.get("enroll"):
        lines += enroll_lines(results["enroll"], _get(results, "accuracy", "images", "face_recognition", "images_per_s"))
    if results.get("gallery"):
        lines += gallery_lines(results["gallery"], out_dir, md_dir, written)
    if results.get("env"):
        lines += env_lines(results["env"])
    lines += open_set_lines(md_dir) + lodo_lines() + ann_lines() + section_lines(md_dir)
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
