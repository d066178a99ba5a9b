"""The Gallery API: enroll, identify, verify_person, management, model versions, concurrency, crashes.

Most tests use synthetic "faces" (coloured grids), a stub detector and a NumPy encoder (see
conftest.py), so they need no TensorFlow; one test runs the real MTCNN + a tiny Keras model.
"""

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
from conftest import numpy_verifier, person_image, png_bytes
from sqlalchemy import select

from facever.errors import (DuplicateIdentityError, FaceQualityError, ModelVersionMismatchError, NoFaceError,
                            PersonNotFoundError)
from facever.gallery import Gallery, PersonExistsError, SearchIndex, nearest_k, person_distances
from facever.store import check_database
from facever.store.schema import EmbeddingRow, FaceRow, ModelRow, PersonRow

TESTS = Path(__file__).resolve().parent


#: Gaussian blur (σ, px of the 112-px image) that leaves the face below the sharpness bar: crops are
#: aligned in the model's geometry, 16 px for the NumPy test model, so milder blur survives there.
BLURRY = 20


def img(person: int, variant: int = 1, **kw) -> bytes:
    return png_bytes(person_image(person, variant, **kw))


@pytest.fixture
def sqlite_url(tmp_path):
    return f"sqlite:///{tmp_path / 'gallery.db'}"


@pytest.fixture
def gallery(db_url):
    with Gallery(db_url, verifier=numpy_verifier()) as g:
        yield g


def snapshot(g: Gallery) -> dict:
    """Every row of every table (to compare a database before/after)."""
    with g.db.read() as s:
        return {t.__tablename__: sorted(map(tuple, s.execute(select(t.__table__)).all()), key=repr)
                for t in (PersonRow, FaceRow, EmbeddingRow, ModelRow)}


# -- enrolment ------------------------------------------------------------------------------------
def test_enroll_reports_enrolled_skipped_and_rejected(gallery):
    images = [img(1, 1), img(1, 2), img(1, 2), img(1, 0, blur=BLURRY), img(1, 1, size=40),
              png_bytes(np.zeros((80, 80, 3), np.uint8)), b"not an image"]
    report = gallery.enroll("ann", images)
    status = [(o.status, o.reason) for o in report.outcomes]
    assert [s for s, _ in status] == ["enrolled", "enrolled", "skipped", "rejected", "rejected", "rejected", "rejected"]
    assert "same image given twice" in status[2][1]
    assert "too blurry" in status[3][1] and "too small" in status[4][1]
    assert "no face" in status[5][1] and "<bytes #7>" in status[6][1]
    assert (report.enrolled, report.skipped, report.rejected, report.ok) == (2, 1, 4, False)
    assert report.outcomes[0].face_id is not None and report.outcomes[0].quality.face_size > 40

    again = gallery.enroll("ann", [img(1, 1), img(1, 3)])
    assert [o.status for o in again.outcomes] == ["skipped", "enrolled"]
    assert "already enrolled" in again.outcomes[0].reason
    forced = gallery.enroll("ann", [img(1, 0, blur=BLURRY), img(1, 1, size=40)], force=True)
    assert forced.enrolled == 2 and forced.ok
    assert [(p.name, p.n_faces) for p in gallery.people()] == [("ann", 5)]


def test_enroll_files_hashes_bytes_and_keeps_source_paths(tmp_path, gallery):
    folder = tmp_path / "ph otos" / "Zoë"
    folder.mkdir(parents=True)
    a, b = folder / "a 1.png", folder / "copy.png"
    a.write_bytes(img(2, 1))
    b.write_bytes(img(2, 1))
    report = gallery.enroll("zoe", [a, str(b)])
    assert [o.status for o in report.outcomes] == ["enrolled", "skipped"]
    assert report.outcomes[0].source == str(a)
    assert report.outcomes[0].sha256 == report.outcomes[1].sha256
    assert [f.source for f in gallery.person("zoe").faces] == [str(a)]


def test_strict_enroll_raises_the_first_rejection_and_writes_nothing(gallery):
    before = snapshot(gallery)
    with pytest.raises(FaceQualityError, match="too blurry"):
        gallery.enroll("ann", [img(1, 1), img(1, 0, blur=BLURRY)], strict=True)
    with pytest.raises(NoFaceError):
        gallery.enroll("ann", [png_bytes(np.zeros((60, 60, 3), np.uint8))], strict=True)
    assert snapshot(gallery) == before


def test_a_failure_mid_write_leaves_the_database_exactly_as_it_was(gallery, monkeypatch):
    from facever.store import repository

    gallery.enroll("ann", [img(1, 1)])
    before = snapshot(gallery)
    real_add = repository.add_face
    calls = []

    def failing_add(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise RuntimeError("disk on fire")
        return real_add(*args, **kwargs)

    monkeypatch.setattr(repository, "add_face", failing_add)
    with pytest.raises(RuntimeError, match="disk on fire"):
        gallery.enroll("bob", [img(2, 1), img(2, 2), img(2, 3)])
    assert len(calls) == 2
    assert snapshot(gallery) == before
    monkeypatch.undo()
    assert gallery.enroll("bob", [img(2, 1), img(2, 2)]).enrolled == 2


def test_duplicate_identity_is_refused_unless_allowed(gallery):
    gallery.enroll("ann", [img(1, 1)])
    before = snapshot(gallery)
    with pytest.raises(DuplicateIdentityError, match=r"0\.[01]\d\d from enrolled person 'ann'") as exc:
        gallery.enroll("annabel", [img(2, 1), img(1, 2)])
    assert "<bytes #2>" in str(exc.value)
    assert snapshot(gallery) == before
    # more photos of the same person are of course fine
    assert gallery.enroll("ann", [img(1, 5)]).enrolled == 1
    report = gallery.enroll("annabel", [img(2, 1), img(1, 2)], allow_duplicate=True)
    assert report.enrolled == 2
    # from now on an ann-like face is also near annabel
    with pytest.raises(DuplicateIdentityError, match="'annabel'"):
        gallery.enroll("ann", [img(1, 6)])


@pytest.mark.parametrize("bad", ["", "   ", "a\nb", "tab\there", "x" * 256])
def test_invalid_names_are_refused(gallery, bad):
    with pytest.raises(ValueError):
        gallery.enroll(bad, [img(1)])


def test_odd_names_are_stored_and_returned_exactly(gallery):
    names = ["Zoë Ångström 李小龍", "Robert'); DROP TABLE people;--", 'O"Brien \'quoted\'', "a/b\\c", "  padded  ",
             "%_wild*cards?", "[bold]markup[/]"]
    for i, name in enumerate(names):
        assert gallery.enroll(name, [img(10 + i)]).enrolled == 1
    assert sorted(p.name for p in gallery.people()) == sorted(names)
    for i, name in enumerate(names):
        assert gallery.person(name).name == name
        assert gallery.identify(img(10 + i, 7))[0].person == name
    with pytest.raises(PersonNotFoundError):
        gallery.person("%")


# -- identification -------------------------------------------------------------------------------
def test_identify_known_unknown_and_top_k(gallery):
    for p in range(1, 5):
        gallery.enroll(f"p{p}", [img(p, 1), img(p, 2)])
    [res] = gallery.identify(img(3, 9), top_k=3)
    assert res.person == "p3" and res.known and res.distance < 0.2 and res.threshold == 0.5
    assert len(res.candidates) == 3 and res.candidates[0].person == "p3"
    assert [c.distance for c in res.candidates] == sorted(c.distance for c in res.candidates)
    assert res.face.box and res.quality.face_size > 40 and res.model_version == "np-1"

    [unknown] = gallery.identify(img(42, 1), top_k=10)
    assert unknown.person is None and not unknown.known and unknown.distance > 0.5
    assert len(unknown.candidates) == 4  # never more than there are people
    assert gallery.identify(img(42, 1), threshold=2.0)[0].person is not None
    assert gallery.identify(img(3, 9), threshold=0.0)[0].person is None
    assert unknown.to_dict()["person"] is None and unknown.to_dict()["candidates"]


def test_an_old_bundles_fixed_identify_threshold_is_ignored_for_tau(db_url):
    """A format-3 bundle's ``identify_threshold`` (the removed fixed policy) is read but not used: a
    model without open-set data identifies at τ, and the answer's note says so."""
    from facever.bundle import BundleMetadata

    verifier = numpy_verifier()
    old = {**verifier.bundle.metadata.to_json(), "format_version": 3, "identify_threshold": {"value": 0.001}}
    verifier.bundle.metadata = BundleMetadata.from_json(old)
    with Gallery(db_url, verifier=verifier) as g:
        g.enroll("ann", [img(1, 1)])
        [res] = g.identify(img(1, 2))  # ~0.02 from ann: named at τ 0.5, unknown at 0.001
        assert (res.person, res.threshold, res.threshold_policy, res.expected_fpir) == ("ann", 0.5, "tau", None)
        note = g.threshold_for().note
        assert "verification threshold τ is used" in note and "no open-set calibration" in note


def test_identify_on_an_empty_gallery_is_unknown(gallery):
    [res] = gallery.identify(img(1))
    assert res.person is None and res.distance is None and res.candidates == []


def test_nearest_and_mean3_scoring_can_disagree(gallery):
    # ann: one photo very close to the query, two far ones; bob: three photos half-way
    gallery.enroll("ann", [img(1, 1), img(7, 1), img(8, 1)])
    blends = [png_bytes(((person_image(1, 0).astype(int) + person_image(p, 0)) // 2).astype(np.uint8))
              for p in (20, 21, 22)]
    gallery.enroll("bob", blends)
    query = img(1, 9)
    assert gallery.identify(query, scoring="nearest", threshold=2)[0].person == "ann"
    mean3 = gallery.identify(query, scoring="mean3", threshold=2)[0]
    assert mean3.person == "bob" and mean3.scoring == "mean3"
    with pytest.raises(ValueError):
        Gallery("sqlite://", verifier=numpy_verifier(), scoring="median")


def _reference(queries, vectors, person_of_row, k3=False):
    people = sorted(set(person_of_row))
    out = np.zeros((len(queries), len(people)))
    for qi, q in enumerate(queries):
        for pi, p in enumerate(people):
            d = sorted(np.linalg.norm(vectors[person_of_row == p] - q, axis=1))
            out[qi, pi] = np.mean(d[:3]) if k3 else d[0]
    return out


def test_vectorised_person_scores_match_a_plain_loop():
    rng = np.random.default_rng(0)
    sizes = [1, 2, 3, 5, 1, 4]
    person_of_row = np.repeat(np.arange(len(sizes)), sizes)
    vectors = rng.normal(size=(len(person_of_row), 16)).astype(np.float32)
    vectors[3] = vectors[4] = vectors[5]  # ties inside person 2
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    queries = np.concatenate([vectors[[0, 5]], rng.normal(size=(3, 16)).astype(np.float32)])
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    starts = np.searchsorted(person_of_row, np.arange(len(sizes)))
    for mean3 in (False, True):
        got = person_distances(queries, vectors, starts, "mean3" if mean3 else "nearest")
        np.testing.assert_allclose(got, _reference(queries, vectors, person_of_row, mean3), atol=2e-3)
    idx, dist = nearest_k(got, 3)
    ref = np.argsort(got, axis=1)[:, :3]
    np.testing.assert_array_equal(idx, ref)
    np.testing.assert_allclose(dist, np.take_along_axis(got, ref, 1))
    assert nearest_k(got, 99)[0].shape == (5, 6) and nearest_k(got[:, :0], 3)[0].shape == (5, 0)


def test_index_updated_in_place_equals_a_fresh_load(gallery):
    if gallery.search_backend.backend == "pgvector":
        pytest.skip("pgvector keeps no in-memory matrix")
    gallery.enroll("m", [img(1, 1)])
    gallery.identify(img(1, 2))  # loads the matrix
    gallery.enroll("a", [img(2, 1), img(2, 2)])
    gallery.enroll("z", [img(3, 1)])
    gallery.enroll("m", [img(1, 3)])
    version, dim = gallery.model_version, 128
    live: SearchIndex = gallery.search_backend.load(version, dim)
    gallery.refresh()
    fresh = gallery.search_backend.load(version, dim)
    assert live is not fresh and live.names == fresh.names
    np.testing.assert_array_equal(live.starts, fresh.starts)
    np.testing.assert_allclose(live.vectors, fresh.vectors)


def test_verify_person(gallery):
    gallery.enroll("ann", [img(1, 1), img(1, 2)])
    gallery.enroll("bob", [img(2, 1)])
    same = gallery.verify_person(img(1, 9), "ann")
    assert same.same and same.distance < 0.2 and same.threshold == 0.5 and same.far == 0.01
    other = gallery.verify_person(img(1, 9), "bob")
    assert not other.same and other.distance > 0.5
    with pytest.raises(PersonNotFoundError, match="nobody"):
        gallery.verify_person(img(1, 9), "nobody")


# -- management -----------------------------------------------------------------------------------
def test_rename_and_remove(gallery):
    gallery.enroll("ann", [img(1, 1), img(1, 2)])
    gallery.enroll("bob", [img(2, 1)])
    gallery.identify(img(1, 3))
    gallery.rename("ann", "Ann Smith")
    assert gallery.identify(img(1, 3))[0].person == "Ann Smith"
    with pytest.raises(PersonExistsError):
        gallery.rename("Ann Smith", "bob")
    with pytest.raises(PersonNotFoundError):
        gallery.rename("ann", "x")
    assert gallery.remove("Ann Smith") == 2
    with pytest.raises(PersonNotFoundError):
        gallery.remove("Ann Smith")
    assert [p.name for p in gallery.people()] == ["bob"]
    assert gallery.identify(img(1, 3))[0].candidates[0].person == "bob"
    assert check_database(gallery.db).counts == {"people": 1, "faces": 1, "embeddings": 1, "models": 1}


def test_removed_person_leaves_no_crop_or_vector_bytes_in_the_files(tmp_path):
    path = tmp_path / "gallery.db"
    with Gallery(f"sqlite:///{path}", verifier=numpy_verifier()) as g:
        g.enroll("keep", [img(2, 1)])
        g.enroll("secret", [img(1, 1)])
        with g.db.read() as s:
            crop, vector = s.execute(select(FaceRow.crop, EmbeddingRow.vector).join(EmbeddingRow)
                                     .join(PersonRow).where(PersonRow.name == "secret")).one()
        markers = [crop[60:92], crop[-60:-28], vector[100:132]]

        def on_disk() -> bytes:
            return b"".join(p.read_bytes() for p in tmp_path.iterdir() if p.name.startswith("gallery.db"))

        assert all(m in on_disk() for m in markers)
        g.remove("secret")
        data = on_disk()
        assert not any(m in data for m in markers)
        assert b"secret" not in data
        assert [p.name for p in g.people()] == ["keep"]


def test_model_version_mismatch_is_refused_until_reindex(sqlite_url):
    with Gallery(sqlite_url, verifier=numpy_verifier("np-1", seed=0)) as g:
        g.enroll("ann", [img(1, 1), img(1, 2)])
        g.enroll("bob", [img(2, 1)])
    with Gallery(sqlite_url, verifier=numpy_verifier("np-2", seed=1)) as g:
        for call in (lambda: g.identify(img(1, 3)), lambda: g.verify_person(img(1, 3), "ann"),
                     lambda: g.enroll("cy", [img(3, 1)])):
            with pytest.raises(ModelVersionMismatchError, match="facever reindex"):
                call()
        seen = []
        report = g.reindex(progress=lambda done, total: seen.append((done, total)), batch_size=2)
        assert (report.embedded, report.total, report.model_version) == (3, 3, "np-2")
        assert seen[0] == (0, 3) and seen[-1] == (3, 3)
        assert g.identify(img(1, 3))[0].person == "ann"
        assert g.reindex().embedded == 0  # nothing left to do
        assert g.reindex(prune=True).pruned == 3
        assert check_database(g.db).model_versions == {"np-2": 3}
    with Gallery(sqlite_url, verifier=numpy_verifier("np-1", seed=0)) as g:
        with pytest.raises(ModelVersionMismatchError):
            g.identify(img(1, 3))


def test_enrolment_records_the_crop_geometry_of_the_model(db_url):
    with Gallery(db_url, verifier=numpy_verifier()) as g:  # an "arcface" model at 16 px
        g.enroll("ann", [img(1, 1), img(1, 2)])
        with g.db.read() as s:
            rows = s.execute(select(FaceRow.crop_template, FaceRow.crop_size)).all()
        assert rows == [("arcface", 16), ("arcface", 16)]
        assert [c.shape for _, c in g.face_crops("ann")] == [(16, 16, 3)] * 2


def test_reindex_refuses_crops_of_another_template(sqlite_url):
    """A model of another template never re-embeds stored crops (no re-warp, no guess from the size),
    nor do crops whose template was never recorded; a model of the same template does."""
    from facever.errors import ModelError

    with Gallery(sqlite_url, verifier=numpy_verifier("np-1")) as g:
        g.enroll("ann", [img(1, 1), img(1, 2)])
        g.enroll("bob", [img(2, 1)])
    dlib_model = numpy_verifier("np-dlib", seed=1)
    dlib_model.bundle.metadata.alignment = "dlib"
    with Gallery(sqlite_url, verifier=dlib_model) as g:
        before = snapshot(g)
        with pytest.raises(ModelError, match=r"expects 'dlib' crops: 3 face\(s\) aligned to 'arcface' \(first face id 1\)"):
            g.reindex()
        assert snapshot(g) == before  # refused before anything was written
        with g.db.write() as s:  # a face stored before the geometry was recorded (migration 0005 found none)
            s.execute(FaceRow.__table__.update().where(FaceRow.id == 3).values(crop_template=None))
        with pytest.raises(ModelError, match=r"1 face\(s\) of unrecorded geometry \(first face id 3\)"):
            g.reindex()
        with pytest.raises(ModelError, match="aligned to the 'arcface' template but the model expects 'dlib'"):
            g.verifier.embedder.embed_crops(np.zeros((1, 16, 16, 3), np.uint8), template="arcface")
    with Gallery(sqlite_url, verifier=numpy_verifier("np-2", seed=2)) as g:  # same template: fine, but not face 3
        with pytest.raises(ModelError, match="unrecorded geometry"):
            g.reindex()
        with g.db.write() as s:
            s.execute(FaceRow.__table__.update().where(FaceRow.id == 3).values(crop_template="arcface"))
        assert g.reindex().embedded == 3 and g.identify(img(1, 3))[0].person == "ann"


def test_reindex_checks_each_batch_for_crops_stored_after_its_first_check(sqlite_url, monkeypatch):
    """A crop of another template stored by another writer after reindex's first check is refused
    when its batch is read (the first check is replaced by one that saw nothing to refuse)."""
    from facever.errors import ModelError
    from facever.store import repository as repo

    with Gallery(sqlite_url, verifier=numpy_verifier("np-1")) as g:
        g.enroll("ann", [img(1, 1)])
    with Gallery(sqlite_url, verifier=numpy_verifier("np-1")) as g:
        g.enroll("bob", [img(2, 1)])
        with g.db.write() as s:
            s.execute(FaceRow.__table__.update().where(FaceRow.id == 2).values(crop_template="dlib"))
    monkeypatch.setattr(repo, "templates_without_embedding", lambda session, version: {})
    with Gallery(sqlite_url, verifier=numpy_verifier("np-2", seed=2)) as g:
        with pytest.raises(ModelError, match=r"1 face\(s\) aligned to 'dlib' \(first face id 2\)"):
            g.reindex(batch_size=1)
        with g.db.read() as s:  # ann's batch went in; bob's was refused
            assert s.query(repo.EmbeddingRow).filter_by(model_version="np-2").count() == 1


def test_people_listing_needs_no_model(sqlite_url, monkeypatch, tmp_path):
    with Gallery(sqlite_url, verifier=numpy_verifier()) as g:
        g.enroll("ann", [img(1, 1)])
    monkeypatch.setenv("FACEVER_MODEL", str(tmp_path / "no-model"))
    with Gallery(sqlite_url) as g:
        assert [(p.name, p.n_faces) for p in g.people()] == [("ann", 1)]
        detail = g.person("ann")
        assert detail.faces[0].model_versions == ["np-1"] and len(detail.faces[0].sha256) == 64
        assert detail.to_dict()["faces"][0]["quality"]["sharpness"] > 15


# -- open-set thresholds, the duplicate gate ------------------------------------------------------
@pytest.fixture(scope="module")
def open_set_data():
    """Open-set calibration of synthetic identities: identification thresholds ≈ 1.0-1.15 and a
    duplicate gate ≈ 0.9 for the small galleries here, between the NumPy test model's same-person
    (≈ 0.1) and most different-person (1.1-1.65) distances."""
    from facever.open_set import impostor_distribution, synthetic_embeddings

    x, y = synthetic_embeddings(400, (1, 4), seed=5)
    return impostor_distribution(x, y, description="synthetic test people")


def open_set_verifier(data, **kw):
    verifier = numpy_verifier(**kw)
    verifier.bundle.metadata.open_set = data
    return verifier


def test_identify_threshold_follows_the_gallery_and_says_so(db_url, open_set_data):
    from facever.open_set import threshold_for_gallery

    with Gallery(db_url, verifier=open_set_verifier(open_set_data)) as g:
        for p in range(1, 4):
            g.enroll(f"p{p}", [img(p, 1), img(p, 2)])
        choice = g.threshold_for()
        assert (choice.policy, choice.fpir_target, choice.n_people, choice.n_faces) == ("open_set", 0.01, 3, 6)
        assert choice.expected_fpir == pytest.approx(0.01, rel=1e-3)
        assert choice.threshold == pytest.approx(threshold_for_gallery(open_set_data, 6, 3)[0], abs=1e-6)
        assert "3 people (6 faces)" in choice.note and choice.to_dict()["gallery"] == {"people": 3, "faces": 6}
        [res] = g.identify(img(2, 9))
        assert res.person == "p2" and res.threshold == choice.threshold
        assert (res.threshold_policy, res.fpir_target) == ("open_set", 0.01)
        data = res.to_dict()
        assert data["threshold_policy"] == "open_set" and data["expected_fpir"] == pytest.approx(0.01, rel=1e-3)
        assert g.identify(img(42, 1))[0].person is None  # a stranger
        # more people enrolled: a stricter threshold for the same FPIR
        for p in range(4, 13):
            g.enroll(f"p{p}", [img(p, 1), img(p, 2)])
        bigger = g.threshold_for()
        assert bigger.threshold < choice.threshold and bigger.n_people == 12
        assert g.threshold_for(fpir=0.2).threshold > bigger.threshold > g.threshold_for(fpir=0.001).threshold
        [loose] = g.identify(img(2, 9), fpir=0.2)
        assert loose.fpir_target == 0.2 and loose.threshold == g.threshold_for(fpir=0.2).threshold
        # a fixed threshold overrides the target, and its FPIR here is still stated
        [fixed] = g.identify(img(2, 9), threshold=0.3, fpir=0.2)
        assert (fixed.threshold, fixed.threshold_policy, fixed.fpir_target) == (0.3, "fixed", None)
        assert 0 <= fixed.expected_fpir < 1e-3
        with pytest.raises(ValueError):
            g.identify(img(2, 9), fpir=1.0)


def test_without_open_set_data_tau_is_used_and_flagged(sqlite_url):
    from facever.errors import ModelError

    with Gallery(sqlite_url, verifier=numpy_verifier()) as g:
        g.enroll("ann", [img(1, 1)])
        [res] = g.identify(img(1, 2))
        assert (res.threshold, res.threshold_policy, res.expected_fpir) == (0.5, "tau", None)
        assert "no open-set calibration" in g.threshold_for().note
        with pytest.raises(ModelError, match="no open-set calibration"):
            g.identify(img(1, 2), fpir=0.01)
        fixed = g.threshold_for(threshold=0.4)
        assert (fixed.policy, fixed.threshold, fixed.expected_fpir) == ("fixed", 0.4, None)
        [res] = g.identify(img(1, 2), threshold=0.001)  # the override wins over τ, and says it is fixed
        assert (res.person, res.threshold, res.threshold_policy) == (None, 0.001, "fixed")


def test_duplicate_gate_does_not_fire_on_strangers(sqlite_url, open_set_data):
    """τ = 1.7 takes different people of the NumPy model (1.1-1.65 apart) for the same: the old gate
    refused every stranger. The open-set gate refuses only what a stranger almost never comes near."""
    with Gallery(sqlite_url, verifier=numpy_verifier(threshold=1.7)) as g:
        g.enroll("p1", [img(1, 1)])
        with pytest.raises(DuplicateIdentityError, match="no open-set calibration"):
            g.enroll("p2", [img(2, 1)])
    with Gallery(sqlite_url, verifier=open_set_verifier(open_set_data, threshold=1.7)) as g:
        for p in range(2, 30):
            assert g.enroll(f"p{p}", [img(p, 1), img(p, 2)]).enrolled == 2
        gate = g.duplicate_threshold()
        assert gate.policy == "open_set" and gate.threshold < 1.0 and gate.expected_fpir < 1e-3
        before = snapshot(g)
        with pytest.raises(DuplicateIdentityError) as exc:
            g.enroll("annabel", [img(50, 1), img(7, 5)])
        message = str(exc.value)
        assert "<bytes #2>" in message and "from enrolled person 'p7'" in message
        assert "enroll them under that name" in message and "--allow-duplicate" in message
        assert "duplicate gate" in message and "\n" not in message
        assert snapshot(g) == before
        assert g.enroll("annabel", [img(50, 1), img(7, 5)], allow_duplicate=True).enrolled == 2


def test_readers_never_create_a_gallery(tmp_path):
    from facever.errors import NoGalleryError

    missing = tmp_path / "typo" / "gallery.db"
    with pytest.raises(NoGalleryError, match=f"no gallery at {missing}; enroll someone first"):
        Gallery(f"sqlite:///{missing}", create=False)
    assert not missing.parent.exists()
    with Gallery(f"sqlite:///{missing}", verifier=numpy_verifier()) as g:  # writers do create it
        g.enroll("ann", [img(1, 1)])
    with Gallery(f"sqlite:///{missing}", create=False) as g:
        assert [p.name for p in g.people()] == ["ann"]


def test_face_crops_montage_and_annotation(tmp_path, sqlite_url):
    from facever.drawing import annotate, ascii_label, montage, write_image

    with Gallery(sqlite_url, verifier=numpy_verifier()) as g:
        g.enroll("Zoë", [img(1, 1), img(1, 2), img(1, 3)])
        crops = g.face_crops("Zoë")
        with pytest.raises(PersonNotFoundError):
            g.face_crops("nobody")
    assert len(crops) == 3 and all(c.dtype == np.uint8 and c.ndim == 3 for _, c in crops)
    assert [i for i, _ in crops] == sorted(i for i, _ in crops)
    sheet = montage([c for _, c in crops], labels=[f"#{i}" for i, _ in crops], tile=64)
    assert sheet.shape == (2 * 64, 2 * 64, 3)  # 3 tiles: 2 columns, 2 rows
    assert montage([crops[0][1]] * 5, columns=5, tile=50).shape == (50, 250, 3)
    photo = person_image(1, 1, size=200)
    drawn = annotate(photo, [(20, 30, 150, 180), (0, 0, 40, 40)], ["Zoë 0.123", "unknown 1.234"], [True, False])
    assert drawn.shape == photo.shape and not np.array_equal(drawn, photo)
    assert np.array_equal(photo, person_image(1, 1, size=200))  # the input is not modified
    assert ascii_label("Zoë Ångström 李") == "Zoe Angstrom ?"
    out = write_image(tmp_path / "sheet.png", sheet)
    back = cv2.cvtColor(cv2.imread(str(out)), cv2.COLOR_BGR2RGB)
    np.testing.assert_array_equal(back, sheet)
    with pytest.raises(OSError, match="suffix"):
        write_image(tmp_path / "sheet.nope", sheet)
    with pytest.raises(OSError, match="does not exist"):
        write_image(tmp_path / "no" / "sheet.jpg", sheet)
    with pytest.raises(ValueError):
        montage([])


# -- folders, concurrency, crashes ---------------------------------------------------------------
def make_people_dir(root: Path, people: dict[str, int], per_person: int = 3) -> Path:
    for name, pid in people.items():
        (root / name).mkdir(parents=True)
        for v in range(1, per_person + 1):
            (root / name / f"{v}.png").write_bytes(img(pid, v))
    return root


def test_enroll_dir_one_transaction_per_person(tmp_path, gallery):
    root = make_people_dir(tmp_path / "people", {"ann": 1, "bob": 2, "copycat": 1})
    (root / "ann" / ".hidden.png").write_bytes(img(5))
    (root / "ann" / "notes.txt").write_text("not an image")
    (root / "loose.png").write_bytes(img(6))
    (root / ".git").mkdir()
    seen = []
    reports = list(gallery.enroll_dir(root, progress=lambda d, t: seen.append((d, t))))
    assert [(r.person, r.enrolled, r.error is None) for r in reports] == [("ann", 3, True), ("bob", 3, True),
                                                                          ("copycat", 0, False)]
    assert "'ann'" in reports[2].error and not reports[2].ok
    assert seen[-1] == (9, 9)
    assert [p.name for p in gallery.people()] == ["ann", "bob"]
    again = list(gallery.enroll_dir(root, allow_duplicate=True))
    assert [(r.skipped, r.enrolled) for r in again] == [(3, 0), (3, 0), (0, 3)]


WORKER = textwrap.dedent("""
    import sys, time
    sys.path.insert(0, {tests!r})
    from conftest import numpy_verifier
    from facever.gallery import Gallery
    url, mode, arg = sys.argv[1], sys.argv[2], sys.argv[3]
    with Gallery(url, verifier=numpy_verifier()) as g:
        if mode == "people":
            import conftest
            for name in arg.split(","):
                pid = int(name[1:])
                g.enroll(name, [conftest.png_bytes(conftest.person_image(pid, v)) for v in (1, 2)])
        else:  # slow folder enrolment, to be killed
            for report in g.enroll_dir(arg, progress=lambda d, t: time.sleep(0.15)):
                print("committed", report.person, flush=True)
""")


def run_worker(*args) -> subprocess.Popen:
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    return subprocess.Popen([sys.executable, "-c", WORKER.format(tests=str(TESTS)), *args], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_four_processes_enrolling_at_once_lose_nothing(tmp_path):
    url = f"sqlite:///{tmp_path / 'shared.db'}"  # created by the workers' first use, concurrently
    groups = [",".join(f"p{w * 10 + i}" for i in range(1, 6)) for w in range(4)]
    procs = [run_worker(url, "people", g) for g in groups]
    for p in procs:
        _out, err = p.communicate(timeout=240)
        assert p.returncode == 0, err[-2000:]
    with Gallery(url, verifier=numpy_verifier()) as g:
        people = g.people()
        assert sorted(p.name for p in people) == sorted(",".join(groups).split(","))
        assert all(p.n_faces == 2 for p in people)
        report = g.check()
        assert report.ok and report.counts["faces"] == 40 and report.counts["embeddings"] == 40


def test_killed_enroll_dir_leaves_a_consistent_database_and_rerun_completes(tmp_path):
    names = {f"person{i}": i for i in range(1, 7)}
    root = make_people_dir(tmp_path / "people", names, per_person=3)
    url = f"sqlite:///{tmp_path / 'gallery.db'}"
    proc = run_worker(url, "dir", str(root))
    line = proc.stdout.readline()  # the first person is committed
    assert line.startswith("committed"), proc.stderr.read()[-2000:]
    time.sleep(0.4)  # somewhere inside the next person's images
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    proc.stdout.close()
    proc.stderr.close()
    with Gallery(url, verifier=numpy_verifier()) as g:
        report = g.check()
        assert report.ok and report.integrity == ["ok"]
        partial = {p.name: p.n_faces for p in g.people()}
        assert 1 <= len(partial) < len(names) and set(partial.values()) == {3}  # all or nothing per person
        reports = list(g.enroll_dir(root))
        assert sum(r.skipped for r in reports) == 3 * len(partial)
        assert sum(r.enrolled for r in reports) == 3 * (len(names) - len(partial))
        assert {p.name: p.n_faces for p in g.people()} == {n: 3 for n in names}
        assert g.check().counts["faces"] == 18


# -- the real pipeline, once -----------------------------------------------------------------------
def test_real_photo_with_mtcnn_and_a_keras_model(tmp_path, astronaut, tiny_bundle_dir):
    from facever.api import FaceVerifier

    photo = tmp_path / "astronaut.jpg"
    cv2.imwrite(str(photo), cv2.cvtColor(astronaut, cv2.COLOR_RGB2BGR))
    with Gallery(f"sqlite:///{tmp_path / 'g.db'}", verifier=FaceVerifier(model=tiny_bundle_dir)) as g:
        report = g.enroll("Eileen Collins", [photo])
        assert report.enrolled == 1, report.outcomes
        assert report.outcomes[0].face.score > 0.9
        [res] = g.identify(photo.read_bytes())
        assert res.person == "Eileen Collins" and res.distance < 0.05
        face = g.person("Eileen Collins").faces[0]
        assert face.source == str(photo) and face.quality["face_size"] > 40
