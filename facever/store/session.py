"""The database connection: engine, SQLite pragmas, transactions, schema upgrades, errors, backup.

Any SQLAlchemy URL works; SQLite is the default. For a SQLite file, :class:`Database`

* creates the parent folder and the file itself with mode 0600 (before SQLAlchemy touches it), unless
  told not to (``create=False``: readers get :class:`~facever.errors.NoGalleryError` instead);
* sets on every connection: WAL journal, ``foreign_keys=ON``, ``busy_timeout`` (30 s) and
  ``secure_delete=ON`` (deleted faces are overwritten with zeros, not left in free pages);
* starts read transactions with ``BEGIN`` and write transactions with ``BEGIN IMMEDIATE``, so two
  processes writing at once queue on the lock instead of failing on a lock upgrade.

The schema is brought to the newest Alembic revision on first use (:meth:`Database.upgrade`). Every
database failure surfaces as :class:`~facever.errors.DatabaseError` with a one-line message.

On PostgreSQL with pgvector, :attr:`Database.vector_support` says whether embeddings are also stored
in a ``vector`` column (see :mod:`facever.store.vectors`); sessions carry it in ``session.info``
(``"vector_column"``) so that writes fill that column too.
"""

from __future__ import annotations

import os
import sqlite3
import stat
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from sqlalchemy import create_engine, event, text
from sqlalchemy.engine import Connection, Engine, make_url
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.orm import Session

from facever import config
from facever.errors import DatabaseError, NoGalleryError
from facever.store import vectors as pgvec

#: How long a connection waits for another process's lock before failing, seconds.
BUSY_TIMEOUT_S = 30.0

#: Key of the PostgreSQL advisory lock held while upgrading the schema.
_PG_MIGRATION_LOCK = 0x66616365  # "face"


class WriteConflict(DatabaseError):
    """A write hit a uniqueness constraint, typically a race with another process; retry it."""


def sqlite_file(url: str) -> Path | None:
    """The database file of a SQLite ``url``; None for other backends, ``:memory:`` or URI filenames."""
    u = make_url(url)
    if u.get_backend_name() != "sqlite":
        return None
    if not u.database or u.database == ":memory:" or u.query.get("uri") or u.database.startswith("file:"):
        return None
    return Path(u.database)


def migrations_dir() -> Path:
    """Folder of the installed ``facever_migrations`` package (Alembic's script location)."""
    import facever_migrations

    return Path(facever_migrations.__file__).resolve().parent


def alembic_config(connection: Connection | None = None):
    """An Alembic ``Config`` built in code (no ini file), optionally bound to ``connection``."""
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(migrations_dir()).replace("%", "%%"))
    if connection is not None:
        cfg.attributes["connection"] = connection
    return cfg


def head_revision() -> str:
    """The newest schema revision this facever knows."""
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None
    return head


def known_revisions() -> set[str]:
    """Every schema revision this facever knows."""
    from alembic.script import ScriptDirectory

    return {s.revision for s in ScriptDirectory.from_config(alembic_config()).walk_revisions()}


def _prepare_sqlite_file(path: Path, create: bool) -> None:
    """Create the parent folder and an empty file with mode 0600; refuse a read-only file."""
    if not path.exists() and not create:
        raise NoGalleryError(f"no gallery at {path}; enroll someone first")
    if path.exists():
        if path.is_dir():
            raise DatabaseError(f"{path}: is a folder, not a gallery database file")
        mode = path.stat().st_mode
        if not os.access(path, os.W_OK) or not mode & stat.S_IWUSR:
            raise DatabaseError(f"{path}: the gallery database file is read-only (mode {stat.S_IMODE(mode):04o}); "
                                "facever must be able to write it and its -wal/-shm files: fix its permissions")
        return
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_CREAT | os.O_WRONLY, 0o600)
        os.close(fd)
    except OSError as exc:
        raise DatabaseError(f"{path}: cannot create the gallery database ({exc.strerror or exc})") from exc


class Database:
    """One gallery database: an engine plus transactions, upgrades and backup.

    Args:
        url: SQLAlchemy URL (default: :func:`facever.config.database_url`).
        upgrade: bring the schema to the newest revision now (first use creates the tables).
        create: create a missing SQLite file and its folders. With ``create=False`` (every command
            that only reads) a missing file raises :class:`~facever.errors.NoGalleryError` and
            nothing is created; other backends are assumed to exist.

    Raises:
        DatabaseError: unreachable, corrupt, read-only, or written by a newer facever.
    """

    def __init__(self, url: str | None = None, upgrade: bool = True, create: bool = True) -> None:
        self.url = config.database_url(url)
        try:
            parsed = make_url(self.url)
        except Exception as exc:  # sqlalchemy raises ArgumentError for garbage
            raise DatabaseError(f"invalid database URL {self.url!r} ({exc})") from exc
        self.backend = parsed.get_backend_name()
        self.path = sqlite_file(self.url)
        self.label = str(self.path) if self.path else parsed.render_as_string(hide_password=True)
        if self.path is not None:
            _prepare_sqlite_file(self.path, create)
        self.engine = self._make_engine()
        self._write_engine = self.engine.execution_options(facever_write=True)
        # one snapshot for every statement of a read (PostgreSQL's default gives each statement its own)
        self._snapshot_engine = (self.engine if self.is_sqlite
                                 else self.engine.execution_options(isolation_level="REPEATABLE READ"))
        self._vectors: pgvec.VectorSupport | None = None
        if upgrade:
            self.upgrade()

    # -- engine ---------------------------------------------------------------------------------
    @property
    def is_sqlite(self) -> bool:
        """True for a SQLite database (file or memory)."""
        return self.backend == "sqlite"

    def _make_engine(self) -> Engine:
        try:
            if not self.is_sqlite:
                return create_engine(self.url, pool_pre_ping=True)
            engine = create_engine(self.url, connect_args={"timeout": BUSY_TIMEOUT_S})
        except Exception as exc:  # missing driver, bad arguments
            raise DatabaseError(f"{self.label}: cannot use this database URL ({exc})") from exc
        wal = self.path is not None

        @event.listens_for(engine, "connect")
        def _on_connect(dbapi_conn, _record) -> None:
            dbapi_conn.isolation_level = None  # we emit BEGIN ourselves (see _on_begin)
            cur = dbapi_conn.cursor()
            try:
                cur.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")
                cur.execute("PRAGMA foreign_keys = ON")
                cur.execute("PRAGMA secure_delete = ON")
                if wal:
                    cur.execute("PRAGMA journal_mode = WAL")
            finally:
                cur.close()

        @event.listens_for(engine, "begin")
        def _on_begin(conn: Connection) -> None:
            write = conn.get_execution_options().get("facever_write", False)
            conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")

        return engine

    def close(self) -> None:
        """Release every pooled connection."""
        self.engine.dispose()

    # -- transactions ---------------------------------------------------------------------------
    @contextmanager
    def errors(self) -> Iterator[None]:
        """Translate driver and SQLAlchemy errors raised inside into :class:`DatabaseError`."""
        try:
            yield
        except DatabaseError:
            raise
        except IntegrityError as exc:
            msg = _first_line(exc.orig)
            if "unique" in msg.lower() or "duplicate key" in msg.lower():
                raise WriteConflict(f"{self.label}: conflicting write ({msg})") from exc
            raise DatabaseError(f"{self.label}: integrity error ({msg})") from exc
        except (SQLAlchemyError, sqlite3.Error) as exc:
            raise DatabaseError(_describe(self.label, exc)) from exc

    @property
    def vector_support(self) -> pgvec.VectorSupport:
        """What pgvector offers on this database (checked once; :meth:`upgrade` checks again)."""
        if self._vectors is None:
            if self.is_sqlite:
                self._vectors = pgvec.VectorSupport(self.backend)
            else:
                with self.connection() as conn:
                    self._vectors = pgvec.vector_support(conn)
        return self._vectors

    def _info(self) -> dict:
        return {"vector_column": self.vector_support.usable}

    @contextmanager
    def read(self, snapshot: bool = False) -> Iterator[Session]:
        """A session in one read transaction, closed afterwards.

        ``snapshot``: every statement sees the same committed state (PostgreSQL: REPEATABLE READ;
        SQLite transactions always do), e.g. counts read together with a search.
        """
        engine = self._snapshot_engine if snapshot else self.engine
        with self.errors(), Session(engine, expire_on_commit=False, info=self._info()) as session, session.begin():
            yield session

    @contextmanager
    def write(self) -> Iterator[Session]:
        """A session in one write transaction: committed at the end, rolled back on any exception."""
        with self.errors(), Session(self._write_engine, expire_on_commit=False, info=self._info()) as session, \
                session.begin():
            yield session

    @contextmanager
    def connection(self, write: bool = False, snapshot: bool = False) -> Iterator[Connection]:
        """A Core connection in one transaction (``write``: taking the write lock first on SQLite;
        ``snapshot``: one snapshot for every statement, as :meth:`read`)."""
        engine = self._write_engine if write else self._snapshot_engine if snapshot else self.engine
        with self.errors(), engine.connect() as conn, conn.begin():
            yield conn

    # -- schema ---------------------------------------------------------------------------------
    def revision(self) -> str | None:
        """The schema revision stored in the database (None for an empty database)."""
        from alembic.runtime.migration import MigrationContext

        with self.connection() as conn:
            return MigrationContext.configure(conn).get_current_revision()

    def _check_known(self, revision: str | None) -> None:
        if revision is not None and revision not in known_revisions():
            raise DatabaseError(
                f"{self.label}: the gallery database was written by a newer facever (schema revision {revision!r} "
                f"is unknown to this version, whose newest is {head_revision()!r}); upgrade facever")

    def upgrade(self) -> tuple[str | None, str]:
        """Bring the schema to the newest revision; return ``(revision before, revision now)``.

        Runs Alembic's ``upgrade head`` inside one write transaction (on SQLite with the write lock
        held, on PostgreSQL under an advisory lock), so concurrent first uses do not race. On
        PostgreSQL where the ``vector`` extension was enabled after the schema reached its newest
        revision, the pgvector column and index are added now (:func:`facever.store.vectors.install`).
        """
        from alembic import command
        from alembic.runtime.migration import MigrationContext

        head = head_revision()
        before = self.revision()
        self._check_known(before)
        self._vectors = None
        if before == head and not self._vector_setup_pending():
            return before, head
        with self.connection(write=True) as conn:
            if self.backend == "postgresql":
                conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_MIGRATION_LOCK})
            before = MigrationContext.configure(conn).get_current_revision()
            self._check_known(before)
            if before != head:
                command.upgrade(alembic_config(conn), "head")
            elif self.backend == "postgresql":
                pgvec.install(conn)
        self._vectors = None
        return before, head

    def _vector_setup_pending(self) -> bool:
        """PostgreSQL with the extension enabled in this database but without the column or index."""
        support = self.vector_support
        return (support.installed is not None and pgvec.hnsw_capable(support.installed)
                and not (support.column and support.index))

    # -- maintenance ----------------------------------------------------------------------------
    def checkpoint(self) -> None:
        """SQLite: copy the WAL into the main file and truncate it (best effort; no-op elsewhere)."""
        if self.path is None:
            return
        with self.errors(), self.engine.connect() as conn:
            conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")

    def vacuum(self) -> None:
        """SQLite: rebuild the file so it holds no free pages (no-op elsewhere)."""
        if not self.is_sqlite:
            return
        with self.errors(), self.engine.connect() as conn:
            conn.exec_driver_sql("VACUUM")

    def backup(self, dest: str | os.PathLike[str], overwrite: bool = False) -> int:
        """Copy a SQLite gallery to ``dest`` with SQLite's online backup API; return its size in bytes.

        The copy is consistent even while other processes write. It is written to a temporary file
        (mode 0600) beside ``dest`` and renamed into place.

        Raises:
            DatabaseError: not a SQLite file (use the backend's own tool, e.g. ``pg_dump``), ``dest``
                exists without ``overwrite``, or the copy failed.
        """
        if self.path is None:
            tool = "pg_dump" if self.backend == "postgresql" else "the database's own backup tool"
            raise DatabaseError(f"{self.label}: `facever db backup` copies SQLite files only; "
                                f"for a {self.backend} database use {tool}")
        dest = Path(dest)
        if dest.exists() and not overwrite:
            raise DatabaseError(f"{dest}: already exists (pass --force to replace it)")
        if dest.exists() and dest.resolve() == self.path.resolve():
            raise DatabaseError(f"{dest}: is the database itself")
        tmp = dest.with_name(f".{dest.name}.{os.getpid()}.tmp")
        try:
            dest.parent.mkdir(parents=True, exist_ok=True)
            os.close(os.open(tmp, os.O_CREAT | os.O_TRUNC | os.O_WRONLY, 0o600))
            with self.errors():
                raw = self.engine.raw_connection()
                try:
                    target = sqlite3.connect(tmp)
                    try:
                        raw.driver_connection.backup(target)
                    finally:
                        target.close()
                finally:
                    raw.close()
            os.replace(tmp, dest)
        except OSError as exc:
            raise DatabaseError(f"{dest}: cannot write the backup ({exc.strerror or exc})") from exc
        finally:
            if tmp.exists():
                tmp.unlink()
        return dest.stat().st_size


def _first_line(exc: BaseException | None) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


def _describe(label: str, exc: BaseException) -> str:
    """A one-line message for a database failure."""
    orig = getattr(exc, "orig", None) or exc
    msg = _first_line(orig)
    low = msg.lower()
    if "file is not a database" in low or "malformed" in low or "not a database" in low:
        return f"{label}: the gallery database is corrupt or not a database ({msg})"
    if "readonly" in low or "read-only" in low:
        return f"{label}: the gallery database is read-only ({msg}); fix its permissions"
    if "database is locked" in low or "database is busy" in low:
        return f"{label}: the gallery database is locked by another process (waited {BUSY_TIMEOUT_S:.0f} s)"
    if "unable to open database file" in low:
        return f"{label}: cannot open the gallery database (check the path and its folder's permissions)"
    if "no such table" in low or "no such column" in low or "undefinedtable" in low:
        return f"{label}: the gallery schema is incomplete ({msg}); run `facever db upgrade`"
    return f"{label}: database error ({msg})"
