"""Float against int8 (``models/default`` against ``models/fast``), side by side, with the noise.

Every image is detected and aligned once (facever's pipeline; crops cached under ``--cache``) and the
same crops are encoded by both models, so every difference is the encoder's. Figures (each model with
its own τ and open-set data; none of these people was trained on or calibrated with):

* LFW P1 (View 1, 1,000 pairs): 10-fold accuracy, ROC AUC (:func:`facever.training.evaluation.evaluate_view1`);
* LFW P2 (DevTest all pairs): TAR at FAR 1e-3 and 1e-4 (``evaluate_devtest_all_pairs``);
* held-out pins/bollywood test people (``bench_heldout.heldout_images``, the user pipeline of
  ``bench_embed.embed_facever_images``): TAR at FAR 1e-3 (``evaluate_identity_pairs``);
* τ's FAR and FRR on the P2 and the held-out pairs;
* open-set FPIR at the 1 % target (the bundle's gallery-size-aware threshold) at each gallery size,
  on the LFW DevTest + held-out test people (``open_set.identification``, 3 faces enrolled,
  ``--splits`` random stranger/pool splits, identical for both models).

Noise. Paired bootstrap of the float − int8 difference: over the 1,000 pairs for P1, over people
for the all-pairs figures (a person drawn k times weighs k on its genuine pairs and k·l on its
impostor pairs with a person drawn l times), over splits for the open-set FPIR. A difference is
*within noise* when its 95 % interval contains 0 or |difference| is below the half-width of the
float figure's own 95 % bootstrap interval. The int8 model would replace the default only if every
figure is within noise.

Usage: python benchmarks/int8_parity.py [--data ../shared/data] [--boot 400] [--splits 10]
       → benchmarks/results/int8.json + int8.md
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Callable

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from bench_common import environment, load_average, log  # noqa: E402

ROOT = HERE.parent
FARS_P2 = (1e-3, 1e-4)
SIZES_NOTE = "gallery sizes of benchmarks/open_set.py (10, 20, 50, ... and the whole pool)"


# ----------------------------------------------------------------------------------------------
# Crops once, embeddings twice
# ----------------------------------------------------------------------------------------------
def user_pipeline_crops(verifier, root: Path, paths: list[str], cache: Path | None) -> tuple[np.ndarray, np.ndarray]:
    """Crops of ``bench_embed.embed_facever_images`` (largest face, padded retry), ``found`` mask; cached."""
    import hashlib

    from bench_embed import embed_facever_images
    from facever.training.quantize import CropRecorder

    key = hashlib.sha256("\0".join(["user", str(root.resolve()), *paths]).encode()).hexdigest()[:16]
    path = cache / f"user-crops-{key}.npz" if cache else None
    if path is not None and path.is_file():
        with np.load(path, allow_pickle=False) as z:
            return z["crops"], z["found"]
    rec = CropRecorder(verifier.embedder)
    res = embed_facever_images(rec, root, paths, None, 32, "largest")
    found = np.isfinite(res["embeddings"]).all(axis=1)
    crops = rec.stacked()
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        np.savez(path, crops=crops, found=found)
    return crops, found


def embed_rows(verifier, crops: np.ndarray, found: np.ndarray) -> np.ndarray:
    """``(len(found), D)`` embeddings: the crops' rows where ``found``, NaN elsewhere."""
    out = np.full((len(found), int(verifier.bundle.metadata.embedding_dim)), np.nan, np.float32)
    out[found] = verifier.embedder.embed_crops(crops)
    return out


# ----------------------------------------------------------------------------------------------
# Weighted (bootstrap) rates on all pairs
# ----------------------------------------------------------------------------------------------
class AllPairs:
    """Every pair of a labelled set for several models: distances (failed pairs 2.0), person codes."""

    def __init__(self, embs: dict[str, np.ndarray], labels: np.ndarray) -> None:
        _, codes = np.unique(labels, return_inverse=True)
        self.n_people = int(codes.max()) + 1
        i, j = np.triu_indices(len(codes), k=1)
        same = codes[i] == codes[j]
        self.gi, self.gj = codes[i[same]], codes[j[same]]
        self.ii, self.ij = codes[i[~same]], codes[j[~same]]
        self.gen: dict[str, np.ndarray] = {}
        self.imp_sorted: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
        for name, e in embs.items():
            ok = np.isfinite(e).all(axis=1)
            z = np.where(ok[:, None], e, 0.0).astype(np.float32)
            d = np.empty(len(i), np.float32)
            for s in range(0, len(i), 4_000_000):
                a, b = i[s:s + 4_000_000], j[s:s + 4_000_000]
                d[s:s + len(a)] = np.sqrt(np.clip(2 - 2 * np.einsum("ij,ij->i", z[a], z[b]), 0, 4))
                d[s:s + len(a)][~(ok[a] & ok[b])] = 2.0
            self.gen[name] = d[same]
            imp = d[~same]
            order = np.argsort(imp, kind="stable")
            self.imp_sorted[name] = (imp[order], self.ii[order], self.ij[order])
        del i, j

    def figures(self, name: str, tau: float, w: np.ndarray | None = None) -> dict[str, float]:
        """TAR at FAR 1e-3 / 1e-4 (largest τ with weighted FAR ≤ target), FAR and FRR at ``tau``; people weights ``w``."""
        gen = self.gen[name]
        imp, pa, pb = self.imp_sorted[name]
        if w is None:
            wg, wi = np.ones(len(gen)), np.ones(len(imp))
        else:
            wg, wi = w[self.gi].astype(np.float64), (w[pa] * w[pb]).astype(np.float64)
        cum = np.cumsum(wi)
        total_i, total_g = cum[-1], wg.sum()
        out = {}
        for far in FARS_P2:
            k = int(np.searchsorted(cum, far * total_i, side="right"))  # impostors [0, k) fit in the budget
            # the largest τ: just below the k-th impostor distance (ties with it excluded)
            thr = imp[k] if k < len(imp) else np.inf
            limit = np.nextafter(np.float32(thr), np.float32(-np.inf)) if np.isfinite(thr) else thr
            if k > 0 and imp[k - 1] > limit:  # a tie block straddles the budget
                limit = imp[k - 1] - 1e-9
            out[f"tar_at_far_{far:g}"] = float(wg[gen <= limit].sum() / total_g)
        out["far_at_tau"] = float(wi[imp <= tau].sum() / total_i)
        out["frr_at_tau"] = float(wg[gen > tau].sum() / total_g)
        return out


def bootstrap_all_pairs(pairs: AllPairs, taus: dict[str, float], n_boot: int, seed: int) -> dict[str, list[dict[str, float]]]:
    """Per replicate, the figures of each model on the same resample of people."""
    rng = np.random.default_rng(seed)
    reps: dict[str, list[dict[str, float]]] = {m: [] for m in taus}
    for _ in range(n_boot):
        w = np.bincount(rng.integers(0, pairs.n_people, pairs.n_people), minlength=pairs.n_people).astype(np.float64)
        for m, tau in taus.items():
            reps[m].append(pairs.figures(m, tau, w))
    return reps


def p1_bootstrap(d: dict[str, np.ndarray], same: np.ndarray, n_boot: int, seed: int) -> dict[str, list[dict[str, float]]]:
    """P1 10-fold accuracy and AUC on resamples of the 1,000 pairs (the same resample for both models)."""
    from sklearn.metrics import roc_auc_score

    from facever.training.evaluation import MAX_DISTANCE, kfold_accuracy

    rng = np.random.default_rng(seed)
    reps: dict[str, list[dict[str, float]]] = {m: [] for m in d}
    for r in range(n_boot):
        idx = rng.integers(0, len(same), len(same))
        for m, dist in d.items():
            x = np.where(np.isfinite(dist), dist, MAX_DISTANCE)[idx]
            reps[m].append({"accuracy": kfold_accuracy(x, same[idx], folds=10, seed=r)["mean"],
                            "roc_auc": float(roc_auc_score(same[idx], -x))})
    return reps


def noise_entry(point: dict[str, float], reps: dict[str, list[dict[str, float]]], key: str,
                ref: str = "float", other: str = "int8") -> dict[str, Any]:
    """Point figures, the bootstrap 95 % interval of ref − other, the ref figure's own half-width, the verdict."""
    a = np.array([r[key] for r in reps[ref]])
    b = np.array([r[key] for r in reps[other]])
    diff = a - b
    lo, hi = np.percentile(diff, [2.5, 97.5])
    f_lo, f_hi = np.percentile(a, [2.5, 97.5])
    half = (f_hi - f_lo) / 2
    d0 = point[ref] - point[other]
    within = bool(lo <= 0 <= hi or abs(d0) < half)
    return {ref: point[ref], other: point[other], "diff": d0, "diff_ci95": [float(lo), float(hi)],
            "float_halfwidth95": float(half), "within_noise": within, "n_boot": len(a)}


# ----------------------------------------------------------------------------------------------
# Open set
# ----------------------------------------------------------------------------------------------
def open_set_fpir(embs: dict[str, np.ndarray], labels: np.ndarray, open_sets: dict[str, dict], splits: int,
                  fpir: float, seed: int) -> dict[str, Any]:
    """FPIR of each bundle's gallery-size-aware threshold per gallery size and split (``open_set.identification``)."""
    import open_set as osb

    ok = np.all([np.isfinite(e).all(axis=1) for e in embs.values()], axis=0)
    keep = np.flatnonzero(ok)[osb.cap_per_person(labels[ok], 10, seed)]
    y = labels[keep]
    args = SimpleNamespace(min_images=3, per_person=3, repeats=5, fpir=fpir)
    per: dict[str, dict[str, list[float]]] = {m: {} for m in embs}
    counts: dict[str, dict[str, dict[str, int]]] = {m: {} for m in embs}
    people: dict[str, float] = {}
    for k in range(splits):
        for m, e in embs.items():
            rows = osb.identification(e[keep], y, open_sets[m], args, seed + k)
            for row in rows:
                key = str(row["key"])
                a = row["adaptive"]
                per[m].setdefault(key, []).append(a["false_accepts"] / max(a["stranger_probes"], 1))
                c = counts[m].setdefault(key, {"false_accepts": 0, "stranger_probes": 0, "hits": 0, "genuine_probes": 0})
                for f in c:
                    c[f] += int(a[f])
                people[key] = row["people"]
    return {"per_split": per, "counts": counts, "people": people, "n_faces": int(len(y)),
            "n_people": int(len(np.unique(y)))}


def open_set_noise(res: dict[str, Any], n_boot: int, seed: int) -> dict[str, Any]:
    """Per gallery size: pooled FPIR of each model, bootstrap over splits of the mean difference."""
    rng = np.random.default_rng(seed)
    out = {}
    for key, f_vals in res["per_split"]["float"].items():
        q_vals = res["per_split"]["int8"].get(key)
        if not q_vals or len(q_vals) != len(f_vals):
            continue
        f, q = np.array(f_vals), np.array(q_vals)
        idx = rng.integers(0, len(f), (n_boot, len(f)))
        reps = {"float": [{"fpir": float(v)} for v in f[idx].mean(1)], "int8": [{"fpir": float(v)} for v in q[idx].mean(1)]}
        cf, cq = res["counts"]["float"][key], res["counts"]["int8"][key]
        point = {"float": cf["false_accepts"] / max(cf["stranger_probes"], 1),
                 "int8": cq["false_accepts"] / max(cq["stranger_probes"], 1)}
        entry = noise_entry(point, reps, "fpir")
        entry.update(people=res["people"][key], stranger_probes=cf["stranger_probes"],
                     dir={"float": cf["hits"] / max(cf["genuine_probes"], 1), "int8": cq["hits"] / max(cq["genuine_probes"], 1)})
        out[key] = entry
    return out


# ----------------------------------------------------------------------------------------------
def render(result: dict[str, Any]) -> str:
    """The Markdown report of :func:`main`'s JSON."""
    m = result["meta"]
    lines = [f"### Float against int8: `{m['float']['version']}` (models/default) vs `{m['int8']['version']}` (models/fast)", "",
             f"Run {m['started']}; {m['boot']} bootstrap replicates; load average {m['load_average_start']} → "
             f"{m['load_average_end']}. Same detections and crops for both; each model with its own τ and open-set data.",
             "", "| figure | float | int8 | float − int8 | 95 % interval | float's ± | within noise |",
             "|---|---|---|---|---|---|---|"]
    for name, e in result["figures"].items():
        lines.append(f"| {name} | {e['float']:.4f} | {e['int8']:.4f} | {e['diff']:+.4f} | "
                     f"[{e['diff_ci95'][0]:+.4f}, {e['diff_ci95'][1]:+.4f}] | {e['float_halfwidth95']:.4f} | "
                     f"{'yes' if e['within_noise'] else '**no**'} |")
    lines += ["", f"τ: float {m['float']['tau']:.4f}, int8 {m['int8']['tau']:.4f}. "
              f"Open set: {result['open_set_data']}.", "",
              f"**Decision: {result['decision']}**", "",
              "Noise: paired bootstrap (P1 over pairs; all-pairs figures over people; open-set FPIR over the "
              "random stranger/pool splits). Within noise = the interval of the difference contains 0, or "
              "|difference| < the half-width of the float figure's own interval.", ""]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    ap.add_argument("--float", dest="float_model", default="default")
    ap.add_argument("--int8", dest="int8_model", default="fast")
    ap.add_argument("--cache", type=Path, default=ROOT / "runs" / "int8" / "crops")
    ap.add_argument("--boot", type=int, default=400)
    ap.add_argument("--splits", type=int, default=10)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=HERE / "results")
    args = ap.parse_args()

    from bench_heldout import heldout_images
    from facever.api import FaceVerifier
    from facever.training import evaluation as ev
    from facever.training import lfw
    from facever.training.quantize import cached_crops

    t0 = time.time()
    models = {"float": FaceVerifier(model=args.float_model), "int8": FaceVerifier(model=args.int8_model)}
    taus = {m: float(v.threshold) for m, v in models.items()}
    result: dict[str, Any] = {"meta": {"started": time.strftime("%Y-%m-%d %H:%M:%S"), "load_average_start": load_average(),
                                       "environment": environment(), "boot": args.boot, "splits": args.splits,
                                       **{m: {"version": v.model_version, "tau": taus[m]} for m, v in models.items()}},
                              "figures": {}}
    # LFW: the images of P1 and P2, central face (the evaluation rule)
    lfw_root = args.data / "lfw"
    paths = sorted(set(ev.protocol_paths(lfw_root, "p1")) | set(ev.protocol_paths(lfw_root, "p2")))
    crops, found = cached_crops(args.cache, models["float"], lfw.image_root(lfw_root), paths)
    log(f"LFW: {len(paths)} images, {int(found.sum())} faces ({time.time() - t0:.0f}s)")
    emb = {m: embed_rows(v, crops, found) for m, v in models.items()}
    log(f"LFW embedded by both ({time.time() - t0:.0f}s)")
    index = {p: i for i, p in enumerate(paths)}
    lookup: Callable[[str], Callable] = lambda m: (lambda ps: emb[m][[index[p] for p in ps]])
    p1 = {m: ev.evaluate_view1(lfw_root, lookup(m)) for m in models}
    p2 = {m: ev.evaluate_devtest_all_pairs(lfw_root, lookup(m), fars=FARS_P2) for m in models}
    pairs = lfw.read_pairs(lfw.protocol_file(lfw_root, "pairsDevTest.txt"))
    same = np.array([p.same for p in pairs], bool)
    d1 = {m: np.linalg.norm(lookup(m)([p.path1 for p in pairs]) - lookup(m)([p.path2 for p in pairs]), axis=1) for m in models}
    reps = p1_bootstrap(d1, same, args.boot, args.seed)
    result["figures"]["P1 accuracy"] = noise_entry({m: p1[m]["accuracy"] for m in models}, reps, "accuracy")
    result["figures"]["P1 ROC AUC"] = noise_entry({m: p1[m]["roc_auc"] for m in models}, reps, "roc_auc")
    log(f"P1 done ({time.time() - t0:.0f}s)")

    from facever.training.protocols import _devtest_images  # P2's images and labels, as evaluate_devtest_all_pairs reads them

    _, p2_paths, p2_labels = _devtest_images(lfw_root)
    p2_emb = {m: lookup(m)(p2_paths) for m in models}
    ap2 = AllPairs(p2_emb, p2_labels)
    reps = bootstrap_all_pairs(ap2, taus, args.boot, args.seed)
    point = {m: ap2.figures(m, taus[m]) for m in models}
    for far in FARS_P2:
        key = f"tar_at_far_{far:g}"
        lib = {m: p2[m]["tar_at_far"][f"{far:g}"]["tar"] for m in models}
        result["figures"][f"P2 TAR at FAR {far:g}"] = noise_entry(lib, reps, key)
    result["figures"]["P2 pairs: FAR at τ"] = noise_entry({m: point[m]["far_at_tau"] for m in models}, reps, "far_at_tau")
    result["figures"]["P2 pairs: FRR at τ"] = noise_entry({m: point[m]["frr_at_tau"] for m in models}, reps, "frr_at_tau")
    del ap2
    log(f"P2 done ({time.time() - t0:.0f}s)")

    # held-out pins/bollywood test people, user pipeline (largest face)
    h_paths, h_labels, _ = heldout_images(args.data, None)
    h_crops, h_found = user_pipeline_crops(models["float"], args.data, h_paths, args.cache)
    h_emb = {m: embed_rows(v, h_crops, h_found) for m, v in models.items()}
    held = {m: ev.evaluate_identity_pairs(h_emb[m], h_labels, fars=(1e-3,)) for m in models}
    aph = AllPairs(h_emb, h_labels)
    reps = bootstrap_all_pairs(aph, taus, args.boot, args.seed + 1)
    point = {m: aph.figures(m, taus[m]) for m in models}
    result["figures"]["held-out TAR at FAR 0.001"] = noise_entry(
        {m: held[m]["tar_at_far"]["0.001"]["tar"] for m in models}, reps, "tar_at_far_0.001")
    result["figures"]["held-out pairs: FAR at τ"] = noise_entry({m: point[m]["far_at_tau"] for m in models}, reps, "far_at_tau")
    result["figures"]["held-out pairs: FRR at τ"] = noise_entry({m: point[m]["frr_at_tau"] for m in models}, reps, "frr_at_tau")
    del aph
    log(f"held-out done: {len(h_paths)} images, {int(h_found.sum())} faces ({time.time() - t0:.0f}s)")

    # open set: LFW DevTest + held-out test people, each bundle's own open-set data
    labels = np.concatenate([np.array([f"lfw/{p.split('/')[0]}" for p in p2_paths]), h_labels])
    os_emb = {m: np.concatenate([p2_emb[m], h_emb[m]]) for m in models}
    target = float(models["float"].bundle.metadata.open_set.get("default_fpir", 0.01))
    res = open_set_fpir(os_emb, labels, {m: v.bundle.metadata.open_set for m, v in models.items()}, args.splits,
                        target, args.seed)
    for key, entry in open_set_noise(res, args.boot, args.seed + 2).items():
        name = f"open-set FPIR (target {target:g}), gallery {'whole pool' if key == 'all' else key + ' people'}"
        result["figures"][name] = {**{k: entry[k] for k in entry if k not in ("people", "stranger_probes", "dir")}}
        result.setdefault("open_set", {})[key] = {"people": entry["people"], "stranger_probes": entry["stranger_probes"],
                                                  "dir": entry["dir"]}
    result["open_set_data"] = (f"{res['n_people']} test people (LFW DevTest + pins/bollywood test), {res['n_faces']} faces "
                               f"(≤ 10 each), 3 enrolled per person, {args.splits} splits × 5 galleries per size")
    log(f"open set done ({time.time() - t0:.0f}s)")

    all_within = all(e["within_noise"] for e in result["figures"].values())
    result["decision"] = ("every figure within noise: int8 may be the default" if all_within else
                          "not every figure within noise: int8 ships as the second bundle `fast`; the default stays float")
    result["p1"] = {m: {k: p1[m][k] for k in ("accuracy", "stderr", "roc_auc", "eer", "n_failed")} for m in models}
    result["p2"] = {m: {k: p2[m][k] for k in ("tar_at_far", "eer", "roc_auc", "n_failed_images")} for m in models}
    result["heldout"] = {m: {k: held[m][k] for k in ("n_people", "n_images", "failed_images", "roc_auc", "eer", "tar_at_far")}
                         for m in models}
    result["cosine_float_int8"] = {"lfw_mean": float(np.nanmean((emb["float"] * emb["int8"]).sum(1))),
                                   "lfw_min": float(np.nanmin((emb["float"] * emb["int8"]).sum(1)))}
    result["meta"]["load_average_end"] = load_average()
    result["meta"]["seconds"] = round(time.time() - t0, 1)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "int8.json").write_text(json.dumps(result, indent=1, default=float) + "\n")
    (args.out / "int8.md").write_text(render(result))
    log(f"wrote {args.out / 'int8.json'} and {args.out / 'int8.md'}: {result['decision']}")


if __name__ == "__main__":
    main()
