"""Does the open-set FPIR promise hold on a population the calibration never saw? Leave one domain out.

Usage (from the repository root; embeddings are cached under ``runs/open_set_lodo/emb``, so a re-run
takes about a minute):

    FACEVER_THREADS=1 nice -n 15 python benchmarks/open_set_lodo.py [--data ../shared/data] [--model DIR]
        [--repeats 100] [--repeats-large 10] [--seed 0] [--write-metadata]

Domains (``lodo_data.py``): LFW, pins, bollywood, glint16, ORL, Yale. For each held-out domain:

1. **Calibration** (:func:`facever.open_set.impostor_distribution`, at most 10 faces per person) on
   the calibration people of every *other* domain: LFW's 300 DevTrain people kept out of training,
   pins' and bollywood's validation and test people, glint16's people never trained on, every ORL
   and Yale person. No person of the held-out domain enters it: identities are matched across
   datasets by name (glint16 shares 6 people with LFW and pins), and the run stops if one slips in.
2. **Galleries** of the held-out domain's people (LFW: DevTest; others: every person): 10, 20, 50,
   ... people up to the largest that leaves a quarter of the people as strangers, ``--repeats``
   random draws per size (``--repeats-large`` from 100 people), each person enrolled with up to 3
   random faces, their other faces genuine probes; every face of every person not drawn probes as
   a stranger.
3. **Thresholds** at target FPIR 1 % and 0.1 %: ``shipped`` (the calibration's own threshold for the
   gallery size: today's method) and ``gallery-adapted`` (the same, tightened by the gallery's own
   between-person distances: :mod:`facever.open_set.adaptive`). FPIR = stranger probes whose nearest
   person is within the threshold; DIR = genuine probes named right within it.
   A target is *measurable* on a domain when its strangers have at least ``3 / target`` distinct
   images (one person probes many times, so fewer cannot resolve the rate).
4. **Planted duplicates**: the same galleries with a tenth of the people (at least one) enrolled
   again under a second name with other photos: the fitted shift should barely move.
5. **LFW P3** (DevTest, 1 or 3 images enrolled per person, people with one image as unknowns, the
   seeded choice of ``facever.training.evaluation.evaluate_open_set``) with the bundle's own calibration:
   DIR and FPIR at the shipped and the gallery-adapted threshold (target: adapted DIR ≥ 95 % of
   shipped).

Writes ``benchmarks/results/open_set_lodo.json`` and ``.md``; ``--write-metadata`` records the
measured spread in the bundle's ``metadata.open_set.transfer`` (the model version does not change:
it hashes the graph and the test-time views only).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

import lodo_data as L  # noqa: E402
from facever import open_set as osm  # noqa: E402
from results_lodo import lodo_markdown  # noqa: E402

SIZES = (10, 20, 50, 100, 200, 500, 1000, 2000)
TARGETS = (0.01, 0.001)
METHODS = ("shipped", "gallery-adapted")
PER_PERSON = 3


def rel(path: Path) -> str:
    """``path`` relative to the repository root when inside it (results carry no machine paths)."""
    try:
        return str(Path(path).resolve().relative_to(HERE.parent))
    except ValueError:
        return Path(path).name


def wilson(k: int, n: int, z: float = 1.96) -> list[float]:
    """95 % Wilson interval of a rate ``k / n``."""
    if n == 0:
        return [0.0, 1.0]
    p = k / n
    c = (p + z * z / (2 * n)) / (1 + z * z / n)
    h = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return [max(0.0, c - h), min(1.0, c + h)]


def person_ci(false_accepts: np.ndarray, probes: np.ndarray, reps: int = 2000, seed: int = 0) -> list[float]:
    """95 % percentile-bootstrap interval of a rate ``sum(false_accepts) / sum(probes)``, resampling
    stranger *people* (all of one person's probes go together: they are matched or not together, so an
    interval over photos would be far too narrow on a domain of a few dozen people)."""
    keep = probes > 0
    fa, n = false_accepts[keep], probes[keep]
    if len(n) == 0:
        return [0.0, 1.0]
    pick = np.random.default_rng(seed).integers(0, len(n), (reps, len(n)))
    rates = fa[pick].sum(axis=1) / np.maximum(n[pick].sum(axis=1), 1)
    return [float(np.quantile(rates, 0.025)), float(np.quantile(rates, 0.975))]


# ----------------------------------------------------------------------------------------------
def calibration_rows(dom: L.Domain) -> np.ndarray:
    """Rows usable for calibration: never trained on; LFW: only the 300 DevTrain calibration people."""
    ok = ~dom.trained
    return ok & (dom.part == "calib") if dom.name == "lfw" else ok


def evaluation_rows(dom: L.Domain) -> np.ndarray:
    return dom.part == "devtest" if dom.name == "lfw" else np.ones(len(dom.x), bool)


def lodo_calibration(doms: dict[str, L.Domain], held: str, seed: int) -> tuple[dict[str, Any], dict[str, Any]]:
    """The open-set data of every domain but ``held``, without any of ``held``'s identities."""
    banned = set(doms[held].key[evaluation_rows(doms[held])])
    xs, ys, parts = [], [], {}
    for name, dom in doms.items():
        if name == held:
            continue
        rows = calibration_rows(dom) & ~np.isin(dom.key, list(banned))
        xs.append(dom.x[rows])
        ys.append(dom.key[rows])
        parts[name] = {"people": int(len(np.unique(dom.key[rows]))), "faces": int(rows.sum()),
                       "left_out_as_held_out_identities": int(len(set(dom.key[calibration_rows(dom)]) & banned))}
    y = np.concatenate(ys)
    if set(y) & banned:
        raise RuntimeError(f"an evaluation identity of {held} entered its calibration")
    cal = osm.impostor_distribution(np.concatenate(xs), y, description=f"all domains but {held}", seed=seed)
    return cal, parts


def nearest(queries: np.ndarray, gallery: np.ndarray, starts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per query: the nearest person (position in ``starts``) and the distance to them."""
    if len(queries) == 0:
        return np.zeros(0, np.intp), np.zeros(0)
    best = np.empty(len(queries), np.intp)
    dist = np.empty(len(queries))
    for lo in range(0, len(queries), 2048):       # nearest-face scoring: most similar row per person
        sims = np.maximum.reduceat(queries[lo:lo + 2048] @ gallery.T, starts, axis=1)
        best[lo:lo + 2048] = sims.argmax(axis=1)
        dist[lo:lo + 2048] = np.sqrt(np.clip(2 - 2 * sims.max(axis=1), 0, 4))
    return best, dist


def draw_gallery(dom: L.Domain, people: np.ndarray, rows_of: dict, size: int, rng: np.random.Generator,
                 duplicates: int = 0) -> dict[str, Any]:
    """A random gallery of ``size`` people (up to 3 faces each), optionally with ``duplicates`` of
    them enrolled again under a second name (their next 3 photos); probes and strangers."""
    chosen = rng.choice(people, size, replace=False)
    enrolled, probes, owner = [], [], []
    for k, p in enumerate(chosen):
        idx = rng.permutation(rows_of[p])
        enrolled.append(idx[:PER_PERSON])
        probes += list(idx[PER_PERSON:])
        owner += [k] * len(idx[PER_PERSON:])
    twins = [p for p in range(size) if len(rows_of[chosen[p]]) >= 2 * PER_PERSON][:duplicates]
    for p in twins:
        rest = np.setdiff1d(rows_of[chosen[p]], enrolled[p])
        enrolled.append(rng.permutation(rest)[:PER_PERSON])
    starts = np.concatenate([[0], np.cumsum([len(e) for e in enrolled])[:-1]])
    strangers = np.flatnonzero(~np.isin(dom.person, chosen))
    return {"gallery": dom.x[np.concatenate(enrolled)], "starts": starts, "strangers": strangers,
            "probes": np.asarray(probes, np.intp), "owner": np.asarray(owner, np.intp), "twins": len(twins)}


def measure_domain(dom: L.Domain, cal: dict[str, Any], args, rng: np.random.Generator) -> list[dict[str, Any]]:
    """Counts per gallery size, method and target on one held-out domain."""
    people, person_index = np.unique(dom.person, return_inverse=True)
    rows_of = {p: np.flatnonzero(dom.person == p) for p in people}
    n_max = len(people) - max(len(people) // 4, 2)
    sizes = [s for s in SIZES if s < n_max] + [n_max]
    out = []
    for size in sizes:
        repeats = args.repeats if size < 100 else args.repeats_large
        cell = {(m, t): {"fa": 0, "n": 0, "hits": 0, "genuine": 0, "thr": [], "fa_by_person": np.zeros(len(people)),
                         "n_by_person": np.zeros(len(people))} for m in METHODS for t in TARGETS}
        distinct, shifts, dup_shifts, dup_fa = set(), [], [], {t: [0, 0] for t in TARGETS}
        stranger_people = set()
        for _ in range(repeats):
            g = draw_gallery(dom, people, rows_of, size, rng)
            _, s_dist = nearest(dom.x[g["strangers"]], g["gallery"], g["starts"])
            who, g_dist = nearest(dom.x[g["probes"]], g["gallery"], g["starts"])
            right = who == g["owner"]
            distinct.update(g["strangers"].tolist())
            stranger_people.update(dom.person[g["strangers"]].tolist())
            fit = osm.fit_gallery(cal, g["gallery"], g["starts"])
            shifts.append(fit.shift)
            for t in TARGETS:
                base, _ = osm.threshold_for_gallery(cal, len(g["gallery"]), size, t)
                for m, thr in (("shipped", base), ("gallery-adapted", base + fit.shift)):
                    c = cell[m, t]
                    c["fa"] += int((s_dist <= thr).sum())
                    c["n"] += len(s_dist)
                    np.add.at(c["fa_by_person"], person_index[g["strangers"]], s_dist <= thr)
                    np.add.at(c["n_by_person"], person_index[g["strangers"]], 1)
                    c["hits"] += int((right & (g_dist <= thr)).sum())
                    c["genuine"] += len(g_dist)
                    c["thr"].append(thr)
            dup = draw_gallery(dom, people, rows_of, size, rng, duplicates=max(1, size // 10))
            if dup["twins"]:
                dfit = osm.fit_gallery(cal, dup["gallery"], dup["starts"])
                n_people = len(dup["starts"])
                _, d_dist = nearest(dom.x[dup["strangers"]], dup["gallery"], dup["starts"])
                clean = osm.fit_gallery(cal, dup["gallery"][:len(dup["gallery"]) - PER_PERSON * dup["twins"]],
                                        dup["starts"][:n_people - dup["twins"]])
                dup_shifts.append([clean.shift, dfit.shift])
                for t in TARGETS:
                    thr = osm.threshold_for_gallery(cal, len(dup["gallery"]), n_people, t)[0] + dfit.shift
                    dup_fa[t][0] += int((d_dist <= thr).sum())
                    dup_fa[t][1] += len(d_dist)
        row: dict[str, Any] = {"people": size, "galleries": repeats, "all_but_strangers": size == n_max,
                               "distinct_stranger_images": len(distinct), "stranger_people": len(stranger_people),
                               "shift_mean": float(np.mean(shifts)), "shift_sd": float(np.std(shifts))}
        for (m, t), c in cell.items():
            fpir = c["fa"] / max(c["n"], 1)
            ci_people = person_ci(c["fa_by_person"], c["n_by_person"])
            row[f"{m}@{t:g}"] = {
                "fpir": fpir, "ratio": fpir / t, "ci95": wilson(c["fa"], c["n"]), "ci95_people": ci_people,
                "ratio_ci95_people": [ci_people[0] / t, ci_people[1] / t], "false_accepts": c["fa"],
                "stranger_probes": c["n"], "dir": c["hits"] / c["genuine"] if c["genuine"] else None,
                "threshold_mean": float(np.mean(c["thr"])), "measurable": len(distinct) >= 3 / t}
        if dup_shifts:
            d = np.asarray(dup_shifts)
            row["duplicates"] = {"per_gallery": max(1, size // 10), "shift_clean": float(d[:, 0].mean()),
                                 "shift_with_duplicates": float(d[:, 1].mean()),
                                 "max_abs_change": float(np.abs(d[:, 1] - d[:, 0]).max()),
                                 **{f"adapted_ratio@{t:g}": (v[0] / max(v[1], 1)) / t for t, v in dup_fa.items()}}
        out.append(row)
    return out


def p3_check(lfw_dom: L.Domain, open_set: dict[str, Any], lfw_root: Path, seed: int = 0) -> dict[str, Any]:
    """LFW P3 galleries (the seeded choice of ``evaluate_open_set``) with the bundle's calibration:
    DIR and FPIR at the shipped threshold and the gallery-adapted one."""
    from facever.training import lfw

    counts = lfw.read_people(lfw.protocol_file(lfw_root, "peopleDevTest.txt"))
    rows = {p: np.flatnonzero((lfw_dom.person == p) & (lfw_dom.part == "devtest")) for p in counts}
    rng = np.random.default_rng(seed)
    order = {p: rows[p][rng.permutation(len(rows[p]))] for p in counts if counts[p] >= 2 and len(rows[p]) >= 2}
    unknown = np.concatenate([rows[p] for p in counts if counts[p] == 1])
    out = {}
    for k in (1, 3):
        enrolled = [perm[:min(k, len(perm) - 1)] for perm in order.values()]
        probes = np.concatenate([perm[len(e):] for perm, e in zip(order.values(), enrolled)])
        owner = np.concatenate([[j] * (len(perm) - len(e)) for j, (perm, e) in enumerate(zip(order.values(), enrolled))])
        starts = np.concatenate([[0], np.cumsum([len(e) for e in enrolled])[:-1]])
        gallery = lfw_dom.x[np.concatenate(enrolled)]
        who, g_dist = nearest(lfw_dom.x[probes], gallery, starts)
        right = who == owner
        _, u_dist = nearest(lfw_dom.x[unknown], gallery, starts)
        base, _ = osm.threshold_for_gallery(open_set, len(gallery), len(starts), 0.01)
        fit = osm.fit_gallery(open_set, gallery, starts)
        entry: dict[str, Any] = {"people": len(starts), "faces": len(gallery), "known_probes": len(probes),
                                 "unknown_probes": len(unknown), "fit": fit.to_dict()}
        for name, thr in (("shipped", base), ("gallery-adapted", base + fit.shift)):
            entry[name] = {"threshold": float(thr), "dir": float(np.mean(right & (g_dist <= thr))),
                           "fpir": float(np.mean(u_dist <= thr)), "false_accepts": int((u_dist <= thr).sum())}
        entry["dir_ratio"] = entry["gallery-adapted"]["dir"] / entry["shipped"]["dir"]
        out[str(k)] = entry
    return out


def spread(domains: dict[str, Any], method: str) -> dict[str, Any]:
    """Measured FPIR ÷ target over every measurable (domain, gallery size, target) of ``method``."""
    cells = [(d, r["people"], t, r[f"{method}@{t:g}"]) for d, res in domains.items()
             for r in res["rows"] for t in TARGETS if r[f"{method}@{t:g}"]["measurable"]]
    ratios = [c[3]["ratio"] for c in cells]
    worst = max(cells, key=lambda c: c[3]["ratio"])
    over = sorted({f"{d} ({t:.1%})" for d, _, t, c in cells if c["ratio"] > 1.5})
    every = [(d, t, r[f"{method}@{t:g}"]["ratio_ci95_people"]) for d, res in domains.items()
             for r in res["rows"] for t in TARGETS]       # the people interval judges every cell, measurable or not
    certain = sorted({f"{d} ({t:.1%})" for d, t, ci in every if ci[0] > 1.5})
    undecided = sorted({f"{d} ({t:.1%})" for d, t, ci in every if ci[0] <= 1.5 < ci[1]})
    unmeasurable = sorted({f"{d} ({t:.1%}, {r['distinct_stranger_images']} stranger photos)"
                           for d, res in domains.items() for r in res["rows"] for t in TARGETS
                           if not r[f"{method}@{t:g}"]["measurable"] and r[f"{method}@{t:g}"]["ratio"] > 1.5})
    return {"ratio_min": round(min(ratios), 3), "ratio_max": round(max(ratios), 3),
            "worst": f"{worst[0]}, {worst[1]} people, target {worst[2]:.1%}",
            "domains": sorted(domains), "over_1.5x": over, "cells": len(cells),
            "over_1.5x_whole_interval": certain, "interval_spans_1.5x": undecided,
            "over_1.5x_not_measurable": unmeasurable,
            "fpir_targets": list(TARGETS), "measured_by": "benchmarks/open_set_lodo.py (leave one domain out)"}


def write_transfer(model_dir: Path, summary: dict[str, Any]) -> str:
    """Record the spread in ``metadata.open_set.transfer`` (the JSON edited in place, nothing else
    touched); returns the model version, checked unchanged."""
    from facever.bundle import load_bundle

    before = load_bundle(model_dir).version
    path = model_dir / "metadata.json"
    meta = json.loads(path.read_text())
    meta["open_set"]["transfer"] = {m: {k: summary[m][k] for k in (
        "ratio_min", "ratio_max", "worst", "over_1.5x", "over_1.5x_not_measurable", "over_1.5x_whole_interval",
        "interval_spans_1.5x", "domains", "fpir_targets",
        "measured_by")} for m in ("shipped", "gallery-adapted")}
    path.write_text(json.dumps(meta, indent=2, sort_keys=True))
    after = load_bundle(model_dir).version
    if after != before:
        raise RuntimeError(f"model version changed {before} → {after}")
    return after


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, default=HERE.parent.parent / "shared" / "data")
    ap.add_argument("--model", type=Path, default=None, help="model bundle (default: the shipped one)")
    ap.add_argument("--cache", type=Path, default=HERE.parent / "runs" / "open_set_lodo" / "emb")
    ap.add_argument("--repeats", type=int, default=100, help="galleries per size below 100 people")
    ap.add_argument("--repeats-large", type=int, default=10, help="galleries per size from 100 people")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=HERE / "results" / "open_set_lodo.json")
    ap.add_argument("--md", type=Path, default=HERE / "results" / "open_set_lodo.md")
    ap.add_argument("--write-metadata", action="store_true",
                    help="record the measured spread in the bundle's metadata.open_set.transfer")
    args = ap.parse_args(argv)
    from facever.api import FaceVerifier
    from facever.config import model_path

    t0 = time.time()
    model_dir = model_path(args.model)
    verifier = FaceVerifier(model=model_dir)
    metadata = json.loads((model_dir / "metadata.json").read_text())
    doms = L.load_domains(L.DOMAINS, args.data, metadata, verifier, args.cache)
    rng = np.random.default_rng(args.seed)
    domains: dict[str, Any] = {}
    for held in L.DOMAINS:
        cal, parts = lodo_calibration(doms, held, args.seed)
        ev = doms[held].select(evaluation_rows(doms[held]))
        rows = measure_domain(ev, cal, args, rng)
        domains[held] = {"people": ev.n_people, "faces": len(ev.x), "images": doms[held].n_images,
                         "trained_people": int(len(set(ev.person[ev.trained]))),
                         "calibration": {"people": cal["n_people"], "faces": cal["n_faces"], "parts": parts},
                         "rows": rows}
        print(f"{held}: {ev.n_people} people, calibration {cal['n_people']} people; " + "; ".join(
            f"{r['people']}: {r['shipped@0.01']['ratio']:.2f}x → {r['gallery-adapted@0.01']['ratio']:.2f}x"
            for r in rows), flush=True)
    summary = {m: spread(domains, m) for m in METHODS}
    p3 = p3_check(doms["lfw"], verifier.bundle.metadata.open_set, args.data / "lfw", args.seed)
    result = {"model_version": verifier.model_version, "targets": list(TARGETS), "per_person": PER_PERSON,
              "repeats": args.repeats, "repeats_large": args.repeats_large, "seed": args.seed,
              "adaptation": {"min_people": osm.ADAPT_MIN_PEOPLE, "quantiles": list(osm.ADAPT_QUANTILES),
                             "max_people": osm.ADAPT_MAX_PEOPLE},
              "cache": rel(args.cache), "domains": domains, "summary": summary, "p3": p3,
              "seconds": round(time.time() - t0, 1)}
    if args.write_metadata:
        result["metadata_written"] = {"model": rel(model_dir), "version": write_transfer(model_dir, summary)}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1))
    args.md.write_text("\n".join(lodo_markdown(result)) + "\n")
    for m in METHODS:
        s = summary[m]
        print(f"{m}: FPIR / target {s['ratio_min']:.2f}–{s['ratio_max']:.2f}x (worst {s['worst']}); "
              f"over 1.5x: {', '.join(s['over_1.5x']) or 'none'}")
    for k, e in p3.items():
        print(f"P3 {k} enrolled: DIR {e['shipped']['dir']:.4f} → {e['gallery-adapted']['dir']:.4f} "
              f"({e['dir_ratio']:.1%}); FPIR {e['shipped']['fpir']:.2%} → {e['gallery-adapted']['fpir']:.2%}")
    print(f"wrote {rel(args.out)} and {rel(args.md)}")
    return result


if __name__ == "__main__":
    main()
