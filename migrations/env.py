"""Alembic environment for the facever gallery.

facever runs migrations itself (``facever db upgrade``, or automatically on first use): it builds
the Alembic ``Config`` in code and passes an open connection, already inside a transaction, as
``config.attributes["connection"]``. Developers may also run Alembic directly, e.g.::

    alembic -c migrations/alembic.ini -x url=sqlite:///gallery.db revision --autogenerate -m "add column"

without a passed connection the URL comes from ``-x url=...``, ``sqlalchemy.url`` in the ini file,
or facever's default (``FACEVER_DB`` / SQLite in ``FACEVER_HOME``).
"""

from __future__ import annotations

from alembic import context

from facever import config as facever_config
from facever.store.schema import Base
from facever.store.vectors import include_object

config = context.config
target_metadata = Base.metadata


def _url() -> str:
    return context.get_x_argument(as_dictionary=True).get("url") or config.get_main_option("sqlalchemy.url") \
        or facever_config.database_url()


def _configure(**kwargs) -> None:
    # SQLite alters tables by copy-and-move ("batch mode"); harmless elsewhere.
    # include_object: the pgvector column and index (PostgreSQL only, migration 0003) are not in the ORM
    context.configure(target_metadata=target_metadata, render_as_batch=True, compare_type=True,
                      include_object=include_object, **kwargs)


def run_migrations_offline() -> None:
    """Emit SQL to stdout (``alembic upgrade head --sql``)."""
    _configure(url=_url(), literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    """Run against the connection facever passed, or one made from the URL."""
    connection = config.attributes.get("connection")
    if connection is not None:
        _configure(connection=connection)
        with context.begin_transaction():
            context.run_migrations()
        return
    if config.config_file_name is not None:
        from logging.config import fileConfig

        fileConfig(config.config_file_name, disable_existing_loggers=False)
    from facever.store.session import Database

    db = Database(_url(), upgrade=False)
    try:
        with db.connection(write=True) as conn:
            _configure(connection=conn)
            with context.begin_transaction():
                context.run_migrations()
    finally:
        db.close()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
