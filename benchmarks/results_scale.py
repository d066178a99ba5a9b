"""RESULTS.md sections for issues 12 and 13, from their own benchmarks' JSON (not compare.py's):

* open-set identification against gallery size: ``results/open_set/open_set.json`` (3 photos enrolled
  per person) and ``results/open_set_all/open_set.json`` (everyone enrolled, ``--min-images 1``),
  written by ``benchmarks/open_set.py``;
* the approximate index at up to 1 M faces: ``results/ann.json``, written by ``benchmarks/ann_bench.py``.

Missing files leave their section out.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"


def _pct(x: float | None, digits: int = 2) -> str:
    return "—" if x is None else f"{100 * x:.{digits}f}%"


def _load(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def open_set_lines(md_dir: Path) -> list[str]:
    runs = [(name, _load(RESULTS / name / "open_set.json")) for name in ("open_set", "open_set_all")]
    runs = [(n, r) for n, r in runs if r]
    if not runs:
        return []
    lines = ["## Open-set identification against gallery size (issue 12)", "",
             "`python benchmarks/open_set.py runs/emb/{lfw,pins,bollywood}_r9h.npz --holdout TEST_PEOPLE [--min-images 1]`: "
             "held-out people only (LFW DevTest + the pins/bollywood test people), at most 10 faces each; people split "
             "in two halves 5 times: one half calibrates the impostor distribution, galleries of the other half are "
             "enrolled with 3 photos per person and probed by their other photos (DIR) and by the calibrating half's "
             "people (strangers: FPIR). Target FPIR 1 %. *adaptive*: the shipped policy (threshold from the gallery's "
             "effective size); *fixed at smallest*: one threshold calibrated at the smallest gallery; "
             "*per-pair FAR 1 %*: τ used as an identification threshold (the old duplicate-gate rule).", ""]
    for name, r in runs:
        title = "3 photos enrolled per person" if r.get("min_images", 3) > 1 else "everyone enrolled (`--min-images 1`)"
        lines += [f"**{title}** ({r['source']}):", "",
                  "| people | faces | adaptive FPIR (per split) | adaptive DIR | fixed at smallest: FPIR | per-pair FAR 1 %: FPIR |",
                  "|---|---|---|---|---|---|"]
        for row in r["identification"]:
            a = row["adaptive"]
            lines.append(f"| {row['people']:.0f}{'*' if row.get('all_of_pool') else ''} | {row['faces']:.0f} | "
                         f"{_pct(a['fpir'])} ({_pct(min(a['fpir_per_split']))} … {_pct(max(a['fpir_per_split']))}) | "
                         f"{a['dir']:.3f} | {_pct(row['fixed_smallest']['fpir'])} | {_pct(row['fixed_pair_far_1pct']['fpir'])} |")
        lines += ["", f"Adaptive FPIR within ±50 % of the target at every size: "
                      f"**{'yes' if r['adaptive_fpir_within_50pct_at_every_size'] else 'no'}**. (* the whole pool.)", ""]
    d = runs[0][1]["duplicate_gate_total"]
    lines += [f"Duplicate gate at enrolment (distinct people enrolled one by one, gate calibrated on the other half): "
              f"{d['refused']} of {d['enrolments']:,} refused ({_pct(d['refused'] / d['enrolments'])}; predicted "
              f"{d['predicted']}); the old gate (per-pair FAR 1 %) would refuse {d['refused_old_gate']:,} "
              f"({_pct(d['refused_old_gate'] / d['enrolments'])}). Real duplicates (a person's other photos under a "
              f"new name) caught: {d['true_duplicates_caught']} of {d['true_duplicates']}.", ""]
    png = RESULTS / "open_set_all" / "open_set.png"
    if png.is_file():
        lines += [f"![FPIR and DIR against gallery size]({png.relative_to(md_dir) if png.is_relative_to(md_dir) else png})", ""]
    return lines


def ann_lines() -> list[str]:
    r = _load(RESULTS / "ann.json")
    if not r:
        return []
    lines = ["## Approximate search at up to 1 M faces (issue 13)", "",
             f"`python benchmarks/ann_bench.py`: {r.get('probes', '?')} real probes (LFW, pins, bollywood faces) against "
             f"{r.get('real_people', '?'):,} real people padded with synthetic identities fitted to the real embeddings; "
             "recall@1 = the approximate search names the exact scan's nearest person. faiss "
             f"{r.get('machine', {}).get('faiss', '?')}, 2 cores (shared while it ran: absolute times pessimistic).", "",
             "| faces | index | setting | recall@1 | ms / query (single) | ms / query (batched) | exact scan ms | build s | index B/face |",
             "|---|---|---|---|---|---|---|---|---|"]
    for row in r.get("results", []):
        params = ", ".join(f"{k} {v}" for k, v in row.get("params", {}).items())
        lines.append(f"| {row['faces']:,} | {row['kind']} | {params} | {row['recall_at_1']:.4f} | {row['ann_ms_single']:.2f} | "
                     f"{row['ann_ms_batched']:.2f} | {row.get('exact_ms_single', float('nan')):.1f} | {row['build_s']:.0f} | "
                     f"{row['index_bytes_per_face']:.0f} |")
    if r.get("note"):
        lines += ["", str(r["note"])]
    lines += ["", "The path beyond one machine: `docs/SCALING.md`.", ""]
    return lines
