"""The schema's migrations (gridmap.storage.migrations) on the backend under test (SQLite, or
PostGIS when GRIDMAP_TEST_POSTGIS is set): a new database is made by them and matches the tables
the code uses; one made before migrations is brought up and stamped; processes starting together
migrate once."""
from __future__ import annotations

import multiprocessing

import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from gridmap.storage import migrations, open_store
from gridmap.storage.sql import metadata

from .conftest import database_url

#: What PostGIS has beyond the shared tables (gridmap.storage.postgis; the baseline's _postgis).
POSTGIS_ONLY = {"geom", "ix_incidents_geom", "ix_units_geometry", "store_changes", "spatial_ref_sys"}


def _differences(engine: sa.Engine) -> list:
    def ours(obj, name, kind, reflected, compare_to) -> bool:  # noqa: ANN001 - alembic's hook
        unenforced = (engine.dialect.name == "postgresql" and kind == "foreign_key_constraint"
                      and obj.table.name == "assignments")     # the writer checks them in bulk
        return name not in POSTGIS_ONLY and not unenforced
    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={
            "include_object": ours, "compare_type": engine.dialect.name == "sqlite"})
        return compare_metadata(context, metadata)


def test_a_new_database_is_made_by_the_migrations_and_matches_the_tables_the_code_uses(tmp_path):
    store = open_store(database_url(tmp_path / "new.db"))
    assert migrations.current(store.engine) == "0001"
    assert _differences(store.engine) == []
    store.close()


def test_opening_an_up_to_date_database_again_changes_nothing(tmp_path):
    url = database_url(tmp_path / "again.db")
    open_store(url).close()
    store = open_store(url)
    with store.engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT version_num FROM alembic_version").scalars().all() == ["0001"]
    store.close()


def test_a_sqlite_database_made_before_migrations_is_brought_up_and_stamped(tmp_path):
    url = f"sqlite:///{tmp_path / 'old.db'}"
    open_store(url).close()
    with sa.create_engine(url).begin() as conn:        # as gridmap left it before 2026-11-30
        conn.exec_driver_sql("DROP TABLE alembic_version")
        conn.exec_driver_sql("DROP INDEX ix_incidents_category_time")
        conn.exec_driver_sql("ALTER TABLE incidents DROP COLUMN due_at")
    store = open_store(url)
    assert migrations.current(store.engine) == "0001"
    assert _differences(store.engine) == []
    store.close()


def _open(url: str) -> str | None:
    store = open_store(url)
    revision = migrations.current(store.engine)
    store.close()
    return revision


def test_processes_opening_a_new_database_together_migrate_it_once(tmp_path):
    url = database_url(tmp_path / "together.db")
    with multiprocessing.get_context("spawn").Pool(4) as pool:
        assert pool.map(_open, [url] * 4) == ["0001"] * 4
    store = open_store(url)
    assert _differences(store.engine) == []
    store.close()
