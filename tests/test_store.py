"""The gallery store: schema, SQLite settings, Alembic upgrades, transactions, errors, check, backup.

Runs on SQLite, and on PostgreSQL too when FACEVER_TEST_POSTGRES_URL names a throw-away database.
"""

import sqlite3
import stat
from datetime import datetime, timezone

import numpy as np
import pytest
from sqlalchemy import create_engine, insert, select, text

from facever.errors import DatabaseError, NoGalleryError
from facever.store import Database, WriteConflict, check_database, head_revision
from facever.store import repository as repo
from facever.store.schema import Base, EmbeddingRow, FaceRow, ModelRow, PersonRow
from facever.store.session import alembic_config


def _face(sha: str = "a" * 64) -> repo.NewFace:
    return repo.NewFace(crop_png=b"\x89PNG fake crop", source="x.jpg", sha256=sha, box=[0, 0, 10, 10],
                        landmarks=[[1, 2]] * 5, detector_score=0.9,
                        quality={"face_size": 50.0, "sharpness": 20.0, "frontality": 1.0},
                        crop_template="arcface", crop_size=112)


def _populate(db: Database, people=("ann", "bob"), faces_each=2) -> None:
    rng = np.random.default_rng(0)
    with db.write() as s:
        repo.ensure_model(s, "v1", {"architecture": "test"})
        for name in people:
            person = repo.get_or_create_person(s, name)
            for i in range(faces_each):
                repo.add_face(s, person.id, _face(f"{name}{i}".ljust(64, "0")), "v1", rng.normal(size=128))


def _table_rows(db: Database) -> dict:
    with db.read() as s:
        return {t.__tablename__: sorted(map(tuple, s.execute(select(t.__table__)).all()), key=repr)
                for t in (PersonRow, FaceRow, EmbeddingRow, ModelRow)}


# -- creation and settings ------------------------------------------------------------------------
def test_new_sqlite_file_is_private_created_with_parents_and_configured(tmp_path):
    path = tmp_path / "deep" / "er" / "gallery.db"
    db = Database(f"sqlite:///{path}")
    try:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert db.revision() == head_revision()
        with db.engine.connect() as conn:
            pragma = lambda p: conn.exec_driver_sql(f"PRAGMA {p}").scalar()  # noqa: E731
            assert pragma("journal_mode") == "wal"
            assert pragma("foreign_keys") == 1
            assert pragma("busy_timeout") == 30000
            assert pragma("secure_delete") == 1
            conn.exec_driver_sql("CREATE TEMP TABLE t (x)")
            wal = path.with_name(path.name + "-wal")
            assert wal.exists() and stat.S_IMODE(wal.stat().st_mode) == 0o600
    finally:
        db.close()


def test_default_url_comes_from_config(tmp_path, monkeypatch):
    monkeypatch.delenv("FACEVER_DB", raising=False)
    monkeypatch.setenv("FACEVER_HOME", str(tmp_path / "home"))
    db = Database()
    db.close()
    assert (tmp_path / "home" / "gallery.db").is_file()


def test_in_memory_sqlite_works():
    db = Database("sqlite://")
    _populate(db)
    with db.read() as s:
        assert repo.counts(s)["faces"] == 4
    db.close()


def test_schema_from_migrations_matches_the_orm(db_url):
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    from facever.store.vectors import include_object

    db = Database(db_url)
    with db.engine.connect() as conn:  # the pgvector column and index (PostgreSQL only) are not in the ORM
        opts = {"compare_type": True, "include_object": include_object}
        diff = compare_metadata(MigrationContext.configure(conn, opts=opts), Base.metadata)
    db.close()
    assert diff == []


# -- transactions and constraints -------------------------------------------------------------------
def test_vectors_round_trip_as_float32_bytes():
    v = np.random.default_rng(1).normal(size=(3, 128)).astype(np.float32)
    blobs = [repo.encode_vector(x) for x in v]
    assert all(len(b) == 512 for b in blobs)
    np.testing.assert_array_equal(repo.decode_vectors(blobs, 128), v)


def test_failed_write_rolls_back_everything(db_url):
    db = Database(db_url)
    _populate(db)
    before = _table_rows(db)
    with pytest.raises(RuntimeError, match="boom"):
        with db.write() as s:
            person = repo.get_or_create_person(s, "carl")
            repo.add_face(s, person.id, _face("c" * 64), "v1", np.ones(128))
            repo.delete_person(s, repo.require_person(s, "ann").id)
            raise RuntimeError("boom")
    assert _table_rows(db) == before
    db.close()


def test_unique_constraints_surface_as_write_conflicts(db_url):
    db = Database(db_url)
    _populate(db, people=("ann",), faces_each=1)
    with pytest.raises(WriteConflict):
        with db.write() as s:
            s.add(PersonRow(name="ann"))
    with pytest.raises(WriteConflict):
        with db.write() as s:
            ann = repo.require_person(s, "ann")
            repo.add_face(s, ann.id, _face("ann0".ljust(64, "0")), "v1", np.ones(128))
    db.close()


def test_deleting_a_person_cascades_to_faces_and_embeddings(db_url):
    db = Database(db_url)
    _populate(db)
    with db.write() as s:
        # a plain DELETE of the person row: the database's ON DELETE CASCADE does the rest
        s.execute(PersonRow.__table__.delete().where(PersonRow.name == "ann"))
    with db.read() as s:
        assert repo.counts(s) == {"people": 1, "faces": 2, "embeddings": 2, "models": 1}
        assert repo.orphans(s) == {"faces_without_person": 0, "embeddings_without_face": 0,
                                   "unrecorded_model_versions": 0}
    db.close()


# -- migrations -----------------------------------------------------------------------------------
def test_upgrade_from_the_initial_revision_keeps_every_row(db_url):
    from alembic import command

    from migration_support import add_old_face, add_old_model, project, stored_rows

    engine = create_engine(db_url)
    with engine.begin() as conn:
        command.upgrade(alembic_config(conn), "0001")
        conn.execute(insert(PersonRow.__table__).values(id=1, name="ann", created=datetime(2024, 1, 1, tzinfo=timezone.utc)))
        add_old_model(conn)
        add_old_face(conn, 1, 1, _face().crop_png, _face().sha256)
        before = stored_rows(conn)
    engine.dispose()
    db = Database(db_url, upgrade=False)
    assert db.upgrade()[1] == head_revision()
    assert db.revision() == head_revision()
    with db.engine.connect() as conn:
        assert project(stored_rows(conn), before) == before and len(before["faces"]) == 1
    db.close()


def test_database_from_a_newer_facever_is_refused(db_url):
    db = Database(db_url)
    with db.connection(write=True) as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = '9999_future'"))
    db.close()
    with pytest.raises(DatabaseError, match="written by a newer facever"):
        Database(db_url)


def test_corrupt_file_is_a_database_error(tmp_path):
    path = tmp_path / "gallery.db"
    path.write_bytes(b"this is not a database, just some text" * 100)
    with pytest.raises(DatabaseError, match="corrupt or not a database"):
        Database(f"sqlite:///{path}")


def test_read_only_file_is_a_clear_database_error(tmp_path):
    path = tmp_path / "gallery.db"
    Database(f"sqlite:///{path}").close()
    path.chmod(0o400)
    try:
        with pytest.raises(DatabaseError, match="read-only"):
            Database(f"sqlite:///{path}")
    finally:
        path.chmod(0o600)


def test_bad_urls_are_database_errors(tmp_path):
    with pytest.raises(DatabaseError, match="invalid database URL"):
        Database("::not a url::")
    with pytest.raises(DatabaseError):
        Database("nosuchdialect://host/db")
    with pytest.raises(NoGalleryError, match="no gallery at .*missing.db; enroll someone first"):
        Database(f"sqlite:///{tmp_path / 'missing.db'}", create=False)
    with pytest.raises(DatabaseError, match="is a folder"):
        Database(f"sqlite:///{tmp_path}")


# -- check and backup -----------------------------------------------------------------------------
def test_check_reports_counts_versions_and_health(db_url):
    db = Database(db_url)
    _populate(db)
    report = check_database(db)
    db.close()
    assert report.ok, report.problems
    assert report.counts == {"people": 2, "faces": 4, "embeddings": 4, "models": 1}
    assert report.model_versions == {"v1": 4} and report.revision == report.head
    assert report.crop_templates == {"arcface": 4}
    if db_url.startswith("sqlite"):
        assert report.integrity == ["ok"] and report.foreign_key_violations == 0
    else:
        assert report.integrity is None


def test_check_finds_orphans_and_missing_vectors(tmp_path):
    path = tmp_path / "gallery.db"
    db = Database(f"sqlite:///{path}")
    _populate(db)
    db.close()
    raw = sqlite3.connect(path)  # foreign keys are off by default in a plain connection
    raw.execute("INSERT INTO faces (person_id, crop, source, sha256, box, landmarks, detector_score, face_size, "
                "sharpness, frontality, created) VALUES (99, x'00', 's', 'h', '[]', '[]', 1, 1, 1, 1, '2024-01-01')")
    raw.commit()
    raw.close()
    db = Database(f"sqlite:///{path}")
    report = check_database(db)
    db.close()
    assert not report.ok
    assert report.orphans["faces_without_person"] == 1 and report.foreign_key_violations == 1
    assert report.faces_missing_embeddings == {"v1": 1}
    assert report.crop_templates == {"arcface": 4, "unknown": 1}
    assert any("faces without person" in p for p in report.problems)


def test_backup_is_a_consistent_private_copy(tmp_path):
    db = Database(f"sqlite:///{tmp_path / 'gallery.db'}")
    _populate(db)
    dest = tmp_path / "backups" / "copy.db"
    size = db.backup(dest)
    assert size == dest.stat().st_size > 0 and stat.S_IMODE(dest.stat().st_mode) == 0o600
    with pytest.raises(DatabaseError, match="already exists"):
        db.backup(dest)
    _populate(db, people=("cy",), faces_each=1)
    db.backup(dest, overwrite=True)
    before = _table_rows(db)
    db.close()
    copy = Database(f"sqlite:///{dest}")
    assert _table_rows(copy) == before and check_database(copy).ok
    copy.close()
    assert not [p for p in dest.parent.iterdir() if p.name.endswith(".tmp")]


def test_backup_of_other_backends_points_to_their_tools(tmp_path):
    db = Database("postgresql://user@127.0.0.1:1/none", upgrade=False)
    dest = tmp_path / "never-written.db"
    with pytest.raises(DatabaseError, match="pg_dump"):
        db.backup(dest)
    db.close()
    assert not dest.exists()


def test_unreachable_server_is_a_database_error():
    with pytest.raises(DatabaseError, match="127.0.0.1"):
        Database("postgresql://user@127.0.0.1:1/none")


def test_ensure_model_makes_the_metadata_only_for_a_new_version(tmp_path):
    """Enrolment passes a function: serialising a bundle's metadata costs ~9 ms per call."""
    db = Database(f"sqlite:///{tmp_path / 'g.db'}")
    calls = []

    def metadata() -> dict:
        calls.append(1)
        return {"architecture": "test"}

    for _ in range(3):
        with db.write() as s:
            repo.ensure_model(s, "v1", metadata)
    with db.read() as s:
        assert s.get(ModelRow, "v1").meta == {"architecture": "test"}
    assert calls == [1]
