"""The optional approximate index (faiss HNSW): recall, persistence, stale/corrupt files, Gallery consistency."""

import sys

import numpy as np
import pytest
from conftest import numpy_verifier, person_image, png_bytes

pytest.importorskip("faiss")

from facever.gallery.ann_index import AnnFileError, AnnIndex, face_set_digest, open_index  # noqa: E402
from facever.gallery import Gallery, SearchIndex  # noqa: E402


def clustered(n_people: int, per_person: int, noise: float = 0.2, dim: int = 128, seed: int = 0):
    """Unit vectors in ``n_people`` tight clusters: (face ids, person ids, vectors), and fresh probes."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((n_people, dim)).astype(np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)

    def sample(k):
        v = np.repeat(centres, k, 0) + noise / np.sqrt(dim) * rng.standard_normal((n_people * k, dim)).astype(np.float32)
        return v / np.linalg.norm(v, axis=1, keepdims=True)

    vectors = sample(per_person)
    persons = np.repeat(np.arange(1, n_people + 1, dtype=np.int64), per_person)
    faces = np.arange(10, 10 + len(vectors), dtype=np.int64)
    return faces, persons, vectors, sample(1), np.arange(1, n_people + 1)


def test_recall_on_clustered_data_matches_exact_search():
    faces, persons, vectors, probes, truth = clustered(2000, 3)
    ann = AnnIndex.build(faces, persons, vectors, "m1")
    exact = SearchIndex(persons, vectors, {int(p): str(p) for p in truth}, "m1")
    best_exact = exact.person_ids[exact.top_k(probes, 1)[0][:, 0]]
    cands = ann.candidate_people(probes, 8)
    assert np.mean([c[0] == e for c, e in zip(cands, best_exact)]) >= 0.99
    assert np.mean(best_exact == truth) > 0.99
    pos, dist = ann.search_faces(probes[:5], 3)
    assert pos.shape == (5, 3) and np.all(np.diff(dist, axis=1) >= 0) and np.all(dist <= 2.0)


def test_removed_faces_are_never_returned_and_added_ones_are():
    faces, persons, vectors, probes, _ = clustered(200, 2)
    ann = AnnIndex.build(faces, persons, vectors, "m1")
    assert ann.remove_person(1) == 2 and len(ann) == 398
    assert all(1 not in c for c in ann.candidate_people(probes, 20))
    ann.add([9999], 777, probes[0])
    assert ann.candidate_people(probes[:1], 1)[0][0] == 777
    assert set(ann.face_ids()) == (set(faces) - set(faces[:2])) | {9999}


def test_persistence_round_trip(tmp_path):
    faces, persons, vectors, probes, _ = clustered(300, 2)
    ann = AnnIndex.build(faces, persons, vectors, "m1")
    ann.remove([faces[0]])
    path = tmp_path / "g.db.ann"
    ann.save(path)
    back = AnnIndex.load(path)
    assert back.model_version == "m1" and back.kind == "hnsw" and not back.dirty
    assert face_set_digest(back.face_ids()) == face_set_digest(ann.face_ids())
    assert np.array_equal(back.search_faces(probes, 5)[0], ann.search_faces(probes, 5)[0])
    same, status = open_index(path, back.face_ids(), persons[1:], vectors[1:], "m1")
    assert status.status == "loaded" and not status.rebuilt and "up to date" in status.note


def test_missing_stale_corrupt_and_other_model_files_are_rebuilt(tmp_path):
    faces, persons, vectors, probes, _ = clustered(300, 2)
    path = tmp_path / "g.db.ann"
    _, st = open_index(path, faces, persons, vectors, "m1")
    assert (st.status, st.rebuilt) == ("built", True) and "missing" in st.note and path.exists()

    # behind by a few faces: caught up, not rebuilt
    ann, st = open_index(path, faces[:-3], persons[:-3], vectors[:-3], "m1")
    assert (st.status, st.rebuilt) == ("caught_up", False) and len(ann) == len(faces) - 3
    # far behind: rebuilt
    _, st = open_index(path, faces[:100], persons[:100], vectors[:100], "m1")
    assert st.rebuilt and "stale" in st.note
    # another model version
    _, st = open_index(path, faces[:100], persons[:100], vectors[:100], "m2")
    assert st.rebuilt and "model m1" in st.note
    # corrupt: one flipped byte in the payload, then a truncated file, then garbage
    data = bytearray(path.read_bytes())
    data[-100] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(AnnFileError, match="checksum"):
        AnnIndex.load(path)
    ann, st = open_index(path, faces[:100], persons[:100], vectors[:100], "m2")
    assert st.rebuilt and "corrupt" in st.note and len(ann) == 100
    path.write_bytes(path.read_bytes()[:-10])
    _, st = open_index(path, faces[:100], persons[:100], vectors[:100], "m2")
    assert st.rebuilt and "truncated" in st.note
    path.write_bytes(b"garbage")
    _, st = open_index(path, faces[:100], persons[:100], vectors[:100], "m2")
    assert st.rebuilt and "unusable" in st.note
    AnnIndex.load(path)  # the rebuilt file is valid


def img(person: int, variant: int = 1) -> bytes:
    return png_bytes(person_image(person, variant))


def test_gallery_with_ann_index_stays_consistent_through_enroll_and_remove(tmp_path):
    url = f"sqlite:///{tmp_path / 'gallery.db'}"
    with Gallery(url, verifier=numpy_verifier(), index="ann") as g:
        for p in range(1, 9):
            g.enroll(f"p{p}", [img(p, 1), img(p, 2)])
        st = g.index_status
        assert st.backend == "ann" and st.path == str(tmp_path / "gallery.db.ann")
        assert [r.person for r in g.identify(img(3, 5))] == ["p3"]
        ann = g.search_backend.ann
        g.enroll("p9", [img(9, 1)])                          # added in place, no rebuild
        assert g.search_backend.ann is ann and len(ann) == 17
        assert g.identify(img(9, 4))[0].person == "p9"
        assert g.remove("p3") == 2
        res = g.identify(img(3, 5))[0]
        assert res.person is None and all(c.person != "p3" for c in res.candidates)
        assert g.search_backend.ann is ann and len(ann) == 15 and not g.index_status.rebuilt
        top = g.identify(img(5, 5), top_k=3)[0]
        assert top.person == "p5" and len(top.candidates) == 3
        with pytest.raises(Exception, match="p2"):
            g.enroll("someone else", [img(2, 7)])          # duplicate gate through the ANN path

    # the file saved on close matches the database: loaded as is by the next process
    with Gallery(url, verifier=numpy_verifier(), index="ann") as g:
        assert g.index_status.status == "loaded" and not g.index_status.rebuilt
        assert g.identify(img(9, 4))[0].person == "p9"
        # a write by "another process" (an exact-mode gallery) is caught up on refresh
        with Gallery(url, verifier=numpy_verifier(), index="exact") as other:
            other.enroll("p10", [img(10, 1)])
            assert other.index_status.backend == "exact"
        g.refresh()
        assert g.identify(img(10, 3))[0].person == "p10" and g.index_status.status == "memory"
        status = g.rebuild_index()
        assert status.rebuilt and status.n_faces == 16

    # a corrupt file is rebuilt from the database, and searches agree with the exact scan
    path = tmp_path / "gallery.db.ann"
    path.write_bytes(path.read_bytes()[:200])
    with Gallery(url, verifier=numpy_verifier(), index="ann") as g, \
            Gallery(url, verifier=numpy_verifier(), index="exact") as exact:
        assert g.index_status.rebuilt and "unusable" in g.index_status.note
        for p in (1, 4, 10, 42):
            a, e = g.identify(img(p, 6))[0], exact.identify(img(p, 6))[0]
            assert (a.person, [c.person for c in a.candidates]) == (e.person, [c.person for c in e.candidates])
            assert a.distance == pytest.approx(e.distance, abs=1e-5)


def test_auto_stays_exact_for_small_galleries_and_exact_never_imports_faiss(tmp_path):
    url = f"sqlite:///{tmp_path / 'gallery.db'}"
    with Gallery(url, verifier=numpy_verifier()) as g:
        g.enroll("a", [img(1)])
        assert g.index_status.backend == "exact" and "faces <" in g.index_status.note
    assert not (tmp_path / "gallery.db.ann").exists()
    with pytest.raises(ValueError, match="unknown index"):
        Gallery(url, verifier=numpy_verifier(), index="fast")


def test_ann_mode_without_faiss_is_a_clear_error(tmp_path, monkeypatch):
    url = f"sqlite:///{tmp_path / 'gallery.db'}"
    with Gallery(url, verifier=numpy_verifier(), index="exact") as g:
        g.enroll("a", [img(1)])
    monkeypatch.setattr("facever.gallery.ann_index.AUTO_MIN_FACES", 1)  # "auto" would pick the ANN index
    with Gallery(url, verifier=numpy_verifier(), index="auto") as g:
        assert g.identify(img(1, 2))[0].person == "a" and g.index_status.backend == "ann"
    monkeypatch.setitem(sys.modules, "faiss", None)  # import faiss → ImportError
    with Gallery(url, verifier=numpy_verifier(), index="ann") as g:
        with pytest.raises(Exception, match="faiss-cpu"):
            g.identify(img(1, 2))
    with Gallery(url, verifier=numpy_verifier(), index="auto") as g:
        assert g.identify(img(1, 2))[0].person == "a"
        assert g.index_status.backend == "exact" and "faiss is not installed" in g.index_status.note
