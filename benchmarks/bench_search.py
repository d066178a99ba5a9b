"""Search latency against gallery size: facever's in-memory 1:K search
(:class:`facever.gallery.SearchIndex` + ``nearest_k``) against ``face_recognition.face_distance`` +
``argmin`` (the peer has no gallery) at each ``--gallery-sizes`` of random vectors; ``--gallery-bench``
also runs ``benchmarks/gallery_bench.py`` (facever's own gallery figures) and keeps its output.
"""

from __future__ import annotations

import json
import shlex
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from bench_common import GALLERY_BENCH, PEER_SCRIPT, REPO, log, ratio_spread, run_measured, spread


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
