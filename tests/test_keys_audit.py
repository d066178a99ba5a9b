"""API keys, the audit log, the gallery change counter (generation / sync), remove_face, people
pages and the 0001 → 0002 migration; the `facever keys` and `facever audit` commands.

Synthetic "faces", the stub detector and the NumPy encoder of conftest.py: no TensorFlow. Tests
taking ``db_url`` run on SQLite and, when PostgreSQL is available, on PostgreSQL too.
"""

import json
import re
from datetime import datetime, timedelta, timezone

import numpy as np
import pytest
from conftest import numpy_verifier, person_image, png_bytes
from sqlalchemy import create_engine, insert, select
from typer.testing import CliRunner

from facever.audit import AuditEvent, audit_events
from facever.errors import (DuplicateIdentityError, FaceNotFoundError, KeyExistsError, KeyNotFoundError,
                            PersonNotFoundError)
from facever.gallery import Gallery
from facever.keys import SCOPES, KeyStore, hash_key
from facever.store import Database, check_database, head_revision
from facever.store import repository as repo
from facever.store.schema import ApiKeyRow, AuditRow, EmbeddingRow, FaceRow, GalleryStateRow, ModelRow, PersonRow
from facever.store.session import alembic_config
from facever_cli.app import app
from facever_cli.audit import parse_since

runner = CliRunner()


def img(person: int, variant: int = 1) -> bytes:
    return png_bytes(person_image(person, variant))


def generation(db: Database) -> int:
    with db.read() as s:
        return repo.generation(s)


def audit_rows(db: Database) -> list[AuditEvent]:
    """Every audit event, oldest first."""
    return audit_events(db)[::-1]


@pytest.fixture
def db(db_url):
    database = Database(db_url)
    yield database
    database.close()


@pytest.fixture
def keys(db):
    return KeyStore(db)


# -- API keys -------------------------------------------------------------------------------------
def test_create_list_authenticate_revoke(keys, db):
    key, token = keys.create("kiosk", "identify, verify", rate_per_min=60, actor="admin-key")
    match = re.fullmatch(r"fv_([0-9a-f]{12})_([A-Za-z0-9_-]+)", token)
    assert match and match.group(1) == key.prefix and len(match.group(2)) >= 22  # >= 128 bits of secret
    assert (key.name, key.scopes, key.rate_per_min, key.revoked) == ("kiosk", {"identify", "verify"}, 60, None)
    assert key.allows("identify") and key.allows("verify") and not key.allows("enroll") and not key.allows("admin")
    data = key.to_dict()
    assert data["scopes"] == ["identify", "verify"] and data["revoked"] is None
    assert token not in json.dumps(data) and match.group(2) not in json.dumps(data)
    assert "key_hash" not in data and hash_key(token) not in json.dumps(data)

    admin, admin_token = keys.create("root", ["admin"])
    assert admin.rate_per_min is None and all(admin.allows(s) for s in SCOPES)
    assert [k.name for k in keys.list()] == ["kiosk", "root"]
    assert keys.authenticate(token) == key
    assert keys.authenticate(admin_token).name == "root"
    with db.read() as s:
        assert s.scalars(select(ApiKeyRow.scopes).where(ApiKeyRow.name == "kiosk")).one() == "identify,verify"

    revoked = keys.revoke("kiosk", actor="admin-key")
    assert revoked.revoked is not None and not revoked.active
    assert keys.authenticate(token) is None
    assert keys.authenticate(admin_token) is not None
    assert keys.revoke("kiosk").revoked == revoked.revoked  # idempotent
    with pytest.raises(KeyNotFoundError, match="nobody"):
        keys.revoke("nobody")
    with pytest.raises(KeyExistsError, match="not reused"):
        keys.create("kiosk", ["verify"])  # revoked names stay taken
    with pytest.raises(KeyExistsError):
        keys.create("root", ["verify"])

    events = audit_rows(db)
    assert [(e.actor, e.action, e.person, e.face_ids) for e in events] == [
        ("admin-key", "key_create", None, ()), ("cli", "key_create", None, ()), ("admin-key", "key_revoke", None, ())]
    assert events[0].detail == {"name": "kiosk", "scopes": ["identify", "verify"]}
    assert events[2].detail == {"name": "kiosk", "scopes": ["identify", "verify"]}
    assert generation(db) == 0  # keys are not gallery content


def test_wrong_secret_and_garbage_tokens_are_refused(keys):
    key, token = keys.create("app", ["verify"])
    prefix, secret = token[3:15], token[16:]
    flipped = secret[:-1] + ("A" if secret[-1] != "A" else "B")
    bad = ["", "fv_", "fv__", f"fv_{prefix}", f"fv_{prefix}_", f"fv_{prefix}_{flipped}", f"fv_{prefix}_{secret}x",
           f"fv_{prefix.upper()}_{secret}", f" {token}", f"{token}\n", f"Bearer {token}", token[:-1],
           "x" * 10_240, "fv_" + "a" * 12 + "_" + "b" * 10_000, f"fv_{prefix}_{secret[:-2]}éé",
           "fv_ünïcødé_🙂🙂🙂🙂🙂🙂🙂🙂🙂🙂🙂🙂🙂🙂🙂🙂🙂🙂", "\x00" * 64, "fv_%_%", "fv_' OR 1=1 --_" + "a" * 30,
           None, b"fv_abc", 12345, ["fv_"]]
    for t in bad:
        assert keys.authenticate(t) is None, t
    assert keys.authenticate(token) == key


@pytest.mark.parametrize("name, scopes, rate, message", [
    ("", ["verify"], None, "invalid key name"),
    ("has space", ["verify"], None, "invalid key name"),
    ("x" * 65, ["verify"], None, "invalid key name"),
    ("zoë", ["verify"], None, "invalid key name"),
    ("ok", [], None, "at least one scope"),
    ("ok", " , ", None, "at least one scope"),
    ("ok", ["verify", "root"], None, "unknown scope"),
    ("ok", "verify,superuser", None, "unknown scope"),
    ("ok", ["verify"], 0, "rate must be"),
    ("ok", ["verify"], -5, "rate must be"),
    ("ok", ["verify"], 2.5, "rate must be"),
    ("ok", ["verify"], True, "rate must be"),
])
def test_invalid_key_settings_are_one_line_value_errors(keys, db, name, scopes, rate, message):
    with pytest.raises(ValueError, match=message) as exc:
        keys.create(name, scopes, rate_per_min=rate)
    assert "\n" not in str(exc.value)
    assert keys.list() == [] and audit_rows(db) == []


def test_the_plaintext_key_is_nowhere_in_the_database_files(tmp_path):
    db = Database(f"sqlite:///{tmp_path / 'gallery.db'}")
    _key, token = KeyStore(db).create("secret-holder", ["admin"])
    db.checkpoint()
    db.close()
    data = b"".join(p.read_bytes() for p in tmp_path.iterdir() if p.name.startswith("gallery.db"))
    assert hash_key(token).encode() in data and b"secret-holder" in data  # the right files were read
    assert token.encode() not in data and token[16:].encode() not in data and token[16:40].encode() not in data


# -- audit log ------------------------------------------------------------------------------------
def test_every_gallery_write_is_audited_and_bumps_the_generation(db_url):
    with Gallery(db_url, verifier=numpy_verifier(), actor="svc-key") as g:
        assert generation(g.db) == 0
        r1 = g.enroll("ann", [img(1, 1), img(1, 2)])
        ann_faces = [o.face_id for o in r1.outcomes]
        g.actor = "other"
        assert g.enroll("ann", [img(1, 1)]).enrolled == 0  # nothing written, nothing recorded
        g.enroll("bob", [img(2, 1)])
        g.rename("ann", "Ann Smith")
        g.rename("bob", "bob")  # no change, no record
        assert g.remove_face("Ann Smith", ann_faces[0]) == 1
        assert generation(g.db) == 4
        events = audit_rows(g.db)
        assert [(e.actor, e.action, e.person, list(e.face_ids)) for e in events] == [
            ("svc-key", "enroll", "ann", ann_faces),
            ("other", "enroll", "bob", [events[1].face_ids[0]]),
            ("other", "rename", "Ann Smith", []),
            ("other", "remove_face", "Ann Smith", [ann_faces[0]])]
        assert events[0].detail["faces"] == 2 and events[0].detail["new_person"] is True
        assert events[2].detail["from"] == "ann" and events[3].detail["faces_left"] == 1
        assert events[0].time <= events[-1].time and events[0].time.tzinfo is not None
        assert events[0].to_dict()["time"] == events[0].time.isoformat()

        g.actor = "library"
        assert g.remove("Ann Smith") == 1
        last = audit_events(g.db, limit=1)[0]
        ann_id = events[0].detail["person_id"]
        assert (last.action, last.person, list(last.face_ids)) == ("remove", f"removed person #{ann_id}",
                                                                   [ann_faces[1]])
        # erasure: the removed person's name has left every event about them
        about_ann = [e for e in audit_events(g.db) if e.detail.get("person_id") == ann_id]
        assert len(about_ann) == 4 and all(e.person == f"removed person #{ann_id}" for e in about_ann)
        assert "Ann Smith" not in json.dumps([e.to_dict() for e in audit_events(g.db)])
        assert "ann" not in json.dumps([e.to_dict() for e in audit_events(g.db)])
        assert generation(g.db) == 5

    with Gallery(db_url, verifier=numpy_verifier("np-2", seed=3), actor="cli") as g2:
        report = g2.reindex(prune=True)
        assert (report.embedded, report.pruned) == (1, 1)
        last = audit_events(g2.db, limit=1)[0]
        assert (last.actor, last.action, last.person) == ("cli", "reindex", None)
        assert last.detail["model_version"] == "np-2" and (last.detail["embedded"], last.detail["pruned"]) == (1, 1)
        assert g2.reindex().embedded == 0 and len(audit_events(g2.db)) == 6  # nothing to do: no record
        assert generation(g2.db) == 6
        assert check_database(g2.db).ok


def test_a_failed_enrolment_writes_no_audit_row_and_no_generation(db_url, monkeypatch):
    with Gallery(db_url, verifier=numpy_verifier()) as g:
        g.enroll("ann", [img(1, 1)])
        before = (audit_rows(g.db), generation(g.db), g.people())
        with pytest.raises(DuplicateIdentityError):
            g.enroll("annabel", [img(1, 2)])
        assert (audit_rows(g.db), generation(g.db), g.people()) == before

        def boom(session):
            raise RuntimeError("counter unavailable")

        # the audit row and the counter are part of the write's transaction: one fails, all roll back
        monkeypatch.setattr("facever.store.audit_repo.bump_generation", boom)
        with pytest.raises(RuntimeError, match="counter unavailable"):
            g.enroll("bob", [img(2, 1)])
        with pytest.raises(RuntimeError):
            g.remove("ann")
        monkeypatch.undo()
        assert (audit_rows(g.db), generation(g.db), g.people()) == before
        with g.db.read() as s:
            assert repo.counts(s)["faces"] == 1


def test_audit_events_since_and_limit(db):
    with db.write() as s:
        for i in range(3):
            row = repo.add_audit(s, "cli", "enroll", f"p{i}", [i], {"i": i})
            row.time = datetime(2026, 1, 1 + i, 12, tzinfo=timezone.utc)
    assert [e.person for e in audit_events(db)] == ["p2", "p1", "p0"]
    assert [e.person for e in audit_events(db, limit=2)] == ["p2", "p1"]
    assert [e.person for e in audit_events(db, since=datetime(2026, 1, 2, 12, tzinfo=timezone.utc))] == ["p2", "p1"]
    # another time zone, and a naive time (taken as UTC)
    plus2 = timezone(timedelta(hours=2))
    assert [e.person for e in audit_events(db, since=datetime(2026, 1, 2, 14, 0, 1, tzinfo=plus2))] == ["p2"]
    assert [e.person for e in audit_events(db, since=datetime(2026, 1, 2, 11))] == ["p2", "p1"]
    event = audit_events(db, limit=1)[0]
    assert event.to_dict() == {"time": "2026-01-03T12:00:00+00:00", "actor": "cli", "action": "enroll",
                               "person": "p2", "face_ids": [2], "detail": {"i": 2}}


# -- change counter and sync ------------------------------------------------------------------------
@pytest.fixture
def load_counter(monkeypatch):
    """Counts how often any Gallery loads its matrix from the database."""
    calls = []
    original = repo.load_embeddings

    def counting(*args, **kwargs):
        calls.append(1)
        return original(*args, **kwargs)

    monkeypatch.setattr(repo, "load_embeddings", counting)
    return calls


def test_sync_sees_other_writers_and_own_writes_need_no_reload(db_url, load_counter):
    # the in-memory matrix (pgvector holds none: tests/test_pgvector.py)
    with Gallery(db_url, verifier=numpy_verifier(), index="exact") as a, \
            Gallery(db_url, verifier=numpy_verifier(), index="exact") as b:
        assert b.sync() is False  # first call: records the counter only
        a.enroll("ann", [img(1, 1)])
        assert b.sync() is True
        assert b.identify(img(1, 2))[0].person == "ann"
        loads = len(load_counter)

        a.enroll("bob", [img(2, 1)])                              # another process's write...
        assert b.identify(img(2, 2))[0].person is None            # ...is unseen until sync
        assert b.sync() is True and b.sync() is False
        assert b.identify(img(2, 2))[0].person == "bob"
        assert len(load_counter) == loads + 1

        b.enroll("carl", [img(3, 1)])                             # own write: matrix updated in place
        assert b.sync() is False
        assert b.identify(img(3, 2))[0].person == "carl"
        assert len(load_counter) == loads + 1 and b.generation == generation(b.db) == 3

        a.enroll("dora", [img(4, 1)])                             # someone else wrote first, then we did:
        b.enroll("carl", [img(3, 3)])                             # the gap is noticed without sync()
        assert b.identify(img(4, 2))[0].person == "dora"
        assert len(load_counter) == loads + 2

        a.rename("dora", "Dora")
        a.remove("ann")
        assert b.sync() is True
        candidates = [c.person for c in b.identify(img(4, 2), top_k=5)[0].candidates]
        assert candidates[0] == "Dora" and sorted(candidates[1:]) == ["bob", "carl"]


def test_remove_face_is_audited_and_keeps_an_empty_person(db_url):
    with Gallery(db_url, verifier=numpy_verifier()) as g:
        ann = [o.face_id for o in g.enroll("ann", [img(1, 1), img(1, 2)]).outcomes]
        bob = [o.face_id for o in g.enroll("bob", [img(2, 1)]).outcomes]
        assert g.identify(img(1, 3))[0].person == "ann"
        with pytest.raises(FaceNotFoundError, match=f"'ann' has no face #{bob[0]}"):
            g.remove_face("ann", bob[0])  # bob's face, not ann's
        for missing in (10**6, 0, -1, 2**70):
            with pytest.raises(FaceNotFoundError):
                g.remove_face("ann", missing)
        with pytest.raises(PersonNotFoundError):
            g.remove_face("nobody", ann[0])
        assert len(audit_rows(g.db)) == 2

        assert g.remove_face("ann", ann[0]) == 1
        assert [f.id for f in g.person("ann").faces] == [ann[1]]
        assert g.identify(img(1, 3))[0].person == "ann"
        assert g.remove_face("ann", ann[1]) == 0
        assert [(p.name, p.n_faces) for p in g.people()] == [("ann", 0), ("bob", 1)]
        result = g.identify(img(1, 3))[0]
        assert result.person is None and [c.person for c in result.candidates] == ["bob"]
        with g.db.read() as s:
            assert repo.counts(s) == {"people": 2, "faces": 1, "embeddings": 1, "models": 1}
        events = audit_rows(g.db)[-2:]
        assert [(e.action, e.person, list(e.face_ids), e.detail["faces_left"]) for e in events] == [
            ("remove_face", "ann", [ann[0]], 1), ("remove_face", "ann", [ann[1]], 0)]
        assert g.remove("ann") == 0


# -- migration ------------------------------------------------------------------------------------
def test_upgrade_from_0001_keeps_a_populated_gallery(db_url):
    from alembic import command

    from migration_support import add_old_face, add_old_model, project, stored_rows

    engine = create_engine(db_url)
    with engine.begin() as conn:
        command.upgrade(alembic_config(conn), "0001")
        conn.execute(insert(PersonRow.__table__).values(id=1, name="ann",
                                                        created=datetime(2024, 1, 1, tzinfo=timezone.utc)))
        add_old_model(conn, "np-1")
        for i in range(2):
            add_old_face(conn, i + 1, 1, png_bytes(person_image(1, i)[:16, :16]), str(i) * 64, "np-1")
        before = stored_rows(conn)
    engine.dispose()
    db = Database(db_url, upgrade=False)
    assert db.revision() == "0001"
    assert db.upgrade() == ("0001", head_revision()) and head_revision() not in ("0001", "0002")
    with db.engine.connect() as conn:
        assert project(stored_rows(conn), before) == before and len(before["faces"]) == 2
    with db.read() as s:
        assert s.execute(select(GalleryStateRow.id, GalleryStateRow.generation)).all() == [(1, 0)]
        assert s.scalars(select(ApiKeyRow)).all() == [] and s.scalars(select(AuditRow)).all() == []
    report = check_database(db)
    assert report.ok, report.problems
    db.close()

    with Gallery(db_url, verifier=numpy_verifier()) as g:
        assert [(p.name, p.n_faces) for p in g.people()] == [("ann", 2)]
        g.rename("ann", "Ann")
        assert generation(g.db) == 1 and audit_rows(g.db)[0].action == "rename"
        assert KeyStore(g.db).create("k", ["verify"])[0].name == "k"

    # and back down, and up again
    engine = create_engine(db_url)
    with engine.begin() as conn:
        command.downgrade(alembic_config(conn), "0001")
    engine.dispose()
    db = Database(db_url, upgrade=False)
    assert db.revision() == "0001"
    assert db.upgrade()[1] == head_revision()
    assert generation(db) == 0 and [(p.name, n) for p, n in _people(db)] == [("Ann", 2)]
    db.close()


def _people(db: Database):
    with db.read() as s:
        return repo.list_people(s)


def test_fresh_database_is_clean_and_has_the_counter_row(db):
    report = check_database(db)
    assert report.ok and report.revision == head_revision()
    with db.read() as s:
        assert s.execute(select(GalleryStateRow.id, GalleryStateRow.generation)).all() == [(1, 0)]
    with db.write() as s:
        assert repo.bump_generation(s) == 1
        assert repo.bump_generation(s) == 2
    with db.write() as s:  # a lost row is recreated
        s.execute(GalleryStateRow.__table__.delete())
        assert repo.generation(s) == 0 and repo.bump_generation(s) == 1


# -- people pages ---------------------------------------------------------------------------------
def test_people_page_pages_counts_and_matches_literally(db_url):
    names = ["amy", "bob", "cat", "dan", "eve", "ANNA", "50% off", "5 off", "a_b", "axb", "a/b", "aXb"]
    with Gallery(db_url, create=True) as g:
        with g.db.write() as s:
            for n in names:
                person = repo.get_or_create_person(s, n)
                if n in ("bob", "a_b"):
                    for i in range(3 if n == "bob" else 1):
                        face = repo.NewFace(crop_png=b"png", source="s", sha256=f"{n}{i}".ljust(64, "0"),
                                            box=[0, 0, 1, 1], landmarks=[[0, 0]] * 5, detector_score=1.0)
                        repo.add_face(s, person.id, face, "v", np.ones(4))
        everyone, total = g.people_page(0, 100)
        assert total == len(names) and sorted(p.name for p in everyone) == sorted(names)
        assert {p.name: p.n_faces for p in everyone if p.n_faces} == {"bob": 3, "a_b": 1}
        page, total = g.people_page(offset=1, limit=2, query="")
        assert [p.name for p in page] == [p.name for p in everyone][1:3] and total == len(names)
        assert g.people_page(offset=50, limit=10) == ([], len(names))
        assert g.people_page(limit=0) == ([], len(names))

        def match(query):
            page, total = g.people_page(0, 100, query)
            assert total == len(page)
            return sorted(p.name for p in page)

        assert match("%") == ["50% off"]
        assert match("_") == ["a_b"]
        assert match("a_b") == ["a_b"]                       # not axb / aXb
        assert match("/") == ["a/b"]
        assert match("0%") == ["50% off"] and match("0% o") == ["50% off"]
        assert match("5%") == []                             # a wildcard would match "5 off" and "50% off"
        assert match("AN") == ["ANNA", "dan"]               # case-insensitive
        assert match("axb") == ["aXb", "axb"]
        assert match("nobody") == []
        page, total = g.people_page(0, 1, "a")
        assert len(page) == 1 and total == len(match("a")) > 1
        with pytest.raises(ValueError):
            g.people_page(-1, 10)


# -- command line ---------------------------------------------------------------------------------
def invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


def one_error_line(res) -> str:
    lines = [line for line in res.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), res.stderr
    assert "Traceback" not in res.output
    return lines[0]


@pytest.fixture
def cli_db(tmp_path, monkeypatch):
    monkeypatch.setenv("FACEVER_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("FACEVER_DB", raising=False)
    return f"sqlite:///{tmp_path / 'cli.db'}"


def test_cli_keys_create_list_revoke(cli_db, tmp_path):
    res = invoke("keys", "list", "--db", cli_db)
    assert res.exit_code == 2 and "no gallery" in one_error_line(res)  # list never creates a database

    res = invoke("keys", "create", "kiosk", "--scope", "identify,verify", "--rate", "30", "--db", cli_db)
    assert res.exit_code == 0, res.output
    token = res.stdout.strip()
    assert re.fullmatch(r"fv_[0-9a-f]{12}_[A-Za-z0-9_-]{43}", token)
    assert "will not be shown again" in res.stderr
    res = invoke("keys", "create", "ops", "--scope", "admin", "--json", "--db", cli_db)
    created = json.loads(res.stdout)
    assert created["name"] == "ops" and created["scopes"] == ["admin"] and created["rate_per_min"] is None
    assert created["key"].startswith("fv_")

    res = invoke("keys", "list", "--json", "--db", cli_db)
    listed = json.loads(res.stdout)["keys"]
    assert [(k["name"], k["scopes"], k["rate_per_min"], k["revoked"]) for k in listed] == [
        ("kiosk", ["identify", "verify"], 30, None), ("ops", ["admin"], None, None)]
    text = invoke("keys", "list", "--db", cli_db).stdout
    assert "kiosk" in text and "30/min" in text and "unlimited" in text
    for out in (res.stdout, text):
        assert token[16:] not in out and created["key"][16:] not in out

    assert invoke("keys", "revoke", "kiosk", "--db", cli_db).exit_code == 0
    db = Database(cli_db)
    assert KeyStore(db).authenticate(token) is None and KeyStore(db).authenticate(created["key"]).name == "ops"
    db.close()
    assert json.loads(invoke("keys", "list", "--json", "--db", cli_db).stdout)["keys"][0]["revoked"] is not None

    for args, message in [(("revoke", "nobody"), "no API key named 'nobody'"),
                          (("create", "ops", "--scope", "verify"), "already exists"),
                          (("create", "x", "--scope", "root"), "unknown scope"),
                          (("create", "x y", "--scope", "verify"), "invalid key name"),
                          (("create", "x", "--scope", "verify", "--rate", "0"), "rate must be")]:
        res = invoke("keys", *args, "--db", cli_db)
        assert res.exit_code == 2 and message in one_error_line(res), (args, res.output)


def test_cli_audit(cli_db):
    invoke("keys", "create", "kiosk", "--scope", "verify", "--db", cli_db)
    with Gallery(cli_db, verifier=numpy_verifier()) as g:
        g.enroll("ann", [img(1, 1)])
    res = invoke("audit", "--json", "--db", cli_db)
    assert res.exit_code == 0, res.output
    events = json.loads(res.stdout)["events"]
    assert [(e["actor"], e["action"], e["person"]) for e in events] == [
        ("library", "enroll", "ann"), ("cli", "key_create", None)]
    assert datetime.fromisoformat(events[0]["time"]).tzinfo is not None and len(events[0]["face_ids"]) == 1

    assert len(json.loads(invoke("audit", "--json", "--limit", "1", "--db", cli_db).stdout)["events"]) == 1
    assert len(json.loads(invoke("audit", "--json", "--since", "1h", "--db", cli_db).stdout)["events"]) == 2
    assert json.loads(invoke("audit", "--json", "--since", "2999-01-01", "--db", cli_db).stdout)["events"] == []
    text = invoke("audit", "--db", cli_db).stdout
    assert "enroll  ann" in text and "key_create" in text and "UTC" in text
    res = invoke("audit", "--since", "yesterday", "--db", cli_db)
    assert res.exit_code == 2 and "--since must be" in one_error_line(res)


def test_parse_since():
    now = datetime(2026, 12, 3, 12, tzinfo=timezone.utc)
    assert parse_since("2h", now) == datetime(2026, 12, 3, 10, tzinfo=timezone.utc)
    assert parse_since("3d", now) == datetime(2026, 11, 30, 12, tzinfo=timezone.utc)
    assert parse_since("90m", now) == datetime(2026, 12, 3, 10, 30, tzinfo=timezone.utc)
    assert parse_since("1w", now) == datetime(2026, 11, 26, 12, tzinfo=timezone.utc)
    assert parse_since("2026-12-01") == datetime(2026, 12, 1, tzinfo=timezone.utc)
    assert parse_since("2026-12-01T10:00+02:00") == datetime(2026, 12, 1, 8, tzinfo=timezone.utc)
    with pytest.raises(ValueError, match="--since"):
        parse_since("last tuesday")


def test_cli_gallery_writes_are_audited_as_cli(cli_db):
    with Gallery(cli_db, verifier=numpy_verifier()) as g:
        g.enroll("ann", [img(1, 1)])
    assert invoke("people", "rename", "ann", "Ann", "--db", cli_db).exit_code == 0
    assert invoke("people", "remove", "Ann", "--yes", "--db", cli_db).exit_code == 0
    events = json.loads(invoke("audit", "--json", "--db", cli_db).stdout)["events"]
    assert [(e["actor"], e["action"]) for e in events] == [("cli", "remove"), ("cli", "rename"), ("library", "enroll")]
    assert all(e["person"].startswith("removed person #") for e in events)


def test_concurrent_bumps_each_get_their_own_generation(db):
    from concurrent.futures import ThreadPoolExecutor

    def bump(_):
        values = []
        for _ in range(10):
            with db.write() as s:
                values.append(repo.bump_generation(s))
        return values

    with ThreadPoolExecutor(4) as pool:
        seen = [v for values in pool.map(bump, range(4)) for v in values]
    assert sorted(seen) == list(range(1, 41)) and generation(db) == 40
