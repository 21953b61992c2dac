"""The schema's history, as Alembic migrations (``versions/``), on SQLite and PostgreSQL alike.

Every SQL store brings its database to the newest revision when it opens, inside one transaction
that holds the store's write lock, so several server processes starting together migrate once.
A database made before there were migrations (gridmap's tables, no ``alembic_version``) is first
brought to the baseline by the code that upgraded it before (``legacy``), then stamped.

A new schema change: edit the tables in :mod:`gridmap.storage.sql`, then
``.venv/bin/python -m gridmap.storage.migrations "what changed"`` writes a revision
comparing an up-to-date database with them; read and correct it (PostGIS parts by hand).
"""
from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Callable

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from sqlalchemy.engine import Engine

HERE = Path(__file__).parent
BASELINE = "0001"


def _config(connection: sa.Connection) -> Config:
    config = Config()
    config.set_main_option("script_location", str(HERE))
    config.attributes["connection"] = connection
    return config


def upgrade(engine: Engine, *, legacy: Callable[[sa.Connection], None]) -> None:
    """Bring the database to the newest revision (nothing to do, usually: one query)."""
    with engine.execution_options(immediate=True).begin() as conn:     # the write lock: one process migrates
        current = MigrationContext.configure(conn).get_current_revision()
        if current is None and sa.inspect(conn).has_table("layer_versions"):
            legacy(conn)
            command.stamp(_config(conn), BASELINE)
        command.upgrade(_config(conn), "head")


def current(engine: Engine) -> str | None:
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def revision(message: str) -> None:
    """Autogenerate a revision against a scratch SQLite database at the newest revision."""
    from .. import open_store
    with tempfile.TemporaryDirectory() as scratch:
        store = open_store(f"sqlite:///{Path(scratch) / 'scratch.db'}")
        with store.engine.begin() as conn:      # type: ignore[attr-defined]  # a SqlStore
            command.revision(_config(conn), message=message, autogenerate=True)
        store.close()
