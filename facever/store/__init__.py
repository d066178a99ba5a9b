"""Gallery storage: the SQLAlchemy schema, the database connection (SQLite pragmas, Alembic
upgrades, backup) and the queries the gallery uses.

* :mod:`facever.store.schema`: tables ``people``, ``faces``, ``embeddings``, ``models``, ``api_keys``,
  ``audit_log``, ``gallery_state``.
* :mod:`facever.store.session`: :class:`Database` (engine, transactions, upgrade, backup).
* :mod:`facever.store.repository`: queries and :func:`check_database`.
* :mod:`facever.store.audit_repo`: the change counter, the audit log and API key queries.
"""

from facever.store.repository import CheckReport, check_database
from facever.store.session import Database, WriteConflict, head_revision

__all__ = ["Database", "WriteConflict", "CheckReport", "check_database", "head_revision"]
