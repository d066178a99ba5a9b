"""Search inside PostgreSQL (pgvector): equal to the exact scan, no stale copy across processes, the
model-version filter, a server restart mid-test, and the fallback on a server without the extension.

Runs on the private PostgreSQL 18 + pgvector server of ``pgserver_fixture.py`` (one per session).
"""

import logging
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from conftest import fresh_postgres, numpy_verifier, person_image, png_bytes
from sqlalchemy import create_engine, text

from facever.errors import ModelVersionMismatchError
from facever.gallery import Gallery, IndexUnavailableError
from facever.gallery.pg_index import _SEARCH as SEARCH
from facever.store import Database, check_database
from facever.store import repository as repo
from facever.store import vectors as pgvec

pytestmark = pytest.mark.postgres
TESTS = Path(__file__).resolve().parent


@pytest.fixture
def pg_url(postgres_url):
    """A fresh gallery database on the private server (tables dropped; the extension stays)."""
    return fresh_postgres(postgres_url)


@pytest.fixture
def force_hnsw(pg_url):
    """Keep the planner on the HNSW index for this small gallery (it would rather sort the whole table
    by distance at this size, which is exact and would not test the index path); reset afterwards."""
    settings = {"enable_seqscan": "off", "enable_bitmapscan": "off", "cpu_operator_cost": "1"}
    engine = create_engine(pg_url, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        name = conn.exec_driver_sql("SELECT current_database()").scalar_one()
        for key, value in settings.items():
            conn.exec_driver_sql(f"ALTER DATABASE {name} SET {key} = {value}")
    try:
        yield
    finally:
        with engine.connect() as conn:
            for key in settings:
                conn.exec_driver_sql(f"ALTER DATABASE {name} RESET {key}")
        engine.dispose()


def img(person: int, variant: int = 1) -> bytes:
    return png_bytes(person_image(person, variant))


def clustered(sizes: list[int], noise: float = 0.35, dim: int = 128, seed: int = 0):
    """Unit vectors in tight clusters, ``sizes[i]`` faces for person i: (person index per row, vectors, centres)."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((len(sizes), dim)).astype(np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    owner = np.repeat(np.arange(len(sizes)), sizes)
    v = centres[owner] + noise / np.sqrt(dim) * rng.standard_normal((len(owner), dim)).astype(np.float32)
    return owner, v / np.linalg.norm(v, axis=1, keepdims=True), centres


def store(db: Database, owner: np.ndarray, vectors: np.ndarray, version: str = "np-1") -> None:
    """Write people ``p<i>`` with these embeddings directly (no images), audited as one write."""
    crop = png_bytes(np.zeros((4, 4, 3), np.uint8))
    with db.write() as s:
        repo.ensure_model(s, version, {})
        ids = {}
        for row, (i, v) in enumerate(zip(owner, vectors)):
            if i not in ids:
                ids[i] = repo.get_or_create_person(s, f"p{i}").id
            face = repo.NewFace(crop_png=crop, source=f"{row}", sha256=f"{row:064d}", box=[0, 0, 1, 1],
                                landmarks=[[0, 0]] * 5, detector_score=1.0)
            repo.add_face(s, ids[i], face, version, v)
        repo.record_write(s, "test", "enroll", None, (), {})
    with db.connection() as conn:  # as autovacuum would after a bulk load: the planner sees the real sizes
        conn.execute(text("ANALYZE embeddings"))


def uses_hnsw(db: Database, query: np.ndarray) -> bool:
    """Whether PostgreSQL plans the backend's nearest-face query over the HNSW index."""
    with db.read() as s:
        plan = s.execute(text("EXPLAIN " + SEARCH.text), {"q": pgvec.vector_literal(query), "v": "np-1",
                                                           "n": 40}).scalars().all()
    return any(pgvec.INDEX in line for line in plan)


# -- results --------------------------------------------------------------------------------------
def test_pgvector_search_equals_the_exact_scan(pg_url, force_hnsw):
    rng = np.random.default_rng(5)
    sizes = list(rng.integers(1, 7, 500)) + [60]          # one person with many faces: the candidate loop widens
    owner, vectors, centres = clustered(sizes)
    with Gallery(pg_url, verifier=numpy_verifier(), index="pgvector") as pg, \
            Gallery(pg_url, verifier=numpy_verifier(), index="exact") as exact:
        store(pg.db, owner, vectors)
        assert pg.search_backend.backend == "pgvector" and exact.search_backend.backend == "exact"
        near = vectors[[3, 100, 900]] + 0.01 * rng.standard_normal((3, 128)).astype(np.float32)  # ~0.1 away
        queries = np.concatenate([centres[[0, 7, 42, 500]], near, rng.standard_normal((3, 128)).astype(np.float32)])
        queries /= np.linalg.norm(queries, axis=1, keepdims=True)
        assert uses_hnsw(pg.db, queries[0])
        for scoring in ("nearest", "mean3"):
            for k in (1, 5, 12):
                got = pg.search(queries, top_k=k, scoring=scoring)
                want = exact.search(queries, top_k=k, scoring=scoring)
                for g, w in zip(got, want):
                    assert [c.person for c in g.candidates] == [c.person for c in w.candidates], (scoring, k)
                    # the same code on fewer rows: float32 rounding only (the exact scan itself differs
                    # this much between one query and a batch; sqrt magnifies it next to distance 0)
                    np.testing.assert_allclose([c.distance for c in g.candidates],
                                               [c.distance for c in w.candidates], atol=1e-5)
                    assert (g.person, g.threshold, g.expected_fpir) == (w.person, w.threshold, w.expected_fpir)
        # the person with 60 faces fills the 32 nearest faces alone: the search asks for more
        top = pg.search(centres[500:501], top_k=5, scoring="mean3")[0]
        assert top.candidates[0].person == "p500" and len(top.candidates) == 5
        status = pg.index_status
        assert (status.backend, status.status, status.n_faces) == ("pgvector", "database", len(vectors))
        assert pg.threshold_for().to_dict()["gallery"] == {"people": 501, "faces": len(vectors)}
        assert pg.rebuild_index().rebuilt and uses_hnsw(pg.db, queries[0])


def test_only_the_loaded_models_embeddings_are_searched(pg_url):
    with Gallery(pg_url, verifier=numpy_verifier("np-1")) as g:
        g.enroll("ann", [img(1, 1), img(1, 2)])
        g.enroll("bob", [img(2, 1)])
        assert g.search_backend.backend == "pgvector"
    with Gallery(pg_url, verifier=numpy_verifier("np-2", seed=3)) as g2:
        with pytest.raises(ModelVersionMismatchError, match="reindex"):
            g2.identify(img(1, 3))
        assert g2.reindex().embedded == 3
        with Gallery(pg_url, verifier=numpy_verifier("np-2", seed=3), index="exact") as exact:
            for p in (1, 2, 9):
                a, e = g2.identify(img(p, 4))[0], exact.identify(img(p, 4))[0]
                assert [c.person for c in a.candidates] == [c.person for c in e.candidates]
                assert a.distance == pytest.approx(e.distance, abs=1e-6)
        assert g2.identify(img(1, 3))[0].person == "ann"
        assert g2.verify_person(img(2, 5), "bob").same


# -- many processes, no copy ----------------------------------------------------------------------
ENROL = textwrap.dedent("""
    import sys
    sys.path.insert(0, {tests!r})
    from conftest import numpy_verifier, person_image, png_bytes
    from facever.gallery import Gallery
    person = int(sys.argv[1])
    with Gallery({url!r}, verifier=numpy_verifier(), index="pgvector") as g:
        print("ready", flush=True)
        sys.stdin.readline()                                  # start together
        for variant in (1, 2, 3):
            g.enroll(f"p{{person}}", [png_bytes(person_image(person, variant))])
    print("done", flush=True)
""")

IDENTIFY = textwrap.dedent("""
    import sys
    sys.path.insert(0, {tests!r})
    from conftest import numpy_verifier, person_image, png_bytes
    from facever.gallery import Gallery
    with Gallery({url!r}, verifier=numpy_verifier(), create=False) as g:
        print(g.search_backend.backend, *[g.identify(png_bytes(person_image(p, 7)))[0].person for p in (11, 12)])
""")


def test_two_processes_enrol_concurrently_and_a_third_sees_both(pg_url):
    with Gallery(pg_url, verifier=numpy_verifier(), index="pgvector") as g:
        g.enroll("p10", [img(10, 1)])
        assert g.identify(img(11, 7))[0].person is None          # searched before the others write
        code = ENROL.format(tests=str(TESTS), url=pg_url)
        procs = [subprocess.Popen([sys.executable, "-c", code, str(p)], stdin=subprocess.PIPE,
                                  stdout=subprocess.PIPE, text=True) for p in (11, 12)]
        try:
            assert [p.stdout.readline().strip() for p in procs] == ["ready", "ready"]
            for p in procs:
                p.stdin.write("go\n")
                p.stdin.flush()
            outs = [p.communicate(timeout=120)[0] for p in procs]
        finally:
            for p in procs:
                p.kill() if p.poll() is None else None
        assert [p.returncode for p in procs] == [0, 0] and all("done" in o for o in outs)
        # this process held no copy: both writers' faces are found without sync() or a reload
        assert [g.identify(img(p, 7))[0].person for p in (10, 11, 12)] == ["p10", "p11", "p12"]
        assert g.threshold_for().to_dict()["gallery"] == {"people": 3, "faces": 7}
    third = subprocess.run([sys.executable, "-c", IDENTIFY.format(tests=str(TESTS), url=pg_url)],
                           capture_output=True, text=True, timeout=120)
    assert third.returncode == 0, third.stderr
    assert third.stdout.split() == ["pgvector", "p11", "p12"]


def test_the_server_restarts_mid_test(pg_url, postgres_server):
    if postgres_server is None:
        pytest.skip("FACEVER_TEST_POSTGRES_URL names an outside server: not restarting it")
    with Gallery(pg_url, verifier=numpy_verifier()) as g:
        g.enroll("ann", [img(1, 1)])
        assert g.identify(img(1, 2))[0].person == "ann"
        postgres_server.restart()                                # every pooled connection is now dead
        assert g.identify(img(1, 2))[0].person == "ann"          # pre-ping: a fresh connection
        g.enroll("bob", [img(2, 1)])
        assert [c.person for c in g.identify(img(2, 2))[0].candidates] == ["bob", "ann"]
        assert g.search_backend.backend == "pgvector" and check_database(g.db).ok


# -- without the extension ------------------------------------------------------------------------
def test_a_server_without_pgvector_falls_back_to_memory_and_says_so(pg_url, monkeypatch, caplog, tmp_path):
    from facever.gallery import index as index_module

    monkeypatch.setattr(pgvec, "vector_support", lambda conn: pgvec.VectorSupport(conn.dialect.name))
    monkeypatch.setattr(index_module, "_warned", set())
    caplog.set_level(logging.WARNING, logger="facever.gallery")
    with Gallery(pg_url, verifier=numpy_verifier()) as g:       # the migration leaves byte-only storage
        g.enroll("ann", [img(1, 1)])
        assert g.identify(img(1, 2))[0].person == "ann"
        status = g.index_status
        assert status.backend == "exact" and status.mode == "auto" and "no pgvector extension" in status.note
        report = check_database(g.db)
        assert report.ok and not report.vector_search["usable"]
        assert "no pgvector extension" in report.vector_search["note"]
    with Gallery(pg_url, verifier=numpy_verifier(), index="pgvector") as g:
        assert g.identify(img(1, 2))[0].person == "ann" and g.index_status.backend == "exact"
    assert sum("no pgvector extension" in r.getMessage() for r in caplog.records) == 1   # said once
    monkeypatch.undo()
    with create_engine(pg_url).connect() as conn:
        assert not pgvec.vector_support(conn).column
    with pytest.raises(IndexUnavailableError, match="PostgreSQL"):
        Gallery(f"sqlite:///{tmp_path / 'g.db'}", verifier=numpy_verifier(), index="pgvector")


def test_db_upgrade_enables_pgvector_once_the_extension_is_there(pg_url, monkeypatch):
    monkeypatch.setattr(pgvec, "vector_support", lambda conn: pgvec.VectorSupport(conn.dialect.name))
    with Gallery(pg_url, verifier=numpy_verifier()) as g:
        g.enroll("ann", [img(1, 1), img(1, 2)])
    monkeypatch.undo()
    db = Database(pg_url)                                        # extension present: column, backfill, index
    support = db.vector_support
    assert support.usable and support.index
    with db.read() as s:
        n = s.execute(text(f"SELECT count({pgvec.COLUMN}) FROM embeddings")).scalar()
        same = s.execute(text(f"SELECT vector, {pgvec.COLUMN}::text FROM embeddings")).all()
    assert n == 2
    for blob, literal in same:                                   # the copy equals the bytes bit for bit
        np.testing.assert_array_equal(np.frombuffer(blob, "<f4"),
                                      np.array(literal.strip("[]").split(","), np.float32))
    db.close()
    with Gallery(pg_url, verifier=numpy_verifier()) as g:
        assert g.search_backend.backend == "pgvector" and g.identify(img(1, 3))[0].person == "ann"


def test_pgvector_thresholds_are_gallery_adapted_like_the_in_memory_ones(pg_url):
    """The pgvector backend fits the gallery from a sample read in the database: on a crowded population
    it tightens the threshold exactly as the in-memory gallery does, keeps the sample while nothing is
    written, and reads it again after a write."""
    from facever import open_set as osm

    cx, cy = osm.synthetic_embeddings(800, (3, 5), seed=7)
    calibration = osm.impostor_distribution(cx, cy, description="synthetic calibration people")
    x, y = osm.synthetic_embeddings(60, (3, 3), seed=11, group_weight=0.66)   # nearer each other
    verifiers = [numpy_verifier(), numpy_verifier()]
    for v in verifiers:
        v.bundle.metadata.open_set = calibration
    with Gallery(pg_url, verifier=verifiers[0], index="pgvector") as pg, \
            Gallery(pg_url, verifier=verifiers[1], index="exact") as exact:
        store(pg.db, y, x.astype(np.float32))
        assert pg.search_backend.backend == "pgvector"
        got, want = pg.threshold_for(), exact.threshold_for()
        assert got.calibration == want.calibration == "gallery-adapted"
        assert got.adaptation["shift"] < 0 and got.adaptation["people"] == 60
        assert got.threshold == pytest.approx(want.threshold, abs=1e-5)
        assert got.adaptation["shift"] == pytest.approx(want.adaptation["shift"], abs=1e-5)
        [res] = pg.search(x[:1], top_k=1)
        assert res.calibration == "gallery-adapted" and res.threshold == pytest.approx(want.threshold, abs=1e-5)
        sample = pg.search_backend.fit_sample("np-1", 128)
        pg.search(x[1:2], top_k=1)
        assert pg.search_backend.fit_sample("np-1", 128) is sample        # unchanged gallery: kept
        store(pg.db, np.array([1000, 1000, 1000]), x[:3] * -1.0)           # another person enrolled
        pg.search(x[1:2], top_k=1)
        fresh = pg.search_backend.fit_sample("np-1", 128)
        assert fresh is not sample and len(fresh.starts) == 61
