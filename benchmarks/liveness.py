"""Liveness (issue 21): presentation attacks built from real photos against live proxies, APCER/BPCER.

    nice -n 15 env FACEVER_THREADS=1 python benchmarks/liveness.py --write-bundle models/default

* **Attacks** (ISO/IEC 30107-3 "presentation attack instruments"), each a 3-frame capture answering a
  random challenge, rendered by ``liveness_render.py`` from a real photo and re-detected by facever's
  MTCNN: ``flat_print`` (tilted in 3D: yaw ±40°, pitch ±25°, roll ±15°, pinhole camera), ``bent_print``
  (the photo on a cylinder, convex or concave, half-width angle 15–60°), ``screen`` (a phone or monitor:
  sub-pixel stripes aliased into moiré, glare, raised black level, bezel), and ``replay`` (a recorded
  live turn answering the reversed challenge).
* **Live proxies**: three photos of one person (a near-frontal one, one with the nose to each side by at
  least the turn threshold), from LFW, pins and glint16, in the challenge's order. They are real 3D
  heads in different poses; they are not frames of one capture (expression, light, time and camera
  change between them, and their turns are whatever the photos hold).
* Identities are split in two halves by a hash of their name. The parallax threshold is calibrated on
  the first half's attacks as if the attacker had also fooled the turn check: the smallest value that
  accepts none of them (at 0.5 % the tail of strongly bent prints, which differs between halves, let
  1.5 % of the other half's through). APCER per attack type and BPCER are reported on the other half.
  The turn threshold (0.3) is a protocol choice: with 0.25 the parallax threshold this rule sets
  refuses 6–24 % of the live proxies depending on the half.

Takes about 13 minutes on two shared cores with nothing cached (11 CPU-minutes; 2 worker processes),
about a minute from the cache.

Writes ``benchmarks/results/liveness.json`` and ``liveness.md``; with ``--write-bundle DIR`` the
calibrated thresholds and the figures they give go into that bundle's ``metadata.json`` (``liveness``
key; the model version does not change). Detections are cached under ``runs/liveness`` (git-ignored).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(REPO))

from liveness_render import Camera, Pose, background, camera_effects, print_texture, render, screen_texture  # noqa: E402
from liveness_report import markdown  # noqa: E402

from facever.liveness import FrameObservation, LivenessThresholds, decide  # noqa: E402
from facever.liveness import geometry as geo  # noqa: E402

ATTACKS = ("flat_print", "bent_print", "screen")
#: Calibration target on the calibration half: at most this share of each attack type accepted. 0: the
#: threshold clears every calibration attack. (At 0.5 % the tail of strongly bent prints, which differs
#: between the halves, let 1.5 % of the evaluation half's bent prints through.)
CAL_APCER = 0.0
#: The statistic :func:`facever.liveness.decide` thresholds (a key of :func:`capture_statistics`).
STATISTIC = "range"
#: Turns of the live proxies on which the candidate statistics are compared (smaller than required).
SMALL_TURN = 0.2
#: Permissive thresholds for caching: every found face is measured and embedded.
CACHE_T = LivenessThresholds(min_iod_px=0.0, min_sharpness=0.0)


def log(msg: str) -> None:
    print(f"[liveness {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def half_of(key: str) -> str:
    """``"cal"`` or ``"test"``, from a hash of the identity (stable across runs and machines)."""
    return "cal" if hashlib.sha1(key.encode()).digest()[0] % 2 == 0 else "test"


# ---------------------------------------------------------------------------------------------------
# Photos of the live proxies (and the sources of the attacks)
# ---------------------------------------------------------------------------------------------------


def list_photos(data: Path, rng: np.random.Generator, limit_people: int | None) -> list[tuple[str, str]]:
    """``(identity, path relative to data)`` for LFW people with ≥ 8 photos (≤ 20 each), pins (≤ 25
    each) and glint16 (≤ 50 each)."""
    sets = (("lfw/lfw-deepfunneled", 8, 20), ("pins", 8, 25), ("glint16", 8, 50))
    out = []
    for folder, least, most in sets:
        root = data / folder
        people = sorted(p for p in root.iterdir() if p.is_dir())
        if limit_people:
            people = people[:limit_people]
        for person in people:
            files = sorted(f.name for f in person.iterdir() if f.suffix.lower() in (".jpg", ".png"))
            if len(files) < least:
                continue
            pick = sorted(rng.choice(len(files), min(most, len(files)), replace=False))
            ident = f"{folder.split('/')[0]}/{person.name}"
            out += [(ident, f"{folder}/{person.name}/{files[i]}") for i in pick]
    return out


_VERIFIER = None


def _init_worker(model: str | None) -> None:
    global _VERIFIER
    from facever.api import FaceVerifier

    _VERIFIER = FaceVerifier(model=model)


def _observe_photo_chunk(data: Path, rels: list[str]) -> dict[str, np.ndarray]:
    """Landmarks, IOD, sharpness and embedding of each photo's central face (NaN / 0 when none)."""
    from facever.detection import central_face
    from facever.embedding import align_faces, detect_with_retry
    from facever.imaging import load_image

    emb = _VERIFIER.embedder
    n = len(rels)
    lms, iod, sharp = np.full((n, 5, 2), np.nan), np.zeros(n), np.zeros(n)
    embs = np.full((n, int(_VERIFIER.bundle.metadata.embedding_dim)), np.nan, np.float32)
    crops, idx = [], []
    for i, rel in enumerate(rels):
        rgb = load_image(data / rel)
        faces = detect_with_retry(emb.detector, rgb)
        if faces:
            a = align_faces(rgb, [central_face(faces, rgb.shape)], emb.input_size, emb.template_name)[0]
            lms[i], iod[i], sharp[i] = a.face.landmarks, geo.inter_ocular(a.face.landmarks), a.quality.sharpness
            crops.append(a.crop)
            idx.append(i)
    if crops:
        embs[idx] = emb.embed_crops(np.stack(crops))
    return {"landmarks": lms, "iod": iod, "sharpness": sharp, "embedding": embs}


def _parallel(pool, fn, jobs: list[tuple], what: str) -> list:
    """Run ``fn(*job)`` for every job on the pool (or here when there is none), in order, logging progress."""
    if pool is None:
        return [fn(*job) for job in jobs]
    futures = [pool.submit(fn, *job) for job in jobs]
    out = []
    for k, fut in enumerate(futures):
        out.append(fut.result())
        if k % max(1, len(jobs) // 5) == 0:
            log(f"{what}: {k + 1}/{len(jobs)} chunks")
    return out


def _concat(parts: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}


def observe_photos(pool, verifier, data: Path, photos: list[tuple[str, str]], cache: Path) -> dict[str, np.ndarray]:
    """:func:`_observe_photo_chunk` over every photo, on the worker pool; cached."""
    key = hashlib.sha1(json.dumps([verifier.model_version, photos]).encode()).hexdigest()[:12]
    path = cache / f"photos_{key}.npz"
    if path.is_file():
        return dict(np.load(path))
    rels = [rel for _, rel in photos]
    chunks = [(data, rels[k:k + 100]) for k in range(0, len(rels), 100)]
    out = _concat(_parallel(pool, _observe_photo_chunk, chunks, "photos"))
    np.savez(path, **out)
    return out


def _obs(i: int, lm: np.ndarray, iod: float, sharp: float, emb: np.ndarray) -> FrameObservation:
    if not np.all(np.isfinite(lm)):
        return FrameObservation(index=i)
    return FrameObservation(index=i, landmarks=lm, iod_px=float(iod), sharpness=float(sharp),
                            embedding=emb if np.all(np.isfinite(emb)) else None)


def live_sequences(photos, obs, t: LivenessThresholds, rng: np.random.Generator, per_person: int = 8) -> list[dict]:
    """Live proxy captures: per person up to ``per_person`` triples (near-frontal photo, then one photo
    per challenge step whose yaw proxy differs from it by ≥ ``turn_yaw`` in that step's direction)."""
    by_person: dict[str, list[int]] = {}
    for i, (ident, _) in enumerate(photos):
        if not _obs(0, obs["landmarks"][i], obs["iod"][i], obs["sharpness"][i], obs["embedding"][i]).problem(t):
            by_person.setdefault(ident, []).append(i)  # photos that meet the capture quality bar
    seqs = []
    for ident, idx in sorted(by_person.items()):
        yaw = np.array([geo.yaw_proxy(obs["landmarks"][i]) for i in idx])
        frontal = [k for k in np.argsort(np.abs(yaw))[:max(3, len(idx) // 4)] if abs(yaw[k]) <= t.max_start_yaw]
        seen = set()
        for _ in range(4 * per_person):
            if len([s for s in seqs if s["person"] == ident]) >= per_person:
                break
            f = int(rng.choice(frontal))
            plus = [k for k in range(len(idx)) if yaw[k] - yaw[f] >= t.turn_yaw]
            minus = [k for k in range(len(idx)) if yaw[k] - yaw[f] <= -t.turn_yaw]
            if not plus or not minus:
                continue
            p, m = int(rng.choice(plus)), int(rng.choice(minus))
            if (f, p, m) in seen:
                continue
            seen.add((f, p, m))
            steps = ["left", "right"] if rng.random() < 0.5 else ["right", "left"]
            # unmirrored: the subject's "left" moves the nose to the image right (yaw up)
            frames = [idx[f]] + [idx[p] if s == "left" else idx[m] for s in steps]
            seqs.append({"person": ident, "frames": frames, "steps": steps})
    return seqs


def sequence_obs(frames: list[int], obs) -> list[FrameObservation]:
    return [_obs(k, obs["landmarks"][i], obs["iod"][i], obs["sharpness"][i], obs["embedding"][i])
            for k, i in enumerate(frames)]


# ---------------------------------------------------------------------------------------------------
# Attacks
# ---------------------------------------------------------------------------------------------------


def attack_frames(kind: str, photo: np.ndarray, steps: list[str], rng: np.random.Generator) -> tuple[list, dict]:
    """Three camera frames of one attack answering ``steps``, and how they were made."""
    cam = Camera(size=360, fov=float(rng.uniform(50, 75)), fill=float(rng.uniform(0.55, 0.85)))
    bg = background(rng, cam.size)
    bend = float(rng.uniform(15, 60) * rng.choice([-1, 1])) if kind == "bent_print" else 0.0
    tex = screen_texture(photo, rng) if kind == "screen" else print_texture(photo)
    poses = [Pose(float(rng.uniform(-8, 8)), float(rng.uniform(-10, 10)), float(rng.uniform(-8, 8)))]
    for s in steps:
        sign = 1 if s == "left" else -1  # nose towards the image right for the subject's left
        # turn the print the way a head would turn: its image-right side away from the camera
        poses.append(Pose(yaw=-sign * float(rng.uniform(15, 40)), pitch=float(rng.uniform(-25, 25)),
                          roll=float(rng.uniform(-15, 15)), dx=float(rng.uniform(-0.08, 0.08)),
                          dy=float(rng.uniform(-0.08, 0.08))))
    frames = [camera_effects(render(tex, p, cam, bg, bend), rng) for p in poses]
    return frames, {"fov": cam.fov, "fill": cam.fill, "bend": bend, "poses": [p.__dict__ for p in poses]}


def _observe_attack_chunk(data: Path, kind: str, seed: int, items: list[tuple[int, str]]) -> dict:
    """Render and observe (library path: :func:`facever.liveness.observe_frames`) one attack per
    ``(number, photo)``; the number seeds the attack's randomness."""
    from facever.imaging import load_image
    from facever.liveness import observe_frames

    n, dim = len(items), int(_VERIFIER.bundle.metadata.embedding_dim)
    lms, iod, sharp = np.full((n, 3, 5, 2), np.nan), np.zeros((n, 3)), np.zeros((n, 3))
    embs = np.full((n, 3, dim), np.nan, np.float32)
    meta = []
    for j, (number, rel) in enumerate(items):
        rng = np.random.default_rng([seed, ATTACKS.index(kind), number])
        steps = ["left", "right"] if rng.random() < 0.5 else ["right", "left"]
        frames, how = attack_frames(kind, load_image(data / rel), steps, rng)
        for k, o in enumerate(observe_frames(frames, _VERIFIER, CACHE_T)):
            if o.landmarks is not None:
                lms[j, k], iod[j, k], sharp[j, k] = o.landmarks, o.iod_px, o.sharpness
            if o.embedding is not None:
                embs[j, k] = o.embedding
        meta.append({"photo": rel, "steps": steps, **how})
    return {"landmarks": lms, "iod": iod, "sharpness": sharp, "embedding": embs, "meta": meta}


def observe_attacks(pool, verifier, data: Path, photos, sources: list[int], kind: str, seed: int, cache: Path) -> dict:
    """One rendered, observed attack of ``kind`` per source photo, on the worker pool; cached."""
    key = hashlib.sha1(json.dumps([verifier.model_version, kind, seed, [photos[i][1] for i in sources]]).encode()).hexdigest()[:12]
    path = cache / f"attacks_{kind}_{key}.npz"
    if path.is_file():
        d = np.load(path, allow_pickle=False)
        return {k: d[k] for k in d.files if k != "meta_json"} | {"meta": json.loads(str(d["meta_json"]))}
    items = [(j, photos[i][1]) for j, i in enumerate(sources)]
    parts = _parallel(pool, _observe_attack_chunk, [(data, kind, seed, items[k:k + 25]) for k in range(0, len(items), 25)],
                      kind)
    out = _concat([{k: v for k, v in p.items() if k != "meta"} for p in parts])
    meta = [m for p in parts for m in p["meta"]]
    np.savez(path, meta_json=json.dumps(meta), **out)
    return out | {"meta": meta}


def attack_obs(att: dict, j: int) -> list[FrameObservation]:
    return [_obs(k, att["landmarks"][j, k], att["iod"][j, k], att["sharpness"][j, k], att["embedding"][j, k]) for k in range(3)]


# ---------------------------------------------------------------------------------------------------
# Statistics, calibration, evaluation
# ---------------------------------------------------------------------------------------------------


def capture_statistics(lms: list[np.ndarray], steps: list[str]) -> dict[str, float] | None:
    """The candidate statistics of a 3-frame capture (frontal, then one frame per step), with the
    turn peaks taken where the challenge put them (an attacker who fooled the turn check):
    ``range`` (used: canonical nose at the image-right peak minus at the image-left peak),
    ``min_step`` (the weaker turn's canonical-nose move from the frontal frame, in its direction)
    and issue 21's unsigned homography ``residual`` between the two peaks. None when a frame has no
    usable geometry."""
    if not all(np.all(np.isfinite(lm)) and geo.usable_geometry(lm) for lm in lms):
        return None
    right = lms[1 + steps.index("left")]  # the subject's left: nose to the image right
    left = lms[1 + steps.index("right")]
    c0, cr, cl = (float(geo.canonical_nose(x)[0]) for x in (lms[0], right, left))
    return {"min_step": min(cr - c0, c0 - cl), "range": cr - cl, "residual": geo.homography_residual(left, right)}


def gated(r, t: LivenessThresholds) -> bool:
    """Whether a capture passes every check but the turns and the parallax (frames, identity, frontal start)."""
    turns = r.checks.get("turns", {})
    return bool(r.checks.get("frames", {}).get("passed") and r.checks.get("identity", {}).get("passed")
                and turns.get("frontal_start"))


def attack_scores(att: dict, t: LivenessThresholds, tau: float) -> list[dict[str, float] | None]:
    """Per attack, :func:`capture_statistics` when the other checks let it through, else None (refused)."""
    out = []
    for j, m in enumerate(att["meta"]):
        ok = gated(decide(attack_obs(att, j), m["steps"], t, tau), t)
        out.append(capture_statistics(list(att["landmarks"][j]), m["steps"]) if ok else None)
    return out


def live_scores(seqs: list[dict], obs) -> list[dict[str, float] | None]:
    return [capture_statistics([obs["landmarks"][i] for i in s["frames"]], s["steps"]) for s in seqs]


def threshold_for(scores_by_type: dict[str, list[float | None]], apcer: float) -> float:
    """Smallest threshold accepting at most ``apcer`` of every attack type (score ≥ threshold accepted;
    None = refused by another check)."""
    t = -np.inf
    for scores in scores_by_type.values():
        s = np.sort(np.asarray([x for x in scores if x is not None], np.float64))[::-1]
        k = int(np.floor(apcer * len(scores)))  # this many may be accepted
        if k < len(s):
            t = max(t, float(s[k]) + 1e-4)
    return float(t)


def rate(flags: list[bool]) -> dict[str, Any]:
    n, k = len(flags), int(sum(flags))
    return {"rate": k / n if n else None, "count": k, "n": n, "upper95": _upper95(k, n)}


def _upper95(k: int, n: int) -> float | None:
    """One-sided 95 % upper bound on a rate of k in n (Clopper–Pearson)."""
    if n == 0:
        return None
    from scipy.stats import beta

    return float(beta.ppf(0.95, k + 1, n - k)) if k < n else 1.0


def _count(codes: list[str]) -> dict[str, int]:
    out: dict[str, int] = {}
    for c in codes:
        out[c] = out.get(c, 0) + 1
    return out


def evaluate(half: str, seqs: list[dict], attacks: dict[str, dict], obs, t: LivenessThresholds, tau: float) -> dict:
    """APCER per attack type (full decision, and parallax alone: an attacker who also fooled the turn
    check), BPCER on the live proxies with the reasons of each refusal, and the replay attack."""
    live = [decide(sequence_obs(s["frames"], obs), s["steps"], t, tau) for s in seqs]
    out: dict[str, Any] = {"half": half, "bpcer": rate([not r.live for r in live]),
                           "bpcer_reasons": _count([r.code for r in live if not r.live]),
                           "bpcer_without_identity": rate([not r.live and r.code != "identity_changed" for r in live]),
                           "n_live": len(live), "n_live_people": len({s["person"] for s in seqs}), "apcer": {}}
    for kind, att in attacks.items():
        full = [decide(attack_obs(att, j), m["steps"], t, tau) for j, m in enumerate(att["meta"])]
        alone = [s is not None and s[STATISTIC] >= t.parallax for s in attack_scores(att, t, tau)]
        out["apcer"][kind] = {"full": rate([r.live for r in full]), "parallax_alone": rate(alone),
                              "decisions": _count([r.code for r in full])}
        if kind == "bent_print":  # by how the print is bent: half-width angle, convex (> 0) or concave
            bends = np.array([m["bend"] for m in att["meta"]])
            groups = {"concave": bends < 0, "convex 15-35 deg": (bends > 0) & (bends < 35), "convex 35-60 deg": bends >= 35}
            out["apcer"][kind]["parallax_alone_by_bend"] = {g: rate([a for a, k in zip(alone, mask) if k])
                                                            for g, mask in groups.items()}
    # replay: each live capture presented against the reversed challenge, and against a random one
    wrong = [decide(sequence_obs(s["frames"], obs), s["steps"][::-1], t, tau).live for s in seqs]
    rng = np.random.default_rng(7)
    random_ch = [decide(sequence_obs(s["frames"], obs), list(rng.permutation(["left", "right"])), t, tau).live
                 for s in seqs]
    out["apcer"]["replay"] = {"full": rate(wrong), "random_challenge": rate(random_ch),
                              "note": "a recorded live turn answering the reversed challenge; against a random "
                                      "2-step challenge it answers the half that matches (1 bit of challenge entropy)"}
    return out


def statistic_table(seqs, attacks, obs, t: LivenessThresholds, tau: float) -> dict[str, Any]:
    """Per candidate statistic, on one half: live and attack percentiles, and the share of live proxies
    below the threshold that the calibration rule sets on this half (parallax alone, other checks applied)."""
    live_stats = live_scores(seqs, obs)
    att_stats = {k: attack_scores(a, t, tau) for k, a in attacks.items()}

    def pct(v):
        v = [y for y in v if y is not None]
        return [round(float(x), 4) for x in np.percentile(v, [5, 50, 95, 99])] if v else None

    table = {}
    for name in (STATISTIC, "min_step", "residual"):
        live = [s[name] if s else None for s in live_stats]
        by_type = {k: [s[name] if s else None for s in v] for k, v in att_stats.items()}
        thr = threshold_for(by_type, CAL_APCER)
        table[name] = {"threshold": round(thr, 4),
                       "bpcer": float(np.mean([x is None or x < thr for x in live])),
                       "live_p5_50_95_99": pct(live), "attack_p5_50_95_99": {k: pct(v) for k, v in by_type.items()}}
    return table


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    ap.add_argument("--model", default=None, help="model bundle (default: the shipped one)")
    ap.add_argument("--attacks", type=int, default=450, help="attacks per type and half")
    ap.add_argument("--limit-people", type=int, default=None, help="people per data set (smoke runs)")
    ap.add_argument("--cache", type=Path, default=REPO / "runs" / "liveness")
    ap.add_argument("--out", type=Path, default=HERE / "results")
    ap.add_argument("--write-bundle", type=Path, default=None, help="store the thresholds in this bundle's metadata")
    ap.add_argument("--seed", type=int, default=21)
    ap.add_argument("--workers", type=int, default=2, help="processes (each runs onnxruntime with FACEVER_THREADS)")
    args = ap.parse_args(argv)
    from concurrent.futures import ProcessPoolExecutor
    from multiprocessing import get_context

    from facever.api import FaceVerifier

    t0 = time.time()
    args.cache.mkdir(parents=True, exist_ok=True)
    # workers fork before any onnxruntime session exists here
    pool = (ProcessPoolExecutor(args.workers, mp_context=get_context("fork"), initializer=_init_worker,
                                initargs=(args.model,)) if args.workers > 1 else None)
    if pool is None:
        _init_worker(args.model)
    verifier = FaceVerifier(model=args.model)
    tau = verifier.threshold
    rng = np.random.default_rng(args.seed)
    photos = list_photos(args.data, rng, args.limit_people)
    log(f"{len(photos)} photos of {len({p for p, _ in photos})} people; {args.workers} worker(s)")
    base = LivenessThresholds()
    cached = any(args.cache.glob("photos_*.npz"))
    try:
        obs = observe_photos(pool, verifier, args.data, photos, args.cache)
        all_seqs = live_sequences(photos, obs, base, np.random.default_rng([args.seed, 0]))
        seqs, attacks, sources = {}, {}, {}
        for half in ("cal", "test"):
            seqs[half] = [s for s in all_seqs if half_of(s["person"]) == half]
            ok = [i for i, (ident, _) in enumerate(photos) if half_of(ident) == half
                  and not _obs(0, obs["landmarks"][i], obs["iod"][i], obs["sharpness"][i], obs["embedding"][i]).problem(base)]
            pick = np.random.default_rng([args.seed, 1 + (half == "cal")]).choice(ok, min(args.attacks, len(ok)), replace=False)
            sources[half] = sorted(int(i) for i in pick)
            attacks[half] = {k: observe_attacks(pool, verifier, args.data, photos, sources[half], k,
                                                args.seed + (half == "cal"), args.cache) for k in ATTACKS}
            log(f"{half}: {len(seqs[half])} live captures, {len(sources[half])} attacks per type")
    finally:
        if pool is not None:
            pool.shutdown()
    # calibrate the parallax threshold on the calibration half: parallax alone (the attacker fooled the turns)
    cal_scores = {k: [s[STATISTIC] if s else None for s in attack_scores(att, base, tau)]
                  for k, att in attacks["cal"].items()}
    thr = round(threshold_for(cal_scores, CAL_APCER), 4)
    small = live_sequences(photos, obs, replace(base, turn_yaw=SMALL_TURN), np.random.default_rng([args.seed, 0]))
    t = replace(base, parallax=thr)
    log(f"parallax threshold {thr} (APCER ≤ {CAL_APCER:.1%} per attack type on the calibration half)")
    result = {
        "issue": 21, "model_version": verifier.model_version, "tau": tau, "thresholds": t.to_json(),
        "calibration": {"target_apcer_per_type": CAL_APCER, "rule": "smallest parallax threshold (weakest turn) "
                        "accepting no attack of the calibration half when the turn check is assumed fooled (the "
                        "other checks applied)"},
        # the statistics compared on live proxies with smaller turns (≥ 0.2, ≈ 24°), where they differ
        "statistics_turn_yaw": SMALL_TURN,
        "statistics": {h: statistic_table([s for s in small if half_of(s["person"]) == h], attacks[h], obs, base, tau)
                       for h in ("cal", "test")},
        "cal": evaluate("cal", seqs["cal"], attacks["cal"], obs, t, tau),
        "test": evaluate("test", seqs["test"], attacks["test"], obs, t, tau),
        "data": {"photos": len(photos), "people": len({p for p, _ in photos}),
                 "people_per_half": {h: len({p for p, _ in photos if half_of(p) == h}) for h in ("cal", "test")},
                 "sets": "LFW people with >= 8 photos (<= 20 each), pins (<= 25 each), glint16 (<= 50 each)"},
        "seconds": round(time.time() - t0, 1), "limit_people": args.limit_people, "workers": args.workers,
        "detections_cached": cached,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "liveness.json").write_text(json.dumps(result, indent=1, default=float) + "\n")
    (args.out / "liveness.md").write_text(markdown(result))
    if args.write_bundle is not None:
        write_bundle(args.write_bundle, t, result)
    log(f"done in {result['seconds']} s")
    return 0


def write_bundle(directory: Path, t: LivenessThresholds, result: dict) -> None:
    """Store the thresholds and the error rates they gave in a bundle's metadata (version unchanged)."""
    from facever.bundle import load_bundle, read_metadata, write_metadata

    before = load_bundle(directory).version
    meta = read_metadata(directory)
    test = result["test"]
    meta.liveness = {
        "thresholds": t.to_json(),
        "figures": {
            "apcer": {k: v["full"]["rate"] for k, v in test["apcer"].items()},
            "apcer_parallax_alone": {k: v["parallax_alone"]["rate"] for k, v in test["apcer"].items() if "parallax_alone" in v},
            "statistic": "canonical nose at the right turn minus at the left turn (template inter-ocular distances)",
            "bpcer": test["bpcer"]["rate"], "bpcer_without_identity": test["bpcer_without_identity"]["rate"],
            "n_attacks_per_type": test["apcer"]["flat_print"]["full"]["n"], "n_live": test["n_live"],
            "calibration_set": "half of the identities (hash of the name) of LFW, pins and glint16",
            "evaluation_set": "the other half; live = photo triples of one person (proxy, not video frames)",
            "benchmark": "benchmarks/liveness.py",
        },
    }
    write_metadata(directory, meta)
    after = load_bundle(directory).version
    if after != before:
        raise SystemExit(f"model version changed {before} -> {after}: refusing")
    log(f"thresholds written to {directory} (model version {after} unchanged)")


if __name__ == "__main__":
    raise SystemExit(main())
