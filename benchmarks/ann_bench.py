"""Approximate (faiss) vs exact gallery search with real probes: recall@1, latency, build time, memory.

Usage: python benchmarks/ann_bench.py [--sizes 100000,300000,1000000] [--kinds hnsw,ivf]
                                      [--probes 2000] [--out benchmarks/results/ann.json]

* Real gallery: one embedding per person (the first image) of LFW, Pins and Bollywood
  (``runs/emb/*_r9h.npz``, the default model's embeddings); every person with ≥ 2 images gives
  probes: their *other* images (real faces, so each probe has a well-separated true neighbour).
* Distractors pad the gallery to each size: synthetic identities with 4 faces each, drawn to look
  like the real embeddings: identity centres from a Gaussian fitted to the real per-person means,
  within-person offsets from a Gaussian fitted to the real residuals (so the genuine and impostor
  distance distributions match the real ones; both medians are printed).
* Exact: the gallery's NumPy scan (``SearchIndex.top_k``). Approximate: the gallery's own path,
  ``AnnIndex.candidate_people`` (nearest 32 faces) then exact re-scoring of those people (``rerank``).
  recall@1 = share of probes whose best person is the exact scan's best person.
* Latency: median ms of one query at a time; batched: all probes in one call, ms per query.
  Build: ``AnnIndex.build`` wall time. Memory: serialized index bytes per face (the vectors inside
  the index included; the gallery's exact matrix, 512 B per face, is held besides).
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from facever.gallery.ann_index import AnnIndex  # noqa: E402
from facever.gallery.search import SearchIndex, rerank  # noqa: E402

SETS = ("lfw", "pins", "bollywood")
CANDIDATE_FACES = 32


def load_real(emb_dir: Path) -> tuple[np.ndarray, np.ndarray]:
    """Unit embeddings of every found face and a person index per row."""
    vecs, people = [], []
    for name in SETS:
        z = np.load(emb_dir / f"{name}_r9h.npz")
        e = z["embeddings"]
        ok = ~np.isnan(e).any(axis=1)
        vecs.append(e[ok].astype(np.float32))
        people += [f"{name}:{n.split('/')[0]}" for n in z["names"][ok]]
    v = np.concatenate(vecs)
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    return v, np.unique(people, return_inverse=True)[1]


class Distractors:
    """Synthetic identities whose embeddings are distributed like the real ones."""

    def __init__(self, vectors: np.ndarray, pid: np.ndarray):
        n_p = pid.max() + 1
        counts = np.bincount(pid, minlength=n_p)
        centres = np.zeros((n_p, vectors.shape[1]), np.float64)
        np.add.at(centres, pid, vectors)
        centres /= counts[:, None]
        multi = counts >= 2
        resid = (vectors - centres[pid])[multi[pid]]
        self.mu = centres[multi].mean(0)
        eye = 1e-6 * np.eye(vectors.shape[1])
        self.lc = np.linalg.cholesky(np.cov((centres[multi] - self.mu).T) + eye).astype(np.float32)
        self.lw = np.linalg.cholesky(np.cov(resid.T) + eye).astype(np.float32)

    def sample(self, n_faces: int, per_person: int = 4, seed: int = 0) -> np.ndarray:
        rng = np.random.default_rng(seed)
        dim = len(self.mu)
        out = np.empty((n_faces, dim), np.float32)
        step = 200_000
        for lo in range(0, n_faces, step):
            m = min(step, n_faces - lo)
            n_id = -(-m // per_person)
            c = self.mu.astype(np.float32) + rng.standard_normal((n_id, dim), dtype=np.float32) @ self.lc.T
            v = np.repeat(c, per_person, 0)[:m] + rng.standard_normal((m, dim), dtype=np.float32) @ self.lw.T
            out[lo:lo + m] = v / np.linalg.norm(v, axis=1, keepdims=True)
        return out


def median_distances(v: np.ndarray, pid: np.ndarray, seed: int = 0) -> tuple[float, float]:
    """Median genuine (same person) and impostor distances of a sample."""
    rng = np.random.default_rng(seed)
    order = np.argsort(pid, kind="stable")
    same = order[:-1][pid[order[:-1]] == pid[order[1:]]]
    same = same[rng.permutation(len(same))[:5000]]
    nxt = {int(a): int(b) for a, b in zip(order[:-1], order[1:])}
    g = np.linalg.norm(v[same] - v[[nxt[int(i)] for i in same]], axis=1)
    a, b = rng.integers(0, len(v), 5000), rng.integers(0, len(v), 5000)
    keep = pid[a] != pid[b]
    return float(np.median(g)), float(np.median(np.linalg.norm(v[a[keep]] - v[b[keep]], axis=1)))


def gallery_path(ann: AnnIndex, exact: SearchIndex, q: np.ndarray, k: int = 5):
    return rerank(q, exact, ann.candidate_people(q, max(CANDIDATE_FACES, 4 * k)), k, "nearest")


def run_size(n: int, kinds: list[str], real: np.ndarray, real_pid: np.ndarray, probes: np.ndarray,
             dis: Distractors, per_person: int, efs: list[int], nprobes: list[int], threshold: float) -> list[dict]:
    first = np.unique(real_pid, return_index=True)[1]
    n_dis = max(0, n - len(first))
    vectors = np.concatenate([real[first], dis.sample(n_dis, per_person, seed=n)])
    persons = np.concatenate([np.arange(len(first)), len(first) + np.arange(n_dis) // per_person]).astype(np.int64)
    face_ids = np.arange(len(vectors), dtype=np.int64)
    names = {int(p): str(p) for p in np.unique(persons)}
    exact = SearchIndex(persons, vectors, names, "bench")
    t0 = time.perf_counter()
    ex_top = np.concatenate([exact.top_k(probes[lo:lo + 256], 1)[0][:, 0] for lo in range(0, len(probes), 256)])
    exact_batch_ms = (time.perf_counter() - t0) / len(probes) * 1e3
    single = []
    for q in probes[:20]:
        t0 = time.perf_counter()
        exact.top_k(q[None], 5)
        single.append(time.perf_counter() - t0)
    exact_ms = statistics.median(single) * 1e3
    named = np.zeros(len(probes), bool)
    for lo in range(0, len(probes), 256):
        d = exact.top_k(probes[lo:lo + 256], 1)[1][:, 0]
        named[lo:lo + 256] = d <= threshold
    rows = []
    for kind in kinds:
        t0 = time.perf_counter()
        ann = AnnIndex.build(face_ids, persons, vectors, "bench", kind)
        build_s = time.perf_counter() - t0
        mem = ann.memory_bytes()
        key = "ef_search" if kind == "hnsw" else "nprobe"
        for value in (efs if kind == "hnsw" else nprobes):
            ann.params[key] = value
            if kind == "ivf":
                ann.index.nprobe = value
            rows.append(measure(ann, exact, probes, ex_top, named, exact_ms, exact_batch_ms, build_s, mem, vectors))
        del ann
    return rows


def measure(ann, exact, probes, ex_top, named, exact_ms, exact_batch_ms, build_s, mem, vectors) -> dict:
    kind = ann.kind
    t0 = time.perf_counter()
    idx, _ = gallery_path(ann, exact, probes)
    batch_ms = (time.perf_counter() - t0) / len(probes) * 1e3
    hit = idx[:, 0] == ex_top
    recall = float(np.mean(hit))
    single = []
    for q in probes[:300]:
        t0 = time.perf_counter()
        gallery_path(ann, exact, q[None])
        single.append(time.perf_counter() - t0)
    row = {"faces": int(len(vectors)), "people": int(exact.n_people), "kind": kind, "params": dict(ann.params),
           "recall_at_1": round(recall, 5), "probes": int(len(probes)),
           "recall_at_1_named": round(float(np.mean(hit[named])), 5), "named_probes": int(named.sum()),
           "ann_ms_single": round(statistics.median(single) * 1e3, 3), "ann_ms_batched": round(batch_ms, 4),
           "exact_ms_single": round(exact_ms, 3), "exact_ms_batched": round(exact_batch_ms, 4),
           "speedup_single": round(exact_ms / (statistics.median(single) * 1e3), 1),
           "build_s": round(build_s, 1), "index_bytes_per_face": round(mem / len(vectors), 1),
           "exact_matrix_bytes_per_face": 4 * vectors.shape[1]}
    param = ann.params.get("ef_search", ann.params.get("nprobe"))
    print(f"{row['faces']:>10,} {kind:>5} {param:>5} {row['recall_at_1']:>9.4f} {row['recall_at_1_named']:>7.4f} "
          f"{row['ann_ms_single']:>9.3f} "
          f"{row['ann_ms_batched']:>10.4f} {row['exact_ms_single']:>9.2f} {row['speedup_single']:>7.1f}× "
          f"{row['build_s']:>8.1f} {row['index_bytes_per_face']:>8.0f}", flush=True)
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="100000,300000,1000000")
    ap.add_argument("--kinds", default="hnsw", help="comma-separated: hnsw, ivf")
    ap.add_argument("--probes", type=int, default=2000)
    ap.add_argument("--ef", default="128,256,512", help="HNSW efSearch values measured")
    ap.add_argument("--nprobe", default="128,256,512", help="IVF nprobe values measured")
    ap.add_argument("--threshold", type=float, default=0.3494,
                    help="identification threshold: recall is also reported on probes the exact scan names "
                         "(best distance ≤ it; default: the default model's identify threshold)")
    ap.add_argument("--faces-per-person", type=int, default=4, help="faces per distractor identity")
    ap.add_argument("--emb-dir", default=str(ROOT / "runs" / "emb"))
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "ann.json"))
    args = ap.parse_args()

    real, pid = load_real(Path(args.emb_dir))
    dis = Distractors(real, pid)
    first = np.unique(pid, return_index=True)[1]
    probe_rows = np.setdiff1d(np.arange(len(real)), first)
    probes = real[np.random.default_rng(1).permutation(probe_rows)[:args.probes]]
    g_real, i_real = median_distances(real, pid)
    sample = dis.sample(40_000, args.faces_per_person, seed=7)
    g_syn, i_syn = median_distances(sample, np.arange(len(sample)) // args.faces_per_person)
    print(f"real: {len(first):,} people enrolled (1 face each), {len(probes):,} probes of their other images; "
          f"median genuine/impostor distance real {g_real:.3f}/{i_real:.3f}, distractors {g_syn:.3f}/{i_syn:.3f}")
    print(f"{'faces':>10} {'kind':>5} {'param':>5} {'recall@1':>9} {'named':>7} {'ann 1× ms':>9} {'ann batch':>10} {'exact ms':>9} "
          f"{'speedup':>8} {'build s':>8} {'B/face':>8}")
    rows = []
    for n in (int(s) for s in args.sizes.split(",")):
        rows += run_size(n, args.kinds.split(","), real, pid, probes, dis, args.faces_per_person,
                         [int(v) for v in args.ef.split(",")], [int(v) for v in args.nprobe.split(",")], args.threshold)
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps({
            "machine": {"cpus": __import__("os").cpu_count(), "python": platform.python_version(),
                        "faiss": __import__("faiss").__version__},
            "real_people": int(len(first)), "probes": int(len(probes)),
            "median_distance": {"real_genuine": g_real, "real_impostor": i_real,
                                "distractor_genuine": g_syn, "distractor_impostor": i_syn},
            "candidate_faces": CANDIDATE_FACES, "threshold": args.threshold, "results": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()
