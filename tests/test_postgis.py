"""What the PostGIS store adds (gridmap.storage.postgis): geometry columns in EPSG:4326 with GiST
indexes, COPY loads, the change counter, the spatial index set aside during a big import.  The
behaviour shared with SQLite is tests/test_storage.py's contract, which runs on both."""
from __future__ import annotations

from datetime import datetime

import pytest
import shapely
import sqlalchemy as sa

from gridmap.incidents import IncidentColumns
from gridmap.levels import Level
from gridmap.storage import open_store, sql

from .conftest import POSTGIS, database_url
from .test_storage import add, block, draft

pytestmark = pytest.mark.skipif(not POSTGIS, reason="needs a PostGIS server: GRIDMAP_TEST_POSTGIS=postgresql://… "
                                "(scripts/test starts one for its PostGIS pass)")


@pytest.fixture
def store(tmp_path):
    s = open_store(database_url(tmp_path / "postgis.db"))
    yield s
    s.close()


def test_unit_boundaries_are_postgis_geometries_in_4326_with_a_gist_index(store):
    block(store)
    with store.engine.connect() as conn:
        rows = conn.exec_driver_sql("SELECT u.code, ST_SRID(u.geometry), ST_AsText(u.geometry) FROM units u "
                                    "JOIN layer_versions v ON v.id = u.version_id WHERE v.level = 'micro_grid' "
                                    "ORDER BY u.code").all()
        assert rows == [("E-N", 4326, "POLYGON((0.02 0.01,0.02 0.02,0.01 0.02,0.01 0.01,0.02 0.01))"),
                        ("E-S", 4326, "POLYGON((0.02 0,0.02 0.01,0.01 0.01,0.01 0,0.02 0))"),
                        ("W-N", 4326, "POLYGON((0.01 0.01,0.01 0.02,0 0.02,0 0.01,0.01 0.01))"),
                        ("W-S", 4326, "POLYGON((0.01 0,0.01 0.01,0 0.01,0 0,0.01 0))")]
        assert _index_method(conn, "ix_units_geometry") == "gist"


def test_incidents_have_a_point_column_from_their_lon_lat_with_a_gist_index(store):
    block(store)
    add(store, [draft(0.005, 0.015), draft(0.0125, 0.0025)], {Level.MICRO_GRID: ["W-N", "E-S"]})
    with store.engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT id, ST_SRID(geom), ST_X(geom), ST_Y(geom) FROM incidents "
                                    "ORDER BY id").all() == [(1, 4326, 0.005, 0.015), (2, 4326, 0.0125, 0.0025)]
        # the database answers spatial questions itself: which micro-grid covers each incident
        assert conn.exec_driver_sql("SELECT i.id, u.code FROM incidents i JOIN units u ON ST_Covers(u.geometry, "
                                    "i.geom) JOIN layer_versions v ON v.id = u.version_id "
                                    "WHERE v.level = 'micro_grid' ORDER BY i.id").all() == [(1, "W-N"), (2, "E-S")]
        assert _index_method(conn, "ix_incidents_geom") == "gist"


def test_copy_keeps_text_with_tabs_newlines_and_backslashes_exactly(store):
    description = "第一行\t制表\n第二行 \\N 反斜杠\\ \r结束"
    add(store, [draft(0.005, 0.005, description=description, external_id="a\tb\\c")])
    row = store.incidents()[["external_id", "description"]].values.tolist()
    assert row == [["a\tb\\c", description]]


def test_a_big_import_sets_the_spatial_index_aside_and_builds_it_again(store, monkeypatch):
    monkeypatch.setattr(sql, "SET_ASIDE_FROM", 3)
    add(store, [draft(0.005, 0.005), draft(0.015, 0.005)])
    with store.writing() as tx:
        tx.expect_incidents(3)
        assert _index_method(tx.conn, "ix_incidents_geom") is None
        tx.add_incidents(IncidentColumns.of([draft(0.005, 0.015, reported_at=datetime(2026, 4, d))
                                             for d in (1, 2, 3)]), {})
    with store.engine.connect() as conn:
        assert _index_method(conn, "ix_incidents_geom") == "gist"
        assert _index_method(conn, "ix_incidents_category_time") == "btree"
        assert conn.exec_driver_sql("SELECT count(*) FROM incidents WHERE geom && "
                                    "ST_MakeEnvelope(0, 0.01, 0.01, 0.02, 4326)").scalar_one() == 3


def test_the_change_counter_moves_with_every_commit_by_any_process(tmp_path):
    url = database_url(tmp_path / "shared.db")
    first, second = open_store(url), open_store(url)      # two servers' connection pools
    before = second.changes()
    assert isinstance(before, int)
    add(first, [draft(0.005, 0.005)])            # one write transaction in the other pool
    assert (second.changes() - before, second.changes() - before) == (1, 1)      # moved once, then still
    first.close()
    second.close()


def _index_method(conn: sa.Connection, name: str) -> str | None:
    return conn.exec_driver_sql("SELECT am.amname FROM pg_class c JOIN pg_am am ON am.oid = c.relam "
                                "WHERE c.relname = %(name)s", {"name": name}).scalar()


def test_wkb_comes_back_exactly_as_stored(store):
    block(store)
    loaded = store.layers()[Level.GRID].units.geometry.to_numpy()
    assert shapely.to_wkb(loaded).tolist() == [shapely.to_wkb(g) for g in (
        shapely.from_wkt("POLYGON ((0.01 0, 0.01 0.02, 0 0.02, 0 0, 0.01 0))"),
        shapely.from_wkt("POLYGON ((0.02 0, 0.02 0.02, 0.01 0.02, 0.01 0, 0.02 0))"))]
