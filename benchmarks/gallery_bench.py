"""Gallery figures: identification latency vs gallery size, peak memory, database bytes per face.

Usage: python benchmarks/gallery_bench.py [--sizes 1000,100000,1000000] [--faces-per-person 4]
                                          [--queries 20] [--batch 64] [--db-faces 300]

* Search: random unit vectors (128-d float32) stand in for enrolled faces, grouped by person; each
  query is timed through the gallery's own in-memory search (per-person scores with
  ``person_distances`` and the top-5 with ``nearest_k``), one query at a time and in batches.
* Memory: the process's peak resident set (``getrusage``) after the largest size.
* Storage: realistic 112×112 crops (random windows of scikit-image's sample photos, or smooth noise
  without scikit-image) are written with their embeddings into a temporary SQLite gallery; the file
  growth per face is printed, and the time to load the search matrix back.
No TensorFlow and no model are needed.

For ``compare.py``, :func:`gallery_section` times facever's in-memory 1:K search
(:class:`facever.gallery.SearchIndex` + ``nearest_k``) against ``face_recognition.face_distance`` +
``argmin`` (the peer has no gallery) at each ``--gallery-sizes`` of random vectors; with
``--gallery-bench`` it also runs this script (:func:`main`) in its own process and keeps its output.
"""

from __future__ import annotations

import argparse
import json
import resource
import shlex
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from facever.gallery import SearchIndex, encode_png, nearest_k  # noqa: E402


def random_gallery(n_faces: int, faces_per_person: int, dim: int = 128, seed: int = 0) -> SearchIndex:
    """An index of ``n_faces`` random unit vectors, ``faces_per_person`` rows per person."""
    rng = np.random.default_rng(seed)
    vectors = rng.standard_normal((n_faces, dim), dtype=np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    person_of_row = np.arange(n_faces, dtype=np.int64) // faces_per_person
    names = {int(i): f"person {i}" for i in range(int(person_of_row[-1]) + 1)}
    return SearchIndex(person_of_row, vectors, names, "bench")


def time_search(index: SearchIndex, queries: np.ndarray, batch: int, scoring: str = "nearest") -> tuple[float, float]:
    """Median ms per query one at a time, and ms per query in batches of ``batch``."""
    single = []
    for q in queries:
        t0 = time.perf_counter()
        nearest_k(index.distances(q[None], scoring), 5)
        single.append(time.perf_counter() - t0)
    reps = np.resize(queries, (batch, queries.shape[1]))
    t0 = time.perf_counter()
    nearest_k(index.distances(reps, scoring), 5)
    batched = (time.perf_counter() - t0) / batch
    return statistics.median(single) * 1e3, batched * 1e3


def sample_crops(n: int, seed: int = 0) -> np.ndarray:
    """``(n, 112, 112, 3)`` uint8 crops with photo-like statistics."""
    rng = np.random.default_rng(seed)
    try:
        from skimage import data

        photos = [data.astronaut(), data.chelsea(), data.coffee()]
    except ImportError:  # smooth noise compresses roughly like a photo
        import cv2

        photos = [cv2.GaussianBlur(rng.integers(0, 256, (400, 400, 3), dtype=np.uint8), (0, 0), 2)]
    out = np.empty((n, 112, 112, 3), np.uint8)
    for i in range(n):
        im = photos[i % len(photos)]
        y, x = rng.integers(0, im.shape[0] - 112), rng.integers(0, im.shape[1] - 112)
        out[i] = im[y:y + 112, x:x + 112, :3]
    return out


def storage(n_faces: int, faces_per_person: int = 4) -> tuple[float, float, float]:
    """Bytes of SQLite file per enrolled face, mean PNG crop bytes, and matrix load time (µs per face)."""
    from facever.store import Database
    from facever.store import repository as repo

    crops = sample_crops(n_faces)
    rng = np.random.default_rng(1)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bench.db"
        db = Database(f"sqlite:///{path}")
        db.checkpoint()
        empty = path.stat().st_size
        png_sizes = []
        with db.write() as s:
            repo.ensure_model(s, "bench", {"architecture": "bench"})
            for i, crop in enumerate(crops):
                person = repo.get_or_create_person(s, f"person {i // faces_per_person}")
                png = encode_png(crop)
                png_sizes.append(len(png))
                face = repo.NewFace(crop_png=png, source=f"/photos/person {i // faces_per_person}/{i}.jpg",
                                    sha256=f"{i:064x}", box=[10.0, 20.0, 110.0, 140.0],
                                    landmarks=[[38.3, 51.7], [73.5, 51.5], [56.0, 71.7], [41.5, 92.4], [70.7, 92.2]],
                                    detector_score=0.999,
                                    quality={"face_size": 88.0, "sharpness": 300.0, "frontality": 0.95})
                v = rng.standard_normal(128).astype(np.float32)
                repo.add_face(s, person.id, face, "bench", v / np.linalg.norm(v))
        db.checkpoint()
        grown = path.stat().st_size - empty
        t0 = time.perf_counter()
        with db.read() as s:
            repo.load_embeddings(s, "bench", 128)
        load_us = (time.perf_counter() - t0) / n_faces * 1e6
        db.close()
    return grown / n_faces, float(np.mean(png_sizes)), load_us


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="1000,100000,1000000", help="comma-separated gallery sizes (faces)")
    ap.add_argument("--faces-per-person", type=int, default=4)
    ap.add_argument("--queries", type=int, default=20, help="single queries timed per size (median reported)")
    ap.add_argument("--batch", type=int, default=64, help="queries per batched call")
    ap.add_argument("--db-faces", type=int, default=300, help="faces written to measure storage (0: skip)")
    args = ap.parse_args()

    print(f"identify latency (128-d, {args.faces_per_person} faces/person, top-5, ms per query)")
    print(f"{'faces':>10} {'people':>9} {'nearest 1×':>11} {'nearest batch':>14} {'mean3 1×':>9}")
    queries = np.random.default_rng(9).standard_normal((args.queries, 128), dtype=np.float32)
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    for n in (int(s) for s in args.sizes.split(",")):
        index = random_gallery(n, args.faces_per_person)
        one, batched = time_search(index, queries, args.batch)
        mean3, _ = time_search(index, queries[: max(3, args.queries // 4)], 2, "mean3")
        print(f"{n:>10,} {index.n_people:>9,} {one:>11.2f} {batched:>14.3f} {mean3:>9.2f}")
        del index
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak resident memory: {peak_mb:,.0f} MiB (the matrix alone: {max(map(int, args.sizes.split(','))) * 512 / 2**20:,.0f} MiB)")
    if args.db_faces:
        per_face, png, load_us = storage(args.db_faces, args.faces_per_person)
        print(f"SQLite storage: {per_face:,.0f} bytes per face ({png:,.0f} of them the PNG crop, 512 the vector); "
              f"loading the search matrix: {load_us:.1f} µs per face")


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
    from bench_common import PEER_SCRIPT, log, ratio_spread, run_measured, spread

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
    """facever's gallery figures from this script's own :func:`main` in its own process (run only with
    ``--gallery-bench``): its printed output, and its JSON when it writes one, are kept verbatim."""
    from bench_common import REPO, log, run_measured

    if not args.gallery_bench:
        return {"status": "not run", "note": "pass --gallery-bench to run benchmarks/gallery_bench.py"}
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "gallery.json"
        cmd = [sys.executable, Path(__file__).resolve(), *shlex.split(args.gallery_bench_args.format(json=out, sizes=args.gallery_sizes))]
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


if __name__ == "__main__":
    main()
