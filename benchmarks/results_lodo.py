"""Markdown for the leave-one-domain-out open-set benchmark (issue 22), from its JSON
(``results/open_set_lodo.json``, written by ``benchmarks/open_set_lodo.py``).

:func:`lodo_markdown` is the whole ``results/open_set_lodo.md``; :func:`lodo_lines` is the section of
``RESULTS.md`` (``make_results.py``), left out when the JSON is missing.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from results_format import pct, table

RESULTS = Path(__file__).resolve().parent / "results"
COMMAND = "FACEVER_THREADS=1 nice -n 15 python benchmarks/open_set_lodo.py --write-metadata"


def _ratio(cell: dict[str, Any]) -> str:
    """``1.23 % (1.23×)`` with ``!`` past 1.5× the target; in brackets when not measurable."""
    ci = cell.get("ratio_ci95_people")
    spread = f"; {ci[0]:.2f}–{ci[1]:.2f}×" if ci else ""
    text = f"{pct(cell['fpir'])} ({cell['ratio']:.2f}×{spread})" + (" **!**" if cell["ratio"] > 1.5 else "")
    return text if cell["measurable"] else f"[{text}]"


def _rows(result: dict[str, Any]) -> list[list[str]]:
    rows = []
    for name, dom in result["domains"].items():
        for r in dom["rows"]:
            s1, a1 = r["shipped@0.01"], r["gallery-adapted@0.01"]
            s01, a01 = r["shipped@0.001"], r["gallery-adapted@0.001"]
            dup = r.get("duplicates") or {}
            rows.append([name, f"{r['people']}{'*' if r['all_but_strangers'] else ''}", str(r["galleries"]),
                         f"{r['distinct_stranger_images']:,} / {r['stranger_people']:,}",
                         _ratio(s1), _ratio(a1), _ratio(s01), _ratio(a01),
                         f"{s1['dir']:.3f} → {a1['dir']:.3f}" if s1["dir"] is not None else "—",
                         f"{r['shift_mean']:+.4f}",
                         f"{dup['shift_with_duplicates'] - dup['shift_clean']:+.4f}" if dup else "—"])
    return rows


def _summary(result: dict[str, Any]) -> list[str]:
    s, a = result["summary"]["shipped"], result["summary"]["gallery-adapted"]
    lines = table(["", "today (shipped calibration method)", "chosen: gallery-adapted"], [
        ["measured FPIR ÷ target, every measurable domain × size × target",
         f"{s['ratio_min']:.2f}–{s['ratio_max']:.2f}×", f"{a['ratio_min']:.2f}–{a['ratio_max']:.2f}×"],
        ["worst cell", s["worst"], a["worst"]],
        ["over 1.5× the target", ", ".join(s["over_1.5x"]) or "none", ", ".join(a["over_1.5x"]) or "none"],
        ["over 1.5× with the whole 95 % interval over stranger people",
         ", ".join(s.get("over_1.5x_whole_interval") or []) or "none",
         ", ".join(a.get("over_1.5x_whole_interval") or []) or "none"],
        ["95 % interval over stranger people spans 1.5×: too few people to decide",
         ", ".join(s.get("interval_spans_1.5x") or []) or "none",
         ", ".join(a.get("interval_spans_1.5x") or []) or "none"],
        ["over 1.5× where too few strangers to measure the target",
         ", ".join(s.get("over_1.5x_not_measurable") or []) or "none",
         ", ".join(a.get("over_1.5x_not_measurable") or []) or "none"],
    ])
    p3 = result.get("p3") or {}
    if p3:
        lines += ["", "LFW P3 with the bundle's own calibration (target FPIR 1 %; target: DIR ≥ 95 % of today's):", ""]
        lines += table(["enrolled per person", "people", "threshold today → adapted", "DIR today → adapted",
                        "DIR ratio", "FPIR on P3's unknowns today → adapted"],
                       [[k, str(e["people"]), f"{e['shipped']['threshold']:.4f} → {e['gallery-adapted']['threshold']:.4f}",
                         f"{pct(e['shipped']['dir'])} → {pct(e['gallery-adapted']['dir'])}", pct(e["dir_ratio"], 1),
                         f"{pct(e['shipped']['fpir'])} → {pct(e['gallery-adapted']['fpir'])} "
                         f"(of {e['unknown_probes']:,})"] for k, e in p3.items()])
    return lines


def _calibrations(result: dict[str, Any]) -> list[str]:
    rows = []
    for name, dom in result["domains"].items():
        parts = ", ".join(f"{d} {p['people']}" + (f" (−{p['left_out_as_held_out_identities']} shared)"
                                                   if p["left_out_as_held_out_identities"] else "")
                          for d, p in dom["calibration"]["parts"].items())
        rows.append([name, f"{dom['people']:,} people, {dom['faces']:,} faces"
                     + (f" ({dom['trained_people']} fine-tuned on)" if dom["trained_people"] else ""),
                     f"{dom['calibration']['people']} people: {parts}"])
    return table(["held out", "evaluated", "calibrated on (people per domain)"], rows)


def lodo_markdown(result: dict[str, Any], heading: str = "#") -> list[str]:
    """The report: method, summary, calibrations and the full table."""
    ad = result["adaptation"]
    lines = [f"{heading} Open-set FPIR on a population the calibration never saw (leave one domain out, issue 22)", "",
             f"`{COMMAND}` (model `{result['model_version']}`, {result['seconds'] / 60:.1f} min with cached "
             f"embeddings). For each domain: the open-set data is calibrated on the other domains (no person of the "
             f"held-out domain in it: identities matched by name across datasets), then random galleries of the "
             f"held-out domain ({result['repeats']} per size below 100 people, {result['repeats_large']} above; "
             f"{result['per_person']} photos enrolled per person) are probed by every photo of its people not "
             f"enrolled (strangers: FPIR) and by the enrolled people's other photos (DIR). *today*: the calibrated "
             f"threshold for the gallery size; *gallery-adapted*: the same, tightened by the gallery's own "
             f"between-person distances (quantiles {', '.join(f'{q:g}' for q in ad['quantiles'])} matched, "
             f"galleries of ≥ {ad['min_people']} people, never loosened).", ""]
    lines += _summary(result) + ["", "Calibration per held-out domain:", ""] + _calibrations(result)
    lines += ["", "FPIR (÷ target) per gallery size; **!** past 1.5× the target; [brackets]: not measurable (fewer "
              "than 3 / target distinct stranger photos); after each ratio, its 95 % interval from a bootstrap over the "
              "stranger *people* (a person's photos are matched or not together); * the largest gallery (a quarter of the people left as "
              "strangers). *shift*: the mean gallery-adapted tightening (distance); *dup.*: how much it moves when a "
              "tenth of the people are enrolled twice under two names.", ""]
    lines += table(["held out", "people", "galleries", "stranger photos / people", "1 %: today", "1 %: adapted",
                    "0.1 %: today", "0.1 %: adapted", "DIR at 1 %: today → adapted", "shift", "dup."], _rows(result))
    lines += ["", "What the misses are (Yale's look-alike subjects, LFW P3's one-image strangers) and why a gallery "
              "cannot see them: `models/MODEL_CARD.md`, section *Open-set FPIR on populations the calibration never "
              "saw*. Re-render this file from the JSON: `python benchmarks/results_lodo.py`."]
    return lines + [""]


def lodo_lines() -> list[str]:
    """The ``RESULTS.md`` section (empty without the JSON)."""
    try:
        result = json.loads((RESULTS / "open_set_lodo.json").read_text())
    except (OSError, ValueError):
        return []
    return lodo_markdown(result, heading="##")


if __name__ == "__main__":
    data = json.loads((RESULTS / "open_set_lodo.json").read_text())
    (RESULTS / "open_set_lodo.md").write_text("\n".join(lodo_markdown(data)) + "\n")
    print(f"wrote {(RESULTS / 'open_set_lodo.md').relative_to(RESULTS.parent.parent)}")
