"""Renders ``results/speed.json`` (written by ``speed.py``) as ``results/speed.md``: the speed section of
RESULTS.md for issue 20 (targets first, then cold starts, one face, enrolment, batch embedding).

    python benchmarks/speed_report.py [results/speed.json]      # re-render the Markdown only
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from results_format import ms, ratio, secs, table

HERE = Path(__file__).resolve().parent
CASE_LABELS = {"verify_text": "`verify A B`", "verify_json": "`verify A B --json`",
               "missing_file": "missing file (one-line error)", "bad_option": "unknown option (usage error)",
               "help": "`--help`"}


def _med(stat: dict[str, Any] | None) -> float | None:
    return None if not stat else stat["median"]


def _verdict(ok: bool | None) -> str:
    return "—" if ok is None else ("met" if ok else "**not met**")


def _targets(r: dict[str, Any]) -> list[str]:
    cases = (r.get("cold") or {}).get("cases", {})
    rows = []

    def cold(case: str, key: str) -> float | None:
        return _med((cases.get(case) or {}).get("facever", {}).get(key))

    paired = (cases.get("verify_text") or {}).get("ratio_to_face_recognition", {})
    verify_ratio, cpu_ratio = _med(paired.get("wall_s")), _med(paired.get("cpu_s"))
    rows.append(["cold `verify A B` ≤ ⅓ of face_recognition's CLI (paired ratio)",
                 "—" if verify_ratio is None else f"{verify_ratio:.3f}× wall ({cpu_ratio:.3f}× CPU)",
                 _verdict(None if verify_ratio is None else verify_ratio <= 1 / 3)])
    for case, label, limit in (("verify_text", "cold `verify A B` ≤ 0.35 s", 0.35), ("help", "`--help` ≤ 0.15 s", 0.15),
                               ("missing_file", "one-line error ≤ 0.2 s", 0.2)):
        wall, cpu = cold(case, "wall_s"), cold(case, "cpu_s")
        shown = "—" if wall is None else f"{wall:.3f} s wall ({cpu:.3f} s CPU)"
        rows.append([label, shown, _verdict(None if wall is None else wall <= limit)])
    # the int8 targets: the fast model's sections when the run has them, else the float model's
    sfx, which = ("_fast", "int8 model") if "one_face_fast" in r or "enroll_fast" in r else ("", "float model")
    face = ((r.get("one_face" + sfx) or {}).get("stages") or {}).get("total", {})
    speedup = _med(face.get("ratio"))
    rows.append(["one face end to end ≥ 5× faster than face_recognition (int8 target)",
                 "—" if not speedup else f"{1 / speedup:.1f}× faster ({which})",
                 _verdict(None if not speedup else 1 / speedup >= 5)])
    enroll = ((r.get("enroll" + sfx) or {}).get("results") or {}).get("images_per_s")
    rows.append(["enrolment ≥ 120 photos/s on 2 cores (int8 target)",
                 "—" if enroll is None else f"{enroll:.1f} photos/s ({which})",
                 _verdict(None if enroll is None else enroll >= 120)])
    bsfx, bwhich = ("_fast", "int8 model") if "batch_fast" in r else ("", "float model")
    batch = (r.get("batch" + bsfx) or {}).get("library", {})
    best = max((_med(v["photos_per_s"]) or 0 for v in batch.values()), default=None)
    rows.append(["batch embedding ≥ 120 photos/s on LFW (fast model)", "—" if not best else f"{best:.1f} photos/s ({bwhich})",
                 _verdict(None if not best else best >= 120)])
    return table(["target (issue 20)", "measured", ""], rows)


def _cold(section: dict[str, Any], baseline: str | None) -> list[str]:
    systems = ["facever", "face_recognition"] + (["baseline"] if baseline else [])
    header = ["command"] + [f"{s if s != 'baseline' else baseline}: wall s / CPU s / MB" for s in systems]
    header += ["facever ÷ face_recognition (wall)"] + (["facever ÷ before (wall)"] if baseline else [])
    rows = []
    for case, entry in section["cases"].items():
        row = [CASE_LABELS.get(case, case)]
        for s in systems:
            e = entry[s]
            row.append(f"{secs(e['wall_s'], 3)} / {_med(e['cpu_s']):.3f} / {_med(e['maxrss_mb']):.0f}")
        row.append(ratio(entry["ratio_to_face_recognition"]["wall_s"]))
        if baseline:
            row.append(ratio(entry["ratio_to_baseline"]["wall_s"]))
        rows.append(row)
    return table(header, rows)


def _one_face(section: dict[str, Any]) -> list[str]:
    rows = []
    for stage, entry in section["stages"].items():
        rows.append([stage, ms(entry.get("facever")), ms(entry.get("face_recognition")), ratio(entry.get("ratio"))])
    return table(["stage (per image)", "facever ms", "face_recognition ms", "facever ÷ face_recognition"], rows)


def _batch(section: dict[str, Any], one_face: dict[str, Any] | None) -> list[str]:
    rows = []
    for key, entry in section["library"].items():
        rows.append([f"`FaceVerifier.embed_many`, {section['workers'][key]} worker(s)", secs(entry["photos_per_s"], 1),
                     f"{1000 * _med(entry['cpu_s_per_photo']):.1f}"])
    cli = section["cli"]
    if cli["rc"] == 0:
        rows.append(["`facever embed DIR --out f.npz` (whole cold process)", f"{cli['photos_per_s_process']:.1f}",
                     f"{1000 * cli['cpu_s'] / section['n_photos']:.1f}"])
    else:
        rows.append(["`facever embed DIR --out f.npz` (whole cold process)", f"**failed** (exit {cli['rc']})", "—"])
    peer = (((one_face or {}).get("stages") or {}).get("total") or {}).get("face_recognition")
    if peer:
        rows.append(["face_recognition, one image at a time (no CPU batch API; from the one-face run)",
                     f"{1 / peer['median']:.1f}", "—"])
    lines = table(["how", "photos/s", "CPU ms per photo"], rows)
    lines.append("")
    lines.append(f"{section['n_photos']} LFW photos ({section['n_faces']} faces, every face embedded with the model's "
                 "test-time views)" + (f"; a second `facever embed` on the same folder (resume, nothing to do) took "
                                       f"{cli['resume_wall_s']:.2f} s." if cli["rc"] == 0 else "."))
    return lines


def render(r: dict[str, Any]) -> str:
    meta = r["meta"]
    env = meta["environment"]
    loads = {k: v for k, v in meta.items() if k.startswith("load_average")}
    lines = ["## Speed (issue 20): cold start, one face, enrolment, batch embedding", "",
             f"Measured {meta['started']} on {env['cpu']} ({env['cpus']} CPUs), model {meta['model_version']}, "
             f"onnxruntime {env['versions'].get('onnxruntime')}, face_recognition "
             f"{meta['peer'].get('face_recognition')} (dlib {meta['peer'].get('dlib-bin') or meta['peer'].get('dlib')}). "
             f"The machine was shared: load averages (1, 5, 15 min) " +
             "; ".join(f"{k.replace('load_average_', '')} {v}" for k, v in loads.items()) +
             ". Every timing alternates between the systems in the same run; compare ratios, not absolute times.",
             "", *_targets(r), ""]
    if "cold" in r:
        lines += ["### Cold command-line processes", "",
                  f"A new process per run, median [min–max] of {r['cold']['repeats']} runs; CPU = user + system; "
                  "MB = peak resident memory. face_recognition runs `face_recognition --show-distance true KNOWN B` "
                  "(KNOWN: a folder holding A).", "", *_cold(r["cold"], meta.get("baseline")), ""]
    variants = [("", f"float model {meta['model_version']}")]
    if meta.get("fast_model_version"):
        variants.append(("_fast", f"int8 model {meta['fast_model_version']} (`--model fast`)"))
    for sfx, label in variants:
        if "one_face" + sfx in r:
            one = r["one_face" + sfx]
            lines += [f"### One face end to end — {label}", "",
                      f"{one['n_images']} LFW images, one at a time, {one['repeats']} passes; "
                      "median [min–max] of the per-pass medians (the peer timed alongside in the same passes).", "",
                      *_one_face(one), ""]
    for sfx, label in variants:
        if "enroll" + sfx in r and r["enroll" + sfx].get("status") == "ok":
            e = r["enroll" + sfx]["results"]
            lines += [f"### Enrolment — {label}", "", f"`Gallery.enroll` on {e['people']} LFW people, {e['images']} photos: "
                      f"**{e['images_per_s']:.1f} photos/s** (decode, hash, detect, align, quality check, embed, one "
                      "transaction per person; model loaded, first person untimed).", ""]
    for sfx, label in variants:
        if "batch" + sfx in r:
            lines += [f"### Batch embedding — {label}", "", *_batch(r["batch" + sfx], r.get("one_face" + sfx)), ""]
    return "\n".join(lines)


if __name__ == "__main__":
    src = Path(sys.argv[1]) if len(sys.argv) > 1 else HERE / "results" / "speed.json"
    (src.parent / "speed.md").write_text(render(json.loads(src.read_text())))
